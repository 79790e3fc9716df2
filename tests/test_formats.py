"""Picture formats kept from input to output (issue 15): the sample aspect ratio of anamorphic video."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from click.testing import CliRunner

import stvup
from stvup.cli.main import cli
from stvup.upscaling.comparison import _BAR
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


# -- bit depth and HDR -------------------------------------------------------------------------------------------

PQ = {"color_trc": 16, "color_primaries": 9, "colorspace": 9, "color_range": 1}  # SMPTE 2084 in BT.2020


def _ramp10(path, width=128, height=64, frames=6, tags=PQ, brighten=0, cut_at=None):
    """A 10-bit HEVC clip whose rows are a shallow ramp (10-bit levels 400 to 600: 201 levels, 51 in 8 bits).

    ``brighten``: 10-bit levels added per frame (the brightest level changes from frame to frame, as in real HDR
    footage); ``cut_at``: from this frame on, another picture (a hard cut)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx265", rate=24, options={"x265-params": "log-level=error", "crf": "4"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p10le"
        for key, value in tags.items():
            setattr(video.codec_context, key, value)
        luma = np.tile(np.linspace(400, 600, width).round().astype(np.uint16), (height, 1))
        chroma = np.full((height // 2, width // 2), 512, np.uint16)
        other = np.tile(np.linspace(900, 100, height).round().astype(np.uint16)[:, None], (1, width))
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p10le")
            picture = other if cut_at is not None and i >= cut_at else luma
            picture = np.minimum(picture + brighten * i, 1023).astype(np.uint16)
            for plane, data in zip(frame.planes, (picture, chroma, chroma)):
                rows = np.zeros((data.shape[0], plane.line_size // 2), np.uint16)
                rows[:, : data.shape[1]] = data
                plane.update(rows.tobytes())
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


def _levels(path) -> tuple[int, str, dict]:
    """Distinct luma levels along the middle row of the first frame, the pixel format, and the colour tags."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        ctx = stream.codec_context
        tags = {k: getattr(ctx, k) for k in PQ}
        bytes_per = 2 if frame.format.components[0].bits > 8 else 1
        row = np.frombuffer(frame.planes[0], np.uint16 if bytes_per == 2 else np.uint8)
        row = row.reshape(frame.height, -1)[frame.height // 2, 8 : frame.width - 8]
        return len(np.unique(row)), frame.format.name, tags


def test_ten_bit_hdr_stays_ten_bit_with_its_tags(tmp_path, weights):  # noqa: F811
    src = _ramp10(tmp_path / "hdr.mkv")
    assert probe(src).bit_depth == 10
    out = tmp_path / "out.mkv"
    result = stvup.upscale(src, out, weights=weights, precision="fp32")
    levels, pix_fmt, tags = _levels(out)
    assert pix_fmt == "yuv420p10le" and levels >= 150, (pix_fmt, levels)
    assert tags == PQ and probe(out).codec == "hevc" and result.output_size == (512, 256)


@pytest.mark.parametrize(("codec", "pix_fmt", "expected"), [("libx264", None, "yuv420p10le"), ("ffv1", None, None),
                                                            ("libx264", "yuv420p", "yuv420p")])  # fmt: skip
def test_ten_bit_with_other_codecs(tmp_path, weights, codec, pix_fmt, expected):  # noqa: F811
    src = _ramp10(tmp_path / "hdr.mkv")
    out = tmp_path / "out.mkv"
    stvup.upscale(src, out, weights=weights, codec=codec, pix_fmt=pix_fmt, precision="fp32")
    levels, got, tags = _levels(out)
    if expected is not None:
        assert got == expected
    if pix_fmt is None:  # deep unless asked otherwise: H.264 High 10, FFV1 at 16 bits (RGB: its matrix is RGB)
        kept = ("color_trc", "color_primaries") if codec == "ffv1" else tuple(PQ)
        assert levels >= 150 and all(tags[k] == PQ[k] for k in kept), tags
    else:  # an explicit 8-bit format is what the user asked for
        assert levels < 100


def test_hdr_never_silently_eight_bit(tmp_path, weights):  # noqa: F811
    src = _ramp10(tmp_path / "hdr.mkv")
    with pytest.raises(stvup.UsageError, match="PQ"):
        stvup.upscale(src, tmp_path / "out.avi", weights=weights, codec="mpeg4")
    assert not (tmp_path / "out.avi").exists()


def test_deep_clip_that_brightens_and_cuts(tmp_path, weights):  # noqa: F811
    """A 10-bit clip whose brightest level changes every frame and that has a hard cut: the cut is found where it
    is, the output keeps 10 bits, and the preview shows the picture (not a deep frame wrapped into 8 bits)."""
    src = _ramp10(tmp_path / "hdr.mp4", width=96, height=64, frames=8, brighten=10, cut_at=4)
    out = tmp_path / "out.mp4"
    result = stvup.upscale(src, out, weights=weights, time=2, precision="fp32")
    assert [frame for frame, _ in result.cuts] == [4] and result.frames_out == 16
    assert _levels(out)[1] == "yuv420p10le"
    shown = stvup.preview(src, tmp_path / "p.png", weights=weights, precision="fp32")
    with av.open(shown.output) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="rgb24")
    w, h = shown.panel
    kept, new = picture[_BAR : _BAR + h], picture[-h:]  # new: halfway to frame 1, 10 levels brighter
    for panel, brightened in ((kept[:, :w], 0), (kept[:, -w:], 0), (new[:, :w], 5), (new[:, -w:], 5)):
        assert_ramp_in_eight_bits(panel, brightened)


def ramp_level(ten_bit: float) -> float:
    """The 8-bit grey a limited-range 10-bit luma level of :func:`_ramp10` becomes (its chroma is neutral)."""
    return (ten_bit - 64) / 876 * 255


def assert_ramp_in_eight_bits(picture: np.ndarray, brightened: float = 0) -> None:
    """``picture`` (8-bit RGB) is :func:`_ramp10`'s ramp at any width: 10-bit levels 400 to 600 (+ ``brightened``)
    left to right, as 8-bit greys that rise smoothly. A deep frame wrapped into 8 bits (its low byte) has the same
    mean grey, but its columns jump by up to 255 levels and neither end has the right grey."""
    profile = picture.astype(np.float64).mean(axis=(0, 2))  # the mean grey of each column
    assert np.diff(profile).min() > -4, np.diff(profile).min()
    left, right = profile[: len(profile) // 16].mean(), profile[-(len(profile) // 16) :].mean()
    assert abs(left - ramp_level(400 + brightened)) < 6 and abs(right - ramp_level(600 + brightened)) < 6, (left, right)
