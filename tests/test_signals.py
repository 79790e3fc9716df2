"""SIGTERM and SIGHUP stop a run like Ctrl-C; a killed run's temporary file is removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.cli.signals import Terminated, stop_on_signals
from stvup.video import probe
from stvup.video.partial import partial_prefix, remove_stale_partials

from .conftest import make_clip
from .helpers import HANG_GUARD, start_pausing
from .test_upscale import weights  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """24 frames; the runs that are stopped part-way are paused there (not slow enough to be caught there)."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", width=96, height=64, frames=24, audio=None)


def _args(src: Path, out: Path, weights_path: Path) -> list[str]:
    return ["upscale", str(src), "-o", str(out), "--weights", str(weights_path), "--device", "cpu", "--time", "2",
            "--quiet"]  # fmt: skip


def _start(src: Path, out: Path, weights_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stvup", *_args(src, out, weights_path)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _partials(folder: Path) -> list[str]:
    """Temporary files here and in the output's hidden work folder (stvup.upscaling.resume), as paths relative to
    ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if ".partial-" in p.name)


def _paused_with_a_partial(src: Path, out: Path, weights_path: Path, gate: str, after: int) -> subprocess.Popen:
    """A run of ``src`` paused part-way (at its ``after``-th call of ``gate``, see tests.helpers.start_pausing), once
    its output's temporary file is there: the run is certainly in the middle of its work, whatever the machine's
    speed, and cannot finish before the test signals it."""
    run = start_pausing(_args(src, out, weights_path), gate, after)
    run.wait_paused()
    # The encoder thread still writes the frames made before the pause; its temporary file is certain to come.
    deadline = time.monotonic() + HANG_GUARD
    while not _partials(out.parent):
        assert run.proc.poll() is None and time.monotonic() < deadline, run.proc.communicate()
        time.sleep(0.02)
    return run.proc


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_termination_signals_leave_nothing(tmp_path, clip, weights, name, code):  # noqa: F811
    out = tmp_path / "out.mp4"
    # Paused in the main thread (where the handler raises) after 8 of 24 input frames, 8 of 48 output frames made.
    proc = _paused_with_a_partial(clip, out, weights, "stvup.upscaling.job:Progress", 8)
    proc.send_signal(getattr(signal, name))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [f"error: stopped by {name}; nothing partial was left"]
    assert not out.exists() and _partials(tmp_path) == []


def test_a_killed_runs_partial_file_is_removed_by_the_next_run(tmp_path, clip, weights):  # noqa: F811
    out = tmp_path / "out.mp4"
    # Paused in the encoder thread after its tenth frame, with the first segment's temporary file open.
    proc = _paused_with_a_partial(clip, out, weights, "stvup.upscaling.resume:SegmentSink.write", 10)
    proc.kill()  # SIGKILL: no cleanup possible
    proc.communicate(timeout=60)
    left = _partials(tmp_path)  # the segment being written, in the work folder
    assert len(left) == 1 and left[0].startswith(f".out.mp4.stvup-work/.000000.partial-{proc.pid}-"), left
    again = _start(clip, out, weights)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert _partials(tmp_path) == [] and probe(out).frame_count == 48
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # the work folder is gone too


def test_only_dead_processes_partials_are_removed(tmp_path):
    out = tmp_path / "video.mp4"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".video.partial-{int(done.stdout)}-abc.mp4"
    mine = tmp_path / (partial_prefix(out) + "xyz.mp4")  # this live process's: still being written
    other = tmp_path / f".other.partial-{int(done.stdout)}-abc.mp4"  # another output's: not ours to touch
    folder = tmp_path / f".frames.partial-{int(done.stdout)}-q"
    live = tmp_path / f".frames.partial-{os.getpid()}-r"  # a frame folder this live process is still filling
    for path in (dead, mine, other):
        path.write_bytes(b"x")
    for path in (folder, live):
        path.mkdir()
        (path / "frame_000001.png").write_bytes(b"x")
    assert remove_stale_partials(out) == [dead]
    assert mine.exists() and other.exists()
    assert remove_stale_partials(tmp_path / "frames", folder=True) == [folder]
    assert not folder.exists() and (live / "frame_000001.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crf", "99"], "--crf 99 is out of range for libx264 with yuv420p: use 0 to 51"),
        (["--crf", "-3", "--codec", "libx265"], "--crf -3 is out of range for libx265"),
        (["--crf", "64", "--pix-fmt", "yuv420p10le"], "for libx264 with yuv420p10le: use 0 to 63"),
        (["--preset", "warp9"], "unknown libx264 preset 'warp9'"),
        (["--pix-fmt", "rgb48le"], "cannot take pixel format 'rgb48le'"),
    ],
)
def test_codec_options_are_checked_before_any_work(tmp_path, clips, weights, args, message):  # noqa: F811
    out = tmp_path / "out.mp4"
    res = CliRunner().invoke(cli, ["upscale", str(clips["aac"]), "-o", str(out), "--weights", str(weights), *args])
    assert res.exit_code == 1 and res.output.strip().count("\n") == 0 and message in res.output, res.output
    assert list(tmp_path.iterdir()) == []
    # 10-bit H.264 takes CRF up to 63.
    if "yuv420p10le" in args:
        ok = CliRunner().invoke(cli, ["upscale", str(clips["aac"]), "-o", str(out), "--weights", str(weights),
                                      "--crf", "60", "--pix-fmt", "yuv420p10le", "--quiet"])  # fmt: skip
        assert ok.exit_code == 0, ok.output


def test_a_repeated_signal_does_not_cut_the_cleanup_short():
    before = signal.getsignal(signal.SIGTERM)
    cleaned = False
    with pytest.raises(Terminated):
        with stop_on_signals():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # interrupted by the handler
            finally:
                # The cleanup (training's last checkpoint, a writer's removal of its temporary) runs to its end.
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.05)
                cleaned = True
    assert cleaned
    assert signal.getsignal(signal.SIGTERM) is before
