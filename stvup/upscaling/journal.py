"""The journal of a resumable output: which run made a work folder, and which of its segments are complete.

A resumed run may reuse segments only if it is the same job: the same input (checked by a fingerprint that does not
read the whole file), the same settings that shape the pictures, the same segment length. The journal records
that identity and each complete segment; it is replaced atomically, so after any interruption it is either the old
one or the new one. A lock file holding the writer's process id keeps two runs from writing the same output.
:mod:`stvup.upscaling.resume` writes the segments; in a Ray batch (:mod:`stvup.batching.distributed`) the workers write
them and the driver keeps the journal.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

from stvup.errors import OutputError
from stvup.errors import describe as _describe
from stvup.video.join import join_segments
from stvup.video.partial import pid_alive

__all__ = [
    "JOURNAL",
    "LOCK",
    "Job",
    "input_fingerprint",
    "job_identity",
    "job_settings",
    "journaled_segment_frames",
    "segment_length",
    "work_folder",
]

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


def journaled_segment_frames(
    output: str | os.PathLike, input: str | os.PathLike, settings: dict[str, Any]
) -> int | None:
    """The segment length an unfinished run of this same job (input and settings) chose, if one is journaled beside
    ``output``: a resumed run keeps it, so that a length estimated from the machine's speed cannot discard work."""
    try:
        journal = json.loads((work_folder(output) / JOURNAL).read_text())
    except (OSError, ValueError):
        return None
    same = journal.get("version") == _VERSION and journal.get("settings") == settings
    frames = journal.get("segment_frames")
    if same and journal.get("input") == input_fingerprint(input) and isinstance(frames, int) and frames > 0:
        return frames
    return None


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically and durably: the journal is either the old one or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
        if pid and pid != os.getpid() and pid_alive(pid):
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
