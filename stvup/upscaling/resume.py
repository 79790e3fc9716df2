"""Resumable video output: segments of closed GOPs, a journal, and the join at the end.

A film takes hours on a GPU and days on a CPU, so an interruption must not cost the work already done. The output
video is written as segments of a few seconds, each a complete file from its own encoder (so every segment starts
with a key frame and no GOP spans two segments), in a hidden work folder beside the output::

    .NAME.mp4.stvup-work/
        journal.json      what the run is (input and settings fingerprints) and which segments are complete
        000000.mp4 ...    finished segments (video only)

A segment enters the journal only after its file is complete and flushed to disk, so after any interruption
(Ctrl-C, SIGTERM, SIGKILL, power loss) the journal lists exactly the segments that can be kept. Running the same
command again reads the journal, checks that the input and every setting that shapes the pictures are unchanged
(otherwise it starts over and says why), and asks the pipeline for the remaining frames only
(``Upscaler.stream(skip=...)``). Segment boundaries are fixed output frame numbers, and the model's result for a
frame does not depend on where the run started, so a resumed run writes the same segments an uninterrupted one does.

When the last segment is done, their packets are joined, without re-encoding, with the source's audio and
subtitles into the output (under a temporary name, renamed when complete), and the work folder is removed.

This module writes the segments; :mod:`stvup.upscaling.journal` keeps the journal and the lock, and
:mod:`stvup.video.join` joins the segments.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from stvup.errors import OutputError
from stvup.video.writer import VIDEO_EXTENSIONS, FrameFolderWriter, VideoWriter, open_writer

from .journal import Job, job_identity, journaled_segment_frames, segment_length

__all__ = ["SEGMENT_SECONDS", "SegmentSink", "SegmentedWriter", "open_output", "work_segment_seconds"]

SEGMENT_SECONDS = 4  # of output video per segment at most: few files for a film
SEGMENT_WORK = 120.0  # model seconds per segment at most (estimated): what an interruption can cost
MIN_SEGMENT_FRAMES = 12  # each segment is a closed GOP from its own encoder; shorter ones compress worse


def work_segment_seconds(rate: Fraction, frame_seconds: float) -> Fraction:
    """The segment length for output frames that each take ``frame_seconds`` of model time: as many frames as
    :data:`SEGMENT_WORK` allows, at least :data:`MIN_SEGMENT_FRAMES`, at most :data:`SEGMENT_SECONDS` of video.

    At 960x540 on a CPU (about 0.6 s a frame) that is the 4 s cap; at 4K on a CPU (about 10 s a frame) 12 frames,
    2 minutes of work, instead of 4 s of 60 fps video (48 minutes).
    """
    most = segment_length(rate, SEGMENT_SECONDS)
    frames = min(most, max(MIN_SEGMENT_FRAMES, int(SEGMENT_WORK // max(frame_seconds, 1e-9))))
    return Fraction(frames) / Fraction(rate)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class SegmentSink:
    """Writes output frames from frame ``start`` on as segment files of ``segment_frames`` frames in ``work``, named
    by their index (``start // segment_frames``); ``on_segment(record)`` is called as each one is complete and on
    disk. ``options`` are :class:`~stvup.video.VideoWriter`'s (no source: segments hold video only)."""

    def __init__(
        self, work: Path, suffix: str, segment_frames: int, start: int, options: dict[str, Any], on_segment: Any
    ) -> None:
        if start % segment_frames:
            raise ValueError(f"segments start at multiples of {segment_frames}, not at frame {start}")
        self.work, self.suffix, self.segment_frames = work, suffix, segment_frames
        self.next_start, self.options, self.on_segment = start, options, on_segment
        self._segment: VideoWriter | None = None

    def open(self) -> None:
        """Opens the next segment's encoder (also to check the settings before any frame is computed)."""
        if self._segment is None:
            name = f"{self.next_start // self.segment_frames:06d}{self.suffix}"
            self._segment = VideoWriter(self.work / name, source=None, copy_audio=False, copy_subtitles=False,
                                        **self.options)  # fmt: skip

    def write(self, image: np.ndarray) -> None:
        self.open()
        self._segment.write(image)
        if self._segment.frames_written >= self.segment_frames:
            self.finish()

    def finish(self) -> None:
        """Closes the segment under way (a short last one), or drops it if it got no frame."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        if not segment.frames_written:
            segment.abort()
            return
        segment.close()
        file = Path(segment.path)
        _fsync(file)  # on disk before the journal says so
        record = {"index": self.next_start // self.segment_frames, "start": self.next_start,
                  "frames": segment.frames_written, "file": file.name, "size": file.stat().st_size}  # fmt: skip
        self.next_start += segment.frames_written
        self.on_segment(record)

    def abort(self) -> None:
        if self._segment is not None:
            self._segment.abort()
            self._segment = None


class SegmentedWriter:
    """A :class:`~stvup.video.VideoWriter` whose work survives interruptions; same ``write``/``close``/``abort``.

    ``settings``: everything besides the input that shapes the output (model fingerprint, rates, encoder
    settings, ...); with ``input`` it decides whether an earlier run's segments may be reused. ``resume=False``
    throws them away. After construction, ``frames_written`` (and ``resumed``) is the number of output frames
    already done, which the caller skips, and ``notes`` says what happened to an earlier run's work. The other
    keyword arguments are :class:`~stvup.video.VideoWriter`'s.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        input: str | os.PathLike,
        settings: dict[str, Any],
        resume: bool = True,
        segment_seconds: float = SEGMENT_SECONDS,
        source: str | os.PathLike | None = None,
        rotation: int = 0,
        window: tuple[Fraction, Fraction | None] | None = None,
        adopt: bool = False,
        **writer_options: Any,
    ) -> None:
        self.path = os.fspath(path)
        self._window = window
        suffix = Path(self.path).suffix.lower()
        if suffix not in VIDEO_EXTENSIONS:
            raise OutputError(self.path, f"unknown video extension {suffix or '(none)'!r}")
        self.rate = Fraction(writer_options["rate"])
        self._source, self._rotation = source, rotation
        self.segment_frames = segment_length(self.rate, segment_seconds)
        if adopt and resume:  # a length chosen by estimate: an earlier run of this job (maybe elsewhere) sets it
            self.segment_frames = journaled_segment_frames(self.path, input, settings) or self.segment_frames
        self.skipped_streams: list[str] = []
        self._closed = False
        self._job = Job(self.path, job_identity(input, settings, self.segment_frames), resume)
        self.work, self.notes = self._job.work, self._job.notes
        self.resumed = self.frames_written = self._job.done_prefix()
        for k in [k for k, s in self._job.segments.items() if s["start"] >= self.resumed]:
            del self._job.segments[k]  # after a gap (a split run's holes): made again, in order
        options = dict(writer_options, rotation=rotation)
        self._sink = SegmentSink(self.work, suffix, self.segment_frames, self.resumed, options, self._job.add)
        try:
            self._sink.open()  # now, so that bad encoder settings fail before any frame is computed
        except BaseException:
            self.abort()
            raise

    @property
    def finished_frames(self) -> int:
        """Output frames in complete, journaled segments: what the next run can keep."""
        return self._job.done_prefix()

    def write(self, image: np.ndarray) -> None:
        """Encode the next output frame; a segment that is full is closed and journaled."""
        if self._closed:
            raise ValueError("write() on a closed SegmentedWriter")
        self._sink.write(image)
        self.frames_written += 1

    def close(self) -> None:
        """Finish the last segment, join all of them with the source's audio and subtitles, remove the work folder."""
        if self._closed:
            return
        try:
            self._sink.finish()
            self.skipped_streams += self._job.join(self.rate, self._source, self._rotation, self._window)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._job.release(keep=False)

    def abort(self) -> None:
        """Stop: the unfinished segment is dropped, the finished ones and the journal stay for the next run (with
        none finished, the work folder goes too)."""
        self._closed = True
        if hasattr(self, "_sink"):  # absent when the constructor failed before making it
            self._sink.abort()
        self._job.release(keep=True)

    def __enter__(self) -> SegmentedWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_output(
    path: str | os.PathLike,
    *,
    input: str | os.PathLike,
    settings: dict[str, Any],
    resume: bool = True,
    segment_seconds: float = SEGMENT_SECONDS,
    **writer_options: Any,
) -> SegmentedWriter | FrameFolderWriter:
    """The writer for an upscale's output: a resumable :class:`SegmentedWriter` for a video file, a
    :class:`~stvup.video.FrameFolderWriter` for a folder of PNG frames (which starts over every time)."""
    if _is_folder_output(path):
        writer_options.pop("adopt", None)  # nor segments,
        writer_options.pop("window", None)  # PNG frames have no audio to cut,
        writer_options.pop("sample_aspect_ratio", None)  # nor a pixel shape
        return open_writer(path, **writer_options)
    return SegmentedWriter(path, input=input, settings=settings, resume=resume, segment_seconds=segment_seconds,
                           **writer_options)  # fmt: skip


def _is_folder_output(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    ends_with_sep = text.endswith(os.sep) or (os.altsep is not None and text.endswith(os.altsep))
    return os.path.isdir(text) or ends_with_sep or Path(text).suffix.lower() not in VIDEO_EXTENSIONS
