"""A span of an input (``--start``/``--duration``): seek to it, decode it with its neighbours, nothing more.

Trying one scene of a film must not cost decoding the film. The container is asked to seek to the key frame before
the span (minus the few frames of context the network's windows need), and decoding stops a few frames after the
span's end. Times are measured from the video's first frame and then shifted so that the span starts at 0: the
context frames before it get negative times, and the pipeline makes no output for them (it makes output frames
``j >= 0`` only, and is stopped at the span's last one), but they are the real neighbours the span's first and last
windows see, so the edges of a trimmed run are as good as its middle. Audio and subtitles are cut at the same
points by :class:`~stvup.video.passthrough.PacketCopier` (``window``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av.error

from stvup.errors import InputError, UsageError
from stvup.video.color import RgbConverter
from stvup.video.frames import iter_folder
from stvup.video.info import DecodedFrame, FrameStream, VideoInfo
from stvup.video.rates import snap_time
from stvup.video.reader import _decode_all, _open_input, _video_stream

__all__ = ["Span", "iter_span", "parse_time"]

CONTEXT = 4  # frames read on each side of the span: 3 for the 7-frame windows, 1 for the last window's end time

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_time(text: str | float | int | Fraction, option: str = "--start") -> Fraction:
    """``"90"``, ``"1.5"``, ``"01:30"``, ``"0:01:30.250"`` → seconds as a Fraction; a one-line error otherwise."""
    if isinstance(text, (int, float, Fraction)) and not isinstance(text, bool):
        value = Fraction(str(text)) if isinstance(text, float) else Fraction(text)  # 0.2 means 1/5, not its binary
    else:
        raw = str(text).strip()
        clock = _CLOCK.match(raw)
        try:
            if clock:
                hours, minutes, seconds = clock.groups()
                if int(minutes) >= 60 and hours is not None:
                    raise ValueError
                value = int(hours or 0) * 3600 + int(minutes) * 60 + Fraction(seconds)
            else:
                value = Fraction(raw)
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"{option} must be seconds (90, 1.5) or HH:MM:SS.ms (0:01:30.25), not {raw!r}") from None
    if value < 0:
        raise UsageError(f"{option} must not be negative, got {text}")
    return value


@dataclass(frozen=True)
class Span:
    """``start`` seconds from the first frame, for ``duration`` seconds (None: to the end)."""

    start: Fraction = Fraction(0)
    duration: Fraction | None = None

    @classmethod
    def parse(cls, start: object = None, duration: object = None) -> Span | None:
        """The span the two options ask for, or None for the whole input."""
        if start is None and duration is None:
            return None
        begin = parse_time(start, "--start") if start is not None else Fraction(0)
        length = parse_time(duration, "--duration") if duration is not None else None
        if length == 0:
            raise UsageError("--duration must be more than 0")
        return cls(begin, length)

    @property
    def end(self) -> Fraction | None:
        return None if self.duration is None else self.start + self.duration

    def check(self, info: VideoInfo, option: str = "--start") -> None:
        """A span that starts after the input ends is an error (the input's duration, where known, is the limit)."""
        if info.duration is not None and self.start >= info.duration:
            end = float(info.duration)
            raise InputError(info.path, f"{option} {float(self.start):g} s is past its end ({end:.2f} s)")

    def output_frames(self, rate: Fraction) -> int | None:
        """Output frames in the span at ``rate``: those with times ``j / rate`` in ``[0, duration)``."""
        return None if self.duration is None else math.ceil(self.duration * rate)

    def as_dict(self) -> dict[str, str | None]:
        return {"start": str(self.start), "duration": None if self.duration is None else str(self.duration)}


def iter_span(path: str, info: VideoInfo, span: Span, deinterlace: Any = None) -> FrameStream:
    """Like :func:`~stvup.video.iter_frames`, for the frames of ``span`` and ``CONTEXT`` frames on each side.
    ``info`` describes the frames as they come out (after ``deinterlace``, if any)."""
    span.check(info)
    stream = FrameStream(path=path, info=info)
    if info.kind == "frames":
        stream._frames = _folder_span(path, info, span)
    else:
        stream._frames = _container_span(path, info, span, stream, deinterlace)
    return stream


def _folder_span(path: str, info: VideoInfo, span: Span) -> Generator[DecodedFrame, None, None]:
    first = max(0, math.floor(span.start * info.rate) - CONTEXT)
    last = None if span.end is None else math.ceil(span.end * info.rate) + CONTEXT
    for frame in iter_folder(path, info, first=first):
        if last is not None and frame.index > last:
            return
        yield DecodedFrame(frame.image, frame.time - span.start, frame.index)


def _container_span(
    path: str, info: VideoInfo, span: Span, report: FrameStream, deinterlace: Any
) -> Generator[DecodedFrame, None, None]:
    container = _open_input(path)
    try:
        video = _video_stream(path, container)
        video.thread_type = "AUTO"
        tb = video.time_base
        origin = video.start_time or 0
        step = 1 / info.rate
        target = span.start - CONTEXT * step
        if target > 0:
            try:  # the key frame at or before the first frame wanted; decoding runs forward from there
                container.seek(origin + math.floor(target / tb), stream=video, backward=True)
            except av.error.FFmpegError:
                container.seek(0)
        frames = _decode_all(container, video, report)
        if deinterlace is not None:  # bwdif's timestamps: half the time base, so twice the origin
            frames = deinterlace.apply(frames, video)
            tb, origin = deinterlace.time_base(tb), origin * 2
        convert = RgbConverter(info.color, info.bit_depth > 8)
        after = 0
        index = 0
        last: Fraction | None = None
        for frame in frames:
            time = snap_time((frame.pts - origin) * tb, step, tb) if frame.pts is not None and tb else None
            if time is None or (last is not None and time <= last):
                time = (last + step) if last is not None else span.start
            last = time
            if time < target - step / 2:
                continue  # before the context (the key frame came earlier)
            if span.end is not None and time >= span.end:
                after += 1
                if after > CONTEXT:
                    return
            yield DecodedFrame(image=convert(frame), time=time - span.start, index=index)
            index += 1
        if index == 0:
            raise InputError(path, f"no frame at or after --start {float(span.start):g} s")
    finally:
        container.close()
