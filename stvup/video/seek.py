"""Read a video from a point inside it, with the frames and times a read from its first frame would give there.

A part of a video split across machines (``batch --ray``), and a run resumed after a crash, make output only from
one point on, but each of their windows must see what it sees in a whole run: the same seven frames, the same scene
cuts, the same times. Decoding everything before that point costs more the later the part starts (an hour into a
film, tens of minutes). :func:`iter_from` asks the container for the key frame before the point instead, less a
margin of ``context`` frames (what the caller's exactness needs: the windows' reach and the look-back of shot
detection), and decodes from there:

1. **The clock.** Times are seconds since the video's *first* frame, so the first frames are decoded once to fix
   the origin and the timestamp kind exactly as :func:`~stvup.video.reader.iter_frames` does.
2. **The key frame.** A demux-only pass from the key frame the container seeks to lists the timestamps of the frames
   that follow (no decoding); if fewer than the margin lie before the point (a long stretch of variable-rate
   footage, a seek that lands short), it asks for an earlier key frame. Open-GOP pictures that come before their key
   frame in display order, which cannot be decoded without the previous GOP, are never shown.
3. **Decoding** runs from that key frame; frames before the margin are decoded (the decoder needs them) but not
   converted to RGB, and deinterlacing (``bwdif``, which reads one frame each side) gets a frame of warm-up.

Where seeking cannot be trusted, the video is decoded from its start as before, and :attr:`FrameStream.seek_note`
says why in one line: timestamps that are not presentation timestamps (some AVI files), a container that cannot
seek, or a key frame that is not where the index says. Frame folders are random access and need none of this.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Generator, Iterator
from fractions import Fraction
from typing import Any

import av.error

from stvup.video.color import RgbConverter
from stvup.video.frames import iter_folder
from stvup.video.info import DecodedFrame, FrameStream, VideoInfo
from stvup.video.rates import TIMESTAMP_LOOKAHEAD, Clock
from stvup.video.reader import _decode_all, _iter_container, _open_input, _video_stream, counted

__all__ = ["iter_from"]

SEEK_TRIES = 6  # earlier and earlier key frames asked for before decoding from the start instead


class _CannotSeek(Exception):
    """Seeking this input is impossible or unreliable; the message says why, in a few words."""


def iter_from(path: str, info: VideoInfo, start: Fraction, context: int, deinterlace: Any = None) -> FrameStream:
    """Like :func:`~stvup.video.reader.iter_frames` (same frames, same times), but from ``context`` frames before the
    last frame at or before ``start`` (seconds since the first frame) to the end. ``info`` describes the frames as
    they come out (after ``deinterlace``: at field rate, twice the source's rate). :attr:`FrameStream.decoded`
    counts the frames decoded, :attr:`FrameStream.seek_note` says why it decoded from the start, if it did."""
    stream = FrameStream(path=path, info=info)
    if info.kind == "frames":
        holder = max(0, math.floor(start * info.rate))
        stream._frames = counted(iter_folder(path, info, first=max(0, holder - context)), stream)
    else:
        stream._frames = _container_from(path, info, stream, start, context, deinterlace)
    return stream


def _from_the_start(path: str, info: VideoInfo, report: FrameStream, deinterlace: Any) -> Iterator[DecodedFrame]:
    """The whole video, as :func:`~stvup.video.reader.iter_frames` reads it (which wants the source's rate)."""
    if deinterlace is not None and deinterlace.factor > 1:
        count = None if info.frame_count is None else info.frame_count // deinterlace.factor
        info = dataclasses.replace(info, rate=info.rate / deinterlace.factor, frame_count=count)
    return _iter_container(path, info, report, deinterlace)


def _container_from(
    path: str, info: VideoInfo, report: FrameStream, start: Fraction, context: int, deinterlace: Any
) -> Generator[DecodedFrame, None, None]:
    factor = deinterlace.factor if deinterlace is not None else 1
    # Source frames wanted before the one that holds ``start``: the context, in output frames of the filter.
    need = math.ceil(context / factor)
    try:
        clock, origin = _whole_run_clock(path, info, deinterlace)
        plan = _plan(path, info, start, need, origin, factor, warm_up=1 if deinterlace is not None else 0)
    except _CannotSeek as exc:
        report.seek_note = f"decoded from the start: {exc}"
        yield from _from_the_start(path, info, report, deinterlace)
        return
    if plan is None:  # the margin reaches back to the first frame: nothing to skip
        yield from _from_the_start(path, info, report, deinterlace)
        return
    key, first = plan
    container = _open_input(path)
    try:
        video = _video_stream(path, container)
        video.thread_type = "AUTO"
        container.seek(key, stream=video, backward=True)
        frames = _decode_all(container, video, report)
        tb, start_at = video.time_base, origin * video.time_base  # the first frame, in seconds
        if deinterlace is not None:
            frames = deinterlace.apply(frames, video)
            tb = deinterlace.time_base(tb)
        convert = RgbConverter(info.color, info.bit_depth > 8)
        index = 0
        for frame in frames:
            source_time = None if frame.pts is None else frame.pts * tb - start_at
            if source_time is None or source_time < first:
                continue  # before the margin (the decoder needed it), or an open-GOP picture of the previous GOP
            yield DecodedFrame(image=convert(frame), time=clock.time(frame), index=index)
            index += 1
    finally:
        container.close()


def _whole_run_clock(path: str, info: VideoInfo, deinterlace: Any) -> tuple[Clock, int]:
    """The clock a read from the first frame decides on (its timestamp kind and origin), ready to time frames met
    later, and the first source frame's PTS. Raises :class:`_CannotSeek` unless that clock uses PTS."""
    source_origin: list[int | None] = []

    def noting_first(frames: Iterator[Any]) -> Iterator[Any]:
        for frame in frames:
            if not source_origin:
                source_origin.append(frame.pts)
            yield frame

    container = _open_input(path)
    try:
        video = _video_stream(path, container)
        frames = noting_first(_decode_all(container, video, FrameStream(path=path, info=info)))
        tb = video.time_base
        if deinterlace is not None:
            frames = deinterlace.apply(frames, video)
            tb = deinterlace.time_base(tb)
        firsts = list(itertools.islice(frames, TIMESTAMP_LOOKAHEAD))
    except av.error.FFmpegError as exc:
        raise _CannotSeek(f"its first frames do not decode ({exc.__class__.__name__})") from None
    finally:
        container.close()
    if not firsts:
        raise _CannotSeek("no frame decodes")
    clock = Clock(info.rate, tb)
    clock.decide(firsts)
    if clock.attribute != "pts" or not source_origin or source_origin[0] is None:
        raise _CannotSeek("its frames have no presentation timestamps to seek by")
    clock.time(firsts[0])  # the first frame is time 0; what follows is timed as in a whole run
    return clock, source_origin[0]


def _plan(
    path: str, info: VideoInfo, start: Fraction, need: int, origin: int, factor: int, warm_up: int = 0
) -> tuple[int, Fraction] | None:
    """``(key, first)``: the PTS of the key frame to seek to and the time (seconds since the first frame) of the first
    source frame to show, ``need`` source frames before the one at or before ``start``, with ``warm_up`` more
    decoded before it (bwdif's output for a frame reads the frame before); None when that reaches back to the
    video's first frame. Demuxes only."""
    step = factor / info.rate  # one source frame at the nominal rate
    back = (need + warm_up + 2) * step
    container = _open_input(path)
    try:
        video = _video_stream(path, container)
        tb = video.time_base
        if not tb:
            raise _CannotSeek("its stream has no time base")
        for _ in range(SEEK_TRIES):
            target = start - back
            if target <= 0:
                return None
            try:
                container.seek(origin + math.floor(target / tb), stream=video, backward=True)
            except av.error.FFmpegError:
                raise _CannotSeek("the container cannot seek") from None
            key, stamps = None, []
            for packet in container.demux(video):
                if packet.size == 0 or packet.pts is None or packet.is_discard:
                    continue
                if key is None:
                    if not packet.is_keyframe:
                        raise _CannotSeek("a seek landed on a frame that is not a key frame")
                    key = packet.pts
                stamps.append(packet.pts)
                if (packet.pts - origin) * tb > start + 16 * step:  # past the point, B-frame reordering included
                    break
            if key is None:
                raise _CannotSeek("a seek found no frame after it")
            times = sorted((s - origin) * tb for s in stamps if s >= key)  # open-GOP leading pictures left out
            if len(set(times)) != len(times):
                raise _CannotSeek("its timestamps repeat")
            if (key - origin) * tb > target + step / 2:
                raise _CannotSeek("a seek landed after the point it was asked for")
            holder = max((i for i, t in enumerate(times) if t <= start), default=None)
            if holder is not None and holder >= need + warm_up:
                return key, times[holder - need]
            back *= 2
        raise _CannotSeek(f"no key frame within {SEEK_TRIES} tries")
    finally:
        container.close()
