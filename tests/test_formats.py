"""Picture formats kept from input to output (issue 15): the sample aspect ratio of anamorphic video."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import pytest
from click.testing import CliRunner

import stvup
from stvup.cli import cli
from stvup.video import probe

from .conftest import pattern
from .test_upscale import weights  # noqa: F401 - fixture

WIDESCREEN_DVD = Fraction(32, 27)  # NTSC DVD pixels shown at 16:9


def _anamorphic(path, sar=WIDESCREEN_DVD, width=180, height=120, frames=6):
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.sample_aspect_ratio = video.sample_aspect_ratio = sar
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_anamorphic_input_keeps_its_display_shape(tmp_path, weights, suffix):  # noqa: F811
    src = _anamorphic(tmp_path / "dvd.mp4")
    assert probe(src).sample_aspect_ratio == WIDESCREEN_DVD
    out = tmp_path / f"out{suffix}"
    result = stvup.upscale(src, out, weights=weights, time=2)
    info = probe(out)
    assert (info.width, info.height) == (720, 480) and info.sample_aspect_ratio == WIDESCREEN_DVD
    shown = info.width * info.sample_aspect_ratio / info.height
    assert abs(shown / Fraction(16, 9) - 1) <= 0.01
    assert result.sample_aspect_ratio == WIDESCREEN_DVD
    # Both copies of it: in the H.264 stream (what a decoder reports) and in the container.
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.sample_aspect_ratio == WIDESCREEN_DVD
        assert stream.sample_aspect_ratio == WIDESCREEN_DVD


def test_square_pixels_stay_square_and_info_shows_the_shape(tmp_path, weights):  # noqa: F811
    src = _anamorphic(tmp_path / "square.mp4", sar=Fraction(1))
    res = CliRunner().invoke(cli, ["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--weights", str(weights),
                                   "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["sample_aspect_ratio"] == "1:1" and report["display_aspect_ratio"] == "3:2"
    assert probe(tmp_path / "out.mp4").sample_aspect_ratio == 1
    facts = json.loads(CliRunner().invoke(cli, ["info", str(_anamorphic(tmp_path / "dvd.mp4")), "--json"]).stdout)
    assert facts["sample_aspect_ratio"] == "32:27" and facts["display_aspect_ratio"] == "16:9"
    assert facts["size"] == "180x120" and facts["frames"] == 6
    bad = CliRunner().invoke(cli, ["info", str(tmp_path / "missing.mp4")])
    assert bad.exit_code == 1 and bad.output.strip().count("\n") == 0 and "missing.mp4" in bad.output
