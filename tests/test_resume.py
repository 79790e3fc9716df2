"""Resumable runs (issue 12, item 3): segments, journal, the join, and what must not be resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

import stvup
from stvup.cli.main import cli
from stvup.errors import OutputError
from stvup.upscaling.journal import JOURNAL, LOCK, work_folder
from stvup.upscaling.pipeline import Upscaler
from stvup.video import iter_frames, probe

from .conftest import make_clip
from .helpers import start_pausing
from .test_upscale import _tiny, weights  # noqa: F401 - fixture

SEGMENT = 0.25  # seconds: 12 output frames at 48 fps, so a 24-frame clip at ×2 makes 4 segments


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("resume") / "clip.mp4", width=48, height=32, frames=24)


@pytest.fixture(scope="module")
def upscaler() -> Upscaler:
    return Upscaler(_tiny(), device="cpu", precision="fp32")


class _Stop(Exception):
    """Stands for any interruption (Ctrl-C, SIGTERM, an error) part-way through."""


def _run(src, out, upscaler, stop_after: int | None = None, **options):
    def progress(p) -> None:
        if stop_after is not None and p.frames_out >= stop_after:
            raise _Stop

    return stvup.upscale(src, out, time=2, upscaler=upscaler, segment_seconds=SEGMENT, progress=progress, **options)


def _contents(path: Path) -> dict:
    """Video pictures and timestamps, and audio packets, as read back."""
    with av.open(str(path)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        video_pts = sorted(p.pts for p in container.demux(v) if p.size)
        container.seek(0)
        audio = [(p.pts, bytes(p)) for p in container.demux(a) if p.size]
    with iter_frames(path) as stream:
        frames = [(f.time, f.image) for f in stream]
    return {"video_pts": video_pts, "audio": audio, "frames": frames, "rate": probe(path).rate}


def _count_windows(monkeypatch, upscaler) -> list[int]:
    calls: list[int] = []
    window = Upscaler._window
    monkeypatch.setattr(upscaler, "_window", lambda *a, **k: calls.append(1) or window(upscaler, *a, **k))
    return calls


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(tmp_path, clip, upscaler, monkeypatch, suffix):
    # FFV1 is lossless, so the pictures show the model's frames; x264 is not bit-exact from one run to the next even
    # without resuming (its threads), so there the frame count, timestamps and audio are compared.
    codec = "ffv1" if suffix == ".mkv" else "libx264"
    whole = _run(clip, tmp_path / f"whole{suffix}", upscaler, codec=codec)
    assert whole.frames_out == 48 and whole.resumed_frames == 0
    assert not work_folder(tmp_path / f"whole{suffix}").exists()

    out = tmp_path / f"resumed{suffix}"
    with pytest.raises(_Stop) as stopped:
        _run(clip, out, upscaler, stop_after=30, codec=codec)
    work = work_folder(out)
    journal = json.loads((work / JOURNAL).read_text())
    assert [s["frames"] for s in journal["segments"]] == [12, 12]  # the third was under way: dropped
    assert sorted(p.name for p in work.iterdir()) == [f"000000{suffix}", f"000001{suffix}", JOURNAL]
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []
    assert any(str(work) in note for note in stopped.value.__notes__)

    windows = _count_windows(monkeypatch, upscaler)
    again = _run(clip, out, upscaler, codec=codec)
    assert again.resumed_frames == 24 and again.frames_out == 48
    assert "resumed: 24 frames (2 segments) were already done" in again.notes
    assert len(windows) == 12  # only windows 12..23 ran: half the work
    assert not work.exists()

    a, b = _contents(tmp_path / f"whole{suffix}"), _contents(out)
    assert a["video_pts"] == b["video_pts"] and len(b["video_pts"]) == 48
    assert a["audio"] == b["audio"] and len(b["audio"]) > 0
    assert a["rate"] == b["rate"] == 48
    assert [t for t, _ in a["frames"]] == [t for t, _ in b["frames"]]
    if codec == "ffv1":
        assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a["frames"], b["frames"]))


@pytest.mark.parametrize("change", ["crf", "input", "no-resume"])
def test_a_changed_job_starts_over(tmp_path, clip, upscaler, change):
    src = tmp_path / "clip.mp4"
    src.write_bytes(clip.read_bytes())
    out = tmp_path / "out.mp4"
    with pytest.raises(_Stop):
        _run(src, out, upscaler, stop_after=30)
    options: dict = {}
    if change == "crf":
        options["crf"] = 30
    elif change == "input":
        make_clip(src, width=48, height=32, frames=24, rate=Fraction(25))  # same name and size class, other pictures
    else:
        options["resume"] = False
    again = _run(src, out, upscaler, **options)
    assert again.resumed_frames == 0 and again.frames_out == 48
    expected = {"crf": "had another crf", "input": "had another input", "no-resume": "--no-resume: discarded"}
    assert any(expected[change] in note for note in again.notes), again.notes


def test_damaged_and_unjournaled_segments_are_redone(tmp_path, clip, upscaler, monkeypatch):
    out = tmp_path / "out.mp4"
    with pytest.raises(_Stop):
        _run(clip, out, upscaler, stop_after=30)
    work = work_folder(out)
    (work / ".000002.partial-1-x.mp4").write_bytes(b"half a segment")  # what SIGKILL leaves
    with open(work / "000001.mp4", "ab") as f:  # the second segment is not what the journal says
        f.write(b"\0")
    windows = _count_windows(monkeypatch, upscaler)
    again = _run(clip, out, upscaler)
    assert again.resumed_frames == 12 and len(windows) == 18  # windows 6..23
    assert probe(out).frame_count == 48 and not work.exists()


def test_a_live_run_of_the_same_output_is_refused(tmp_path, clip, upscaler):
    out = tmp_path / "out.mp4"
    work = work_folder(out)
    work.mkdir()
    (work / LOCK).write_text(str(os.getppid()))  # a process that is alive, and not this one
    with pytest.raises(OutputError, match="another stvup run"):
        _run(clip, out, upscaler)
    assert not out.exists() and (work / LOCK).exists()


def test_sigkill_then_the_same_command_finishes_the_job(tmp_path, weights):  # noqa: F811
    src = make_clip(tmp_path / "long.mp4", width=64, height=48, frames=72, rate=Fraction(24))
    out = tmp_path / "out.mp4"
    args = ["upscale", str(src), "-o", str(out), "--weights", str(weights), "--device", "cpu", "--time", "2",
            "--segment-seconds", "0.5", "--json"]  # fmt: skip
    # Paused in the encoder thread just after the journal took its second segment (24 frames each): killed there.
    run = start_pausing(args, "stvup.upscaling.journal:Job.add", 2)
    run.wait_paused()
    assert len(json.loads((work_folder(out) / JOURNAL).read_text())["segments"]) == 2
    run.proc.kill()
    run.proc.communicate(timeout=60)
    assert not out.exists()
    again = subprocess.run([sys.executable, "-m", "stvup", *args], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["resumed_frames"] == 48 and result["frames_out"] == 144
    assert probe(out).frame_count == 144 and sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "out.mp4"]


def test_cli_no_resume_flag(tmp_path, clip, weights):  # noqa: F811
    out = tmp_path / "out.mp4"
    res = CliRunner().invoke(cli, ["upscale", str(clip), "-o", str(out), "--weights", str(weights), "--no-resume",
                                   "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["resumed_frames"] == 0 and probe(out).frame_count == 24


def test_segments_hold_minutes_of_work_not_seconds_of_video():
    """By default a segment is about two minutes of estimated model time, at least 12 frames, at most 4 s of video:
    a 540p output on a CPU stays near the 4 s cap, 4K on a CPU gets about 20 frames instead of 240 at 60 fps."""
    from stvup.upscaling.resume import work_segment_seconds
    from stvup.upscaling.tiling import estimate_frame_seconds

    small = estimate_frame_seconds("stvun-small", "bf16", "cpu", 960 * 540)
    big = estimate_frame_seconds("stvun-small", "bf16", "cpu", 3840 * 2160)
    assert 0.3 < small < 1.2 and 5 < big < 20
    assert 3.5 <= work_segment_seconds(Fraction(50), small) <= 4  # about 2 minutes: 196 frames
    assert 12 <= work_segment_seconds(Fraction(60), big) * 60 <= 24
    assert work_segment_seconds(Fraction(60), big) * 60 * big <= 240  # at most a few minutes lost to a crash
    assert work_segment_seconds(Fraction(60), estimate_frame_seconds("stvun", "bf16", "cuda", 3840 * 2160)) == 4
    assert estimate_frame_seconds("stvun-small", "bf16", "cpu", 100, ensemble=8) == pytest.approx(
        8 * estimate_frame_seconds("stvun-small", "bf16", "cpu", 100)
    )


def test_a_resumed_run_keeps_the_segment_length_its_journal_chose(tmp_path, clip, upscaler, monkeypatch):
    """The default length is an estimate of this machine's speed; a rerun that estimates otherwise (another machine,
    another load) still continues the journaled segments instead of starting over."""
    import stvup.upscaling.job as job

    out = tmp_path / "auto.mp4"
    monkeypatch.setattr(job, "estimate_frame_seconds", lambda *a, **k: 120 / 12)  # 12 frames a segment

    def stop(p) -> None:
        if p.frames_out >= 30:
            raise _Stop

    with pytest.raises(_Stop):
        stvup.upscale(clip, out, time=2, upscaler=upscaler, progress=stop)
    journal = json.loads((work_folder(out) / JOURNAL).read_text())
    assert journal["segment_frames"] == 12 and len(journal["segments"]) == 2
    monkeypatch.setattr(job, "estimate_frame_seconds", lambda *a, **k: 120 / 16)  # now it would pick 16
    again = stvup.upscale(clip, out, time=2, upscaler=upscaler)
    assert again.resumed_frames == 24 and again.frames_out == 48
