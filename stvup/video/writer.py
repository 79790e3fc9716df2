"""Write upscaled frames as a video file (with the source's audio and subtitles) or, through :func:`open_writer`, as a
folder of PNGs (:class:`~stvup.video.frames.FrameFolderWriter`).

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
from stvup.video.encoding import (
    check_image,
    check_rotation,
    check_size,
    check_subsampling,
    encoder_settings,
    rgb_frame,
    video_encoder,
)
from stvup.video.frames import FrameFolderWriter
from stvup.video.partial import (
    AtomicOutput,
    make_temp_file,
)
from stvup.video.passthrough import PacketCopier
from stvup.video.rates import check_rate

__all__ = ["VIDEO_EXTENSIONS", "FrameFolderWriter", "VideoWriter", "open_writer"]  # FrameFolderWriter: from frames

#: Output file extensions (lower case) and the FFmpeg muxer each one selects.
VIDEO_EXTENSIONS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi", ".webm": "webm"}
#: What is read as a video input (by ``batch``, training and evaluation): the containers written above and the
#: common ones that are only read (DVD ``.vob``, camcorder ``.mts``/``.m2ts``, broadcast ``.ts``/``.mxf``, ...).
INPUT_EXTENSIONS = frozenset(VIDEO_EXTENSIONS) | frozenset(
    {
        ".m4v",
        ".mpg",
        ".mpeg",
        ".m2v",
        ".vob",
        ".ts",
        ".m2ts",
        ".mts",
        ".mxf",
        ".dv",
        ".wmv",
        ".flv",
        ".3gp",
        ".ogv",
        ".y4m",
    }  # fmt: skip
)

# Muxers verified to store (and re-read) a display matrix.
ROTATION_MUXERS = {"mp4", "mov", "matroska", "webm"}


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
        self.width, self.height = check_size(width, height)
        self.rate = check_rate(rate)
        self.rotation = check_rotation(rotation)
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
        self._rotate_pixels = self.rotation != 0 and muxer not in ROTATION_MUXERS
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
        image = check_image(image, self.width, self.height)
        if self._rotate_pixels:
            image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
        try:
            frame = self._convert(rgb_frame(image))
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


def open_writer(path: str | os.PathLike, **kwargs: Any) -> VideoWriter | FrameFolderWriter:
    """Open the right writer for ``path``: a frame folder for an existing folder, a path ending in a separator or
    one without a known video extension (:data:`VIDEO_EXTENSIONS`), else a video file. ``kwargs`` go to the writer."""
    text = os.fspath(path)
    ends_with_sep = text.endswith(os.sep) or (os.altsep is not None and text.endswith(os.altsep))
    if os.path.isdir(text) or ends_with_sep or Path(text).suffix.lower() not in VIDEO_EXTENSIONS:
        return FrameFolderWriter(text, **kwargs)
    return VideoWriter(text, **kwargs)
