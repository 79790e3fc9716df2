"""Write upscaled frames as a video file (with the source's audio and subtitles) or as a folder of PNGs.

Both writers take (height, width, 3) uint8 RGB frames in display order and publish their result atomically: frames go
to a hidden temporary sibling (:mod:`stvup.video.partial`: ``.name.partial-PID-XXXX.ext``, or without the extension
for a folder), which is renamed onto the final path only when :meth:`close` succeeds; the siblings that a killed run
left behind are removed first. Any failure, including ``KeyboardInterrupt``, inside the
``with`` block or in ``close`` removes the temporary output and leaves an existing file at the final path untouched.

Decisions worth knowing:

* **Timing.** Frame ``i`` gets pts ``i`` in a time base of ``1/rate``, so any rational rate (e.g. 48000/1001) is kept
  exactly, as far as the container allows (Matroska/WebM store milliseconds).
* **Codecs.** ``libx264`` (default) and ``libx265`` default to ``yuv420p``, ``crf`` 18 and ``preset`` "medium".
  ``ffv1`` defaults to ``bgr0``: 8-bit RGB stored losslessly, because the model produces RGB and any YUV format (even
  4:4:4) would round every pixel once more; pass ``pix_fmt="yuv444p"`` for smaller files. Other PyAV encoders use
  ``yuv420p`` when they support it, else their first pixel format.
* **Colour.** The ``color`` dict (as in :attr:`stvup.video.reader.VideoInfo.color`) tags the stream and every frame,
  and the RGB-to-YUV conversion uses that same matrix and range, so colours read back as they were decoded. Without
  it, BT.709 limited range is used. RGB pixel formats are tagged as RGB.
* **Rotation.** The rotation is stored as display-matrix metadata where the container supports it (MP4, MOV, MKV,
  WebM), so pixels are encoded as decoded and players turn them. AVI cannot store it and PNG folders have no such
  notion; there the pixels themselves are rotated (``width``/``height`` stay the size of the frames you pass).
* **Audio and subtitles** of ``source`` are copied packet by packet, never re-encoded, from a second demuxer that is
  read in step with the video, so memory stays bounded for long inputs. A stream the output container cannot hold
  (checked by writing a trial header in memory) or that the muxer rejects part-way is skipped and listed in
  :attr:`VideoWriter.skipped_streams` instead of failing the whole job.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from stvup.errors import OutputError, StvupError, UsageError
from stvup.errors import describe as _describe
from stvup.video.color import SWS_MATRIX, output_color
from stvup.video.encoding import check_subsampling, encoder_settings, video_encoder
from stvup.video.partial import (
    AtomicOutput,
    default_mode,
    make_temp_file,
    parent_folder,
    partial_prefix,
    remove_stale_partials,
)
from stvup.video.passthrough import PacketCopier, unwritable_streams
from stvup.video.rates import check_rate

__all__ = ["VIDEO_EXTENSIONS", "FrameFolderWriter", "VideoWriter", "open_writer"]

#: Output file extensions (lower case) and the FFmpeg muxer each one selects.
VIDEO_EXTENSIONS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi", ".webm": "webm"}

# Muxers verified to store (and re-read) a display matrix.
_ROTATION_MUXERS = {"mp4", "mov", "matroska", "webm"}


class VideoWriter(AtomicOutput):
    """Encode RGB frames into a video file at an exact rational rate, copying audio/subtitles from ``source``.

    Use as a context manager::

        with VideoWriter("out.mp4", width=w, height=h, rate=Fraction(48000, 1001), source="in.mp4") as out:
            for image in frames:
                out.write(image)

    Raises :class:`~stvup.errors.OutputError` when the output cannot be created or encoding fails, and
    :class:`~stvup.errors.UsageError` for an unknown codec or a setting the codec does not have.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        width: int,
        height: int,
        rate: Fraction | int | str,
        codec: str = "libx264",
        crf: int | None = None,
        preset: str | None = None,
        pix_fmt: str | None = None,
        source: str | os.PathLike | None = None,
        color: dict[str, int] | None = None,
        rotation: int = 0,
        copy_audio: bool = True,
        copy_subtitles: bool = True,
        sample_aspect_ratio: Fraction = Fraction(1),
        bit_depth: int = 8,
    ) -> None:
        self.path = os.fspath(path)
        self.width, self.height = _check_size(width, height)
        self.rate = check_rate(rate)
        self.rotation = _check_rotation(rotation)
        #: One line per source stream that was not copied, with the reason.
        self.skipped_streams: list[str] = []
        self.frames_written = 0
        self._closed = False
        self._container: Any = None
        self._copier: PacketCopier | None = None
        self._last_dts: int | None = None

        suffix = Path(self.path).suffix.lower()
        muxer = VIDEO_EXTENSIONS.get(suffix)
        if muxer is None:
            known = ", ".join(VIDEO_EXTENSIONS)
            raise OutputError(self.path, f"unknown video extension {suffix or '(none)'!r}; use one of {known}")
        self._rotate_pixels = self.rotation != 0 and muxer not in _ROTATION_MUXERS
        turned = self._rotate_pixels and self.rotation in (90, 270)
        enc_w, enc_h = (self.height, self.width) if turned else (self.width, self.height)
        codec_obj = video_encoder(codec or "libx264")
        transfer = (color or {}).get("color_trc", 2)
        settings = encoder_settings(codec_obj, crf, preset, pix_fmt, bit_depth, transfer)
        self.pix_fmt = settings.pop("pix_fmt")
        check_subsampling(self.path, self.pix_fmt, enc_w, enc_h)
        self.color = output_color(color, self.pix_fmt)

        self._tmp = make_temp_file(self.path)
        try:
            self._container = av.open(self._tmp, "w", format=muxer)
            try:
                self._stream = self._container.add_stream(
                    codec_obj.name,
                    rate=self.rate,
                    options={key: str(value) for key, value in settings.items()},
                    time_base=1 / self.rate,
                )
            except ValueError:
                raise OutputError(self.path, f"the {suffix} container cannot hold {codec_obj.name} video") from None
            self._stream.width, self._stream.height = enc_w, enc_h
            self._stream.pix_fmt = self.pix_fmt
            ctx = self._stream.codec_context
            ctx.colorspace = self.color["colorspace"]
            ctx.color_range = self.color["color_range"]
            ctx.color_primaries = self.color["color_primaries"]
            ctx.color_trc = self.color["color_trc"]
            if self.rotation and not self._rotate_pixels:
                self._stream.set_display_rotation(self.rotation)
            sar = Fraction(sample_aspect_ratio)
            if sar != 1:  # anamorphic: in the bitstream (VUI) and in the container (stvup.video.formats)
                ctx.sample_aspect_ratio = self._stream.sample_aspect_ratio = 1 / sar if turned else sar
            try:
                ctx.open()  # now, so that a bad preset or size fails before any frame is computed
            except (av.error.FFmpegError, ValueError) as exc:
                used = ", ".join(f"{key}={value}" for key, value in settings.items() if key != "x265-params")
                raise UsageError(
                    f"encoder {codec_obj.name} refused its settings ({used or 'defaults'}; {_describe(exc)})"
                ) from None
            if source is not None and (copy_audio or copy_subtitles) and os.path.isfile(os.fspath(source)):
                self._copier = PacketCopier(
                    os.fspath(source), self._container, copy_audio, copy_subtitles, self.skipped_streams
                )
        except BaseException as exc:
            self.abort()
            if isinstance(exc, StvupError) or not isinstance(exc, Exception):
                raise
            raise OutputError(self.path, f"cannot set up the encoder ({_describe(exc)})") from None
        self._reformatter = VideoReformatter()

    # -- writing ------------------------------------------------------------------------------------------------------

    def write(self, image: np.ndarray) -> None:
        """Encode the next frame, an (height, width, 3) uint8 RGB array, and mux source packets up to its time."""
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        image = _check_image(image, self.width, self.height)
        if self._rotate_pixels:
            image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
        try:
            frame = self._convert(_rgb_frame(image))
            frame.pts = self.frames_written
            frame.time_base = self._stream.codec_context.time_base
            packets = self._stream.encode(frame)
            if self._copier is not None:
                self._copier.mux_until(Fraction(self.frames_written) / self.rate)
            self._container.mux(self._checked(packets))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(self.path, f"encoding failed at frame {self.frames_written} ({_describe(exc)})") from None
        self.frames_written += 1

    def _convert(self, frame: Any) -> Any:
        """RGB frame -> the encoder's pixel format, with the output matrix/range used and tagged."""
        if av.VideoFormat(self.pix_fmt).is_rgb:
            out = self._reformatter.reformat(frame, format=self.pix_fmt)
        else:
            out = self._reformatter.reformat(
                frame,
                format=self.pix_fmt,
                dst_colorspace=SWS_MATRIX[self.color["colorspace"]],
                dst_color_range=self.color["color_range"],
            )
        out.colorspace = self.color["colorspace"]
        out.color_range = self.color["color_range"]
        out.color_primaries = self.color["color_primaries"]
        out.color_trc = self.color["color_trc"]
        return out

    def _checked(self, packets: list) -> list:
        """Repair impossible decode timestamps before muxing.

        FFmpeg's libx265 wrapper sometimes returns an uninitialised DTS (e.g. -8e15) when the encoder holds a single
        frame, which the MP4 muxer rejects. No codec reorders frames by more than 16, so a DTS more than 16 frames
        before its PTS, after it, or not after the previous one is replaced by the nearest valid value.
        """
        for packet in packets:
            pts, dts = packet.pts, packet.dts
            if pts is not None:
                tb = packet.time_base
                reorder = max(16, round(16 / (self.rate * tb))) if tb else 16
                low = pts - reorder if self._last_dts is None else max(pts - reorder, self._last_dts + 1)
                if dts is None or dts < low or dts > pts:
                    packet.dts = dts = min(max(low, -reorder if dts is None else dts), pts)
            if dts is not None:
                self._last_dts = dts
        return packets

    def close(self) -> None:
        """Flush the encoder, mux the remaining source packets, and move the file onto its final path."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(self.path, "no frames were written")
            try:
                self._container.mux(self._checked(self._stream.encode(None)))
                if self._copier is not None:
                    self._copier.mux_until(None)
                self._container.close()
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                raise OutputError(self.path, f"finishing the video failed ({_describe(exc)})") from None
            if self._copier is not None:
                self._copier.close()
            try:
                os.replace(self._tmp, self.path)
            except OSError as exc:
                raise OutputError(self.path, f"cannot move the finished video into place ({_describe(exc)})") from None
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Stop without publishing: close everything and delete the temporary file. Safe to call more than once."""
        self._closed = True
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the output is being thrown away
                pass
            self._container = None
        tmp = getattr(self, "_tmp", None)
        if tmp is not None and os.path.exists(tmp):
            try:
                os.remove(tmp)
            except OSError:
                pass


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
        self.width, self.height = _check_size(width, height)
        self.rate = check_rate(rate)
        self.rotation = _check_rotation(rotation)
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
        image = _check_image(image, self.width, self.height)
        if self.rotation:
            image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
        frame = _rgb_frame(image).reformat(format=self._encoder.pix_fmt)
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


def open_writer(path: str | os.PathLike, **kwargs: Any) -> VideoWriter | FrameFolderWriter:
    """Open the right writer for ``path``: a frame folder for an existing folder, a path ending in a separator or
    one without a known video extension (:data:`VIDEO_EXTENSIONS`), else a video file. ``kwargs`` go to the writer."""
    text = os.fspath(path)
    ends_with_sep = text.endswith(os.sep) or (os.altsep is not None and text.endswith(os.altsep))
    if os.path.isdir(text) or ends_with_sep or Path(text).suffix.lower() not in VIDEO_EXTENSIONS:
        return FrameFolderWriter(text, **kwargs)
    return VideoWriter(text, **kwargs)


# --------------------------------------------------------------------------------------------------------------------
# Validation and settings
# --------------------------------------------------------------------------------------------------------------------


def _check_size(width: int, height: int) -> tuple[int, int]:
    if int(width) != width or int(height) != height or width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive integers, got {width}x{height}")
    return int(width), int(height)


def _check_rotation(rotation: int) -> int:
    if rotation % 90 != 0:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    return int(rotation) % 360


def _check_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    ok = isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16) and image.shape == (height, width, 3)
    if not ok:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected a ({height}, {width}, 3) uint8/uint16 RGB array, got shape {shape} dtype {dtype}")
    return np.ascontiguousarray(image)


def _rgb_frame(image: np.ndarray) -> Any:
    """A PyAV frame of an RGB array: 8 bits, or 16 (a deep source's frames)."""
    return av.VideoFrame.from_ndarray(image, format="rgb48le" if image.dtype == np.uint16 else "rgb24")


def _is_frame_name(name: str) -> bool:
    return name.startswith("frame_") and name.endswith(".png")
