"""``stvup kit``: the GPU training kit's commands (a thin layer over :mod:`stvup.kit`).

Importing this touches neither PyAV nor the model: the GPU machine runs ``python -m stvup kit chunk`` without PyAV.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from stvup.kit.presets import PRESETS


@click.group()
def kit() -> None:
    """GPU training kit: pack footage here, train in chunks on a lent GPU, join the weights here."""


@kit.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "kit_dir", type=click.Path(file_okay=False, path_type=Path), default=".kit",
              help="Kit folder: pack/ (segments, manifest.json) and train.json.")  # fmt: skip
@click.option("--budget", type=click.FloatRange(min=1), default=40.0, help="Pack size limit in MB.")
@click.option("--crf", type=click.IntRange(0, 51), default=14, help="H.264 quality of the segments (lower: better).")
@click.option("--max-side", type=click.IntRange(min=64), default=512, help="Crop segments to at most this a side.")
@click.option("--segment", type=click.IntRange(min=13), default=48, help="Most frames per segment.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="default", show_default=True,
              help="The run: default (the shipped weights, continued) or x2 (their ×2 network, issue 47).")  # fmt: skip
@click.option("--settings", "settings_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON file of training settings (TrainConfig fields) instead of the preset.")  # fmt: skip
@click.option("--set", "overrides", multiple=True, metavar="KEY=JSON",
              help="Change one training setting, e.g. --set steps=20000 --set model='\"stvun\"'.")  # fmt: skip
def pack(data, kit_dir, budget, crf, max_side, segment, preset, settings_path, overrides) -> None:
    """Build the data pack and the run's settings from training footage in DATA (vid4 is refused)."""
    from stvup.errors import UsageError
    from stvup.kit.pack import build_pack

    settings = json.loads(Path(settings_path).read_text()) if settings_path else dict(PRESETS[preset])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value  # a bare word: a string
    report = build_pack(data, kit_dir, budget_mb=budget, crf=crf, max_side=max_side, segment=segment,
                        settings=settings, on_message=click.echo)  # fmt: skip
    click.echo(f"kit ready in {report.kit_dir}: {report.frames} of {report.frames_available} frames "
               f"({report.bytes / 1e6:.1f} MB) in {report.seconds:.0f} s")  # fmt: skip


@kit.command()
@click.option("--kit", "kit_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".kit",
              help="Kit folder made by `stvup kit pack`.")  # fmt: skip
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path), default="runs/gpu",
              help="Run folder on this machine (resumed when it holds a run).")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where the weights' shards go (the device tool's $OUT).")  # fmt: skip
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=8.0,
              help="Training time of this chunk (keep the whole command under the tool's 10 minutes).")  # fmt: skip
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--decoder", type=click.Choice(["auto", "opencv", "pyav"]), default="auto",
              help="How the pack is decoded (the GPU machine has OpenCV, not PyAV).")  # fmt: skip
@click.option("--init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Weights to start from when the run folder is gone (the previous chunk's, joined).")  # fmt: skip
def chunk(kit_dir, run_dir, out_dir, minutes, device, decoder, init) -> None:
    """Train one chunk of the kit's run, then write its weights as checksummed shards to --out."""
    from stvup.kit.chunk import run_chunk

    last = [0.0]

    def progress(p) -> None:  # plain lines: the device tool returns the output's tail, not a terminal
        now = time.perf_counter()
        if now - last[0] >= 30 or p.step == p.total:
            last[0] = now
            losses = " ".join(f"{k}={v:.4f}" for k, v in p.losses.items() if k != "loss")
            click.echo(f"step {p.step}/{p.total} stage {p.stage} {losses} {p.samples_per_s:.1f} samples/s")

    result = run_chunk(kit_dir, run_dir, out_dir, minutes=minutes, device=device, decoder=decoder, init=init,
                       on_progress=progress, on_message=click.echo)  # fmt: skip
    state = "finished" if result.finished else "to be continued"
    origin = "resumed" if result.resumed else "new"
    click.echo(f"chunk done: step {result.step}/{result.total} ({state}), {origin} run, {result.seconds / 60:.1f} "
               f"min; {result.weights_dtype} shards listed in {result.manifest}")  # fmt: skip


@kit.command()
@click.argument("shard_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The joined weights file (.safetensors).")  # fmt: skip
def join(shard_dir, output) -> None:
    """Join the shards in SHARD_DIR into one weights file, checking every SHA-256."""
    from stvup.kit.shards import join_shards

    digest = join_shards(shard_dir, output)
    click.echo(f"{output}: sha256 {digest}")
