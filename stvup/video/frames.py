"""Frame folders as input: a directory of ``.png``/``.jpg``/``.jpeg`` images in natural numeric order (``Frame 2.png``
before ``Frame 10.png``), shown at a rate the caller chooses. Images are decoded with PyAV and taken as sRGB.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from stvup.errors import InputError
from stvup.errors import describe as _describe
from stvup.video.color import IMAGE_COLOR, PRI_BT709, RANGE_MPEG, SPC_BT709, TRC_IEC61966_2_1, to_rgb
from stvup.video.info import DecodedFrame, VideoInfo

__all__ = ["FRAME_EXTENSIONS", "iter_folder", "list_frame_files", "probe_folder", "read_image"]

#: Image file extensions (lower case) that make up a frame folder.
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Return the image files of a frame folder in natural numeric order (hidden files ignored).

    Raises InputError when the folder holds no .png/.jpg/.jpeg file.
    """
    folder_str = os.fspath(folder)
    try:
        entries = [entry for entry in os.scandir(folder_str) if entry.is_file()]
    except OSError as exc:
        raise InputError(folder_str, f"cannot list folder: {exc.strerror or exc}") from None
    files = [
        Path(entry.path)
        for entry in entries
        if Path(entry.name).suffix.lower() in FRAME_EXTENSIONS and not entry.name.startswith(".")
    ]
    if not files:
        raise InputError(folder_str, "folder contains no .png/.jpg/.jpeg frames")
    return sorted(files, key=lambda p: natural_key(p.name))


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value, so "Frame 2" < "Frame 10" and "9" < "10"."""
    parts = re.split(r"(\d+)", name)
    # Odd positions are digit runs; ties between "01" and "1" fall back to the text itself.
    return tuple((int(part), part) if i % 2 else (0, part.lower()) for i, part in enumerate(parts)), name


def probe_folder(folder: str, input_fps: Fraction) -> VideoInfo:
    files = list_frame_files(folder)
    first = read_image(files[0])
    height, width = first.shape[:2]
    codec = "png" if files[0].suffix.lower() == ".png" else "mjpeg"
    count = len(files)
    return VideoInfo(
        path=folder,
        kind="frames",
        width=width,
        height=height,
        rate=input_fps,
        frame_count=count,
        duration=Fraction(count) / input_fps,
        rotation=0,
        # Images are sRGB; these are the tags a YUV encoding of them should carry.
        color={
            "colorspace": SPC_BT709,
            "color_range": RANGE_MPEG,
            "color_primaries": PRI_BT709,
            "color_trc": TRC_IEC61966_2_1,
        },
        codec=codec,
        has_audio=False,
        audio_streams=0,
        subtitle_streams=0,
    )


def read_image(file: Path) -> np.ndarray:
    """Decode one PNG/JPEG with PyAV into an (h, w, 3) uint8 RGB array."""
    try:
        with av.open(str(file)) as container:
            for frame in container.decode(video=0):
                return to_rgb(frame, IMAGE_COLOR)
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise InputError(file, f"cannot decode image ({_describe(exc)})") from None
    raise InputError(file, "cannot decode image (no picture in file)")


def iter_folder(folder: str, info: VideoInfo, first: int = 0) -> Generator[DecodedFrame, None, None]:
    for index, file in enumerate(list_frame_files(folder)[first:], start=first):
        image = read_image(file)
        if image.shape[:2] != (info.height, info.width):
            raise InputError(
                file,
                f"frame is {image.shape[1]}x{image.shape[0]} but the first frame is {info.width}x{info.height}",
            )
        yield DecodedFrame(image=image, time=Fraction(index) / info.rate, index=index)
