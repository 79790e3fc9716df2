"""Read videos and frame folders as a stream of RGB frames with exact timestamps.

Two kinds of input are accepted:

* a **video file** in any container/codec FFmpeg (through PyAV) can decode;
* a **frame folder**: a directory of ``.png``/``.jpg``/``.jpeg`` images taken in natural numeric order
  (``Frame 2.png`` before ``Frame 10.png``), shown at a rate the caller chooses (``input_fps``).

Decisions worth knowing when reading the rest of the package:

* **Frame rate.** Containers do not agree on what "the" rate is. :func:`probe` starts from the stream's average rate
  and checks it against the packet timestamps of the first few hundred packets (a demux only, no decoding). When the
  two agree it keeps whichever of the average and FFmpeg's guessed rate is closest to the timestamps (so a header
  that says 19.98 fps for a 20 fps clip gives 20). When the average claims *more* frames per second than the
  timestamps allow (AVI files whose header counts every chunk, e.g. ``vtest.avi``: average 50, real 25), the
  timestamp rate wins. When it claims fewer (variable-rate footage with dropped frames), the average is kept because
  it is what preserves the duration and so the audio sync of a constant-rate output.
* **Timestamps.** :attr:`DecodedFrame.time` is seconds since the first frame. It comes from the frames' PTS; AVI and
  other containers without real presentation timestamps produce PTS out of order, so the first frames are inspected
  and the decoder's DTS is used instead when it is the monotonic one. Any frame whose timestamp is missing or not
  later than the previous one gets ``previous + 1/rate``, so times always increase.
* **Colour.** Pixels are converted to RGB with the source's own matrix and range (BT.601/BT.709/BT.2020, limited or
  full). Untagged sources follow the usual player convention: BT.709 at 720 lines or more, BT.601 below. The matrix
  and range actually used are reported in :attr:`VideoInfo.color` so that the writer encodes with the same ones.
* **Rotation.** Pixels are returned exactly as decoded (not rotated); :attr:`VideoInfo.rotation` says how the player
  should turn them. The writer carries that rotation into the output as display-matrix metadata (MP4, MOV, MKV,
  WebM) and only turns the pixels itself where the output cannot hold that metadata (AVI, frame folders). This keeps
  the model's input in the camera's native orientation and avoids a pointless copy per frame.
* **Damaged input.** A file that cannot be opened, has no video stream or yields no frame at all raises
  :class:`~stvup.errors.InputError`. Packets that fail to decode are skipped, and a file whose tail is truncated or
  damaged ends at the last good frame; both are recorded in :attr:`FrameStream.problems` rather than raised, so a
  long job is not lost to one bad packet at the end.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from fractions import Fraction
from typing import Any

import av
import av.error

from stvup.errors import InputError
from stvup.errors import describe as _describe
from stvup.video.color import RgbConverter, effective_color
from stvup.video.formats import format_bit_depth, stream_sample_aspect_ratio
from stvup.video.frames import FRAME_EXTENSIONS, iter_folder, list_frame_files, probe_folder
from stvup.video.info import DecodedFrame, FrameStream, VideoInfo
from stvup.video.rates import (
    TIMESTAMP_LOOKAHEAD,
    Clock,
    check_fps,
    choose_rate,
    positive_rate,
    same_rate,
    timestamp_rate,
)

__all__ = [
    "FRAME_EXTENSIONS",
    "DecodedFrame",
    "FrameStream",
    "VideoInfo",
    "iter_frames",
    "list_frame_files",
    "probe",
]

# How many video packets probe() demuxes to check the rate and count frames.
_RATE_SAMPLE_PACKETS = 300


# --------------------------------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------------------------------


def probe(path: str | os.PathLike, input_fps: Fraction = Fraction(25)) -> VideoInfo:
    """Describe a video file or frame folder without decoding all of it.

    A directory is read as a frame folder shown at ``input_fps``; anything else is opened with PyAV (``input_fps`` is
    then only the last resort for a file that states no rate and has too few timestamps to measure one). Raises
    :class:`~stvup.errors.InputError` when the input is missing, empty, not a video, has no video stream or cannot
    be decoded at all.
    """
    path_str = os.fspath(path)
    input_fps = check_fps(input_fps)
    if os.path.isdir(path_str):
        return probe_folder(path_str, input_fps)
    if not os.path.exists(path_str):
        raise InputError(path_str, "no such file or folder")
    container = _open_input(path_str)
    try:
        return _probe_container(path_str, container, input_fps)
    finally:
        container.close()


def iter_frames(path: str | os.PathLike, input_fps: Fraction = Fraction(25), deinterlace: Any = None) -> FrameStream:
    """Decode an input one frame at a time, in display order, as RGB arrays with timestamps.

    Decoding is threaded and lazy: besides the decoder's own reference frames, at most 8 decoded frames are held (at
    the start, while choosing between PTS and DTS), so memory does not grow with the length of the input. The
    returned :class:`FrameStream` also carries :attr:`FrameStream.info` (the :func:`probe` result) and
    :attr:`FrameStream.problems`. Raises :class:`~stvup.errors.InputError` for unusable inputs, either at once or,
    for a file that turns out to contain no decodable frame, from the iteration. ``deinterlace``: a
    :class:`~stvup.video.filters.Deinterlace` to run the decoded frames through.
    """
    path_str = os.fspath(path)
    info = probe(path_str, input_fps)
    stream = FrameStream(path=path_str, info=info)
    if info.kind == "frames":
        stream._frames = counted(iter_folder(path_str, info), stream)
    else:
        stream._frames = _iter_container(path_str, info, stream, deinterlace)
    return stream


def counted(frames: Iterator[DecodedFrame], report: FrameStream) -> Generator[DecodedFrame, None, None]:
    """``frames`` as they are, each counted in ``report.decoded`` (a frame folder's images are its decoded frames)."""
    for frame in frames:
        report.decoded += 1
        yield frame


# --------------------------------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------------------------------


def _open_input(path: str) -> Any:
    """Open a media file for reading, turning PyAV errors into a one-line InputError."""
    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise InputError(path, "not a video file, or the file is damaged or truncated") from None
    except av.error.FileNotFoundError:
        raise InputError(path, "no such file or folder") from None
    except av.error.PermissionError:
        raise InputError(path, "permission denied") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(path, f"cannot open ({_describe(exc)})") from None


def _video_stream(path: str, container: Any) -> Any:
    """Pick the first real video stream (not cover art) or raise InputError."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        if stream.codec_context is None:
            raise InputError(path, f"no decoder for the video codec of stream #{stream.index}")
        return stream
    kinds = sorted({s.type for s in container.streams})
    found = f" (it has only {', '.join(kinds)})" if kinds else ""
    raise InputError(path, f"contains no video stream{found}")


def _probe_container(path: str, container: Any, input_fps: Fraction) -> VideoInfo:
    stream = _video_stream(path, container)
    time_base = stream.time_base

    # Demux a bounded number of packets: their timestamps check the rate, and if the file ends within the sample
    # their number is the exact frame count. Decode only until the first picture, which gives size and rotation.
    timestamps: list[int] = []
    packets = 0
    reached_end = False
    first_frame = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                if packet.dts is None and packet.pts is None:
                    # The empty packet at the end of the stream: flush the decoder.
                    if first_frame is None:
                        first_frame = _first(_safe_decode(stream, None))
                    reached_end = True
                    break
                continue
            if packet.is_discard:
                continue  # edit-list trimmed: never shown
            packets += 1
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is not None:
                timestamps.append(stamp)
            if first_frame is None:
                first_frame = _first(_safe_decode(stream, packet))
            if packets >= _RATE_SAMPLE_PACKETS and first_frame is not None:
                break
        else:
            reached_end = True
    except av.error.FFmpegError:
        reached_end = True  # damaged tail: what was read so far is all there is
    if first_frame is None:
        first_frame = _first(_safe_decode(stream, None))
    if first_frame is None:
        raise InputError(path, "no decodable video frame")

    average = positive_rate(stream.average_rate)
    guessed = positive_rate(stream.guessed_rate)
    measured = timestamp_rate(timestamps, time_base)
    rate = choose_rate(average, guessed, measured) or input_fps

    duration = None
    if stream.duration and time_base:
        duration = Fraction(stream.duration) * time_base
    elif container.duration:
        duration = Fraction(container.duration, av.time_base)
    if reached_end:
        frame_count: int | None = packets
    elif stream.frames and average is not None and same_rate(rate, average):
        frame_count = stream.frames
    elif duration is not None:
        frame_count = max(1, round(duration * rate))
    else:
        frame_count = None

    ctx = stream.codec_context
    return VideoInfo(
        path=path,
        kind="video",
        width=first_frame.width,
        height=first_frame.height,
        rate=rate,
        frame_count=frame_count,
        duration=duration,
        rotation=_rotation(first_frame, stream),
        color=effective_color(first_frame, ctx),
        codec=ctx.name,
        has_audio=len(container.streams.audio) > 0,
        audio_streams=len(container.streams.audio),
        subtitle_streams=len(container.streams.subtitles),
        sample_aspect_ratio=stream_sample_aspect_ratio(stream),
        bit_depth=format_bit_depth(first_frame.format),
    )


def _first(frames: list) -> Any:
    return frames[0] if frames else None


def _safe_decode(stream: Any, packet: Any) -> list:
    """Decode one packet (or flush with None); a packet the decoder rejects yields nothing."""
    try:
        return stream.decode(packet)
    except (av.error.FFmpegError, ValueError):
        return []


def _iter_container(
    path: str, info: VideoInfo, report: FrameStream, deinterlace: Any = None
) -> Generator[DecodedFrame, None, None]:
    container = _open_input(path)
    try:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"
        frames = _decode_all(container, stream, report)
        clock = Clock(info.rate, stream.time_base)
        if deinterlace is not None:
            frames = deinterlace.apply(frames, stream)
            clock = Clock(info.rate * deinterlace.factor, deinterlace.time_base(stream.time_base))
        convert = RgbConverter(info.color, info.bit_depth > 8)
        lookahead: list[Any] = []
        index = 0
        for frame in frames:
            if not clock.decided:
                lookahead.append(frame)
                if len(lookahead) < TIMESTAMP_LOOKAHEAD:
                    continue
                clock.decide(lookahead)
            for ready in lookahead or (frame,):
                yield DecodedFrame(image=convert(ready), time=clock.time(ready), index=index)
                index += 1
            lookahead = []
        if lookahead:
            clock.decide(lookahead)
            for ready in lookahead:
                yield DecodedFrame(image=convert(ready), time=clock.time(ready), index=index)
                index += 1
        if index == 0:
            raise InputError(path, "no decodable video frame")
    finally:
        container.close()


def _decode_all(container: Any, stream: Any, report: FrameStream) -> Iterator[Any]:
    """Yield decoded frames, skipping packets the decoder rejects and stopping cleanly at a damaged tail.

    Frames that decode with concealed errors (FFmpeg's corrupt flag: part of the picture was patched up from its
    neighbours) are kept, as players show them, and counted in ``report.concealed``.
    """
    problems = report.problems
    skipped = 0
    decoded = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = stream.decode(packet)
            except (av.error.FFmpegError, ValueError):
                skipped += 1
                continue
            for frame in frames:
                decoded += 1
                report.decoded += 1
                report.concealed += frame.is_corrupt
                yield frame
    except av.error.FFmpegError as exc:
        problems.append(f"input is damaged or truncated after frame {decoded} ({_describe(exc)}); stopped there")
        for frame in _safe_decode(stream, None):
            report.decoded += 1
            yield frame
    if skipped:
        problems.append(f"skipped {skipped} video packet(s) that could not be decoded")
    if report.concealed:
        problems.append(f"{report.concealed} frame(s) were damaged and decoded with concealed errors; check them")


# --------------------------------------------------------------------------------------------------------------------
# Helpers: rate, rotation, colour
# --------------------------------------------------------------------------------------------------------------------


def _rotation(frame: Any, stream: Any) -> int:
    """Counter-clockwise display rotation in degrees (0/90/180/270) from the display matrix or a `rotate` tag."""
    degrees = 0.0
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        degrees = 0.0
    if not degrees:
        tag = stream.metadata.get("rotate")
        try:
            degrees = -float(tag) if tag is not None else 0.0  # the tag is clockwise
        except ValueError:
            degrees = 0.0
    return int(round(degrees / 90.0)) * 90 % 360
