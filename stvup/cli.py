"""The ``stvup`` command: a thin Click layer over the library.

Every command turns :class:`~stvup.errors.StvupError` into one ``error: ...`` line on stderr and exit code 1;
Ctrl-C exits with 130. Nothing here computes anything the library cannot do by itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import StvupError

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class StvupGroup(click.Group):
    """Runs subcommands with user-facing error handling: one line, no traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except StvupError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)


@click.group(cls=StvupGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="stvup")
def cli() -> None:
    """Space-time video upsampling: sharper (×2/×4) and smoother (any frame rate) video in one network pass."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
def info(as_json: bool) -> None:
    """Show versions, compute devices and the available models."""
    from .info import collect_info

    data = collect_info()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"stvup {data['versions']['stvup']}")
    console.print(", ".join(f"{k} {v}" for k, v in data["versions"].items() if k != "stvup"))
    console.print("devices: " + ", ".join(d["name"] for d in data["devices"]))
    table = Table("model", "scale", "parameters", "description")
    for m in data["models"]:
        table.add_row(m["name"], f"×{m['scale']}", f"{m['parameters']:,}", m["description"])
    console.print(table)


@cli.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--model", "model_name", default="stvun", help="Model variant the checkpoint belongs to.")
@click.option("--dtype", type=click.Choice(list(PRECISIONS)), default="fp32", help="Precision of the stored tensors.")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
def convert(src: Path, dst: Path, model_name: str, dtype: str, overwrite: bool) -> None:
    """Convert a checkpoint (e.g. the authors' STVUN.pth) to .safetensors, after checking it key for key."""
    import torch

    from .errors import OutputError
    from .weights import convert_checkpoint

    if dst.suffix != ".safetensors":
        raise OutputError(dst, "the output name must end in .safetensors")
    if dst.exists() and not overwrite:
        raise OutputError(dst, "exists; pass --overwrite to replace it")
    digest = convert_checkpoint(src, dst, model_name, getattr(torch, PRECISIONS[dtype]))
    click.echo(f"{dst}  sha256 {digest}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="stvup")


if __name__ == "__main__":
    main()
