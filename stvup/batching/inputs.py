"""A batch's inputs and what became of each: which videos and frame folders a folder holds, where each one's output
goes, which are already done, and the per-input results (:class:`BatchResult`).

Shared by the batch in one process (:mod:`stvup.batching.folder`) and the batch on Ray
(:mod:`stvup.batching.distributed`), so that neither imports the other for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from stvup.errors import InputError, StvupError
from stvup.upscaling.job import UpscaleResult
from stvup.video import FRAME_EXTENSIONS, INPUT_EXTENSIONS, probe

__all__ = ["BatchResult", "OnDone", "batch_target", "find_inputs", "is_complete", "pending", "skipped_result"]


#: What ``batch`` tells its caller once an input is done: ``(result, None)`` or ``(None, one-line error)``.
OnDone = Callable[[UpscaleResult | None, str | None], None]


@dataclass
class BatchResult:
    """Per-input results of ``batch``; ``failures`` maps input paths to their one-line error."""

    results: list[UpscaleResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def succeeded(self, done: UpscaleResult, on_done: OnDone | None) -> None:
        """Record a finished (or skipped) input and tell ``on_done``."""
        self.results.append(done)
        if on_done is not None:
            on_done(done, None)

    def failed(self, src: str | os.PathLike, message: str, on_done: OnDone | None) -> None:
        """Record an input that failed with a one-line ``message`` and tell ``on_done``."""
        self.failures[os.fspath(src)] = message
        if on_done is not None:
            on_done(None, message)


def pending(
    inputs: list[Path],
    out_root: Path,
    overwrite: bool,
    result: BatchResult,
    on_start: Callable[[Path, Path], None] | None,
    on_done: OnDone | None,
) -> Iterator[tuple[Path, Path]]:
    """``(input, output)`` of every input that needs work, in order; one whose output is complete (and not to be
    overwritten) is recorded in ``result`` as skipped instead. ``on_start`` hears of every input first."""
    for src in inputs:
        dst = batch_target(out_root, src)
        if on_start is not None:
            on_start(src, dst)
        if is_complete(dst) and not overwrite:
            result.succeeded(skipped_result(src, dst), on_done)
            continue
        yield src, dst


def batch_target(out_root: Path, src: Path) -> Path:
    """Where ``batch`` writes ``src``: its name in ``out_root``, MKV and MOV kept, the rest (and folders) MP4."""
    ext = src.suffix.lower() if src.is_file() and src.suffix.lower() in (".mkv", ".mov") else ".mp4"
    return out_root / f"{src.stem if src.is_file() else src.name}{ext}"


def skipped_result(src: Path, dst: Path) -> UpscaleResult:
    """The result ``batch`` records for an input whose output is already complete."""
    done = UpscaleResult(os.fspath(src), os.fspath(dst), 0, 0, Fraction(0), Fraction(0), (0, 0), (0, 0), 0.0)
    done.skipped = True
    return done


def find_inputs(folder: str | os.PathLike) -> list[Path]:
    """Videos and frame folders directly inside ``folder``, in name order."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    found = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if any(p.suffix.lower() in FRAME_EXTENSIONS for p in entry.iterdir()):
                found.append(entry)
        elif entry.suffix.lower() in INPUT_EXTENSIONS:
            found.append(entry)
    return found


def is_complete(path: Path) -> bool:
    """An existing output counts as complete when it probes as a video: partial outputs never get the final name."""
    if not path.exists():
        return False
    try:
        probe(path)
    except StvupError:
        return False
    return True
