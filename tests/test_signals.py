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
from .test_upscale import weights  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def slow_clip(tmp_path_factory) -> Path:
    """Long enough that a run is still writing when the signal comes."""
    return make_clip(tmp_path_factory.mktemp("slow") / "slow.mp4", width=160, height=128, frames=60, audio=None)


def _start(src: Path, out: Path, weights_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stvup", "upscale", str(src), "-o", str(out), "--weights", str(weights_path),
           "--device", "cpu", "--time", "2", "--quiet"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _partials(folder: Path) -> list[str]:
    """Temporary files here and in the output's hidden work folder (stvup.upscaling.resume), as paths relative to
    ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if ".partial-" in p.name)


def _wait_for_partial(proc: subprocess.Popen, folder: Path) -> None:
    deadline = time.monotonic() + 120
    while not _partials(folder):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the run: frames are being computed and written


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_termination_signals_leave_nothing(tmp_path, slow_clip, weights, name, code):  # noqa: F811
    out = tmp_path / "out.mp4"
    proc = _start(slow_clip, out, weights)
    _wait_for_partial(proc, tmp_path)
    proc.send_signal(getattr(signal, name))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [f"error: stopped by {name}; nothing partial was left"]
    assert not out.exists() and _partials(tmp_path) == []


def test_a_killed_runs_partial_file_is_removed_by_the_next_run(tmp_path, slow_clip, weights):  # noqa: F811
    out = tmp_path / "out.mp4"
    proc = _start(slow_clip, out, weights)
    _wait_for_partial(proc, tmp_path)
    proc.kill()  # SIGKILL: no cleanup possible
    proc.communicate(timeout=60)
    left = _partials(tmp_path)  # the segment being written, in the work folder
    assert len(left) == 1 and left[0].startswith(f".out.mp4.stvup-work/.000000.partial-{proc.pid}-"), left
    again = _start(slow_clip, out, weights)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert _partials(tmp_path) == [] and probe(out).frame_count == 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # the work folder is gone too


def test_only_dead_processes_partials_are_removed(tmp_path):
    out = tmp_path / "video.mp4"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".video.partial-{int(done.stdout)}-abc.mp4"
    mine = tmp_path / (partial_prefix(out) + "xyz.mp4")
    other = tmp_path / f".other.partial-{int(done.stdout)}-abc.mp4"  # another output's: not ours to touch
    folder = tmp_path / f".frames.partial-{int(done.stdout)}-q"
    for path in (dead, mine, other):
        path.write_bytes(b"x")
    folder.mkdir()
    (folder / "frame_000001.png").write_bytes(b"x")
    assert remove_stale_partials(out) == [dead]
    assert mine.exists() and other.exists()
    assert remove_stale_partials(tmp_path / "frames", folder=True) == [folder]
    assert os.getpid() > 0 and not folder.exists()


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
