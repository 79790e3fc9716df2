"""Rates and the mapping of output timestamps onto input frame pairs.

Everything is exact rational arithmetic (:class:`fractions.Fraction`): 24000/1001 × 2 stays 48000/1001, and N input
frames at an integer ``--time K`` give exactly N×K output frames.
"""

from __future__ import annotations

import math
from fractions import Fraction

from stvup.errors import UsageError

__all__ = ["output_rate", "parse_rate", "parse_time_factor", "times_in_interval"]


def _parse_fraction(text: str | float | int | Fraction, what: str) -> Fraction:
    if isinstance(text, Fraction):
        value = text
    else:
        s = str(text).strip()
        try:
            value = Fraction(s)  # accepts "60", "2.5", "60000/1001"
        except (ValueError, ZeroDivisionError):
            hint = "a positive number or ratio such as 2.5 or 60000/1001"
            raise UsageError(f"{what} must be {hint}, not {s!r}") from None
    if value <= 0:
        raise UsageError(f"{what} must be positive, got {text}")
    return value


def parse_time_factor(text: str | float | int | Fraction) -> Fraction:
    """``--time``: the factor by which the frame rate grows (2, 4, 2.5, 5/2)."""
    value = _parse_fraction(text, "--time")
    if value.denominator > 1000:
        raise UsageError(f"--time {text} is not a usable ratio")
    return value


def parse_rate(text: str | float | int | Fraction) -> Fraction:
    """``--fps``/``--input-fps``: a frame rate (60, 29.97, 60000/1001)."""
    value = _parse_fraction(text, "frame rate")
    if value > 1000:
        raise UsageError(f"frame rate {text} is above 1000 fps")
    # 29.97 means the NTSC rate to every user; keep such rates exact.
    for base in (24, 30, 48, 60, 120, 240):
        ntsc = Fraction(base * 1000, 1001)
        if value != ntsc and abs(value - ntsc) < Fraction(1, 100):
            return ntsc
    return value


def output_rate(input_rate: Fraction, time: Fraction | None = None, fps: Fraction | None = None) -> Fraction:
    """The output frame rate: ``input_rate × time`` or ``fps`` (never both); the input rate when neither."""
    if time is not None and fps is not None:
        raise UsageError("pass either --time or --fps, not both")
    if fps is not None:
        return fps
    return input_rate * (time if time is not None else 1)


def times_in_interval(start: Fraction, end: Fraction, rate: Fraction) -> list[tuple[int, Fraction]]:
    """Output frames whose timestamp ``j / rate`` lies in ``[start, end)``, as ``(j, T_in)`` with ``T_in`` in [0, 1).

    ``T_in`` is the relative position between the input frames at ``start`` and ``end`` (Eq. 4's time).
    """
    first = math.ceil(start * rate)
    out = []
    j = first
    while Fraction(j) / rate < end:
        t = Fraction(j) / rate
        out.append((j, (t - start) / (end - start)))
        j += 1
    return out
