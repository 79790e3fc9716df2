"""What the CLI shows: the rich progress bar on stderr, and results as lines or JSON. Library code never prints;
these render its callbacks and results (:mod:`stvup.cli.main`)."""

from __future__ import annotations

import json

import click

__all__ = ["progress_bar", "report", "result_dict", "tracker"]


def progress_bar(quiet: bool, head: str = "{task.description}", fields: tuple[str, ...] = ("{task.fields[fps]} fps",)):
    """A rich progress bar on stderr (``head``, bar, count, ``fields``, elapsed, ETA); a no-op when quiet."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(head),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(f) for f in fields),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=False,
    )


def tracker(bar, description: str):
    """A progress callback that moves one rich task: input frames done, output frames per second."""
    import time as _t

    state: dict[str, object] = {}

    def update(p) -> None:
        # The task appears with the first frame, so errors found before any decoding print alone.
        chosen = f" ({p.precision} on {p.device})" if getattr(p, "precision", "") else ""
        # A first compile takes minutes before any frame comes out; say so rather than look stuck.
        text = description + chosen + (": compiling the network, once per frame size" if p.stage else "")
        if "task" not in state:
            state["task"] = bar.add_task(text, total=None, fps="-")
            state["start"] = _t.perf_counter()
        elapsed = max(_t.perf_counter() - state["start"], 1e-9)
        bar.update(state["task"], completed=p.frames_in, total=p.total, fps=f"{p.frames_out / elapsed:.2f}",
                   description=text)  # fmt: skip

    return update


def result_dict(r) -> dict:
    from stvup.video.formats import display_aspect_ratio, ratio_text

    w, h = r.output_size
    dar = ratio_text(display_aspect_ratio(w, h, r.sample_aspect_ratio)) if h else None
    return {
        "input": r.input, "output": r.output, "skipped": r.skipped, "frames_in": r.frames_in,
        "frames_out": r.frames_out, "input_rate": str(r.input_rate), "output_rate": str(r.output_rate),
        "input_size": list(r.input_size), "output_size": list(r.output_size), "seconds": round(r.seconds, 3),
        "skipped_streams": r.skipped_streams, "problems": r.problems, "device": r.device, "precision": r.precision,
        "ensemble": r.ensemble, "compiled": r.compiled, "cuts": [{"frame": i, "time": round(t, 6)} for i, t in r.cuts],
        "concealed_frames": r.concealed_frames,
        "resumed_frames": r.resumed_frames, "notes": r.notes, "sample_aspect_ratio": ratio_text(r.sample_aspect_ratio),
        "display_aspect_ratio": dar, "frames_decoded": r.frames_decoded, "input_frames": r.input_frames,
    }  # fmt: skip


def report(results, as_json: bool, quiet: bool) -> None:
    if as_json:
        click.echo(json.dumps([result_dict(r) for r in results] if len(results) != 1 else result_dict(results[0])))
        return
    for r in results:
        if quiet:
            continue
        if r.skipped:
            click.echo(f"{r.output}: already complete, skipped", err=True)
            continue
        w, h = r.output_size
        click.echo(
            f"{r.output}: {r.frames_out} frames {w}x{h} @ {r.output_rate} fps from {r.frames_in} input frames "
            f"in {r.seconds:.1f} s ({r.precision} on {r.device}{', compiled' if r.compiled else ''})",
            err=True,
        )
        for line in r.notes:
            click.echo(f"  {line}", err=True)
        if r.input_frames and r.frames_decoded and r.frames_decoded != r.input_frames:
            click.echo(f"  decoded {r.frames_decoded} frames for the input's {r.input_frames}", err=True)
        if r.cuts:
            shown = ", ".join(f"{t:.2f} s" for _, t in r.cuts[:8]) + (", ..." if len(r.cuts) > 8 else "")
            click.echo(f"  {len(r.cuts)} scene cut{'s' * (len(r.cuts) > 1)}, each shot upsampled alone: {shown}",
                       err=True)  # fmt: skip
        for line in r.skipped_streams + r.problems:
            click.echo(f"  warning: {line}", err=True)
