"""Video encoders and their settings: pixel format, crf and preset, with the documented defaults and checks.

Checks happen before the first frame so that a wrong setting is one line of error, not a failure mid-encode (x264
and x265 also print their own complaints to stderr, which this avoids).
"""

from __future__ import annotations

from typing import Any

import av
import av.error
import numpy as np

from stvup.errors import OutputError, UsageError
from stvup.errors import describe as _describe
from stvup.video.formats import HDR_TRANSFERS, deep_pix_fmt

__all__ = ["CODEC_DEFAULTS", "X26X_PRESETS", "check_image", "check_rotation", "check_size", "check_subsampling",
           "encoder_settings", "rgb_frame", "video_encoder"]  # fmt: skip

#: Settings a codec gets when the caller names none.
CODEC_DEFAULTS: dict[str, dict[str, Any]] = {
    "libx264": {"pix_fmt": "yuv420p", "crf": 18, "preset": "medium"},
    "libx265": {"pix_fmt": "yuv420p", "crf": 18, "preset": "medium"},
    "ffv1": {"pix_fmt": "bgr0"},
}

#: The presets x264 and x265 accept.
X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)


def video_encoder(name: str) -> Any:
    try:
        codec = av.Codec(name, "w")
    except (av.error.FFmpegError, ValueError) as exc:
        raise UsageError(f"unknown video encoder {name!r} ({_describe(exc)})") from None
    if codec.type != "video":
        raise UsageError(f"{name!r} is not a video encoder")
    return codec


def encoder_settings(
    codec: Any, crf: int | None, preset: str | None, pix_fmt: str | None, bit_depth: int = 8, transfer: int = 2
) -> dict[str, Any]:
    """Pixel format and private options for ``codec``, filling in the documented defaults: a deep format for a
    ``bit_depth`` over 8 (:func:`~stvup.video.formats.deep_pix_fmt`). An HDR ``transfer`` is never written in 8 bits
    unless ``pix_fmt`` asks for it."""
    defaults = CODEC_DEFAULTS.get(codec.name, {})
    formats = [f.name for f in (codec.video_formats or ())]
    if pix_fmt is None:
        pix_fmt = deep_pix_fmt(codec.name, bit_depth, formats)
        if pix_fmt is None and transfer in HDR_TRANSFERS:
            raise UsageError(
                f"the input is HDR ({HDR_TRANSFERS[transfer]}) and {codec.name} has no 10-bit pixel format here; "
                "use --codec libx265, or pass --pix-fmt to accept 8 bits and banding"
            )
    if pix_fmt is None:
        pix_fmt = defaults.get("pix_fmt") or ("yuv420p" if "yuv420p" in formats or not formats else formats[0])
    elif formats and pix_fmt not in formats:
        raise UsageError(f"encoder {codec.name} cannot take pixel format {pix_fmt!r}; it takes {', '.join(formats)}")
    try:
        av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        raise UsageError(f"unknown pixel format {pix_fmt!r}") from None
    private = {option.name for option in av.CodecContext.create(codec.name, "w").supported_options.private}
    settings: dict[str, Any] = {"pix_fmt": pix_fmt}
    for key, value in (("crf", crf), ("preset", preset)):
        if value is None:
            value = defaults.get(key)
            if value is None:
                continue
        elif key not in private:
            raise UsageError(f"encoder {codec.name} has no {key} setting")
        settings[key] = value
    top = 51 + (12 if codec.name == "libx264" and av.VideoFormat(pix_fmt).components[0].bits > 8 else 0)
    if "crf" in settings and codec.name in ("libx264", "libx265") and not 0 <= settings["crf"] <= top:
        raise UsageError(f"--crf {settings['crf']} is out of range for {codec.name} with {pix_fmt}: use 0 to {top}")
    if codec.name in ("libx264", "libx265") and settings.get("preset") not in X26X_PRESETS:
        # Checked here because x264/x265 print their own complaint to stderr before FFmpeg reports the failure.
        raise UsageError(
            f"unknown {codec.name} preset {settings.get('preset')!r}; use one of {', '.join(X26X_PRESETS)}"
        )
    if codec.name == "libx265":
        settings["x265-params"] = "log-level=error"  # x265 logs to stderr itself, bypassing FFmpeg's log level
    return settings


def check_subsampling(path: str, pix_fmt: str, width: int, height: int) -> None:
    """Chroma-subsampled formats (4:2:0, 4:2:2, ...) need sizes divisible by the subsampling factor."""
    fmt = av.VideoFormat(pix_fmt)
    step_w = max(1, 64 // max(1, fmt.chroma_width(64)))
    step_h = max(1, 64 // max(1, fmt.chroma_height(64)))
    if width % step_w or height % step_h:
        raise OutputError(path, f"{pix_fmt} needs a size divisible by {step_w}x{step_h}, got {width}x{height}")


def check_size(width: int, height: int) -> tuple[int, int]:
    """The output size as integers; a writer refuses anything but positive whole numbers before opening a file."""
    if int(width) != width or int(height) != height or width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive integers, got {width}x{height}")
    return int(width), int(height)


def check_rotation(rotation: int) -> int:
    """A display rotation in 0, 90, 180 or 270 degrees."""
    if rotation % 90 != 0:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    return int(rotation) % 360


def check_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A frame as the writers take it, (height, width, 3) uint8 or uint16 RGB, contiguous; anything else is refused."""
    ok = isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16) and image.shape == (height, width, 3)
    if not ok:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected a ({height}, {width}, 3) uint8/uint16 RGB array, got shape {shape} dtype {dtype}")
    return np.ascontiguousarray(image)


def rgb_frame(image: np.ndarray) -> Any:
    """A PyAV frame of an RGB array: 8 bits, or 16 (a deep source's frames)."""
    return av.VideoFrame.from_ndarray(image, format="rgb48le" if image.dtype == np.uint16 else "rgb24")
