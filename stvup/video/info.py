"""What reading an input gives: its description (:class:`VideoInfo`), its frames (:class:`DecodedFrame`) and the
lazy stream of them (:class:`FrameStream`), shared by video files (:mod:`stvup.video.reader`), frame folders
(:mod:`stvup.video.frames`) and trimmed spans (:mod:`stvup.video.trim`).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

__all__ = ["DecodedFrame", "FrameStream", "VideoInfo"]


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`~stvup.video.reader.probe` learnt about an input, enough to plan the output before decoding it.

    ``width``/``height`` are the decoded picture size, before rotation. ``rate`` is frames per second (see the module
    docstring for how it is chosen). ``frame_count`` is exact for frame folders and short files and an estimate for
    long files (``None`` when unknown). ``rotation`` is the counter-clockwise display rotation in degrees (0, 90, 180
    or 270), the convention of PyAV's ``VideoFrame.rotation``. ``color`` maps ``colorspace``, ``color_range``,
    ``color_primaries`` and ``color_trc`` to FFmpeg's enum values as PyAV exposes them, with the matrix and range
    actually used for decoding filled in where the source leaves them unspecified. ``sample_aspect_ratio``: the
    shape of one pixel (1 for square pixels; 32:27 on a widescreen NTSC DVD), see :mod:`stvup.video.formats`.
    """

    path: str
    kind: str
    width: int
    height: int
    rate: Fraction
    frame_count: int | None
    duration: Fraction | None
    rotation: int
    color: dict[str, int]
    codec: str
    has_audio: bool
    audio_streams: int
    subtitle_streams: int
    sample_aspect_ratio: Fraction = Fraction(1)
    bit_depth: int = 8  # bits per component; deeper sources decode to uint16 RGB (stvup.video.formats)

    @property
    def display_width(self) -> int:
        """Width of the picture as shown, after rotation."""
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        """Height of the picture as shown, after rotation."""
        return self.width if self.rotation in (90, 270) else self.height


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded picture: ``image`` is (height, width, 3) uint8 RGB, ``time`` seconds since the first frame."""

    image: np.ndarray
    time: Fraction
    index: int


@dataclass
class FrameStream(Iterator[DecodedFrame]):
    """Iterator over the frames of one input, returned by :func:`~stvup.video.reader.iter_frames`.

    It decodes lazily, one frame at a time, so memory does not grow with the length of the video. ``problems``
    collects one line per recoverable defect met so far (skipped packets, concealed errors, truncated tail) so
    callers can warn the user; the library itself never prints. Use it as a context manager, or call
    :meth:`close`, to release the file early when not iterating to the end.
    """

    path: str
    info: VideoInfo
    problems: list[str] = field(default_factory=list)
    concealed: int = 0  # frames the decoder flagged corrupt: damaged packets patched up by error concealment
    decoded: int = 0  # frames decoded so far, those a seek decodes only to reach its first frame included
    seek_note: str | None = None  # why a read asked to start inside the video decoded it from the start instead
    _frames: Generator[DecodedFrame, None, None] | None = field(default=None, repr=False)

    def __iter__(self) -> FrameStream:
        return self

    def __next__(self) -> DecodedFrame:
        if self._frames is None:
            raise StopIteration
        return next(self._frames)

    def close(self) -> None:
        """Stop decoding and close the input file."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
