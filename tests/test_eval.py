"""The evaluation protocol, its baselines and the `stvup eval` command."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.data import duf_downsample
from stvup.data.degrade import reduce
from stvup.errors import UsageError
from stvup.evaluation.methods import bicubic_blend, ffmpeg_baseline
from stvup.evaluation.metrics import psnr
from stvup.evaluation.protocol import (
    Protocol,
    best_shift,
    degrade_frames,
    evaluate,
    find_clips,
    score_frames,
    temporal_psnr,
)
from stvup.model import build_model
from stvup.model.weights import save_safetensors

from .conftest import make_clip
from .helpers import seeded_state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = build_model("stvun-tiny")
    state = seeded_state(model)
    state["decoder.rconv1.weight"] = state["decoder.rconv1.weight"] * 0.02
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_safetensors(state, path, {"stvup_model": "stvun-tiny"})
    return path


def _smooth_frames(n: int = 7, h: int = 64, w: int = 80) -> list[np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w]
    return [np.stack([120 + 60 * np.sin(xs / 9 + k / 5), 120 + 60 * np.cos(ys / 7), 100 + 0 * xs], -1).astype(np.uint8)
            for k in range(n)]  # fmt: skip


def test_protocol_degrades_even_frames_and_splits_kept_from_new():
    frames = _smooth_frames()
    lr = degrade_frames(frames[0::2], 4)
    assert len(lr) == 4 and lr[0].shape == (16, 20, 3)
    expect = duf_downsample(torch.from_numpy(frames[2]).permute(2, 0, 1).float(), 4).round().permute(1, 2, 0)
    assert np.array_equal(lr[1], expect.numpy().astype(np.uint8))
    # Kept frames are the even outputs, new the odd ones.
    truth = frames[:7]
    outs = [f if i % 2 == 0 else np.zeros_like(f) for i, f in enumerate(truth)]
    scores = score_frames(outs, truth, crop=4)
    assert scores["kept"]["psnr_y"] == float("inf") and scores["new"]["psnr_y"] < 10
    assert scores["kept"]["ssim_rgb"] == pytest.approx(1.0)


def test_bicubic_blend_and_ffmpeg_give_one_frame_per_ground_truth_frame():
    frames = _smooth_frames(9)
    lr = degrade_frames(frames[0::2], 4)
    bic = bicubic_blend(lr, 4)
    assert len(bic) == 9 and bic[0].shape == frames[0].shape
    assert np.array_equal(bic[1], ((bic[0].astype(int) + bic[2] + 1) // 2).astype(np.uint8))
    assert psnr(bic[4], frames[4], crop=4) > 25  # smooth content: bicubic is close
    # On the DUF grid, LR pixel (i, j) lands exactly on HR pixel (4i, 4j).
    aligned = bicubic_blend(lr, 4, aligned=True)
    assert np.array_equal(aligned[2][::4, ::4], lr[1]) and not np.array_equal(bic[2][::4, ::4], lr[1])
    assert psnr(aligned[4], frames[4], crop=4) > psnr(bic[4], frames[4], crop=4)
    ff = ffmpeg_baseline(lr, 4)
    assert len(ff) == 9 and ff[0].shape == frames[0].shape
    # Input k is output 2k: kept frames are lanczos-scaled inputs, close to bicubic ones.
    assert psnr(ff[4], bic[4]) > 30 and psnr(ff[4], bic[6]) < psnr(ff[4], bic[4])


def test_evaluate_runs_every_method(tmp_path, weights):
    from stvup.upscaling.loader import load_upscaler

    clip = make_clip(tmp_path / "c.mp4", width=80, height=64, frames=7, audio=None)
    report = evaluate([clip], upscaler=load_upscaler(weights, device="cpu"), crop=4)
    data = report.to_dict()
    assert set(data["mean"]) == {"stvup", "bicubic", "bicubic-aligned", "ffmpeg", "v-f", "f-v"}
    for method, parts in data["mean"].items():
        assert set(parts) == {"kept", "new", "all", "temporal"}
        assert all(np.isfinite(v) for v in parts["new"].values()), method
        tp = parts["temporal"]
        assert np.isfinite(tp["tpsnr_y"]) and tp["pulse_y"] == pytest.approx(
            parts["kept"]["psnr_y"] - parts["new"]["psnr_y"]
        )
    assert "| method | tPSNR Y" in report.to_markdown()
    # V→F shares the joint model's spatial path, so its kept frames score the same.
    assert data["mean"]["v-f"]["kept"]["psnr_y"] == pytest.approx(data["mean"]["stvup"]["kept"]["psnr_y"], abs=0.05)
    with pytest.raises(Exception, match="need weights"):
        evaluate([clip], methods=["stvup"])


def test_find_clips(tmp_path):
    (tmp_path / "set" / "a").mkdir(parents=True)
    (tmp_path / "set" / "a" / "1.png").write_bytes(b"")
    make_clip(tmp_path / "set" / "b.mp4", audio=None)
    assert [p.name for p in find_clips([tmp_path / "set"])] == ["a", "b.mp4"]
    with pytest.raises(Exception, match="no video"):
        find_clips([tmp_path / "set" / "a" / ".." / ".."])


def test_cli_eval_writes_both_tables(tmp_path, weights):
    clip = make_clip(tmp_path / "c.mp4", width=80, height=64, frames=5, audio=None)
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    res = CliRunner().invoke(
        cli,
        [
            "eval",
            str(clip),
            "--weights",
            str(weights),
            "--methods",
            "stvup,bicubic",
            "--markdown",
            str(md),
            "--json",
            str(js),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    text = md.read_text()
    assert "| method | kept Y | new Y | all Y |" in text  # the means
    assert "| method | clip | kept Y | new Y | all Y |" in text and "| stvup | c |" in text  # per clip
    data = json.loads(js.read_text())
    assert data["protocol"]["scale"] == 4 and set(data["per_clip"]) == {"stvup", "bicubic"}
    assert text.strip() in res.output
    res = CliRunner().invoke(cli, ["eval", str(clip), "--methods", "bicubic,nope"])
    assert res.exit_code == 1 and "unknown method" in res.output


def test_cli_eval_makes_report_folders_and_fails_before_scoring_on_a_bad_report_place(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", width=80, height=64, frames=5, audio=None)
    md = tmp_path / "new" / "deeper" / "r.md"
    res = CliRunner().invoke(cli, ["eval", str(clip), "--methods", "bicubic", "--markdown", str(md), "-q"])
    assert res.exit_code == 0, res.output
    assert "| bicubic | c |" in md.read_text()
    assert not [p for p in md.parent.iterdir() if p.name != "r.md"]  # no temporary left beside it

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = blocker / "r.json"
    res = CliRunner().invoke(cli, ["eval", str(clip), "--methods", "bicubic", "--json", str(bad)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], res.output
    assert "Traceback" not in res.output and "[1/1]" not in res.output  # failed before scoring anything
    assert blocker.read_text() == "not a folder"


def test_time_factor_protocol_inputs_every_nth_frame_and_scores_each_time():
    frames = _smooth_frames(9)
    lr = degrade_frames(frames[0::4], 4)
    assert len(lr) == 3
    # Bicubic at ×4 time: inputs at 0, 4, 8 and frames blended by time between them.
    bic = bicubic_blend(lr, 4, aligned=True, time=4)
    assert len(bic) == 9 and np.array_equal(bic[4][::4, ::4], lr[1])
    a, b = bic[0].astype(np.float64), bic[4].astype(np.float64)
    assert np.array_equal(bic[1], np.floor(0.75 * a + 0.25 * b + 0.5).astype(np.uint8))
    assert np.array_equal(bic[2], ((bic[0].astype(int) + bic[4] + 1) // 2).astype(np.uint8))
    ff = ffmpeg_baseline(lr, 4, time=4)
    assert len(ff) == 9 and psnr(ff[4], bic[4]) > 30
    # Kept: multiples of 4; new: the rest, also per time.
    outs = [f if i % 4 == 0 else (f if i % 4 == 1 else np.zeros_like(f)) for i, f in enumerate(frames)]
    scores = score_frames(outs, frames, crop=4, time=4)
    assert set(scores) == {"kept", "new", "all", "t=1/4", "t=2/4", "t=3/4", "temporal"}
    assert scores["kept"]["psnr_y"] == scores["t=1/4"]["psnr_y"] == float("inf")
    assert scores["t=2/4"]["psnr_y"] < 10 and scores["new"]["psnr_y"] == float("inf")  # means over the per-frame inf


def test_evaluate_at_x3_time_runs_every_method_and_reports_per_time(tmp_path, weights):
    from stvup.upscaling.loader import load_upscaler

    clip = make_clip(tmp_path / "c.mp4", width=80, height=64, frames=7, audio=None)
    up = load_upscaler(weights, device="cpu")
    report = evaluate([clip], upscaler=up, crop=4, time=3)
    data = report.to_dict()
    assert data["protocol"]["time"] == 3 and data["protocol"]["input"] == "frames 0, 3, 6, …"
    for method in ("stvup", "bicubic", "bicubic-aligned", "ffmpeg", "v-f", "f-v"):
        per = data["per_clip"][method]["c"]
        assert {"t=1/3", "t=2/3"} <= set(per), method
        assert per["new"]["psnr_y"] == pytest.approx((per["t=1/3"]["psnr_y"] + per["t=2/3"]["psnr_y"]) / 2), method
    # The ×2 protocol is the same call at time=2, and the model's kept frames do not depend on the factor.
    two = evaluate([clip], methods=["stvup"], upscaler=up, crop=4)
    assert "t=1/2" not in two.scores["stvup"]["c"]
    text = report.to_markdown()
    assert "| method | t=1/3 Y | t=2/3 Y |" in text and "×3 time" in text
    with pytest.raises(Exception, match="needs at least 5"):
        evaluate([clip], methods=["bicubic"], time=4, max_frames=4)
    with pytest.raises(Exception, match="at least 2"):
        evaluate([clip], methods=["bicubic"], time=1)


def test_cli_eval_time_option(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", width=80, height=64, frames=9, audio=None)
    js = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["eval", str(clip), "--methods", "bicubic", "--time", "4", "--json", str(js), "-q"])
    assert res.exit_code == 0, res.output
    data = json.loads(js.read_text())
    assert data["protocol"]["time"] == 4 and set(data["mean"]["bicubic"]) == {"kept", "new", "all", "t=1/4", "t=2/4",
                                                                             "t=3/4", "temporal"}  # fmt: skip
    res = CliRunner().invoke(cli, ["eval", str(clip), "--methods", "bicubic", "--time", "1"])
    assert res.exit_code == 2 and "--time" in res.output


def test_real_protocol_reduces_on_the_block_centre_grid_then_compresses():
    """The real protocol's LR frames are antialiased bicubic (or area) reductions, 8-bit; CRF 0 keeps luma and only
    thins chroma (4:2:0), CRF 32 costs detail."""
    frames = _smooth_frames(5)
    rgb = Protocol("real", crf=None).degrade(frames, 4)
    hr = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    expect = (reduce(hr, 4, "bicubic") * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert len(rgb) == 5 and np.array_equal(np.stack(rgb), expect)
    area = Protocol("real", "area", crf=None).degrade(frames, 4)
    assert not np.array_equal(np.stack(area), expect)
    lossless, coarse = Protocol("real", crf=0).degrade(frames, 4), Protocol("real", crf=32).degrade(frames, 4)
    assert psnr(lossless[2], rgb[2], y=True) > 40 > psnr(coarse[2], rgb[2], y=True)
    with pytest.raises(UsageError):
        Protocol("real", "nearest")
    with pytest.raises(UsageError):
        Protocol("lab")


def test_best_shift_finds_a_misplaced_output():
    frames = [f.copy() for f in _smooth_frames(3, 64, 80)]
    rng = np.random.default_rng(0)
    for f in frames:
        f[...] = np.clip(f.astype(int) + rng.integers(-40, 40, f.shape), 0, 255)
    moved = [np.roll(f, (1, -2), axis=(0, 1)) for f in frames]
    assert best_shift(moved, frames, crop=4) == (1, -2)
    assert best_shift(frames, frames, crop=4) == (0, 0)


def test_real_protocol_puts_plain_bicubic_on_the_grid_and_the_paper_protocol_does_not(tmp_path):
    """Plain bicubic (align_corners=False) is on the block-centre grid: best shift 0 on the real protocol, about
    1.5 output pixels off (towards larger indices) on the paper's DUF grid, which is what weights trained for one
    grid do on the other."""
    clip = tmp_path / "clip"
    clip.mkdir()
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (40, 48, 3)).astype(np.uint8)
    big = np.kron(base, np.ones((4, 4, 1), np.uint8))  # 160 x 192, blocky detail that shows any misplacement
    for k in range(5):
        av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(big, k, axis=1)), format="rgb24").save(
            str(clip / f"{k:03d}.png")
        )
    real = evaluate([clip], methods=["bicubic"], protocol=Protocol("real", crf=0), crop=8)
    paper = evaluate([clip], methods=["bicubic"], crop=8)
    assert real.shifts["bicubic"]["clip"] == (0, 0)
    assert min(paper.shifts["bicubic"]["clip"]) >= 1  # LR pixel i drawn at 4i + 1.5 but taken from 4i
    assert real.protocol["crf"] == 0 and "block-centre" in real.protocol["degradation"]


def test_cli_eval_real_protocol_scores_each_crf(tmp_path, weights):
    clip = make_clip(tmp_path / "c.mp4", width=80, height=64, frames=7, audio=None)
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    res = CliRunner().invoke(cli, ["eval", str(clip), "--weights", str(weights), "--protocol", "real", "--crf", "0,32",
                                   "--methods", "stvup,bicubic,ffmpeg", "--json", str(js), "--markdown", str(md),
                                   "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(js.read_text())
    assert [d["protocol"]["crf"] for d in data] == [0, 32]
    for d in data:
        assert set(d["mean"]) == {"stvup", "bicubic", "ffmpeg"} and set(d["best_shift"]) == set(d["mean"])
    text = md.read_text()
    assert text.startswith("| input | kept Y | new Y | vs bicubic, worst clip") and "CRF 32" in text
    assert text.count("H.264 yuv420p CRF 0") >= 2
    bad = CliRunner().invoke(cli, ["eval", str(clip), "--methods", "bicubic", "--protocol", "real", "--crf", "x"])
    assert bad.exit_code == 2 and "--crf" in bad.output


def test_write_real_input_makes_the_real_protocols_low_resolution_video(tmp_path):
    """A full-resolution clip becomes what a phone or transcoder would deliver: ×4 smaller (cropped to even LR
    sizes), H.264 yuv420p at the CRF asked for, the same rate, pictures close to the protocol's own reduction."""
    from stvup.evaluation.protocol import read_clip, write_real_input
    from stvup.video import probe

    src = make_clip(tmp_path / "hr.mp4", width=172, height=96, frames=6, audio=None)  # 172: cropped to 168
    frames, w, h = write_real_input(src, tmp_path / "lr.mp4", crf=18)
    info = probe(tmp_path / "lr.mp4")
    assert (frames, w, h) == (6, 42, 24) and (info.width, info.height) == (42, 24) and info.codec == "h264"
    assert info.rate == probe(src).rate
    lr, hr = read_clip(tmp_path / "lr.mp4"), read_clip(src)
    expect = Protocol("real", crf=None).degrade([f[:96, :168] for f in hr], 4)
    assert len(lr) == 6 and psnr(lr[3], expect[3], y=True) > 35


def test_temporal_psnr_rates_flicker_that_per_frame_scores_miss():
    truth = _smooth_frames(9)
    # The same error in every frame (a constant offset) changes nothing from frame to frame: no flicker.
    steady = [np.clip(f.astype(int) + 6, 0, 255).astype(np.uint8) for f in truth]
    # Every other frame off by the same amount: per-frame PSNR alike, but the video pulses.
    pulsing = [np.clip(f.astype(int) + (6 if i % 2 else 0), 0, 255).astype(np.uint8) for i, f in enumerate(truth)]
    assert temporal_psnr(truth, truth, 4) == float("inf")
    assert temporal_psnr(steady, truth, 4) > 50
    assert temporal_psnr(pulsing, truth, 4) < 35
    scores = score_frames(pulsing, truth, crop=4)
    assert scores["temporal"]["pulse_y"] == pytest.approx(scores["kept"]["psnr_y"] - scores["new"]["psnr_y"])
    assert scores["temporal"]["pulse_y"] > 20  # kept frames exact, new ones off
