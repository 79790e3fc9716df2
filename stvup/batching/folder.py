"""Every video and frame folder of a folder, through :func:`~stvup.upscaling.job.upscale`: ``stvup batch``.

One loaded network serves all inputs; an input whose output is already complete is skipped, so a batch that was
stopped continues where it was; a broken input is recorded and the batch carries on. ``ray=`` hands the same work
to :mod:`stvup.batching.distributed`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from stvup.errors import OutputError, StvupError
from stvup.upscaling.job import Progress, check_options, upscale
from stvup.upscaling.loader import load_upscaler
from stvup.upscaling.shots import DEFAULT_THRESHOLD

from .inputs import BatchResult, OnDone, find_inputs, pending

__all__ = ["batch"]


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
    see :mod:`stvup.batching.distributed`.
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
