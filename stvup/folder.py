"""Every video and frame folder of a folder, through :func:`~stvup.job.upscale`: ``stvup batch``.

One loaded network serves all inputs; an input whose output is already complete is skipped, so a batch that was
stopped continues where it was; a broken input is recorded and the batch carries on. ``ray=`` hands the same work
to :mod:`stvup.distributed`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .errors import InputError, OutputError, StvupError
from .job import Progress, UpscaleResult, check_options, upscale
from .loader import load_upscaler
from .shots import DEFAULT_THRESHOLD
from .video import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, probe

__all__ = ["BatchResult", "batch", "batch_target", "find_inputs", "is_complete", "pending", "skipped_result"]


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
        elif entry.suffix.lower() in VIDEO_EXTENSIONS or entry.suffix.lower() in _OTHER_VIDEO_EXTENSIONS:
            found.append(entry)
    return found


_OTHER_VIDEO_EXTENSIONS = (".m4v", ".mpg", ".mpeg", ".ts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".y4m")


def is_complete(path: Path) -> bool:
    """An existing output counts as complete when it probes as a video: partial outputs never get the final name."""
    if not path.exists():
        return False
    try:
        probe(path)
    except StvupError:
        return False
    return True


def batch(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    on_start: Callable[[Path, Path], None] | None = None,
    on_done: OnDone | None = None,
    progress: Callable[[Progress], None] | None = None,
    weights: str | os.PathLike | None = None,
    model: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    space: int | None = None,
    tile: int | str | None = "auto",
    stream: str = "ts",
    time_mode: str = "recursive",
    compile: str = "off",
    ensemble: int = 1,
    ray: str | None = None,
    **options: object,
) -> BatchResult:
    """Upsamples every video and frame folder in ``in_dir`` into ``out_dir`` (created if needed).

    Outputs keep the input's name (frame folders become ``<name>.mp4``, other containers MP4 unless MKV/MOV).
    Inputs whose output already exists and is complete are skipped; a broken input is recorded in
    ``failures`` and the batch carries on. ``options`` are those of :func:`upscale` (time, fps, codec, ...).
    ``ray``: spread the work over a Ray cluster (``"auto"``: this machine's or a new local one; or an address),
    see :mod:`stvup.distributed`.
    """
    if ray is not None:
        from .distributed import batch_on_ray

        return batch_on_ray(in_dir, out_dir, address=ray, overwrite=overwrite, on_start=on_start, on_done=on_done,
                            progress=progress, weights=weights, model=model, device=device, precision=precision,
                            space=space, tile=tile, stream=stream, time_mode=time_mode, compile=compile,
                            ensemble=ensemble, **options)  # fmt: skip
    inputs = find_inputs(in_dir)
    # Bad options would fail every input: check them once, before any work.
    check_options(options.get("time"), options.get("fps"), options.get("scene_threshold", DEFAULT_THRESHOLD))
    out_root = Path(out_dir)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out_root, f"cannot create folder ({exc.strerror})") from None
    upscaler = load_upscaler(weights, model=model, device=device, precision=precision, space=space, tile=tile,
                             stream=stream, time_mode=time_mode, compile=compile, ensemble=ensemble)  # fmt: skip
    result = BatchResult()
    for src, dst in pending(inputs, out_root, overwrite, result, on_start, on_done):
        try:
            done = upscale(src, dst, upscaler=upscaler, overwrite=overwrite, progress=progress, **options)
        except StvupError as exc:
            result.failed(src, str(exc), on_done)
            continue
        result.succeeded(done, on_done)
    return result
