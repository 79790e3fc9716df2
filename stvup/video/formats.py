"""Picture-format facts that must survive the upscale besides size and colour: pixel shape and bit depth.

An anamorphic picture (a widescreen DVD: 720×480 shown at 16:9) stores pixels that are not square. Upscaling
multiplies both sides by the same factor, so the sample aspect ratio (SAR) stays what it was and the display aspect
ratio ``width × SAR / height`` is unchanged; it only has to be written on the output (the H.264/H.265 stream and the
container both carry it), or every player shows the picture squeezed.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

__all__ = [
    "HDR_TRANSFERS",
    "default_codec",
    "deep_pix_fmt",
    "display_aspect_ratio",
    "format_bit_depth",
    "ratio_text",
    "stream_sample_aspect_ratio",
]


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


# -- bit depth and HDR ------------------------------------------------------------------------------------------------
#
# A 10-bit source (HEVC Main10, ProRes, an HDR phone clip) is decoded to 16-bit RGB, the network works on floats,
# and the output is written at the source's depth: an 8-bit output would band on smooth gradients, and an HDR
# transfer (PQ, HLG) in 8 bits bands far worse. So deep input picks a deep pixel format for whatever encoder runs,
# and libx265 (Main10) when the user names no encoder.

HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}


def format_bit_depth(fmt: Any) -> int:
    """Bits per component of a PyAV video format (8 for yuv420p, 10 for yuv420p10le)."""
    return max((c.bits for c in fmt.components), default=8)


def default_codec(bit_depth: int) -> str:
    """The encoder when the user names none: H.264 for 8-bit input, HEVC (Main10/Main12) for deeper input."""
    return "libx265" if bit_depth > 8 else "libx264"


def deep_pix_fmt(codec: str, bit_depth: int, supported: list[str]) -> str | None:
    """The pixel format that keeps ``bit_depth``-bit input deep with this encoder, or None where it has none (or the
    input is 8-bit). FFV1 stays RGB and lossless, as at 8 bits."""
    if bit_depth <= 8:
        return None
    if codec == "ffv1":
        wanted = ["gbrp16le", "yuv444p16le"]
    elif bit_depth > 10:
        wanted = ["yuv420p12le", "yuv422p12le", "yuv420p10le", "yuv422p10le"]
    else:
        wanted = ["yuv420p10le", "yuv422p10le", "yuv444p10le"]
    return next((f for f in wanted if f in supported), None)
