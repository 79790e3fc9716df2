"""The Ray batch's driver loop (stvup.batching.dispatch) against a stand-in for Ray: no cluster, every outcome scripted.

The real cluster is exercised in test_ray.py; here each kind of failure is made to happen exactly where wanted, and
what the loop does about it is checked: retries, resting workers, lost workers, bad inputs, all workers lost.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from stvup.batching.dispatch import MAX_WAITS, Dispatcher, Part, Video
from stvup.batching.inputs import BatchResult
from stvup.batching.workers import Workers
from stvup.errors import InputError


class RayError(Exception):
    def __init__(self, message: str = "", cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class RayActorError(RayError):
    pass


class ActorUnavailableError(RayActorError):  # as in Ray: a kind of actor error
    pass


class Ref:
    def __init__(self, outcome: object) -> None:
        self.outcome = outcome


class FakeRay:
    """``wait`` finds every part finished at once; ``get`` returns or raises what the actor's script said."""

    exceptions = types.SimpleNamespace(
        RayError=RayError, RayActorError=RayActorError, ActorUnavailableError=ActorUnavailableError
    )

    def wait(self, refs, timeout=None):
        return list(refs), []

    def get(self, ref):
        if isinstance(ref.outcome, BaseException):
            raise ref.outcome
        return ref.outcome


class Method:
    def __init__(self, fn) -> None:
        self.remote = fn


class Actor:
    """Runs parts as its ``script`` says: a list of outcomes, one per call (an exception, or None: success)."""

    def __init__(self, name: str, script=(), ping=True) -> None:
        self.name, self.script, self.ping_ok, self.calls = name, list(script), ping, []
        self.run_part = Method(self._run_part)
        self.ping = Method(lambda: Ref(True if self.ping_ok is True else self.ping_ok))

    def _run_part(self, key, *, begin, stop, progress, **kw):
        start = begin
        self.calls.append((key, start, stop))
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            return Ref(outcome)
        n = (stop or 12) - start
        progress.put_nowait((key, n))
        record = {"index": start // 4, "frames": n, "file": f"seg{start}"}
        return Ref({"segments": [record], "cuts": [], "problems": [], "concealed": 0, "frames_in": n // 2})


class Queue:
    def __init__(self) -> None:
        self.items: list = []

    def put_nowait(self, item) -> None:
        self.items.append(item)

    def empty(self) -> bool:
        return not self.items

    def get_nowait(self):
        return self.items.pop(0)


@dataclass
class Job:
    segments: dict = field(default_factory=dict)
    released: list = field(default_factory=list)
    joined: int = 0
    notes: list = field(default_factory=list)
    work: Path = Path("work")
    identity: dict = field(default_factory=lambda: {"segment_frames": 4})

    def add(self, record) -> None:
        self.segments[record["index"]] = record

    def release(self, keep: bool) -> None:
        self.released.append(keep)

    def join(self, *args):
        self.joined += 1
        return []


def video(name: str) -> Video:
    info = types.SimpleNamespace(rate=Fraction(12), frame_count=6, kind="video", rotation=0, width=8, height=8,
                                 sample_aspect_ratio=Fraction(1))  # fmt: skip
    return Video(Path(name), Path(f"out/{name}"), info, Job(), Fraction(24), {"width": 32, "height": 32})


def dispatch(actors, videos, parts, retries=2):
    ray = FakeRay()
    result = BatchResult()
    done = []
    for p in parts:
        videos[p.video].parts_left += 1
        videos[p.video].parts += 1
    d = Dispatcher(ray, Workers(ray, actors), Queue(), videos, parts, result, lambda v: {"src": str(v.src)},
                   "bf16", "cpu", retries, on_done=lambda r, e: done.append((r, e)))  # fmt: skip
    d.run()
    return result, done


def test_every_part_in_then_each_video_joined_once():
    a, b = Actor("a"), Actor("b")
    videos = [video("x.mp4"), video("y.mp4")]
    result, done = dispatch([a, b], videos, [Part(0, 0, 8), Part(0, 8, None), Part(1, 0, None)])
    assert not result.failures
    assert sorted(r.input for r in result.results) == ["x.mp4", "y.mp4"]
    x = next(r for r in result.results if r.input == "x.mp4")
    assert x.frames_out == 12 and "made in 2 parts on the Ray cluster" in x.notes
    assert [v.job.joined for v in videos] == [1, 1]
    assert all(v.job.released == [False] for v in videos)  # released once, the work folder not kept
    assert len(done) == 2 and len(a.calls) + len(b.calls) == 3


def test_a_lost_worker_is_retried_elsewhere_and_counted_when_it_is_gone_for_good():
    gone = Actor("gone", script=[RayActorError("worker died")], ping=RayActorError("killed for good"))
    alive = Actor("alive")
    result, _ = dispatch([alive, gone], [video("x.mp4")], [Part(0, 0, 8), Part(0, 8, None)])
    assert not result.failures
    (r,) = result.results
    assert "1 part(s) ran again after a failure" in r.notes
    assert "1 Ray worker(s) lost for good; the others went on" in r.notes
    assert len(gone.calls) == 1 and len(alive.calls) == 2  # nothing more was sent to the lost worker


def test_a_restarted_worker_goes_back_to_work():
    back = Actor("back", script=[RayActorError("worker died")], ping=True)
    result, _ = dispatch([back], [video("x.mp4")], [Part(0, 0, None)])
    assert not result.failures
    assert len(back.calls) == 2
    assert not any("lost for good" in n for n in result.results[0].notes)


def test_a_bad_input_fails_its_video_at_once_and_the_batch_goes_on():
    bad = RayError("task failed", cause=InputError("x.mp4", "is damaged"))
    a = Actor("a", script=[bad])
    videos = [video("x.mp4"), video("y.mp4")]
    result, done = dispatch([a], videos, [Part(0, 0, None), Part(1, 0, None)], retries=5)
    assert result.failures == {"x.mp4": "x.mp4: is damaged"}  # named once
    assert [r.input for r in result.results] == ["y.mp4"]
    assert videos[0].job.released == [True]  # finished segments kept for the next run
    assert len(a.calls) == 2  # no retry of the bad input
    assert (None, "x.mp4: is damaged") in done


def test_unexpected_errors_use_up_the_retries():
    flaky = Actor("a", script=[RayError("boom 1"), RayError("boom 2"), RayError("boom 3")])
    result, _ = dispatch([flaky], [video("x.mp4")], [Part(0, 0, None)], retries=2)
    assert result.failures == {"x.mp4": "x.mp4: boom 3"}
    assert len(flaky.calls) == 3


def test_a_restarting_worker_makes_its_part_wait_without_using_a_try(monkeypatch):
    monkeypatch.setattr("stvup.batching.workers._MAX_REST", 0.0)  # no real back-off in a test
    monkeypatch.setattr("stvup.batching.dispatch.POLL", 0.001)
    busy = Actor("a", script=[ActorUnavailableError("restarting")] * 3)
    result, _ = dispatch([busy], [video("x.mp4")], [Part(0, 0, None)], retries=0)
    assert not result.failures and len(busy.calls) == 4
    busy = Actor("a", script=[ActorUnavailableError("restarting")] * (MAX_WAITS + 1))
    result, _ = dispatch([busy], [video("x.mp4")], [Part(0, 0, None)], retries=0)
    assert result.failures == {"x.mp4": "x.mp4: restarting"}  # waited MAX_WAITS times, then a try was used


def test_all_workers_lost_fails_the_unfinished_videos_and_keeps_their_segments():
    died = RayActorError("worker died")
    a = Actor("a", script=[died], ping=RayActorError("gone"))
    b = Actor("b", script=[died], ping=RayActorError("gone"))
    videos = [video("x.mp4")]
    result, _ = dispatch([a, b], videos, [Part(0, 0, 8), Part(0, 8, None)], retries=5)
    assert result.failures == {"x.mp4": "x.mp4: all 2 Ray workers were lost"}
    assert videos[0].job.released == [True]
