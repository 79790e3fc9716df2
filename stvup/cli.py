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
from click.core import ParameterSource

from . import __version__
from .cli_options import PRECISIONS, api_options, video_options
from .cli_output import progress_bar, report, result_dict, tracker
from .errors import StvupError
from .kit.cli import kit
from .signals import Terminated, stop_on_signals


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
            console.print(f"weights: {w['path']}{tag}, {w['model']}, {w['megabytes']} MB")
    else:
        console.print("weights: none shipped yet; pass --weights PATH to upscale (see README)")


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
    from .api import upscale as run

    with progress_bar(quiet or as_json) as bar:
        result = run(input_path, output, progress=tracker(bar, input_path.name), **api_options(options))
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
    from .api import batch as run

    with progress_bar(quiet or as_json) as bar:
        state = {"update": None}

        def on_start(src, dst) -> None:
            state["update"] = tracker(bar, src.name)

        def progress(p) -> None:
            state["update"](p)

        result = run(in_dir, out_dir, on_start=on_start, progress=progress, **api_options(options))
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
@video_options(only=("space", "model", "weights", "device", "precision", "tile", "input-fps", "overwrite", "json"))
def preview(input_path: Path, as_json: bool, **options) -> None:
    """Write one picture: bicubic next to stvup at output size, for a kept and a new frame at --at; in seconds."""
    from .comparison import preview as run

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
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Checkpoint; without one (and no shipped weights) the model runs with random weights.",
)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision", type=click.Choice(["auto", *PRECISIONS]), default="auto", help="Arithmetic precision (as upscale)."
)
@click.option("--tile", default="auto", metavar="auto|off|N", help="Tile size in input pixels (as upscale).")
@click.option("--no-baseline", is_flag=True, help="Skip the FFmpeg lanczos + minterpolate baseline.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench(size, frames, time_, model_name, weights, device, precision, tile, no_baseline, as_json) -> None:
    """Measure wall seconds per output frame (total) and each stage's busy time, and the FFmpeg baseline's."""
    from .bench import benchmark, parse_size

    report = benchmark(
        size=parse_size(size), frames=frames, time_factor=time_, weights=weights, model=model_name, device=device,
        precision=precision, tile=tile, baseline=not no_baseline,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"{report['model']} on {report['device']} ({report['precision']}, {report['threads']} threads); "
        f"weights: {report['weights']}"
    )
    console.print(f"input {report['input']} → output {report['output']}")
    table = Table("stage", "s / output frame")
    for stage, value in report["stages_s_per_frame"].items():
        table.add_row(stage if stage != "total" else "total (wall)", f"{value:.4f}")
    console.print(table)
    console.print(f"wall time / model busy time: {report['wall_over_model']:.3f} (decode and encode overlap the model)")
    console.print(f"stvup: {report['fps']:.2f} output frames/s")
    base = report.get("baseline")
    if base:
        if "error" in base:
            console.print(f"baseline failed: {base['error']}")
        else:
            console.print(f"{base['name']}: {base['s_per_frame']:.4f} s/frame, {base['fps']:.2f} frames/s")


def _crf_range(ctx, param, value):
    """``23`` or ``18-35`` → (low, high)."""
    if value is None:
        return None
    try:
        low, _, high = value.partition("-")
        return (int(low), int(high or low))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a CRF or CRF range like 18-35") from None


def _stride(ctx, param, value):
    if value == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither auto nor a whole number") from None
    if n < 2:
        raise click.BadParameter("must be at least 2")
    return n


@cli.command()
@click.argument("data", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="runs/stvun-small",
    show_default=True,
    help="Run folder: log.jsonl, checkpoints/, last.pt, model.safetensors. A resumed run stays in its own folder.",
)
@click.option("--model", "model_name", default="stvun-small", help="STVUN variant to train (see `stvup info`).")
@click.option(
    "--method",
    type=click.Choice(["stvun", "two-stream"]),
    default="stvun",
    show_default=True,
    help="stvun: the joint network. two-stream: f_S and f_T in two streams with cross-stream consistency.",
)
@click.option("--spatial", default="espcn", show_default=True, help="Two-stream spatial module: espcn or vdsr.")
@click.option("--temporal", default="dvf", show_default=True, help="Two-stream temporal module: dvf or slomo.")
@click.option(
    "--lambda",
    "lambda_c",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight λ of the consistency loss L_C. Default: 4 for two-stream, 0 (off) for stvun; 0 for two-stream is "
    "the baseline without L_C.",
)
@click.option(
    "--labeled-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Two-stream: keep HR ground truth for this share of the footage; the rest only feeds L_C.",
)
@click.option(
    "--unlabeled",
    multiple=True,
    type=click.Path(exists=True),
    help="Two-stream: folder or video of low-resolution footage used as is for L_C only (repeatable).",
)
@click.option(
    "--unlabeled-batch",
    type=click.IntRange(min=0),
    default=None,
    help="Unlabeled pairs added to each step's L_C. Default: the batch size.",
)
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Start from these weights instead of random ones.",
)
@click.option(
    "--resume",
    type=click.Path(exists=True),
    default=None,
    help="Continue a run (its folder, or a checkpoint file) with its saved settings and footage; only DATA, --out, "
    "--device, --threads, --precision, stage lengths of unfinished stages and logging may be given.",
)
@click.option(
    "--flow-steps",
    type=click.IntRange(min=0),
    default=0,
    help="Stage 0 steps: PWC-Net alone learns motion without labels (SSIM + L1 photometric loss, smoothness, "
    "occlusion check).",
)
@click.option("--flow-lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, help="Stage 0 learning rate.")
@click.option("--flow-patch", type=click.IntRange(min=16), default=64, help="Stage 0 LR patch size.")
@click.option(
    "--flow-smooth", type=click.FloatRange(min=0), default=0.5, help="Weight of stage 0's edge-aware smoothness."
)
@click.option(
    "--flow-reset", is_flag=True, help="Start PWC-Net from random weights (zero flow) even when --init gave it some."
)
@click.option(
    "--pretrain-steps",
    type=click.IntRange(min=0),
    default=300_000,
    help="Stage 1 steps: encoder, EFST and decoder on L_S only (two-stream: f_S and f_T on their own tasks).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=0),
    default=400_000,
    help="Stage 2 steps: the whole network on λ_M·L_M + λ_S·L_S + λ_F·L_F (two-stream: L_R + λ·L_C).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Samples per step.")
@click.option("--patch", type=click.IntRange(min=16), default=32, help="Stage 1 LR patch size (HR = ×scale).")
@click.option("--patch2", type=click.IntRange(min=16), default=64, help="Stage 2 LR patch size.")
@click.option("--lr", type=float, default=1e-4, help="Stage 1 initial learning rate (Adam).")
@click.option("--lr2", type=float, default=5e-5, help="Stage 2 initial learning rate.")
@click.option(
    "--lr-halve-every",
    type=click.IntRange(min=1),
    default=100_000,
    help="Halve the learning rate every this many steps of a stage.",
)
@click.option("--lambda-m", type=float, default=1.0, help="Weight of L_M (LR intermediate frame, Eq. 7).")
@click.option("--lambda-s", type=float, default=1.0, help="Weight of L_S (HR centre frame, Eq. 9).")
@click.option("--lambda-f", type=float, default=1.0, help="Weight of L_F (HR intermediate frames, Eq. 11).")
@click.option(
    "--stride",
    default="2",
    callback=_stride,
    help="Source frames between LR inputs (2: one time target at T=0.5), or auto (by frame rate).",
)
@click.option("--max-times", type=click.IntRange(min=1), default=3, help="Most time targets per sample.")
@click.option(
    "--degradation",
    "kernel",
    type=click.Choice(["duf", "bicubic", "mixed"]),
    default="duf",
    help="Downsampling: the paper's Gaussian (duf), antialiased bicubic, or either at random.",
)
@click.option(
    "--noise",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Largest Gaussian noise σ (8-bit levels) added to LR inputs.",
)
@click.option("--crf", default=None, callback=_crf_range, help="H.264 compression of LR inputs, e.g. 18-35.")
@click.option(
    "--degrade-probability",
    type=click.FloatRange(0, 1),
    default=1.0,
    help="Share of samples that get noise/compression.",
)
@click.option("--no-augment", is_flag=True, help="No flips, rotations or reversed order.")
@click.option("--max-frames", type=click.IntRange(min=7), default=None, help="Decode at most this many per source.")
@click.option("--seed", type=int, default=0, help="Seed of the sample sequence.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    help="auto: bf16 autocast where the hardware has it (CUDA, CPU with AMX/AVX-512 BF16).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1000, help="Steps between checkpoints.")
@click.option("--log-every", type=click.IntRange(min=1), default=10, help="Steps between log lines.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(
    data,
    out_dir,
    model_name,
    method,
    spatial,
    temporal,
    lambda_c,
    labeled_fraction,
    unlabeled,
    unlabeled_batch,
    init,
    resume,
    flow_steps,
    flow_lr,
    flow_patch,
    flow_smooth,
    flow_reset,
    pretrain_steps,
    steps,
    batch_size,
    patch,
    patch2,
    lr,
    lr2,
    lr_halve_every,
    lambda_m,
    lambda_s,
    lambda_f,
    stride,
    max_times,
    kernel,
    noise,
    crf,
    degrade_probability,
    no_augment,
    max_frames,
    seed,
    device,
    precision,
    threads,
    checkpoint_every,
    log_every,
    quiet,
) -> None:
    """Train STVUN (or the two-stream network) on videos and frame folders in DATA (recursive; vid4 is refused)."""
    from .runs import TrainConfig, load_training_checkpoint, resume_config
    from .training import train as run_training

    values = dict(
        data=list(data), out_dir=out_dir, model=model_name, method=method, spatial=spatial, temporal=temporal,
        lambda_c=lambda_c, labeled_fraction=labeled_fraction, unlabeled=list(unlabeled),
        unlabeled_batch=unlabeled_batch, init=init, flow_steps=flow_steps, flow_lr=flow_lr, flow_patch=flow_patch,
        flow_smooth=flow_smooth, flow_reset=flow_reset, pretrain_steps=pretrain_steps, steps=steps,
        batch_size=batch_size, patch=patch, patch2=patch2, lr=lr, lr2=lr2, lr_halve_every=lr_halve_every,
        lambda_m=lambda_m, lambda_s=lambda_s, lambda_f=lambda_f, stride=stride, max_times=max_times, kernel=kernel,
        noise=noise, crf=crf, degrade_probability=degrade_probability, augment=not no_augment,
        max_frames=max_frames, seed=seed, device=device, precision=precision, threads=threads,
        checkpoint_every=checkpoint_every, log_every=log_every,
    )  # fmt: skip
    if resume is None:
        if not data:
            raise click.UsageError("give the footage to train on (DATA), or --resume a run")
        config = TrainConfig(**values)
    else:  # only what the command line names changes; the run's saved settings supply the rest
        ctx = click.get_current_context()
        names = {"model_name": "model", "no_augment": "augment"}
        given = [names.get(p, p) for p in ctx.params if ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE]
        changes = {k: values[k] for k in given if k in values}
        config = resume_config(load_training_checkpoint(resume), **changes)
    bar = progress_bar(quiet, "stage {task.fields[stage]}", ("{task.fields[losses]}", "{task.fields[rate]} samples/s"))
    state: dict = {}

    def progress(p) -> None:
        if "task" not in state:
            state["task"] = bar.add_task("train", total=p.total, stage=p.stage, losses="", rate="-")
        losses = " ".join(f"{k}={v:.4f}" for k, v in p.losses.items() if k != "loss" and v)
        bar.update(state["task"], completed=p.step, stage=p.stage, losses=losses, rate=f"{p.samples_per_s:.1f}")

    def message(text: str) -> None:
        if not quiet:
            bar.console.print(text)

    with bar:
        result = run_training(config, resume=resume, on_progress=progress, on_message=message)
    click.echo(
        f"trained {result.steps} steps in {result.seconds / 60:.1f} min on {result.clips} clips "
        f"({result.windows} windows); weights: {result.weights}"
    )


@cli.command(name="eval")
@click.argument("clips", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Checkpoint to evaluate. Default: the shipped weights.",
)
@click.option("--model", "model_name", default=None, help="Model variant. Default: the weights'.")
@click.option(
    "--methods",
    default=None,
    help="Comma-separated: stvup, bicubic, bicubic-aligned, ffmpeg, v-f, f-v (STVUN), ts, st, avg (two-stream). "
    "Default: stvup,bicubic,bicubic-aligned,ffmpeg,v-f,f-v; for two-stream weights ts,st,avg and the classical ones.",
)
@click.option("--crop", type=click.IntRange(min=0), default=None, help="Border pixels left out. Default: the scale.")
@click.option("--max-frames", type=click.IntRange(min=3), default=None, help="Use at most this many frames per clip.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=click.Choice(["auto", *PRECISIONS]),
    default="fp32",
    help="Arithmetic precision (fp32 by default, so that scores compare across machines).",
)
@click.option("--tile", default="auto", metavar="auto|off|N", help="Tile size in input pixels (as upscale).")
@click.option(
    "--markdown", "md_path", type=click.Path(dir_okay=False), default=None, help="Also write the Markdown tables here."
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write all scores as JSON here."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
def evaluate_cmd(
    clips, weights, model_name, methods, crop, max_frames, device, precision, tile, md_path, json_path, quiet
) -> None:
    """Score stvup and the baselines on HR CLIPS with the paper's protocol (×4 space from even frames, ×2 time).

    CLIPS are videos, frame folders, or folders of them (e.g. vid4/GT). Prints Markdown tables: PSNR/SSIM on Y and
    RGB for kept (even) and new (odd) frames, mean and per clip.
    """
    from .evaluation import MODEL_METHODS, evaluate, find_clips, write_report

    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    upscaler = None
    scale = 4
    if chosen is None or MODEL_METHODS & set(chosen):
        from .api import load_upscaler

        upscaler = load_upscaler(weights, model=model_name, device=device, precision=precision, tile=tile)
        scale = upscaler.model.scale

    def progress(p) -> None:
        if not quiet:
            click.echo(f"[{p.clip_index + 1}/{p.clips}] {p.clip}: {p.method}", err=True)

    report = evaluate(
        find_clips(clips),
        methods=chosen,
        upscaler=upscaler,
        scale=scale,
        crop=crop,
        max_frames=max_frames,
        on_progress=progress,
    )
    write_report(report, md_path, json_path)
    click.echo(report.to_markdown())


cli.add_command(kit)


def main() -> None:
    """Console-script entry point: SIGTERM and SIGHUP stop a run as Ctrl-C does (:mod:`stvup.signals`)."""
    with stop_on_signals():
        cli(prog_name="stvup")


if __name__ == "__main__":
    main()
