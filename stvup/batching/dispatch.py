"""The driver's loop of ``stvup batch --ray``: parts out to the pool, segments and progress back, failures retried.

:mod:`stvup.batching.distributed` plans each video's parts and builds the pool; a :class:`Dispatcher` then runs them to
the end. It hands parts to idle workers, journals the segments each part made, reports progress from the parts' queue,
and decides what a failure means:

* a worker being restarted ("temporarily unavailable"): the part waits for it (up to ``MAX_WAITS`` times without
  using a try) and the worker rests;
* a worker lost with its part: the part is tried again elsewhere and the worker is asked whether Ray brought it
  back (:class:`~stvup.batching.workers.Workers`);
* an error inside the part: tried again, unless it is a bad input (a :class:`~stvup.errors.StvupError`), which
  would fail again.

A video whose part runs out of tries fails with its finished segments kept; once all of a video's parts are in, it
is joined with its audio and subtitles and reported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from stvup.errors import StvupError
from stvup.upscaling.job import Progress, UpscaleResult

from .workers import Workers

__all__ = ["MAX_WAITS", "Dispatcher", "Part", "Video", "cause"]

POLL = 0.2  # seconds between looks at finished parts and progress
MAX_WAITS = 20  # a part sent to restarting workers this often counts a try each time after


@dataclass
class Part:
    """Output frames ``[start, stop)`` of ``videos[video]``; ``stop`` None: to the end of the input."""

    video: int
    start: int  # first output frame (a segment boundary)
    stop: int | None
    tries: int = 0
    waits: int = 0  # times it found its worker restarting (not counted as tries, up to MAX_WAITS)


@dataclass
class Video:
    """One input of the batch, its journal and what its parts have made so far."""

    src: Path
    dst: Path
    info: Any
    job: Any
    rate_out: Fraction
    writer_options: dict[str, Any]
    span: Any = None
    deint: Any = None
    parts_left: int = 0
    parts: int = 0
    rerun: set[int] = field(default_factory=set)  # starts of parts run again after a lost worker or unexpected error
    done_frames: dict[int, int] = field(default_factory=dict)  # part start → output frames made so far
    resumed: int = 0
    report: dict[str, Any] = field(default_factory=dict)  # what its parts saw, joined (:meth:`Dispatcher._merge`)
    failed: str | None = None
    began: float = field(default_factory=time.perf_counter)
    compiled: bool = False  # whether any part ran the network compiled


@dataclass
class Dispatcher:
    """Runs ``parts`` of ``videos`` on ``workers`` and fills ``result`` (a :class:`~stvup.batching.inputs.BatchResult`).

    ``part_args(video)``: the arguments of ``Worker.run_part`` after the part's key, start and stop are set aside
    (the same for every part of a video). ``precision`` and ``device``: what the workers chose, for the results.
    """

    ray: Any
    workers: Workers
    queue: Any
    videos: list[Video]
    parts: list[Part]
    result: Any
    part_args: Callable[[Video], dict[str, Any]]
    precision: str
    device: str
    retries: int = 2
    on_done: Callable[[Any, str | None], None] | None = None
    progress: Callable[[Any], None] | None = None
    running: dict[Any, tuple[Any, Part]] = field(default_factory=dict)

    def run(self) -> None:
        """Until every part is in, or every worker is lost; unfinished videos keep their segments in either case."""
        try:
            while self.parts or self.running:
                self.workers.wake()
                self._send()
                waiting = [*self.running, *self.workers.checking]
                if not waiting:
                    if self.workers.all_lost():
                        self._fail_unfinished()
                        break
                    time.sleep(POLL)  # every worker is resting
                    continue
                ready, _ = self.ray.wait(waiting, timeout=POLL)
                self._report_progress()
                # Pings first: a worker found lost is then counted in the notes of a video that finishes now.
                for ref in sorted(ready, key=lambda r: r not in self.workers.checking):
                    if ref in self.workers.checking:
                        self.workers.settle(ref)
                    else:
                        self._collect(ref)
        finally:
            for v in self.videos:
                if v.parts_left and not v.failed:
                    v.job.release(keep=True)

    def fail(self, v: Video, message: str) -> None:
        """Record ``v`` as failed (once) and keep its finished segments for the next run."""
        v.failed = message
        v.job.release(keep=True)
        self.result.failed(v.src, message, self.on_done)

    def _send(self) -> None:
        while self.parts and self.workers.idle:
            part = self.parts.pop(0)
            v = self.videos[part.video]
            if v.failed:
                continue
            actor = self.workers.idle.pop()
            ref = actor.run_part.remote((part.video, part.start), begin=part.start, stop=part.stop, progress=self.queue,
                                        **self.part_args(v))  # fmt: skip
            self.running[ref] = (actor, part)

    def _report_progress(self) -> None:
        for (index, start), made in _drain(self.queue):
            v = self.videos[index]
            v.done_frames[start] = made
            if self.progress is not None and not v.failed:
                out = v.resumed + sum(v.done_frames.values())
                frames_in = round(out * v.info.rate / v.rate_out)
                self.progress(Progress(os.fspath(v.src), frames_in, v.info.frame_count, out, self.precision,
                                       self.device))  # fmt: skip

    def _collect(self, ref: Any) -> None:
        actor, part = self.running.pop(ref)
        v = self.videos[part.video]
        try:
            report = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            self._part_failed(actor, part, v, exc)
            return
        self.workers.answered(actor)
        for record in report["segments"]:
            v.job.add(record)
        v.compiled = v.compiled or report.get("compiled", False)
        self._merge(v, report)
        v.parts_left -= 1
        if v.parts_left == 0 and not v.failed:
            self._finish(v)

    @staticmethod
    def _merge(v: Video, report: dict[str, Any]) -> None:
        """Joins what one part saw into its video's report: each part reads only its own stretch of the input (and a
        margin before it), so the cuts, problems and frames are the union of theirs; ``decoded`` adds up what every
        part decoded, margins and key frames included, to set against the input's frame count."""
        joined = v.report
        joined["cuts"] = sorted({tuple(c) for c in [*joined.get("cuts", []), *report.get("cuts", [])]},
                                key=lambda c: c[1])  # fmt: skip
        joined["problems"] = list(dict.fromkeys([*joined.get("problems", []), *report.get("problems", [])]))
        joined["concealed"] = joined.get("concealed", 0) + report.get("concealed", 0)
        joined["frames_in"] = max(joined.get("frames_in", 0), report.get("frames_in", 0))
        joined["decoded"] = joined.get("decoded", 0) + report.get("decoded", 0)

    def _part_failed(self, actor: Any, part: Part, v: Video, exc: BaseException) -> None:
        errors = self.ray.exceptions
        v.done_frames.pop(part.start, None)
        if isinstance(exc, errors.ActorUnavailableError):
            self.workers.unavailable(actor)
            if part.waits < MAX_WAITS:
                part.waits += 1
                self.parts.insert(0, part)
                v.rerun.add(part.start)
                return
        elif isinstance(exc, errors.RayActorError):
            self.workers.died(actor)
        else:
            self.workers.answered(actor)  # with an error: it is up
        part.tries += 1
        # A lost worker or an unexpected error may pass; a bad input (a StvupError) fails again.
        bad_input = isinstance(getattr(exc, "cause", None), StvupError)
        if part.tries <= self.retries and not v.failed and not bad_input:
            self.parts.append(part)
            v.rerun.add(part.start)
        elif not v.failed:
            message = cause(exc)  # a stvup error names the file already
            self.fail(v, message if os.fspath(v.src) in message else f"{v.src}: {message}")

    def _fail_unfinished(self) -> None:
        total = self.workers.size
        for v in self.videos:
            if v.parts_left and not v.failed:
                self.fail(v, f"{v.src}: all {total} Ray workers were lost")

    def _finish(self, v: Video) -> None:
        """Join a video whose parts are all in, and record it."""
        try:
            window = (v.span.start, v.span.end) if v.span is not None else None
            skipped = v.job.join(v.rate_out, v.src if v.info.kind == "video" else None, v.info.rotation, window)
        except StvupError as exc:
            self.fail(v, str(exc))
            return
        v.job.release(keep=False)
        lost = self.workers.lost
        frames_out = sum(s["frames"] for s in v.job.segments.values())
        w, h = v.writer_options["width"], v.writer_options["height"]
        done = UpscaleResult(
            input=os.fspath(v.src), output=os.fspath(v.dst), frames_in=v.report.get("frames_in", 0),
            frames_out=frames_out, input_rate=v.info.rate, output_rate=v.rate_out,
            input_size=(v.info.width, v.info.height), output_size=(w, h), seconds=time.perf_counter() - v.began,
            skipped_streams=skipped, problems=([v.deint.reason] if v.deint else []) + v.report.get("problems", []),
            device=self.device, precision=self.precision, compiled=v.compiled,
            cuts=[tuple(c) for c in v.report.get("cuts", [])], concealed_frames=v.report.get("concealed", 0),
            resumed_frames=v.resumed, frames_decoded=v.report.get("decoded", 0), input_frames=v.info.frame_count,
            notes=[*v.job.notes, f"made in {v.parts} part{'s' * (v.parts > 1)} on the Ray cluster"]
            + ([f"{len(v.rerun)} part(s) ran again after a failure"] if v.rerun else [])
            + ([f"{lost} Ray worker(s) lost for good; the others went on"] if lost else []),
            sample_aspect_ratio=v.info.sample_aspect_ratio,
        )  # fmt: skip
        self.result.succeeded(done, self.on_done)


def _drain(queue: Any) -> list[tuple[tuple[int, int], int]]:
    items = []
    while not queue.empty():
        try:
            items.append(queue.get_nowait())
        except Exception:  # noqa: BLE001 - Empty, raced by another reader: nothing more now
            break
    return items


def cause(exc: BaseException) -> str:
    """The user-facing cause inside a Ray error: the stvup error's own line where there is one."""
    inner = getattr(exc, "cause", None)
    if isinstance(inner, StvupError):
        return str(inner)
    text = str(inner or exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
