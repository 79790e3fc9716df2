"""Frame folders, in and out.

As input: a directory of ``.png``/``.jpg``/``.jpeg`` images in natural numeric order (``Frame 2.png`` before
``Frame 10.png``), shown at a rate the caller chooses; images are decoded with PyAV and taken as sRGB (an alpha
channel is dropped). A folder whose first image has more than 8 bits per component (16-bit PNGs) is read as uint16
RGB, like a deep video, so that its depth reaches the output. As output:
numbered PNGs written by :class:`FrameFolderWriter`, which takes the same arguments as
:class:`~stvup.video.writer.VideoWriter` and publishes the folder atomically like it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Generator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from stvup.errors import InputError, OutputError
from stvup.errors import describe as _describe
from stvup.video.color import IMAGE_COLOR, PRI_BT709, RANGE_MPEG, SPC_BT709, TRC_IEC61966_2_1, to_rgb
from stvup.video.encoding import check_image, check_rotation, check_size, rgb_frame
from stvup.video.formats import format_bit_depth
from stvup.video.info import DecodedFrame, VideoInfo
from stvup.video.partial import AtomicOutput, default_mode, parent_folder, partial_prefix, remove_stale_partials
from stvup.video.passthrough import unwritable_streams
from stvup.video.rates import check_rate

__all__ = ["FRAME_EXTENSIONS", "FrameFolderWriter", "iter_folder", "list_frame_files", "probe_folder", "read_image"]

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
    first, bit_depth = _decode_image(files[0])
    height, width = first.height, first.width
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
        bit_depth=bit_depth,
    )


def _decode_image(file: Path) -> tuple[Any, int]:
    """The decoded picture of one PNG/JPEG (a PyAV frame) and its bits per component."""
    try:
        with av.open(str(file)) as container:
            for frame in container.decode(video=0):
                return frame, format_bit_depth(frame.format)
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise InputError(file, f"cannot decode image ({_describe(exc)})") from None
    raise InputError(file, "cannot decode image (no picture in file)")


def read_image(file: Path, deep: bool = False) -> np.ndarray:
    """Decode one PNG/JPEG with PyAV into an (h, w, 3) RGB array: uint8, or uint16 when ``deep``."""
    frame, _ = _decode_image(file)
    try:
        return to_rgb(frame, IMAGE_COLOR, deep)
    except (av.error.FFmpegError, ValueError) as exc:
        raise InputError(file, f"cannot decode image ({_describe(exc)})") from None


def iter_folder(folder: str, info: VideoInfo, first: int = 0) -> Generator[DecodedFrame, None, None]:
    for index, file in enumerate(list_frame_files(folder)[first:], start=first):
        image = read_image(file, deep=info.bit_depth > 8)
        if image.shape[:2] != (info.height, info.width):
            raise InputError(
                file,
                f"frame is {image.shape[1]}x{image.shape[0]} but the first frame is {info.width}x{info.height}",
            )
        yield DecodedFrame(image=image, time=Fraction(index) / info.rate, index=index)


class FrameFolderWriter(AtomicOutput):
    """Write RGB frames as ``frame_000001.png``, ``frame_000002.png``, ... into a folder, using PyAV's PNG encoder.

    Takes the same arguments as :class:`VideoWriter`; those that only make sense for a video (codec, crf, preset,
    pix_fmt, color) are ignored, source audio/subtitle streams are listed in :attr:`skipped_streams`, and a rotation
    is applied to the pixels. Frames are written into a hidden sibling folder renamed onto ``path`` at :meth:`close`.
    An existing empty folder is replaced; an existing folder with other files receives the frames next to them, but
    one that already holds ``frame_*.png`` files is refused so two runs never mix.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        width: int,
        height: int,
        rate: Fraction | int | str = Fraction(25),
        codec: str | None = None,
        crf: int | None = None,
        preset: str | None = None,
        pix_fmt: str | None = None,
        source: str | os.PathLike | None = None,
        color: dict[str, int] | None = None,
        rotation: int = 0,
        copy_audio: bool = True,
        copy_subtitles: bool = True,
        bit_depth: int = 8,
    ) -> None:
        del codec, crf, preset, pix_fmt, color  # video-only settings
        self.path = os.fspath(path).rstrip("/" + (os.altsep or "") + os.sep) or os.fspath(path)
        self.width, self.height = check_size(width, height)
        self.rate = check_rate(rate)
        self.rotation = check_rotation(rotation)
        self.skipped_streams: list[str] = []
        self.frames_written = 0
        self._closed = False
        self._tmp: str | None = None

        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise OutputError(self.path, "exists and is not a folder")
        if os.path.isdir(self.path) and any(_is_frame_name(name) for name in os.listdir(self.path)):
            raise OutputError(self.path, "folder already contains frame_*.png files; choose an empty folder")
        if source is not None and (copy_audio or copy_subtitles):
            self.skipped_streams = unwritable_streams(os.fspath(source), copy_audio, copy_subtitles)

        parent = parent_folder(self.path)
        try:
            remove_stale_partials(self.path, folder=True)
            self._tmp = tempfile.mkdtemp(prefix=partial_prefix(self.path, folder=True), dir=parent)
            os.chmod(self._tmp, default_mode(0o777))
        except OSError as exc:
            raise OutputError(self.path, f"cannot write here ({_describe(exc)})") from None
        out_w, out_h = (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)
        self._encoder = av.CodecContext.create("png", "w")
        self._encoder.width, self._encoder.height = out_w, out_h
        self._encoder.pix_fmt = "rgb48be" if bit_depth > 8 else "rgb24"  # 16-bit PNGs for a deep source
        self._encoder.time_base = 1 / self.rate

    def write(self, image: np.ndarray) -> None:
        """Encode the next frame, an (height, width, 3) uint8 RGB array, as the next numbered PNG."""
        if self._closed:
            raise ValueError("write() on a closed FrameFolderWriter")
        image = check_image(image, self.width, self.height)
        if self.rotation:
            image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
        frame = rgb_frame(image).reformat(format=self._encoder.pix_fmt)
        frame.pts = self.frames_written
        try:
            self._save(self._encoder.encode(frame))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(self.path, f"writing frame {self.frames_written + 1} failed ({_describe(exc)})") from None

    def _save(self, packets: list) -> None:
        for packet in packets:
            name = os.path.join(self._tmp, f"frame_{self.frames_written + 1:06d}.png")
            with open(name, "wb") as handle:
                handle.write(bytes(packet))
            self.frames_written += 1

    def close(self) -> None:
        """Finish the PNGs and move them onto the final folder."""
        if self._closed:
            return
        try:
            try:
                self._save(self._encoder.encode(None))
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                raise OutputError(self.path, f"writing the last frames failed ({_describe(exc)})") from None
            if self.frames_written == 0:
                raise OutputError(self.path, "no frames were written")
            try:
                self._publish()
            except OSError as exc:
                raise OutputError(self.path, f"cannot move the frames into place ({_describe(exc)})") from None
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def _publish(self) -> None:
        assert self._tmp is not None
        if not os.path.exists(self.path):
            os.rename(self._tmp, self.path)
            self._tmp = None
            return
        if not os.listdir(self.path):
            try:
                os.replace(self._tmp, self.path)  # POSIX renames a folder onto an empty one
                self._tmp = None
                return
            except OSError:
                pass
        for name in sorted(os.listdir(self._tmp)):
            os.replace(os.path.join(self._tmp, name), os.path.join(self.path, name))
        os.rmdir(self._tmp)
        self._tmp = None

    def abort(self) -> None:
        """Stop without publishing and delete the temporary folder. Safe to call more than once."""
        self._closed = True
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _is_frame_name(name: str) -> bool:
    return name.startswith("frame_") and name.endswith(".png")
