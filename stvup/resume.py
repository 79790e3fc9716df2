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
subtitles into the output (under a temporary name, renamed when complete), and the work folder is removed. The
encoders of all segments have the same settings, so they share their headers (checked), and their timestamps are
shifted by each segment's first frame, which gives one continuous stream.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from .errors import OutputError
from .errors import describe as _describe
from .video.partial import _pid_alive, make_temp_file
from .video.passthrough import PacketCopier
from .video.writer import (
    _ROTATION_MUXERS,
    VIDEO_EXTENSIONS,
    FrameFolderWriter,
    VideoWriter,
    open_writer,
)

__all__ = [
    "SEGMENT_SECONDS",
    "Job",
    "SegmentSink",
    "SegmentedWriter",
    "input_fingerprint",
    "job_identity",
    "job_settings",
    "join_segments",
    "open_output",
    "segment_length",
    "work_folder",
]

SEGMENT_SECONDS = 4  # of output video per segment: little is lost to an interruption, few files for a film
JOURNAL = "journal.json"
LOCK = "lock"
_VERSION = 1
_SAMPLE = 1 << 16  # bytes hashed at each end of an input file


def work_folder(output: str | os.PathLike) -> Path:
    """The hidden folder beside ``output`` that holds its segments and journal while it is being made."""
    out = Path(output)
    return out.with_name(f".{out.name}.stvup-work")


def input_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies an input without reading all of it: size and time of change, and hashes of both ends of the
    file (of the list of names, sizes and times for a frame folder)."""
    p = Path(path).resolve()
    if p.is_dir():
        entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in p.iterdir() if e.is_file())
        return {"path": str(p), "files": hashlib.sha256(repr(entries).encode()).hexdigest()}
    st = p.stat()
    digest = hashlib.sha256()
    with open(p, "rb") as f:
        digest.update(f.read(_SAMPLE))
        if st.st_size > _SAMPLE:
            f.seek(max(_SAMPLE, st.st_size - _SAMPLE))
            digest.update(f.read(_SAMPLE))
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ends": digest.hexdigest()}


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically and durably: the journal is either the old one or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


class Job:
    """One output's work folder: its lock, its journal and the segments it lists.

    ``identity`` (input fingerprint, settings, segment length) decides whether an earlier run's segments may be
    reused; ``notes`` says what became of them.
    """

    def __init__(self, path: str | os.PathLike, identity: dict[str, Any], resume: bool = True) -> None:
        self.path = os.fspath(path)
        self.work = work_folder(self.path)
        self.identity = identity
        self.notes: list[str] = []
        self._lock()
        try:
            self.segments = self._reusable(resume)
            self.save()
        except BaseException:
            self.release(keep=False)
            raise

    def _lock(self) -> None:
        """Claim the work folder; a live process that holds it is writing the same output right now."""
        try:
            self.work.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(self.path, f"cannot write here ({_describe(exc)}; making {self.work.name})") from None
        lock = self.work / LOCK
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _pid_alive(pid):
            raise OutputError(self.path, f"another stvup run (process {pid}) is writing it; wait for it or stop it")
        lock.write_text(str(os.getpid()))

    def _reusable(self, resume: bool) -> dict[int, dict[str, Any]]:
        """The earlier run's complete segments, if it was this same job; everything else in the folder is removed."""
        try:
            journal = json.loads((self.work / JOURNAL).read_text())
        except (OSError, ValueError):
            journal = None
        keep: dict[int, dict[str, Any]] = {}
        if journal is not None and not resume:
            self.notes.append(f"--no-resume: discarded the unfinished run in {self.work.name}")
        elif journal is not None:
            changed = [k for k in self.identity if journal.get(k) != self.identity[k]]
            if changed == ["settings"]:
                old, new = journal.get("settings", {}), self.identity["settings"]
                changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if changed:
                self.notes.append(f"the unfinished run in {self.work.name} had another {', '.join(changed)}; "
                                  "started over")  # fmt: skip
            else:
                for seg in journal.get("segments", []):
                    file = self.work / str(seg.get("file", ""))
                    if file.is_file() and file.stat().st_size == seg.get("size"):
                        keep[seg["index"]] = seg  # a damaged or missing one is redone
                if keep:
                    done = sum(s["frames"] for s in keep.values())
                    self.notes.append(f"resumed: {done} frames ({len(keep)} segments) were already done")
        names = {s["file"] for s in keep.values()} | {JOURNAL, LOCK}
        for entry in self.work.iterdir():
            if entry.name not in names:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        return keep

    def add(self, record: dict[str, Any]) -> None:
        """Journal a complete segment."""
        self.segments[record["index"]] = record
        self.save()

    def save(self) -> None:
        ordered = [self.segments[k] for k in sorted(self.segments)]
        _write_json(self.work / JOURNAL, {**self.identity, "segments": ordered})

    def done_prefix(self) -> int:
        """Output frames done without a gap from the start (a single-process run continues from there)."""
        end = 0
        for k in sorted(self.segments):
            if self.segments[k]["start"] != end:
                break
            end += self.segments[k]["frames"]
        return end

    def release(self, keep: bool) -> None:
        """Give the folder up: kept (unlocked) when it holds finished segments and ``keep``, else removed."""
        if keep and self.segments:
            try:
                (self.work / LOCK).unlink()
            except OSError:
                pass
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def join(
        self,
        rate: Fraction,
        source: str | os.PathLike | None,
        rotation: int,
        window: tuple[Fraction, Fraction | None] | None = None,
    ) -> list[str]:
        """Joins the segments with the source's audio and subtitles (cut to ``window``, seconds of the source) into
        the output; returns the streams skipped."""
        ordered = [self.segments[k] for k in sorted(self.segments)]
        end = 0
        for seg in ordered:
            if seg["start"] != end:
                raise OutputError(self.path, f"segment {seg['file']} does not follow frame {end}; run again")
            end += seg["frames"]
        if not ordered:
            raise OutputError(self.path, "no frames were written")
        return join_segments(self.path, [self.work / s["file"] for s in ordered], rate, source, rotation, window)


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


def segment_length(rate: Fraction, seconds: float) -> int:
    """Output frames per segment."""
    return max(1, round(Fraction(rate) * Fraction(seconds)))


def job_settings(
    fingerprint: str,
    rate_out: Fraction,
    codec: str,
    crf: int | None,
    preset: str | None,
    pix_fmt: str | None,
    scene_threshold: float | None,
    span: dict[str, Any] | None = None,
    deinterlace: str | None = None,
) -> dict[str, Any]:
    """The settings besides the input that shape an output: the upscaler's fingerprint (weights as they run,
    precision, device kind, tiling), the output rate, the encoder's settings, the scene-cut threshold, the span
    of the input (``--start``/``--duration``) and the deinterlacing (None, or its rate)."""
    settings = {"upscaler": fingerprint, "output_rate": str(rate_out), "codec": codec, "crf": crf, "preset": preset,
                "pix_fmt": pix_fmt, "scene_threshold": scene_threshold, "span": span}  # fmt: skip
    if deinterlace is not None:  # only then, so that journals of progressive runs stay as they were
        settings["deinterlace"] = deinterlace
    return settings


def job_identity(input: str | os.PathLike, settings: dict[str, Any], segment_frames: int) -> dict[str, Any]:
    """What a journal must match for its segments to be reused."""
    return {"version": _VERSION, "input": input_fingerprint(input), "settings": settings,
            "segment_frames": segment_frames}  # fmt: skip


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
            if rotation and muxer in _ROTATION_MUXERS:
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
        writer_options.pop("window", None)  # PNG frames have no audio to cut,
        writer_options.pop("sample_aspect_ratio", None)  # nor a pixel shape
        return open_writer(path, **writer_options)
    return SegmentedWriter(path, input=input, settings=settings, resume=resume, segment_seconds=segment_seconds,
                           **writer_options)  # fmt: skip


def _is_folder_output(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    ends_with_sep = text.endswith(os.sep) or (os.altsep is not None and text.endswith(os.altsep))
    return os.path.isdir(text) or ends_with_sep or Path(text).suffix.lower() not in VIDEO_EXTENSIONS
