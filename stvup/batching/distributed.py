"""``stvup batch --ray``: a batch spread over a Ray cluster (or the cores of one machine).

Every video is cut into parts of whole output segments (:mod:`stvup.upscaling.resume`), and the parts of all videos are
handed to a pool of Ray actors, each holding one model: one actor per GPU where the cluster has GPUs, else one per
CPU core (a single PyTorch thread each, which is faster than threads fighting over cores). A part seeks to the key
frame before its own output frames, less the margin exactness needs (:func:`stvup.upscaling.reading.open_frames`),
and runs the model only for its own frames (``Upscaler.stream(skip=, stop=)``), so every window sees the same 7
frames and the same scene cuts as in one process: the joined video equals a single-process run, segment for
segment. Parts write their segments into the output's work folder and the driver journals them as they come back,
so an interrupted ``--ray`` batch resumes like any other run, and joins each video with its audio and subtitles once
all its parts are in.

A part that fails (an error, or a worker or machine lost) is tried again up to ``retries`` times; a video whose part
still fails is reported like any batch failure and the batch goes on. A worker that Ray cannot bring back gets no
more parts (the others carry on); if every worker is lost, the unfinished videos fail, with their finished segments
kept for the next run. Inputs and outputs must be on storage that every node sees (one machine, or a shared file
system). Ray is an optional extra: ``pip install 'stvup[ray]'``.

This module sets up the pool (:mod:`stvup.batching.workers`) and plans every video's parts;
:class:`stvup.batching.dispatch.Dispatcher` runs them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection
from fractions import Fraction
from pathlib import Path
from typing import Any

from stvup.errors import StvupError, UsageError
from stvup.upscaling.options import UpscaleOptions

from .workers import Workers, actor_class

__all__ = ["batch_on_ray", "plan_parts"]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, an optional extra: pip install 'stvup[ray]'") from None
    return ray


def batch_on_ray(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: UpscaleOptions,
    *,
    address: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    on_start: Callable[[Path, Path], None] | None = None,
    on_done: Callable[[Any, str | None], None] | None = None,
    progress: Callable[[Any], None] | None = None,
) -> Any:
    """:func:`stvup.batch` on Ray: the same inputs, outputs, ``options`` and result, the work spread over ``workers``
    actors (default: one per GPU of the cluster, else one per CPU core). ``address``: a running cluster
    (``ray://host:10001`` or ``host:6379``); None or ``"auto"`` joins the one this machine belongs to or starts a
    local one. ``retries``: further tries of a failed part."""
    from .dispatch import Dispatcher
    from .inputs import BatchResult, find_inputs, pending

    if options.to is not None:
        # Each worker holds one network at one factor; --to may need ×2 for one input and ×4 for the next.
        raise UsageError("--to is not available with --ray; pass --space 2 or --space 4")
    ray = _import_ray()
    inputs = find_inputs(in_dir)
    out_root = Path(out_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    # The weights' object ref lives as long as the batch: Ray restarts a lost worker from it.
    pool, described, _weights_ref = _start_pool(ray, options, address, workers)
    try:  # the pool goes whatever happens below
        from ray.util.queue import Queue

        result = BatchResult()
        videos: list[Any] = []
        parts: list[Any] = []
        for src, dst in pending(inputs, out_root, options.overwrite, result, on_start, on_done):
            try:
                video = _plan_video(options, src, dst, described)
            except StvupError as exc:
                result.failed(src, str(exc), on_done)
                continue
            videos.append(video)
            _add_parts(video, len(videos) - 1, len(pool), parts)

        def part_args(v: Any) -> dict[str, Any]:
            return {"src": os.fspath(v.src), "options": options, "work": os.fspath(v.job.work),
                    "suffix": v.dst.suffix.lower(), "segment_frames": v.job.identity["segment_frames"],
                    "rate_out": v.rate_out, "writer_options": v.writer_options, "deint": v.deint,
                    "info": v.info}  # fmt: skip

        Dispatcher(ray, Workers(ray, pool), Queue(), videos, parts, result, part_args, described["precision"],
                   described["device"], retries, on_done, progress).run()  # fmt: skip
    finally:
        for actor in pool:
            ray.kill(actor)
    return result


def _start_pool(ray: Any, options: UpscaleOptions, address: str | None, workers: int | None) -> tuple[list, dict, Any]:
    """Joins or starts the cluster and the pool of actors, each holding the options' network; returns the pool, what
    the first actor says of its pipeline (fingerprint, space, precision, device) plus the model's name, and the
    weights' object ref, which the caller must hold while the pool works (a restarted actor is built from it)."""
    from stvup.model.weights import (
        checkpoint_model_name,
        default_weights_path,
        load_checkpoint,
        resolve_weights,
        weights_flow,
        weights_grid,
    )

    from .dispatch import cause

    path = resolve_weights(options.weights) if options.weights is not None else default_weights_path()
    if path is None:
        raise UsageError("no weights: pass --weights PATH")
    if options.space == 2:
        from stvup.upscaling.loader import x2_sibling

        path = x2_sibling(path) or path
    state = load_checkpoint(path)
    name = options.model or checkpoint_model_name(path, state)
    flow = weights_flow(path)
    if not ray.is_initialized():
        ray.init(address=None if address in (None, "", "auto") and not os.environ.get("RAY_ADDRESS") else address,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)  # fmt: skip
    gpus = int(ray.cluster_resources().get("GPU", 0))
    count = workers or (gpus if gpus else max(1, int(ray.cluster_resources().get("CPU", 1))))
    settings = {"device": "cuda" if gpus else options.device, "precision": options.precision, "space": options.space,
                "tile": options.tile, "stream": options.stream, "time_mode": options.time_mode,
                "compile": options.compile, "ensemble": options.ensemble, "grid": weights_grid(path),
                "new_frames": options.new_frames}  # fmt: skip
    Actor = actor_class(ray, gpus > 0)
    state_ref = ray.put(state)
    # Named, so that tools (and the tests) can find a worker: stvup-<driver pid>-<k>.
    model = (name, flow)
    pool = [Actor.options(name=f"stvup-{os.getpid()}-{k}").remote(state_ref, model, settings, None if gpus else 1)
            for k in range(count)]  # fmt: skip
    try:
        described = ray.get(pool[0].describe.remote())
    except ray.exceptions.RayError as exc:
        for actor in pool:
            ray.kill(actor)
        raise UsageError(f"the model could not be set up on the cluster ({cause(exc)})") from None
    return pool, {**described, "model": name}, state_ref


def _plan_video(options: UpscaleOptions, src: Path, dst: Path, described: dict[str, Any]) -> Any:
    """One input's plan: probed, its output rate, segment length and journal (resumed segments included)."""
    from stvup.upscaling.job import job_settings_for, plan_input, segment_seconds_for
    from stvup.upscaling.journal import Job, job_identity, segment_length
    from stvup.upscaling.timing import output_rate
    from stvup.video.formats import default_codec

    from .dispatch import Video

    span = options.span()
    scale = described["space"]
    info, deint = plan_input(os.fspath(src), options.input_fps, span, options.deinterlace, options.deinterlace_rate)
    rate_out = output_rate(info.rate, options.time_factor, options.target_fps)
    codec = options.codec or default_codec(info.bit_depth)
    seconds = segment_seconds_for(options, described["model"], described["precision"], described["device"],
                                  info.width * scale * info.height * scale, options.ensemble, rate_out)  # fmt: skip
    frames = segment_length(rate_out, seconds)
    settings = job_settings_for(options, described["fingerprint"], rate_out, codec, span, deint)
    job = Job(dst, job_identity(src, settings, frames), options.resume)
    writer_options = {"width": info.width * scale, "height": info.height * scale, "rate": rate_out, "codec": codec,
                      "crf": options.crf, "preset": options.preset, "pix_fmt": options.pix_fmt, "color": info.color,
                      "rotation": info.rotation, "sample_aspect_ratio": info.sample_aspect_ratio,
                      "bit_depth": info.bit_depth}  # fmt: skip
    video = Video(src, dst, info, job, rate_out, writer_options, span=span, deint=deint)
    video.resumed = sum(s["frames"] for s in job.segments.values())
    return video


def _add_parts(video: Any, index: int, workers: int, parts: list[Any]) -> None:
    """Appends the parts of ``video`` (number ``index``) still to be made."""
    from .dispatch import Part

    estimate = _expected_frames(video.info.frame_count, video.info.rate, video.rate_out, video.span)
    for begin, stop in plan_parts(estimate, video.job.identity["segment_frames"], workers, video.job.segments):
        parts.append(Part(index, begin, stop))
        video.parts_left += 1
        video.parts += 1


def _expected_frames(frame_count: int | None, rate_in: Fraction, rate_out: Fraction, span: Any) -> int | None:
    """Output frames a video should give, from its header's frame count and the span (None: unknown)."""
    estimate = math.ceil(frame_count * rate_out / rate_in) if frame_count else None
    if span is not None:
        spanned = span.output_frames(rate_out)
        left = None if estimate is None else max(1, estimate - math.floor(span.start * rate_out))
        estimate = spanned if left is None else min(spanned or left, left)
    return estimate


def plan_parts(
    expected: int | None, segment_frames: int, workers: int, done: Collection[int]
) -> list[tuple[int, int | None]]:
    """The parts of one video: ``(first output frame, frame it ends before)``, None for the part that runs to the end.

    The ``expected`` output frames (None: unknown, one part) are cut into whole segments, about as many parts as
    there are ``workers``; a part whose segments are all ``done`` (by index) is left out and one that is partly done
    starts at its first missing segment. The last part always runs, to the end of the input, whatever the estimate
    said: the header's frame count can be wrong, and only reading to the end tells.
    """
    segments = max(1, math.ceil(expected / segment_frames)) if expected else 1
    per_part = max(1, math.ceil(segments / max(1, workers)))
    parts: list[tuple[int, int | None]] = []
    for first in range(0, segments, per_part):
        last = min(first + per_part, segments)  # exclusive
        missing = [k for k in range(first, last) if k not in done]
        final = last >= segments
        if not missing and not final:
            continue
        begin = (missing[0] if missing else last) * segment_frames
        parts.append((begin, None if final else last * segment_frames))
    return parts
