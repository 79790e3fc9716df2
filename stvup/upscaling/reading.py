"""What one run reads of its input: the whole of it, a span (``--start``/``--duration``), or, for a run that makes
output only from one frame on (a resumed run, a part of a video split across machines), the stretch from the key
frame before that frame's margin (:func:`stvup.video.seek.iter_from`); and where the frames it read sit in the input,
so that its counts and cuts are numbered as a whole run numbers them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from stvup.video import VideoInfo, iter_frames
from stvup.video.filters import Deinterlace
from stvup.video.info import FrameStream
from stvup.video.seek import iter_from
from stvup.video.trim import Span, iter_span

from .pipeline import EXACT_CONTEXT

__all__ = ["Reading", "open_frames"]


def open_frames(
    path: str,
    info: VideoInfo,
    deint: Deinterlace | None,
    folder_fps: Any,
    span: Span | None,
    first_output: int = 0,
    rate_out: Fraction | None = None,
) -> FrameStream:
    """The frames a run reads: a span's, with its context (:func:`~stvup.video.trim.iter_span`); for a run that makes
    output only from ``first_output`` on, from the key frame before :data:`~stvup.upscaling.pipeline.EXACT_CONTEXT`
    frames ahead of it, so that it sees what a whole run sees there (:func:`~stvup.video.seek.iter_from`); or the
    whole input. ``info`` describes the frames as the network gets them (after deinterlacing)."""
    if span is not None:
        return iter_span(path, info, span, deint)
    if first_output > 0 and rate_out is not None:
        return iter_from(path, info, Fraction(first_output) / rate_out, EXACT_CONTEXT, deint)
    return iter_frames(path, input_fps=folder_fps, deinterlace=deint)


@dataclass
class Reading:
    """Where the frames of one run sit in its input. ``rate``: input frames per second as the network gets them;
    ``start``: the output time from which the run makes frames (0 for a whole run); ``span``: a trimmed run's span.
    Feed the frames through :meth:`pairs`; the first one's time tells whether the run began inside the video."""

    rate: Fraction
    start: Fraction = Fraction(0)
    span: Span | None = None
    first: Fraction | None = None

    def pairs(self, stream: FrameStream) -> Iterator[tuple[np.ndarray, Fraction]]:
        """``(image, time)`` of every frame of ``stream``, noting the first one's time."""
        for frame in stream:
            if self.first is None:
                self.first = frame.time
            yield frame.image, frame.time

    @property
    def inside(self) -> bool:
        """Whether the run began inside the video (it sought there), not at its first frame or at a span."""
        return self.span is None and self.first is not None and self.first > 0

    def frames_in(self, read: int) -> int:
        """Input frames up to the ``read``-th one read, counted from the input's first frame."""
        return read + (round(self.first * self.rate) if self.inside else 0)

    def frame(self, i: int, t: Fraction) -> int:
        """The input frame number of the ``i``-th frame read, at time ``t`` (a trimmed run counts from its span's
        context frames, a run that sought from where it began)."""
        if self.span is not None:
            return round((t + self.span.start) * self.rate)
        return round(t * self.rate) if self.inside else i

    def cut(self, i: int, t: Fraction) -> tuple[int, float] | None:
        """A cut found at the ``i``-th frame read, at time ``t``, as a result lists it (input frame, seconds), or None
        when it is not this run's to report: one that sought reports the cuts from its first output on; those in its
        margin belong to the run or part before it."""
        if self.inside and t < self.start:
            return None
        return self.frame(i, t), float(t)
