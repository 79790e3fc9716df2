"""Colour: which matrix, range, primaries and transfer a source really uses, and conversions to and from RGB.

The reader converts every frame with the source's own matrix and range (untagged YUV: BT.709 at 720 lines or more,
BT.601 below, as players do) and reports what it used; the writer tags its output with the same values and converts
back with the same matrix, so colours read back as they were decoded.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np
from av.video.reformatter import Colorspace, VideoReformatter

__all__ = ["IMAGE_COLOR", "SWS_MATRIX", "RgbConverter", "default_matrix", "effective_color", "output_color", "to_rgb"]

# FFmpeg AVColorSpace / AVColorRange / AVColorPrimaries / AVColorTransferCharacteristic values used here.
SPC_RGB, SPC_BT709, SPC_UNSPECIFIED, SPC_SMPTE170M = 0, 1, 2, 6
RANGE_UNSPECIFIED, RANGE_MPEG, RANGE_JPEG = 0, 1, 2
PRI_BT709, TRC_BT709, TRC_IEC61966_2_1 = 1, 1, 13


#: AVColorSpace value -> swscale matrix. Values missing here (RGB, reserved, YCgCo, ...) use the size heuristic.
SWS_MATRIX = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,
    6: Colorspace.SMPTE170M,
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}


def default_matrix(height: int) -> int:
    """Matrix for untagged YUV: BT.709 for HD (720 lines or more), BT.601 below, as players do."""
    return SPC_BT709 if height >= 720 else SPC_SMPTE170M


def first_tag(*values: Any, unspecified: int) -> int:
    """The first value that is set and not "unspecified"."""
    for value in values:
        if value is not None and int(value) != unspecified:
            return int(value)
    return unspecified


def effective_color(frame: Any, ctx: Any) -> dict[str, int]:
    """The colour tags of a source with unspecified matrix/range replaced by what decoding actually uses."""
    colorspace = first_tag(frame.colorspace, ctx.colorspace, unspecified=SPC_UNSPECIFIED)
    color_range = first_tag(frame.color_range, ctx.color_range, unspecified=RANGE_UNSPECIFIED)
    if frame.format.is_rgb:
        colorspace, color_range = SPC_RGB, RANGE_JPEG
    else:
        if colorspace not in SWS_MATRIX:
            colorspace = default_matrix(frame.height)
        if color_range == RANGE_UNSPECIFIED:
            color_range = RANGE_JPEG if frame.format.name.startswith("yuvj") else RANGE_MPEG
    return {
        "colorspace": colorspace,
        "color_range": color_range,
        "color_primaries": first_tag(frame.color_primaries, ctx.color_primaries, unspecified=2),
        "color_trc": first_tag(frame.color_trc, ctx.color_trc, unspecified=2),
    }


class RgbConverter:
    """Frame -> contiguous (h, w, 3) RGB, uint8 (uint16 for ``deep`` sources), reusing one swscale context.

    A frame's own matrix/range tags win; untagged frames use the stream's resolved ``color`` (see :func:`probe`), so
    the conversion always matches what :attr:`VideoInfo.color` reports to the writer.
    """

    def __init__(self, color: dict[str, int], deep: bool = False) -> None:
        self.colorspace = color.get("colorspace", SPC_BT709)
        self.color_range = color.get("color_range", RANGE_MPEG)
        self.reformatter = VideoReformatter()
        self.rgb = "rgb48le" if deep else "rgb24"

    def __call__(self, frame: Any) -> np.ndarray:
        name = frame.format.name
        if frame.format.is_rgb or name == "pal8" or name.startswith(("gray", "ya")):
            rgb = self.reformatter.reformat(frame, format=self.rgb)
        else:
            colorspace = first_tag(frame.colorspace, unspecified=SPC_UNSPECIFIED)
            matrix = SWS_MATRIX.get(colorspace) or SWS_MATRIX.get(self.colorspace) or Colorspace.ITU709
            color_range = first_tag(frame.color_range, unspecified=RANGE_UNSPECIFIED)
            if color_range == RANGE_UNSPECIFIED:
                color_range = RANGE_JPEG if name.startswith("yuvj") else self.color_range
            rgb = self.reformatter.reformat(frame, format=self.rgb, src_colorspace=matrix, src_color_range=color_range)
        return np.ascontiguousarray(rgb.to_ndarray())


#: Images in frame folders are RGB or JPEG's full-range BT.601, which their frames are tagged with.
IMAGE_COLOR = {"colorspace": SPC_SMPTE170M, "color_range": RANGE_JPEG}


def to_rgb(frame: Any, color: dict[str, int], deep: bool = False) -> np.ndarray:
    """Convert one frame to RGB, uint16 when ``deep`` (a fresh converter: for single images)."""
    return RgbConverter(color, deep)(frame)


def output_color(color: dict[str, int] | None, pix_fmt: str) -> dict[str, int]:
    """Colour tags for the output: the source's where usable, BT.709 limited range otherwise."""
    color = dict(color or {})
    primaries = int(color.get("color_primaries", PRI_BT709) or 2)
    trc = int(color.get("color_trc", TRC_BT709) or 2)
    fmt = av.VideoFormat(pix_fmt)
    if fmt.is_rgb:
        return {"colorspace": SPC_RGB, "color_range": RANGE_JPEG, "color_primaries": primaries, "color_trc": trc}
    colorspace = int(color.get("colorspace", SPC_BT709) or 0)
    if colorspace not in SWS_MATRIX:
        colorspace = SPC_BT709
    color_range = int(color.get("color_range", RANGE_MPEG) or 0)
    if pix_fmt.startswith("yuvj"):
        color_range = RANGE_JPEG
    elif color_range not in (RANGE_MPEG, RANGE_JPEG):
        color_range = RANGE_MPEG
    return {"colorspace": colorspace, "color_range": color_range, "color_primaries": primaries, "color_trc": trc}


def eight_bit(image: np.ndarray) -> np.ndarray:
    """An RGB frame in 8 bits: uint8 as it is, a deep source's full-range uint16 scaled to 0–255 (code values, not
    tone-mapped: a PQ or HLG picture looks flat, as on an SDR screen). For what works in 8 bits (training data,
    scores, pictures), never for the output, which keeps the depth."""
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return image
