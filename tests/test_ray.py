"""`stvup batch --ray` on a local Ray (issue 12, item 4); skipped when the optional extra is not installed."""

from __future__ import annotations

import json
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

import stvup
from stvup.cli.main import cli
from stvup.video import iter_frames, probe

from .conftest import make_clip
from .helpers import HANG_GUARD
from .test_format_matrix import FRAMES, KINDS, TIME, _check_output, inputs  # noqa: F401 - fixture
from .test_upscale import weights  # noqa: F401 - fixture

ray = pytest.importorskip("ray", reason="the optional Ray extra is not installed (pip install 'stvup[ray]')")

OPTIONS = {"time": 2, "codec": "ffv1", "precision": "fp32", "segment_seconds": 0.25}  # 12 frames per segment


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    make_clip(folder / "long.mkv", width=48, height=32, frames=40)  # 80 output frames: 7 segments, 2 parts
    make_clip(folder / "short.mkv", width=32, height=32, frames=6, rate=Fraction(25))
    return folder


def _contents(path):
    with iter_frames(path) as stream:
        frames = [(f.time, f.image) for f in stream]
    with av.open(str(path)) as container:
        audio = [(p.pts, bytes(p)) for p in container.demux(container.streams.audio[0]) if p.size]
    return frames, audio


def test_ray_batch_equals_one_process(tmp_path, videos, weights, local_ray):  # noqa: F811
    seen: dict[str, list[int]] = {}
    spread = stvup.batch(videos, tmp_path / "ray", weights=weights, ray="auto", **OPTIONS,
                         progress=lambda p: seen.setdefault(p.path, []).append(p.frames_out))  # fmt: skip
    alone = stvup.batch(videos, tmp_path / "one", weights=weights, **OPTIONS)
    assert spread.failures == {} and alone.failures == {}
    assert sorted(r.frames_out for r in spread.results) == [12, 80]
    long = next(r for r in spread.results if r.output.endswith("long.mkv"))
    assert "made in 2 parts on the Ray cluster" in long.notes  # one per worker, side by side
    # Progress adds up the parts' frames: it only grows, and reaches the whole video.
    counts = seen[str(videos / "long.mkv")]
    assert counts == sorted(counts) and counts[-1] == 80
    for name in ("long.mkv", "short.mkv"):
        (a_frames, a_audio), (b_frames, b_audio) = (
            _contents(tmp_path / "ray" / name),
            _contents(tmp_path / "one" / name),
        )
        assert [t for t, _ in a_frames] == [t for t, _ in b_frames]
        # The same windows and cuts, so the same frames, up to float rounding: Ray's CPU workers run one PyTorch
        # thread each, this process runs one per core, and threaded kernels sum in another order.
        worst = max(int(np.abs(x.astype(int) - y).max()) for (_, x), (_, y) in zip(a_frames, b_frames))
        assert worst <= 2, (name, worst)
        assert a_audio == b_audio and a_audio
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["long.mkv", "short.mkv"]  # no work folders


def test_ray_batch_reports_a_broken_input_and_goes_on(tmp_path, videos, weights, local_ray):  # noqa: F811
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mkv").write_bytes((videos / "short.mkv").read_bytes())
    (folder / "broken.mp4").write_text("not a video\n" * 40)
    res = CliRunner().invoke(cli, ["batch", str(folder), str(tmp_path / "out"), "--weights", str(weights), "--ray",
                                   "--time", "2", "--json"])  # fmt: skip
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert list(report["failures"]) == [str(folder / "broken.mp4")]
    assert "not a video" in report["failures"][str(folder / "broken.mp4")]
    assert [r["frames_out"] for r in report["results"]] == [12] and probe(tmp_path / "out" / "a.mkv").frame_count == 12


def test_ray_batch_resumes_a_stopped_run(tmp_path, videos, weights, local_ray):  # noqa: F811
    """Segments an interrupted single-process run left are kept by a --ray run of the same job."""

    class Stop(Exception):
        pass

    def stop(p) -> None:
        if p.frames_out >= 30:
            raise Stop

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Stop):
        stvup.upscale(videos / "long.mkv", out / "long.mkv", weights=weights, progress=stop, **OPTIONS)
    spread = stvup.batch(videos, out, weights=weights, ray="auto", **OPTIONS)
    long = next(r for r in spread.results if r.output.endswith("long.mkv"))
    assert long.resumed_frames == 24 and long.frames_out == 80 and probe(out / "long.mkv").frame_count == 80


def test_a_part_that_fails_is_reported_like_any_batch_failure(tmp_path, weights, local_ray):  # noqa: F811
    """An MPEG-TS whose picture size changes part-way: the parts that reach the change fail with the file's name."""
    folder = tmp_path / "in"
    folder.mkdir()
    pieces = [make_clip(tmp_path / f"{w}.ts", width=w, height=32, frames=10, audio=None) for w in (48, 64)]
    (folder / "resized.ts").write_bytes(b"".join(p.read_bytes() for p in pieces))
    res = stvup.batch(folder, tmp_path / "out", weights=weights, ray="auto", **OPTIONS)
    message = res.failures[str(folder / "resized.ts")]
    assert message.count("resized.ts") == 1 and "64x32, not 48x32" in message, message
    assert res.results == [] and not (tmp_path / "out" / "resized.mp4").exists()


def test_a_part_lost_with_its_worker_is_run_again(tmp_path, videos, weights, local_ray, monkeypatch):  # noqa: F811
    """A worker killed in the middle of a part (as when a machine goes away): the part runs again, nothing is lost."""
    progress, killed = _kill_at_first_report([0, 1], restart=True, monkeypatch=monkeypatch, gate=tmp_path / "gate")
    res = stvup.batch(videos, tmp_path / "out", weights=weights, ray="auto", progress=progress, **OPTIONS)
    assert killed and res.failures == {}
    assert sorted(r.frames_out for r in res.results) == [12, 80]
    # Both parts were held at their first report, so both were lost and ran again; so may a part that reached a
    # worker while Ray was still restarting it.
    again = [int(n.split()[0]) for r in res.results for n in r.notes if n.endswith("ran again after a failure")]
    assert 2 <= sum(again) <= 4, again
    assert probe(tmp_path / "out" / "long.mkv").frame_count == 80


def _gated_queue(gate: Path):
    """The batch's progress queue, made so that a worker's part, once it has reported its progress, goes on only
    when ``gate`` is gone: held there, the part is certainly unfinished when the test kills its worker. (Defined
    in a function, the class travels to the workers by value.)"""
    from ray.util.queue import Queue

    class Gated(Queue):
        def put_nowait(self, item) -> None:
            if os.path.exists(self.gate):
                open(f"{self.gate}.held", "w").close()  # before the report: the driver sees it with the report
            super().put_nowait(item)
            deadline = time.monotonic() + HANG_GUARD
            while os.path.exists(self.gate) and time.monotonic() < deadline:
                time.sleep(0.01)

    def make(*args, **kwargs):
        queue = Gated(*args, **kwargs)
        queue.gate = str(gate)
        return queue

    return make


def _kill_at_first_report(workers, restart, monkeypatch, gate: Path):
    """A progress callback that kills these workers (by index) at the long video's first report, while its parts are
    held (see _gated_queue), then lets the parts go on; and the list it notes the kill in."""
    import ray.util.queue

    gate.touch()
    monkeypatch.setattr(ray.util.queue, "Queue", _gated_queue(gate))
    killed = []

    def progress(p) -> None:
        if not killed and p.path.endswith("long.mkv") and p.frames_out > 0:
            assert Path(f"{gate}.held").exists(), "the part was not held: the gated queue did not reach the worker"
            for k in workers:
                ray.kill(ray.get_actor(f"stvup-{os.getpid()}-{k}"), no_restart=not restart)
            killed.append(p.frames_out)
            gate.unlink()

    return progress, killed


def test_a_worker_lost_for_good_gets_no_more_parts(tmp_path, videos, weights, local_ray, monkeypatch):  # noqa: F811
    """A worker Ray will not restart: its part runs again on the other one, which does the rest; no try is wasted on
    the dead worker (before, every part sent to it failed at once until the video ran out of tries)."""
    progress, killed = _kill_at_first_report([0], restart=False, monkeypatch=monkeypatch, gate=tmp_path / "gate")
    res = stvup.batch(videos, tmp_path / "out", weights=weights, ray="auto", progress=progress, **OPTIONS)
    assert killed and res.failures == {}
    assert sorted(r.frames_out for r in res.results) == [12, 80]
    long = next(r for r in res.results if r.output.endswith("long.mkv"))
    assert "1 Ray worker(s) lost for good; the others went on" in long.notes, long.notes
    assert probe(tmp_path / "out" / "long.mkv").frame_count == 80


def test_a_batch_whose_workers_are_all_lost_fails_without_hanging(tmp_path, videos, weights, local_ray, monkeypatch):  # noqa: F811
    """Both workers lost for good: the unfinished video fails with a one-line reason, and the batch returns."""
    from stvup.upscaling.journal import work_folder

    progress, killed = _kill_at_first_report([0, 1], restart=False, monkeypatch=monkeypatch, gate=tmp_path / "gate")
    res = stvup.batch(videos, tmp_path / "out", weights=weights, ray="auto", progress=progress, **OPTIONS)
    assert killed
    message = res.failures[str(videos / "long.mkv")]
    assert message == f"{videos / 'long.mkv'}: all 2 Ray workers were lost", message
    assert not (tmp_path / "out" / "long.mkv").exists()
    work = work_folder(tmp_path / "out" / "long.mkv")
    assert not work.exists() or not (work / "lock").exists()  # kept for the next run only if it holds segments


RAY_KINDS = [k for k in KINDS if k.name in ("hevc-main10-pq-mkv", "mpeg2-dvd-vob")]


@pytest.mark.parametrize("kind", RAY_KINDS, ids=[k.name for k in RAY_KINDS])
def test_format_matrix_through_ray(tmp_path, inputs, weights, local_ray, kind):  # noqa: F811
    """Two kinds of the format matrix (10-bit HDR in MKV, a DVD's anamorphic interlaced MPEG-2) through
    ``batch --ray`` in several parts: the same frame count, size, depth, tags and pixel shape as in one process."""
    folder = tmp_path / "in"
    folder.mkdir()
    src = inputs(kind)
    (folder / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "out"
    res = stvup.batch(folder, out, weights=weights, ray="auto", time=TIME, input_fps=kind.rate,
                      segment_seconds=4 / (TIME * kind.rate))  # fmt: skip
    assert res.failures == {} and [r.frames_out for r in res.results] == [TIME * FRAMES]
    _check_output(kind, Path(res.results[0].output), TIME * FRAMES)
