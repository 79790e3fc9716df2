"""``stvup eval``: option parsing over :mod:`stvup.evaluation` (registered on the main group by :mod:`stvup.cli`)."""

from __future__ import annotations

import click

from .cli_options import PRECISIONS, video_options

__all__ = ["evaluate_cmd"]


@click.command(name="eval")
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
@click.option(
    "--time",
    "time_factor",
    type=click.IntRange(min=2),
    default=2,
    show_default=True,
    help="Frame-rate factor N: every N-th frame is input and the N-1 between are new (T_in = j/N), scored together "
    "and per time. 2 is the paper's protocol.",
)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=click.Choice(["auto", *PRECISIONS]),
    default="fp32",
    help="Arithmetic precision (fp32 by default, so that scores compare across machines).",
)
@click.option("--tile", default="auto", metavar="auto|off|N", help="Tile size in input pixels (as upscale).")
@video_options(only=("ensemble",))
@click.option(
    "--markdown", "md_path", type=click.Path(dir_okay=False), default=None, help="Also write the Markdown tables here."
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write all scores as JSON here."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
def evaluate_cmd(
    clips, weights, model_name, methods, crop, max_frames, time_factor, device, precision, tile, ensemble, md_path,
    json_path, quiet,
) -> None:  # fmt: skip
    """Score stvup and the baselines on HR CLIPS with the paper's protocol (×4 space from even frames, ×2 time).

    CLIPS are videos, frame folders, or folders of them (e.g. vid4/GT). Prints Markdown tables: PSNR/SSIM on Y and
    RGB for kept (even) and new (odd) frames, mean and per clip. --time N scores ×N time instead.
    """
    from .evaluation import MODEL_METHODS, evaluate, find_clips, prepare_report, write_report

    prepare_report(md_path, json_path)  # before minutes of scoring, not after
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    upscaler = None
    scale = 4
    if chosen is None or MODEL_METHODS & set(chosen):
        from .loader import load_upscaler

        upscaler = load_upscaler(weights, model=model_name, device=device, precision=precision, tile=tile,
                                 ensemble=ensemble)  # fmt: skip
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
        time=time_factor,
        on_progress=progress,
    )
    write_report(report, md_path, json_path)
    click.echo(report.to_markdown())
