"""Joining a resumable output's segment files into one video, without re-encoding.

The segments come from encoders with the same settings, so they share their headers (checked here); each one's
timestamps start at 0 and are shifted by the frames before it, which gives one continuous stream. The source's
audio and subtitles are muxed in as the video goes, interleaved by time.
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
            start = 0
            for file in files:
                with av.open(str(file)) as part:
                    stream = part.streams.video[0]
                    if bytes(stream.codec_context.extradata or b"") != headers:
                        raise OutputError(path, f"segment {file.name} has other encoder headers; use --no-resume")
                    count = 0
                    for packet in part.demux(stream):
                        if packet.size == 0:
                            continue
                        count += 1
                        scale = packet.time_base / out_tb  # segment time base → output frames
                        packet.pts = None if packet.pts is None else round(packet.pts * scale) + start
                        packet.dts = None if packet.dts is None else round(packet.dts * scale) + start
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
