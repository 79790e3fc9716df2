"""--start / --duration (issue 15, item 5): seek, real neighbours at the edges, audio cut to match."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from click.testing import CliRunner

import stvup
import stvup.video.trim as trim
from stvup.cli.main import cli
from stvup.errors import UsageError
from stvup.video import iter_frames, probe
from stvup.video.trim import parse_time

from .conftest import make_clip, pattern
from .test_upscale import weights  # noqa: F401 - fixture


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", Fraction(3, 2)), ("01:30", 90), ("0:01:30.25", Fraction(361, 4)), (2, 2), ("0", 0)],
)
def test_times(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["abc", "-1", "1:75:00", "1::2", ""])
def test_bad_times(text):
    with pytest.raises(UsageError, match="--start"):
        parse_time(text)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s at 24 fps with audio, a key frame every 12 frames (so that seeking can skip most of the file)."""
    path = tmp_path_factory.mktemp("trim") / "clip.mp4"
    make_clip(path, width=48, height=32, frames=72, gop=12)
    return path


def _audio_seconds(path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(sum(p.duration for p in container.demux(stream) if p.size) * stream.time_base)


def test_one_second_from_one_second(tmp_path, clip, weights, monkeypatch):  # noqa: F811
    decoded = []
    original = trim._decode_all
    monkeypatch.setattr(trim, "_decode_all", lambda *a: (decoded.append(1) or f for f in original(*a)))
    part = stvup.upscale(clip, tmp_path / "part.mkv", weights=weights, time=2, start=1, duration=1, codec="ffv1",
                         precision="fp32", scene_threshold=None)  # fmt: skip
    assert part.frames_out == 48 and probe(tmp_path / "part.mkv").frame_count == 48
    assert abs(_audio_seconds(tmp_path / "part.mkv") - 1.0) <= 0.05
    assert len(decoded) <= 12 + 24 + 4 + 4  # from the key frame before 1 s to 4 frames after 2 s, not 72
    # The edges see their real neighbours: the span equals the same frames of a whole run.
    stvup.upscale(clip, tmp_path / "whole.mkv", weights=weights, time=2, codec="ffv1", precision="fp32",
                  scene_threshold=None)  # fmt: skip
    with iter_frames(tmp_path / "whole.mkv") as s:
        whole = [f.image for f in s]
    with iter_frames(tmp_path / "part.mkv") as s:
        frames = [(f.time, f.image) for f in s]
    assert [round(float(t), 3) for t, _ in frames][:2] == [0.0, 0.021]  # Matroska keeps milliseconds
    assert all(np.array_equal(image, whole[48 + k]) for k, (_, image) in enumerate(frames))


def test_frame_folder_span_and_open_end(tmp_path, weights):  # noqa: F811
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(20):
        av.VideoFrame.from_ndarray(pattern(i, 32, 32), format="rgb24").save(str(folder / f"f{i:03d}.png"))
    res = stvup.upscale(folder, tmp_path / "out.mp4", weights=weights, start="0:00:00.5", input_fps=20)
    assert res.frames_out == 10  # frames 10..19 at 20 fps, to the end


def test_cli_span_errors(tmp_path, clip, weights):  # noqa: F811
    runner = CliRunner()
    base = ["upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "--weights", str(weights)]
    for args, message in (
        (["--start", "5"], "--start 5 s is past its end (3.00 s)"),
        (["--duration", "0"], "--duration must be more than 0"),
        (["--start", "1:2:3:4"], "--start must be seconds"),
    ):
        res = runner.invoke(cli, base + args)
        assert res.exit_code == 1 and message in res.output and res.output.strip().count("\n") == 0, res.output
        assert not (tmp_path / "o.mp4").exists()
    done = runner.invoke(cli, base + ["--start", "2.5", "--time", "2", "--json", "--quiet"])
    assert done.exit_code == 0, done.output
    assert probe(tmp_path / "o.mp4").frame_count == 24  # the last half second: 12 frames ×2
