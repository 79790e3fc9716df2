"""Picture-format facts that must survive the upscale besides size and colour: the sample aspect ratio.

An anamorphic picture (a widescreen DVD: 720×480 shown at 16:9) stores pixels that are not square. Upscaling
multiplies both sides by the same factor, so the sample aspect ratio (SAR) stays what it was and the display aspect
ratio ``width × SAR / height`` is unchanged; it only has to be written on the output (the H.264/H.265 stream and the
container both carry it), or every player shows the picture squeezed.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

__all__ = ["display_aspect_ratio", "ratio_text", "stream_sample_aspect_ratio"]


def stream_sample_aspect_ratio(stream: Any) -> Fraction:
    """The SAR of a PyAV video stream: the container's where it states one, else the codec's; 1 (square) when
    neither does (FFmpeg reports an unknown SAR as 0/1 or None)."""
    for value in (getattr(stream, "sample_aspect_ratio", None), stream.codec_context.sample_aspect_ratio):
        if value is not None and value > 0:
            return Fraction(value)
    return Fraction(1)


def display_aspect_ratio(width: int, height: int, sar: Fraction) -> Fraction:
    """The shape of the picture as shown: ``width × SAR / height``."""
    return Fraction(width) * sar / height


def ratio_text(value: Fraction) -> str:
    """``Fraction(16, 9)`` → ``"16:9"``."""
    return f"{value.numerator}:{value.denominator}"
