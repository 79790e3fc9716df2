"""Joining a resumable output's segment files into one video, without re-encoding.

The segments come from encoders with the same settings, so they share their headers (checked here); each one's
timestamps start at 0 and are shifted by the frames before it, which gives one continuous stream. The source's
audio and subtitles are muxed in as the video goes, interleaved by time.

Matroska and WebM store no decode timestamps: reading a segment back, the first packets of a codec that reorders
frames (H.264 and HEVC with B-frames) come without one, which the muxer then fills in from their presentation time,
out of order with the next ones ("Invalid argument"). For such segments every packet gets a decode time on one
grid for the whole output: the k-th smallest presentation time of its segment less the largest reorder delay of
all segments, so that decode times never pass presentation times and keep increasing from one segment to the next.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import av.error

from ..errors import OutputError
from ..errors import describe as _describe
from .partial import make_temp_file
from .passthrough import PacketCopier
from .writer import ROTATION_MUXERS, VIDEO_EXTENSIONS

__all__ = ["join_segments"]


def join_segments(
    path: str | os.PathLike,
    files: list[Path],
    rate: Fraction,
    source: str | os.PathLike | None,
    rotation: int,
    window: tuple[Fraction, Fraction | None] | None = None,
) -> list[str]:
    """Join segment files (video only, each from frame 0) into ``path`` with ``source``'s audio and subtitles,
    without re-encoding; written under a temporary name and renamed when complete. Returns the skipped streams."""
    path = os.fspath(path)
    muxer = VIDEO_EXTENSIONS[Path(path).suffix.lower()]
    skipped: list[str] = []
    tmp = make_temp_file(path)
    out_tb = 1 / Fraction(rate)
    copier = None
    try:
        with av.open(tmp, "w", format=muxer) as output:
            with av.open(str(files[0])) as first:
                template = first.streams.video[0]
                headers = bytes(template.codec_context.extradata or b"")
                video = output.add_stream_from_template(template)
                if template.sample_aspect_ratio:
                    video.sample_aspect_ratio = template.sample_aspect_ratio  # the container's copy of it
            video.time_base = out_tb
            if rotation and muxer in ROTATION_MUXERS:
                video.set_display_rotation(rotation)
            if source is not None and os.path.isfile(os.fspath(source)):
                copier = PacketCopier(os.fspath(source), output, True, True, skipped, window)
            grids = _decode_grids(files, out_tb)
            start = 0
            for file, grid in zip(files, grids):
                with av.open(str(file)) as part:
                    stream = part.streams.video[0]
                    if bytes(stream.codec_context.extradata or b"") != headers:
                        raise OutputError(path, f"segment {file.name} has other encoder headers; use --no-resume")
                    count = 0
                    for packet in part.demux(stream):
                        if packet.size == 0:
                            continue
                        scale = packet.time_base / out_tb  # segment time base → output frames
                        packet.pts = None if packet.pts is None else round(packet.pts * scale) + start
                        if grid is not None:
                            packet.dts = grid[count] + start
                        else:
                            packet.dts = None if packet.dts is None else round(packet.dts * scale) + start
                        count += 1
                        packet.duration = round(packet.duration * scale) if packet.duration else 1
                        if copier is not None and packet.dts is not None:
                            copier.mux_until(Fraction(max(packet.dts, 0)) * out_tb)
                        packet.time_base = out_tb
                        packet.stream = video
                        output.mux(packet)
                start += count
            if copier is not None:
                copier.mux_until(None)
        os.replace(tmp, path)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise OutputError(path, f"joining the segments failed ({_describe(exc)})") from None
    finally:
        if copier is not None:
            copier.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return skipped


def _decode_grids(files: list[Path], out_tb: Fraction) -> list[list[int] | None]:
    """Decode times, in output frames from each segment's start, for segments read back without some of them
    (Matroska, WebM; see the module docstring): one list per file, by packet in decode order; None for every file
    when all packets have their own."""
    presented: list[list[int]] = []
    missing = False
    for file in files:
        with av.open(str(file)) as part:
            stream = part.streams.video[0]
            stamps = []
            for packet in part.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return [None] * len(files)  # nothing to place them by: as they come
                missing = missing or packet.dts is None
                stamps.append(round(packet.pts * packet.time_base / out_tb))
            presented.append(stamps)
    if not missing:
        return [None] * len(files)
    # Packet k decodes at the k-th presentation time less the delay: the least delay that decodes none after it shows.
    delay = max([0] + [nth - own for stamps in presented for nth, own in zip(sorted(stamps), stamps)])
    return [[nth - delay for nth in sorted(stamps)] for stamps in presented]
