"""Frame rates and timestamps of inputs: which rate a container really has, and seconds for every frame.

See :mod:`stvup.video.reader` for the rules (average against guessed against measured rate, PTS or DTS).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from stvup.errors import UsageError

__all__ = [
    "Clock",
    "check_fps",
    "check_rate",
    "choose_rate",
    "positive_rate",
    "same_rate",
    "snap_rate",
    "snap_time",
    "timestamp_rate",
]

#: Two rates closer than this (relative) are the same rate.
RATE_TOLERANCE = 0.02
#: How many decoded frames are inspected before choosing PTS or DTS as the timestamp source.
TIMESTAMP_LOOKAHEAD = 8


class Clock:
    """Turn frame timestamps into strictly increasing seconds since the first frame."""

    def __init__(self, rate: Fraction, time_base: Fraction | None) -> None:
        self.step = 1 / rate
        self.time_base = time_base
        self.decided = False
        self.attribute = "pts"
        self.origin: int | None = None
        self.last: Fraction | None = None

    def decide(self, frames: list) -> None:
        """Use PTS if it increases over the first frames, else DTS if that does, else frame count."""
        self.decided = True
        if not self.time_base:
            self.attribute = ""
            return
        for attribute in ("pts", "dts"):
            stamps = [getattr(f, attribute) for f in frames]
            if stamps[0] is not None and all(b is not None and b > a for a, b in zip(stamps, stamps[1:])):
                self.attribute = attribute
                self.origin = stamps[0]
                return
        self.attribute = ""

    def time(self, frame: Any) -> Fraction:
        stamp = getattr(frame, self.attribute) if self.attribute else None
        if self.last is None:
            self.last = Fraction(0)
            if stamp is not None and self.origin is None:
                self.origin = stamp
            return self.last
        candidate = None
        if stamp is not None and self.origin is not None:
            candidate = snap_time((stamp - self.origin) * self.time_base, self.step, self.time_base)
        if candidate is None or candidate <= self.last:
            candidate = self.last + self.step
        self.last = candidate
        return candidate


def snap_time(time: Fraction, step: Fraction, tick: Fraction | None) -> Fraction:
    """``time`` moved onto the frame grid (a multiple of ``step``) when it is within one ``tick`` of the time base
    of it, else ``time`` itself.

    Containers round timestamps to their time base: Matroska and WebM store milliseconds, so a 24 fps frame shown at
    7/24 s is stored as 292 ms. Taken as it is, that frame sits a third of a millisecond late, the clip seems to end
    after 1/3 s, and at ×2 an output frame at exactly 1/3 s appears (17 frames from 8), while every other kept frame
    (output 2 at 1/24 s, before the stored 42 ms) becomes a new frame at T_in 0.99. Two stamps rounded this way are
    at most one tick apart from their true distance, so one tick (at most a quarter of a frame) is the tolerance;
    variable-rate frames further from the grid keep their times.
    """
    if not tick:
        return time
    grid = round(time / step) * step
    return grid if abs(time - grid) <= min(Fraction(tick), step / 4) else time


def check_fps(fps: Fraction | int | float | str) -> Fraction:
    value = Fraction(fps)
    if value <= 0:
        raise ValueError(f"input_fps must be positive, got {fps}")
    return value


def positive_rate(rate: Fraction | None) -> Fraction | None:
    return rate if rate is not None and rate > 0 else None


def same_rate(a: Fraction, b: Fraction) -> bool:
    return abs(a / b - 1) <= RATE_TOLERANCE


def timestamp_rate(timestamps: list[int], time_base: Fraction | None) -> Fraction | None:
    """Mean frame spacing over the sampled packets, as a rate; None if too few distinct timestamps."""
    stamps = sorted(set(timestamps))
    if len(stamps) < 3 or not time_base:
        return None
    span = (stamps[-1] - stamps[0]) * time_base
    if span <= 0:
        return None
    return (len(stamps) - 1) / span


def choose_rate(average: Fraction | None, guessed: Fraction | None, measured: Fraction | None) -> Fraction | None:
    """Pick the output-worthy rate from the container's claims and what the timestamps show (see module doc)."""
    if measured is None:
        return snap_rate(average or guessed)
    if average is not None and not same_rate(average, measured) and average < measured:
        return snap_rate(average)  # gaps between frames (dropped/variable rate): keep the duration right
    if average is not None and same_rate(average, measured):
        candidates = [average] + ([guessed] if guessed is not None else [])
    else:
        candidates = [guessed] if guessed is not None and same_rate(guessed, measured) else []
    if not candidates:
        return snap_rate(measured.limit_denominator(1001))
    return snap_rate(min(candidates, key=lambda r: abs(r - measured)))


def snap_rate(rate: Fraction | None) -> Fraction | None:
    """Return the standard rate (integer or N*1000/1001) within 0.01 % of ``rate``, else ``rate`` itself.

    Matroska stores frame durations in nanoseconds and FFmpeg reads 48000/1001 back as 7001/146; snapping restores
    the rate the file was made with without touching genuinely unusual rates (such as 2160/77).
    """
    if rate is None or rate.denominator in (1, 1001):
        return rate
    for standard in (Fraction(round(rate)), Fraction(round(rate * 1001 / 1000) * 1000, 1001)):
        if standard > 0 and abs(rate / standard - 1) < Fraction(1, 10000):
            return standard
    return rate


def check_rate(rate: Fraction | int | str | float) -> Fraction:
    value = Fraction(rate).limit_denominator(1001) if isinstance(rate, float) else Fraction(rate)
    if value <= 0:
        raise UsageError(f"frame rate must be positive, got {rate}")
    return value
