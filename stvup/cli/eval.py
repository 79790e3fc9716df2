"""``stvup eval``: option parsing over :mod:`stvup.evaluation.protocol` (registered on the main group by
:mod:`stvup.cli.main`)."""

from __future__ import annotations

import click

from .options import PRECISIONS, video_options

__all__ = ["evaluate_cmd"]


@click.command(name="eval")
@click.argument("clips", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--weights",
    default=None,
    metavar="PATH|NAME",
    help="Checkpoint to evaluate, or the name of shipped weights. Default: the shipped weights for the protocol "
    "(paper: the paper-protocol weights; real: the default weights).",
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
@click.option(
    "--protocol",
    type=click.Choice(["paper", "real"]),
    default="paper",
    show_default=True,
    help="How the LR input is made: the paper's Gaussian and subsampling, or real video's antialiased reduction on the "
    "block-centre grid followed by H.264 (yuv420p) at each --crf.",
)
@click.option(
    "--reduction",
    type=click.Choice(["bicubic", "area"]),
    default="bicubic",
    show_default=True,
    help="The real protocol's antialiased reduction.",
)
@click.option(
    "--crf",
    "crfs",
    default="0,23,32",
    show_default=True,
    help="The real protocol's H.264 CRFs, one evaluation each (COMISR's are 15,25,35); 'none' keeps 8-bit RGB.",
)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=click.Choice(["auto", *PRECISIONS]),
    default="fp32",
    help="Arithmetic precision (fp32 by default, so that scores compare across machines).",
)
@click.option("--tile", default="auto", metavar="auto|off|N", help="Tile size in input pixels (as upscale).")
@video_options(only=("space", "ensemble", "new-frames"))
@click.option(
    "--markdown", "md_path", type=click.Path(dir_okay=False), default=None, help="Also write the Markdown tables here."
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write all scores as JSON here."
)
@click.option(
    "--flow-check",
    is_flag=True,
    help="Score the optical flows instead (stvup.evaluation.flowcheck): pairs made from CLIPS with motion whose answer "
    "is known (shifts, zoom and rotation, moving pieces with occlusions), degraded as real video at each --crf; "
    "end-point error by motion size against zero flow, and LR interpolation PSNR on real triplets.",
)
@click.option(
    "--flows",
    default="all",
    show_default=True,
    help="With --flow-check: comma-separated classical flows (e.g. dis-medium-x2), or 'all'. The shipped weights' "
    "flows and --weights' are always scored, and zero flow.",
)
@click.option(
    "--pairs", type=click.IntRange(min=1), default=96, show_default=True, help="With --flow-check: pairs to make."
)
@click.option(
    "--selection",
    is_flag=True,
    help="Score the selection set instead (stvup.evaluation.selection): kept frames of 28 fixed windows (the Vimeo "
    "validation septuplets, held-out clips of the training footage) at each --crf, fp32. CLIPS: the training-footage "
    "folder and the data folder. --weights against --against, with the verdict whether --weights would ship.",
)
@click.option(
    "--against",
    default="default",
    show_default=True,
    metavar="PATH|NAME",
    help="With --selection: the weights that --weights would replace.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
def evaluate_cmd(
    clips, weights, model_name, methods, crop, max_frames, time_factor, protocol, reduction, crfs, device, precision,
    tile, space, ensemble, new_frames, flow_check, flows, pairs, selection, against, md_path, json_path, quiet,
) -> None:  # fmt: skip
    """Score stvup and the baselines on HR CLIPS (×4 space from even frames, ×2 time; --space 2 for ×2, on the ×2
    network beside the weights if there is one), with the paper's protocol or, with --protocol real, as real video
    is made (antialiased, block-centre grid, H.264 at each --crf).

    CLIPS are videos, frame folders, or folders of them (e.g. vid4/GT). Prints Markdown tables: PSNR/SSIM on Y and
    RGB for kept (even) and new (odd) frames, mean and per clip, and each method's best global shift. --time N
    scores ×N time instead.
    """
    from stvup.evaluation.protocol import (
        MODEL_METHODS,
        Protocol,
        evaluate_protocols,
        find_clips,
        prepare_report,
        report_texts,
        write_report,
    )

    prepare_report(md_path, json_path)  # before minutes of scoring, not after
    try:
        levels = [None if c.strip() == "none" else int(c) for c in crfs.split(",") if c.strip()]
    except ValueError:
        raise click.BadParameter(f"{crfs!r} is not a list of CRFs like 0,23,32", param_hint="--crf") from None
    if selection:
        from stvup.evaluation.selection import run_selection

        def told(done: int, total: int) -> None:
            if not quiet:
                click.echo(f"[{done}/{total}] selection windows scored", err=True)

        report, verdict = run_selection(clips, weights, against, [c for c in levels if c is not None], told)
        write_report(report, md_path, json_path)
        click.echo(report.to_markdown())
        if verdict is not None:
            click.echo(verdict[1])
        return
    if flow_check:
        from stvup.evaluation.flowcheck import run_flow_check

        names = None if flows.strip() == "all" else [f.strip() for f in flows.split(",") if f.strip()]
        report = run_flow_check(find_clips(clips), weights=weights, flows=names, crfs=levels, pairs=pairs,
                                max_frames=max_frames)  # fmt: skip
        write_report(report, md_path, json_path)
        click.echo(report.to_markdown())
        return
    if protocol == "paper":
        protocols = [Protocol()]
    else:
        protocols = [Protocol("real", reduction, crf) for crf in levels]
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    upscaler = None
    scale = 4
    if chosen is None or MODEL_METHODS & set(chosen):
        from stvup.upscaling.loader import load_upscaler, protocol_weights

        if weights is None:
            weights = protocol_weights(protocol)
        upscaler = load_upscaler(weights, model=model_name, device=device, precision=precision, tile=tile,
                                 ensemble=ensemble, space=int(space) if space else None,
                                 new_frames=new_frames)  # fmt: skip
        scale = upscaler.space
    elif space:
        scale = int(space)

    def progress(p) -> None:
        if not quiet:
            click.echo(f"[{p.clip_index + 1}/{p.clips}] {p.clip}: {p.method}", err=True)

    reports = evaluate_protocols(
        find_clips(clips),
        protocols,
        methods=chosen,
        upscaler=upscaler,
        scale=scale,
        crop=crop,
        max_frames=max_frames,
        time=time_factor,
        on_progress=progress,
    )
    report = reports[0] if len(reports) == 1 else reports
    write_report(report, md_path, json_path)
    click.echo(report_texts(report)[0])
