"""The ``stvup`` command: a thin Click layer over the library.

Every command turns :class:`~stvup.errors.StvupError` into one ``error: ...`` line on stderr and exit code 1;
Ctrl-C exits with 130, SIGTERM and SIGHUP with 143 and 129 after the same cleanup. Nothing here computes anything
the library cannot do by itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from stvup import __version__
from stvup.errors import StvupError

from .eval import evaluate_cmd
from .kit import kit
from .options import PRECISIONS, build_options, video_options
from .output import progress_bar, report, result_dict, tracker
from .signals import Terminated, stop_on_signals
from .train import train


class StvupGroup(click.Group):
    """Runs subcommands with user-facing error handling: one line, no traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except StvupError as exc:
            _fail(f"error: {exc}", exc, 1)
        except Terminated as exc:
            _fail(f"error: stopped by {exc}; nothing partial was left", exc, 128 + exc.signum)
        except KeyboardInterrupt as exc:
            _fail("error: interrupted", exc, 130)


def _fail(message: str, exc: BaseException, code: int) -> None:
    """The one error line, then any note the library added (e.g. where the finished part waits), then exit."""
    click.echo(message, err=True)
    for note in getattr(exc, "__notes__", []):
        click.echo(f"  {note}", err=True)
    sys.exit(code)


@click.group(cls=StvupGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="stvup")
def cli() -> None:
    """Space-time video upsampling: sharper (×2/×4) and smoother (any frame rate) video in one network pass."""


@cli.command()
@click.argument("input_path", metavar="[INPUT]", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
def info(input_path: Path | None, as_json: bool) -> None:
    """Show versions, compute devices and the available models; with INPUT, how stvup reads that video."""
    from .info import collect_info, describe_input

    if input_path is not None:
        facts = describe_input(str(input_path))
        if as_json:
            click.echo(json.dumps(facts, indent=2))
        else:
            for key, value in facts.items():
                click.echo(f"{key.replace('_', ' ')}: {value}")
        return
    data = collect_info()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"stvup {data['versions']['stvup']}")
    console.print(", ".join(f"{k} {v}" for k, v in data["versions"].items() if k != "stvup"))
    console.print("devices: " + ", ".join(f"{d['name']} (--precision auto: {d['auto_precision']})"
                                          for d in data["devices"]))  # fmt: skip
    table = Table("model", "scale", "parameters", "description")
    for m in data["models"]:
        table.add_row(m["name"], f"×{m['scale']}", f"{m['parameters']:,}", m["description"])
    console.print(table)
    table = Table("two-stream module", "kind", "parameters (×4)", "description")
    for m in data["two_stream_modules"]:
        table.add_row(m["name"], m["kind"], f"{m['parameters']:,}", m["description"])
    console.print(table)
    console.print("two-stream models are named two-stream:<spatial>+<temporal>, e.g. two-stream:espcn+dvf")
    if data["weights"]:
        for w in data["weights"]:
            tag = " (default)" if w["default"] else ""
            console.print(f"weights: {w['path']}{tag}, {w['model']}, {w['grid']} grid, {w['flow']} flow, "
                          f"{w['megabytes']} MB")  # fmt: skip
    else:
        console.print("weights: none shipped yet; pass --weights PATH to upscale (see README)")
    c = data["compiling"]
    compiler = "a C compiler found" if c["c_compiler"] else "no C compiler: runs stay eager"
    console.print(f"compiling (--compile auto): {compiler}; cache {c['cache']}, {c['compiled_shapes']} shapes compiled")


@cli.command()
@click.argument("src", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--model", "model_name", default="stvun", show_default=True, help="Model variant the checkpoint is of.")
@click.option(
    "--dtype", type=click.Choice(list(PRECISIONS)), default="fp32", show_default=True, help="Stored precision."
)
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
def convert(src: tuple[Path, ...], dst: Path, model_name: str, dtype: str, overwrite: bool) -> None:
    """Convert a checkpoint (e.g. the authors' STVUN.pth) to .safetensors, after checking it key for key.

    Several SRC files (checkpoints of one training run, e.g. its last few) are averaged into one set of weights.
    """
    import torch

    from stvup.errors import OutputError
    from stvup.model.weights import convert_checkpoint

    if dst.suffix != ".safetensors":
        raise OutputError(dst, "the output name must end in .safetensors")
    if dst.exists() and not overwrite:
        raise OutputError(dst, "exists; pass --overwrite to replace it")
    digest = convert_checkpoint(src, dst, model_name, getattr(torch, PRECISIONS[dtype]))
    click.echo(f"{dst}  sha256 {digest}")


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output video, or a folder for PNG frames. Default: INPUT_stvup_xS.mp4 beside INPUT.",
)
@video_options
def upscale(input_path: Path, output: Path | None, quiet: bool, as_json: bool, **options) -> None:
    """Upsample INPUT (a video or a folder of numbered frames) in space and time."""
    from stvup.api import upscale as run

    with progress_bar(quiet or as_json) as bar:
        result = run(input_path, output, build_options(options), progress=tracker(bar, input_path.name))
    report([result], as_json, quiet)


@cli.command()
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@video_options
@click.option(
    "--ray",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[ADDRESS]",
    help="Spread the work over a Ray cluster: this machine's (or a new local one) without ADDRESS, else the one at "
    "ADDRESS (ray://host:10001). Long videos are split into parts. Needs pip install 'stvup[ray]'.",
)
def batch(in_dir: Path, out_dir: Path, quiet: bool, as_json: bool, **options) -> None:
    """Upsample every video and frame folder in IN_DIR into OUT_DIR; skips finished ones, carries on past errors."""
    from stvup.api import batch as run

    with progress_bar(quiet or as_json) as bar:
        state = {"update": None}

        def on_start(src, dst) -> None:
            state["update"] = tracker(bar, src.name)

        def progress(p) -> None:
            state["update"](p)

        settings = build_options({k: v for k, v in options.items() if k != "ray"})
        result = run(in_dir, out_dir, settings, ray=options["ray"], on_start=on_start, progress=progress)
    if as_json:
        click.echo(json.dumps({"results": [result_dict(r) for r in result.results], "failures": result.failures}))
    else:
        report(result.results, False, quiet)
        for message in result.failures.values():
            click.echo(f"failed: {message}", err=True)
        if not quiet:
            done = sum(not r.skipped for r in result.results)
            skipped = sum(r.skipped for r in result.results)
            click.echo(f"{done} done, {skipped} skipped, {len(result.failures)} failed", err=True)
    if result.failures:
        sys.exit(1)


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--at", default="0", metavar="TIME", help="The kept frame to show: seconds or HH:MM:SS.ms.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG to write. Default: INPUT_preview.png beside INPUT.",
)
@click.option("--crop", default=None, metavar="WxH+X+Y", help="Show only this region (output pixels), at full size.")
@video_options(only=("space", "model", "weights", "device", "precision", "tile", "ensemble", "input-fps", "overwrite",
                     "json"))  # fmt: skip
def preview(input_path: Path, as_json: bool, **options) -> None:
    """Write one picture: bicubic next to stvup at output size, for a kept and a new frame at --at; in seconds."""
    from stvup.upscaling.comparison import preview as run

    options["space"] = int(options["space"]) if options["space"] else None
    result = run(input_path, **options)
    if as_json:
        click.echo(json.dumps({"output": result.output, "size": list(result.size), "panel": list(result.panel),
                               "kept_time": result.kept_time}))  # fmt: skip
    else:
        w, h = result.panel
        click.echo(f"{result.output}: bicubic | stvup panels of {w}x{h}, kept frame at {result.kept_time:.3f} s",
                   err=True)  # fmt: skip


@cli.command()
@click.option("--size", default="960x540", help="Output frame size WxH (the input is this divided by the scale).")
@click.option("--frames", type=click.IntRange(min=2), default=6, help="Input frames in the synthetic clip.")
@click.option("--time", "time_", default="2", help="Frame-rate factor.")
@click.option("--model", "model_name", default=None, help="Model variant. Default: the weights' (or stvun).")
@click.option(
    "--weights",
    default=None,
    metavar="PATH|NAME",
    help="Checkpoint or shipped name; without one (and no shipped weights) the model runs with random weights.",
)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision", type=click.Choice(["auto", *PRECISIONS]), default="auto", help="Arithmetic precision (as upscale)."
)
@click.option("--tile", default="auto", metavar="auto|off|N", help="Tile size in input pixels (as upscale).")
@video_options(only=("space", "compile", "ensemble"))
@click.option(
    "--memory-format",
    type=click.Choice(["auto", "channels-last", "contiguous"]),
    default="auto",
    show_default=True,
    help="Activation layout; auto: channels-last on a CPU, contiguous on CUDA.",
)
@click.option(
    "--job-frames",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Length of the job (output frames) that --compile auto decides for and the amortised time spreads the "
    "compile over.",
)
@click.option("--no-baseline", is_flag=True, help="Skip the FFmpeg lanczos + minterpolate baseline.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench(size, frames, time_, model_name, weights, device, precision, tile, space, compile, ensemble, memory_format,
          job_frames, no_baseline, as_json) -> None:  # fmt: skip
    """Measure wall seconds per output frame (total) and each stage's busy time, and the FFmpeg baseline's."""
    from stvup.evaluation.bench import benchmark, parse_size

    report = benchmark(
        size=parse_size(size), frames=frames, time_factor=time_, weights=weights, model=model_name, device=device,
        precision=precision, tile=tile, baseline=not no_baseline, compile=compile, memory_format=memory_format,
        ensemble=ensemble, job_frames=job_frames, space=int(space) if space else None,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"{report['model']} on {report['device']} ({report['precision']}, {report['threads']} threads, "
        f"{report['memory_format']}, compile {report['compile']} ({'' if report['compiled'] else 'not '}compiled), "
        f"ensemble {report['ensemble']}); "
        f"weights: {report['weights']}"
    )
    if report["warmup_s"] is not None:
        console.print(f"warm-up (left out of the timing): {report['warmup_s']:.1f} s")
    if report["compile_s"] is not None:
        console.print(f"compiling: {report['compile_s']:.1f} s ({'first' if report['first_compile'] else 'cached'})")
    console.print(f"input {report['input']} → output {report['output']}")
    table = Table("stage", "s / output frame")
    for stage, value in report["stages_s_per_frame"].items():
        table.add_row(stage if stage != "total" else "total (wall)", f"{value:.4f}")
    console.print(table)
    console.print(f"wall time / model busy time: {report['wall_over_model']:.3f} (decode and encode overlap the model)")
    console.print(f"stvup: {report['fps']:.2f} output frames/s")
    console.print(f"over a {report['job_frames']}-frame job, compiling included: "
                  f"{report['amortised_s_per_frame']:.4f} s / output frame")  # fmt: skip
    base = report.get("baseline")
    if base:
        if "error" in base:
            console.print(f"baseline failed: {base['error']}")
        else:
            console.print(f"{base['name']}: {base['s_per_frame']:.4f} s/frame, {base['fps']:.2f} frames/s")


cli.add_command(kit)
cli.add_command(train)
cli.add_command(evaluate_cmd)


def main() -> None:
    """Console-script entry point: SIGTERM and SIGHUP stop a run as Ctrl-C does (:mod:`stvup.cli.signals`)."""
    with stop_on_signals():
        cli(prog_name="stvup")


if __name__ == "__main__":
    main()
