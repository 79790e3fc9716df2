"""Audio and subtitle streams of the source, copied packet by packet into the output, in step with the video.

Never re-encoded: a second demuxer over the source is read as the video is written, so memory stays bounded for long
inputs. A stream the output container cannot hold (found by writing a trial header in memory) or that the muxer
rejects part-way is skipped and reported, not fatal. ``window`` cuts the copy to a span of the source's time (a
trimmed run, ``--start``/``--duration``): packets that begin before it or at its end are left out, and the rest are
shifted so that the span's start is time 0, like the video's first frame.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from typing import Any

import av
import av.error

from stvup.errors import InputError
from stvup.errors import describe as _describe

__all__ = ["PacketCopier", "unwritable_streams"]


class PacketCopier:
    """A second demuxer over the source that feeds audio/subtitle packets to the output in time order."""

    def __init__(
        self,
        source: str,
        output: Any,
        copy_audio: bool,
        copy_subtitles: bool,
        skipped: list[str],
        window: tuple[Fraction, Fraction | None] | None = None,
    ) -> None:
        self._skipped = skipped
        self._trimmed = window is not None
        self._start, self._end = window if window is not None else (Fraction(0), None)
        self._output_streams: dict[int, Any] = {}
        self._shift: dict[int, int] = {}
        self._pending: Any = None
        self._packets: Any = None
        try:
            self._container = av.open(source, metadata_errors="ignore")
        except (av.error.FFmpegError, OSError) as exc:
            raise InputError(source, f"cannot reopen to copy audio ({_describe(exc)})") from None
        # Output time 0 is the source's first video frame (plus the window's start); shift the other streams alike.
        offset = self._start
        for stream in self._container.streams.video:
            if stream.start_time is not None and stream.time_base:
                offset += stream.start_time * stream.time_base
                break
        wanted = []
        for stream in self._container.streams:
            if not ((stream.type == "audio" and copy_audio) or (stream.type == "subtitle" and copy_subtitles)):
                continue
            label = _stream_label(stream)
            refusal = _copy_refusal(output.format.name, stream)
            if refusal is None:
                try:
                    self._output_streams[stream.index] = output.add_stream_from_template(stream)
                except (av.error.FFmpegError, ValueError) as exc:
                    refusal = _describe(exc)
            if refusal is not None:
                skipped.append(f"{label}: not copied, the output container cannot hold it ({refusal})")
                continue
            self._shift[stream.index] = round(offset / stream.time_base) if stream.time_base else 0
            wanted.append(stream)
        if wanted:
            self._packets = self._container.demux(wanted)
        else:
            self.close()

    def mux_until(self, limit: Fraction | None) -> None:
        """Mux source packets whose time is at or before ``limit`` seconds (all remaining ones if None)."""
        while self._packets is not None:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._packets)
                except StopIteration:
                    self.close()
                    return
                except av.error.FFmpegError:
                    self.close()  # damaged source tail: keep what was copied
                    return
            index = packet.stream.index
            if packet.size == 0 or index not in self._output_streams:
                continue
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is None:
                continue
            at = (stamp - self._shift[index]) * packet.time_base  # seconds on the output's clock
            if limit is not None and at > limit:
                self._pending = packet
                return
            if self._trimmed and (at < 0 or (self._end is not None and at >= self._end - self._start)):
                continue  # outside a trimmed run's window (an untrimmed copy keeps AAC's priming packet, at < 0)
            self._mux(packet, index)

    def _mux(self, packet: Any, index: int) -> None:
        out = self._output_streams[index]
        shift = self._shift[index]
        if shift:
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        packet.stream = out
        try:
            out.container.mux(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            # Drop this stream from now on rather than failing the video.
            del self._output_streams[index]
            label = _stream_label(self._container.streams[index])
            self._skipped.append(f"{label}: copy stopped part-way, the muxer rejected a packet ({_describe(exc)})")

    def close(self) -> None:
        self._packets = None
        self._pending = None
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None


def _stream_label(stream: Any) -> str:
    ctx = stream.codec_context
    name = (getattr(ctx.codec, "canonical_name", None) or ctx.name) if ctx is not None else "unknown codec"
    return f"{stream.type} stream #{stream.index} ({name})"


def _copy_refusal(muxer: str, stream: Any) -> str | None:
    """Why ``muxer`` cannot hold a copy of ``stream`` (None if it can), found by writing a header in memory."""
    try:
        with av.open(io.BytesIO(), "w", format=muxer) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
    except (av.error.FFmpegError, ValueError, TypeError) as exc:
        return _describe(exc)
    return None


def unwritable_streams(source: str, copy_audio: bool, copy_subtitles: bool) -> list[str]:
    """Audio/subtitle streams of ``source`` a frame folder cannot hold (empty if the source cannot be read)."""
    if not os.path.isfile(source):
        return []
    try:
        with av.open(source, metadata_errors="ignore") as container:
            return [
                f"{_stream_label(s)}: not copied, a frame folder cannot hold {s.type}"
                for s in container.streams
                if (s.type == "audio" and copy_audio) or (s.type == "subtitle" and copy_subtitles)
            ]
    except (av.error.FFmpegError, OSError):
        return []
