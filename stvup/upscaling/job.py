"""One upscaling job: an input (a video file or a folder of numbered frames) through the network into an output.

:func:`upscale` checks the options and the output before any weights load, plans the input (deinterlacing, a
trimmed span), opens the resumable segmented output (:mod:`stvup.upscaling.resume`), and runs decoder, network and
encoder side by side (:mod:`stvup.upscaling.overlap`). Progress goes to a callback; nothing here prints.
"""

from __future__ import annotations

import math
import os
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from stvup.errors import InputError, OutputError, UsageError
from stvup.video import VIDEO_EXTENSIONS, VideoInfo, probe
from stvup.video.filters import Deinterlace, plan_deinterlace
from stvup.video.formats import default_codec
from stvup.video.trim import CONTEXT, Span

from .journal import job_settings
from .loader import load_upscaler
from .options import UpscaleOptions
from .overlap import run_overlapped
from .pipeline import Upscaler
from .reading import Reading, open_frames
from .resume import open_output, work_segment_seconds
from .sizes import UHD
from .tiling import estimate_frame_seconds, queue_depth
from .timing import output_rate, parse_rate

__all__ = ["Progress", "UpscaleOptions", "UpscaleResult", "default_output_path", "job_settings_for", "plan_input",
           "segment_seconds_for", "upscale"]  # fmt: skip


@dataclass
class Progress:
    """A progress report: input frames read so far (of ``total``, an estimate or None) and output frames written."""

    path: str
    frames_in: int
    total: int | None
    frames_out: int
    precision: str = ""  # what ``precision="auto"`` chose, e.g. "bf16"
    device: str = ""
    stage: str = ""  # "compiling" while the network compiles before its first frame (minutes), else ""


@dataclass
class UpscaleResult:
    """What one ``upscale`` call did."""

    input: str
    output: str
    frames_in: int
    frames_out: int
    input_rate: Fraction
    output_rate: Fraction
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    seconds: float
    skipped_streams: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: bool = False  # batch: output already complete, nothing done
    device: str = ""
    precision: str = ""  # the arithmetic actually used ("auto" resolved)
    ensemble: int = 1  # copies of each window averaged (stvup.upscaling.ensemble)
    compiled: bool = False  # whether the network ran compiled (--compile, stvup.upscaling.acceleration)
    cuts: list[tuple[int, float]] = field(default_factory=list)  # (input frame, output seconds) where a shot begins
    concealed_frames: int = 0  # frames the decoder flagged as damaged and patched up (error concealment)
    resumed_frames: int = 0  # output frames an interrupted earlier run had finished (stvup.upscaling.resume)
    notes: list[str] = field(default_factory=list)  # what happened to an earlier run's work (resumed, started over)
    sample_aspect_ratio: Fraction = Fraction(1)  # the input's, kept on the output (stvup.video.formats)
    frames_decoded: int = 0  # frames the decoder made: with a resume that seeks, far fewer than the input's
    input_frames: int | None = None  # the input's frame count (as the network gets them), where known


def default_output_path(input_path: str | os.PathLike, space: int, height: int | None = None) -> Path:
    """``clip.mp4`` → ``clip_stvup_x4.mp4`` beside it (``clip_stvup_2160p.mp4`` for an output ``height`` asked
    for with ``--to``); MKV and MOV keep their container, the rest become MP4."""
    src = Path(os.fspath(input_path).rstrip("/\\"))
    ext = src.suffix.lower() if src.suffix.lower() in (".mkv", ".mov") and src.is_file() else ".mp4"
    label = f"{height}p" if height is not None else f"x{space}"
    return src.with_name(f"{src.stem if src.is_file() else src.name}_stvup_{label}{ext}")


def upscale(
    input: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: UpscaleOptions | None = None,
    *,
    upscaler: Upscaler | None = None,
    progress: Callable[[Progress], None] | None = None,
    **settings: Any,
) -> UpscaleResult:
    """Upsamples ``input`` (a video file or a folder of numbered frames) in space and time into ``output``.

    ``options`` (:class:`~stvup.upscaling.options.UpscaleOptions`) says how, and keyword ``settings`` named as its
    fields change it for this call: ``stvup.upscale("in.mp4", time=2)`` is ``upscale("in.mp4",
    options=UpscaleOptions(time=2))``. ``space`` 2 or 4; ``time`` a factor (2, 4, 2.5, "5/2") or ``fps`` a rate
    (60, "60000/1001").

    ``output`` defaults to ``<input>_stvup_x<space>.mp4`` beside the input; a folder (or a name without a video
    extension) receives numbered PNG frames. An existing output is only replaced with ``overwrite``; the result is
    written under a temporary name and renamed when complete, so a failure or Ctrl-C leaves nothing behind.
    ``upscaler`` reuses an already loaded model (see :func:`load_upscaler`); otherwise the options' network fields
    build one. Decoding and encoding run in their own threads beside the model (:mod:`stvup.upscaling.overlap`);
    ``overlap=False`` runs the three one after another, with the same result. Hard scene cuts
    (:mod:`stvup.upscaling.shots`) split the clip into shots that are upsampled as clips of their own;
    ``scene_threshold`` sets how large a jump counts as a cut, None turns detection off. A video output is written in
    segments in a hidden work folder beside it (:mod:`stvup.upscaling.resume`), each about two minutes of estimated
    model time and at most 4 s of video (``segment_seconds`` fixes the length): after an interruption the same call
    continues from the last complete segment, unless the input or a setting changed or ``resume`` is False.
    ``start`` and ``duration`` (seconds, or HH:MM:SS.ms) upsample only that span, with its real neighbours as context
    and its audio and subtitles cut to match (:mod:`stvup.video.trim`). ``deinterlace`` (auto, on, off) and
    ``deinterlace_rate`` (frame, field): interlaced input is found and deinterlaced with bwdif first
    (:mod:`stvup.video.filters`). ``compile`` compiles the network first (:mod:`stvup.upscaling.acceleration`);
    ``ensemble`` (1, 2, 4, 8) averages the network over that many mirrored copies of each window
    (:mod:`stvup.upscaling.ensemble`): sharper, that many times slower.
    """
    started = _time.perf_counter()
    options = UpscaleOptions.build(options, **settings)
    in_path = os.fspath(input)
    span = options.span()
    info, deint = plan_input(in_path, options.input_fps, span, options.deinterlace, options.deinterlace_rate)
    upscaler, out_path, (out_w, out_h) = _plan_output(options, upscaler, in_path, output, info)
    rate_out = output_rate(info.rate, options.time_factor, options.target_fps)
    writer = _open_writer(options, upscaler, in_path, out_path, info, deint, span, rate_out)
    resumed = getattr(writer, "resumed", 0)
    frames_in, frames_out = 0, resumed
    chosen = (upscaler.precision, str(upscaler.device))
    frames = open_frames(in_path, info, deint, options.folder_fps, span, resumed, rate_out)
    total = info.frame_count if span is None else _span_frames(span, info)
    expected = span.output_frames(rate_out) if span is not None else None  # None: to the end
    if expected is None and total:
        expected = round(total * rate_out / info.rate)
    upscaler.plan_compile(expected and max(expected - resumed, 0), info.height, info.width, rate_out / info.rate)
    cuts: list[tuple[int, float]] = []
    with writer, frames as stream:
        reading = Reading(info.rate, Fraction(resumed) / rate_out, span)

        def count(i: int) -> None:
            nonlocal frames_in
            frames_in = reading.frames_in(i + 1)
            if progress is not None:
                stage = "compiling" if upscaler.compiling else ""
                progress(Progress(in_path, frames_in, total, frames_out, *chosen, stage))

        def produced(_out) -> None:
            nonlocal frames_out
            frames_out += 1

        def cut(i: int, t: Fraction) -> None:
            if (entry := reading.cut(i, t)) is not None:
                cuts.append(entry)

        try:
            # Decoder and encoder in their own threads around the model (stvup.upscaling.overlap); same frames, order.
            run_overlapped(upscaler, reading.pairs(stream), info.rate, rate_out, writer.write, on_frame=count,
                           on_output=produced, depth=queue_depth(out_w * out_h) if options.overlap else 0,
                           scene_threshold=options.scene_threshold, skip=resumed,
                           stop=span.output_frames(rate_out) if span is not None else None,
                           on_cut=cut)  # fmt: skip
        except InputError as exc:
            if exc.path is None:  # the pipeline does not know file names
                exc = InputError(in_path, exc.cause)
            _note_resumable(exc, writer)
            raise exc from None
        except BaseException as exc:
            _note_resumable(exc, writer)
            raise
        problems = ([deint.reason] if deint else []) + list(getattr(stream, "problems", [])) + upscaler.notes
        problems += [f"resuming: {stream.seek_note}"] if stream.seek_note else []
        concealed, decoded = getattr(stream, "concealed", 0), stream.decoded
    if progress is not None:
        progress(Progress(in_path, frames_in, frames_in, frames_out, *chosen))
    return UpscaleResult(
        input=in_path,
        output=os.fspath(out_path),
        frames_in=frames_in,
        frames_out=frames_out,
        input_rate=info.rate,
        output_rate=rate_out,
        input_size=(info.width, info.height),
        output_size=(out_w, out_h),
        seconds=_time.perf_counter() - started,
        skipped_streams=list(writer.skipped_streams),
        problems=problems,
        notes=list(getattr(writer, "notes", [])) + _size_hints(upscaler, out_w, out_h),
        device=str(upscaler.device),
        precision=upscaler.precision,
        ensemble=len(upscaler.ensemble),
        compiled=upscaler.compiled,
        cuts=cuts,
        concealed_frames=concealed,
        resumed_frames=resumed,
        sample_aspect_ratio=info.sample_aspect_ratio,
        frames_decoded=decoded,
        input_frames=info.frame_count,
    )


def _plan_output(
    options: UpscaleOptions, upscaler: Upscaler | None, in_path: str, output: str | os.PathLike | None,
    info: VideoInfo,
) -> tuple[Upscaler, Path, tuple[int, int]]:  # fmt: skip
    """The network for this input (``--to`` picks its factor), the output's path and its frame size ``(w, h)``. A bad
    output named by the caller is refused before any weights load."""
    if output is not None:
        _check_output(in_path, Path(output), options.overwrite)
    space, target = options.target(info.width, info.height)
    upscaler = _upscaler_for(options, upscaler, space)
    upscaler.target = None if target is None else (target[1], target[0])  # shapes the pictures: in the fingerprint
    s = upscaler.space
    out_path = Path(output) if output is not None else default_output_path(in_path, s, target and target[1])
    if output is None:
        _check_output(in_path, out_path, options.overwrite)
    return upscaler, out_path, target or (info.width * s, info.height * s)


def _size_hints(upscaler: Upscaler, width: int, height: int) -> list[str]:
    """One line for a ×4 output larger than 4K that was not asked for by size: ``--to 4k`` exists."""
    if upscaler.target is None and upscaler.space == 4 and width * height > UHD:
        return [f"{width}x{height} is more than 4K; --to 4k makes 4K frames, at ×2 where that reaches it (a quarter "
                "of the work)"]  # fmt: skip
    return []


def _upscaler_for(options: UpscaleOptions, upscaler: Upscaler | None, space: int | None) -> Upscaler:
    """The network the options ask for at ``space`` (what ``--to`` chose, else ``--space``), or the caller's already
    loaded one if it agrees with them."""
    if upscaler is None:
        return load_upscaler(**{**options.model_settings(), "space": space})
    if options.ensemble != 1 and options.ensemble != len(upscaler.ensemble):
        raise UsageError(f"--ensemble {options.ensemble} differs from the loaded upscaler's {len(upscaler.ensemble)}")
    if space is not None and space != upscaler.space:
        raise UsageError(f"×{space} differs from the loaded upscaler's ×{upscaler.space}")
    return upscaler


def job_settings_for(
    options: UpscaleOptions, fingerprint: str, rate_out: Fraction, codec: str, span: Span | None, deint: Any
) -> dict[str, Any]:
    """The settings a resumable output's journal must match (:func:`stvup.upscaling.journal.job_settings`)."""
    return job_settings(fingerprint, rate_out, codec, options.crf, options.preset, options.pix_fmt,
                        options.scene_threshold, span.as_dict() if span else None,
                        deint.rate if deint else None)  # fmt: skip


def segment_seconds_for(options: UpscaleOptions, model: str, precision: str, device: str, pixels: int, copies: int,
                        rate_out: Fraction) -> Fraction | float:  # fmt: skip
    """The segment length: the options' own, or about two minutes of estimated model time
    (:func:`stvup.upscaling.resume.work_segment_seconds`) for ``pixels`` output pixels a frame."""
    if options.segment_seconds is not None:
        return options.segment_seconds
    return work_segment_seconds(rate_out, estimate_frame_seconds(model, precision, device, pixels, copies))


def _open_writer(
    options: UpscaleOptions, upscaler: Upscaler, in_path: str, out_path: Path, info: VideoInfo, deint: Any,
    span: Span | None, rate_out: Fraction,
) -> Any:  # fmt: skip
    """The output writer: resumable segments for a video, a PNG folder otherwise."""
    s = upscaler.space
    codec = options.codec or default_codec(info.bit_depth)  # HEVC Main10 for deep input, H.264 otherwise
    # Before the fingerprint: the tile shapes the pictures (and depends on the output frames a window makes).
    upscaler.plan_tile(info.height, info.width, math.ceil(rate_out / info.rate))
    settings = job_settings_for(options, upscaler.fingerprint(), rate_out, codec, span, deint)
    model_name = getattr(getattr(upscaler.model, "config", None), "name", "two-stream")
    seconds = segment_seconds_for(options, model_name, upscaler.precision, upscaler.device.type,
                                  info.width * s * info.height * s, len(upscaler.ensemble), rate_out)  # fmt: skip
    return open_output(
        out_path,
        input=in_path,
        settings=settings,
        resume=options.resume,
        segment_seconds=seconds,
        adopt=options.segment_seconds is None,
        width=upscaler.target[1] if upscaler.target else info.width * s,
        height=upscaler.target[0] if upscaler.target else info.height * s,
        rate=rate_out,
        codec=codec,
        crf=options.crf,
        preset=options.preset,
        pix_fmt=options.pix_fmt,
        source=in_path if info.kind == "video" else None,
        color=info.color,
        rotation=info.rotation,
        sample_aspect_ratio=info.sample_aspect_ratio,
        window=(span.start, span.end) if span is not None else None,
        bit_depth=info.bit_depth,
    )


def _note_resumable(exc: BaseException, writer: object) -> None:
    """Tell the user, on the error that stopped the run, that its finished segments wait for the next run."""
    work = getattr(writer, "work", None)
    if work is not None and getattr(writer, "finished_frames", 0) > 0:
        exc.add_note(f"the finished part is kept in {work}; run the same command again to resume")


def plan_input(
    path: str, input_fps: str | float | Fraction, span: Span | None, deinterlace: str, deinterlace_rate: str
) -> tuple[VideoInfo, Deinterlace | None]:
    """Probes an input and decides its deinterlacing; the info describes the frames as the network gets them
    (field rate: twice the frames). A span that starts past the end is an error here, before any work."""
    info = probe(path, input_fps=parse_rate(input_fps))
    deint = plan_deinterlace(path, info, deinterlace, deinterlace_rate)
    info = deint.adjust(info) if deint is not None else info
    if span is not None:
        span.check(info)
    return info, deint


def _span_frames(span: Span, info: VideoInfo) -> int | None:
    """Input frames a trimmed run reads (the span and its context), for the progress bar; None if unknown."""
    count, rate = info.frame_count, info.rate
    if span.duration is not None:
        return round(span.duration * rate) + 2 * CONTEXT
    return None if count is None else max(0, count - round(span.start * rate)) + CONTEXT


def _check_output(in_path: str, out_path: Path, overwrite: bool) -> None:
    if out_path.resolve() == Path(in_path).resolve():
        raise OutputError(out_path, "is the input; choose another output name")
    is_video = out_path.suffix.lower() in VIDEO_EXTENSIONS
    if out_path.exists() and is_video and not overwrite:
        raise OutputError(out_path, "exists; pass --overwrite to replace it")
    if out_path.is_dir() and any(out_path.iterdir()) and not overwrite:
        raise OutputError(out_path, "is a folder that is not empty; pass --overwrite or choose an empty folder")
    parent = out_path.parent
    if not parent.is_dir():
        raise OutputError(out_path, f"folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(out_path, f"folder {parent} is not writable")
