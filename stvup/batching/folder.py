"""Every video and frame folder of a folder, through :func:`~stvup.upscaling.job.upscale`: ``stvup batch``.

One loaded network serves all inputs; an input whose output is already complete is skipped, so a batch that was
stopped continues where it was; a broken input is recorded and the batch carries on. The network knows the work
still queued behind each job, so a folder of short clips of one size compiles it when all of them together repay
that (:meth:`~stvup.upscaling.pipeline.Upscaler.plan_compile`). ``ray=`` hands the same work to
:mod:`stvup.batching.distributed`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stvup.errors import OutputError, StvupError
from stvup.upscaling.job import Progress, upscale
from stvup.upscaling.loader import load_upscaler
from stvup.upscaling.options import UpscaleOptions
from stvup.upscaling.pipeline import Upscaler
from stvup.upscaling.timing import output_rate
from stvup.video import probe

from .inputs import BatchResult, OnDone, batch_target, find_inputs, is_complete, pending

__all__ = ["batch"]


def batch(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: UpscaleOptions | None = None,
    *,
    ray: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    on_start: Callable[[Path, Path], None] | None = None,
    on_done: OnDone | None = None,
    progress: Callable[[Progress], None] | None = None,
    **settings: Any,
) -> BatchResult:
    """Upsamples every video and frame folder in ``in_dir`` into ``out_dir`` (created if needed).

    ``options`` and keyword ``settings`` are those of :func:`~stvup.upscaling.job.upscale`
    (:class:`~stvup.upscaling.options.UpscaleOptions`), one value for every input. Outputs keep the input's name
    (frame folders become ``<name>.mp4``, other containers MP4 unless MKV/MOV). Inputs whose output already exists
    and is complete are skipped; a broken input is recorded in ``failures`` and the batch carries on. ``ray``:
    spread the work over a Ray cluster (``"auto"``: this machine's or a new local one; or an address) with
    ``workers`` actors and ``retries`` further tries of a failed part, see :mod:`stvup.batching.distributed`.
    """
    options = UpscaleOptions.build(options, **settings)  # bad options fail here, before any work
    if ray is not None:
        from .distributed import batch_on_ray

        return batch_on_ray(in_dir, out_dir, options, address=ray, workers=workers, retries=retries,
                            on_start=on_start, on_done=on_done, progress=progress)  # fmt: skip
    inputs = find_inputs(in_dir)
    out_root = Path(out_dir)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out_root, f"cannot create folder ({exc.strerror})") from None
    upscalers: dict[int | None, Upscaler] = {}  # one per spatial factor: --to may pick ×2 for some inputs, ×4 others

    def upscaler_for(space: int | None) -> Upscaler:
        if space not in upscalers:
            upscalers[space] = load_upscaler(**{**options.model_settings(), "space": space})
        return upscalers[space]

    work = _work(inputs, out_root, options)
    if options.to is None:
        upscaler_for(options.space)  # the weights load (and fail) before the first job
    for space, size, frames in work.values():
        queued = upscaler_for(space).queued
        queued[size] = queued.get(size, 0) + frames
    result = BatchResult()
    for src, dst in pending(inputs, out_root, options.overwrite, result, on_start, on_done):
        space = options.space
        if src in work:  # from here on, queued behind this job
            space, size, frames = work[src]
            upscaler_for(space).queued[size] -= frames
        try:
            if src not in work and options.to is not None:
                space = options.target(*probe_size(src, options))[0]  # fails here, for this input alone
            done = upscale(src, dst, options, upscaler=upscaler_for(space), progress=progress)
        except StvupError as exc:
            result.failed(src, str(exc), on_done)
            continue
        result.succeeded(done, on_done)
    return result


def _work(
    inputs: list[Path], out_root: Path, options: UpscaleOptions
) -> dict[Path, tuple[int | None, tuple[int, int], int]]:
    """The spatial factor (``--to`` chooses it per input), frame size ``(h, w)`` and estimated output frames of each
    input still to do (a probe of its header; one that cannot be probed or sized is left out here and reported by
    its job)."""
    work = {}
    for src in inputs:
        if is_complete(batch_target(out_root, src)) and not options.overwrite:
            continue
        try:
            info = probe(src, options.folder_fps)
            space = options.target(info.width, info.height)[0]
        except StvupError:
            continue
        if info.frame_count:
            rate = output_rate(info.rate, options.time_factor, options.target_fps)
            work[src] = (space, (info.height, info.width), round(info.frame_count * rate / info.rate))
    return work


def probe_size(src: Path, options: UpscaleOptions) -> tuple[int, int]:
    """An input's frame width and height."""
    info = probe(src, options.folder_fps)
    return info.width, info.height
