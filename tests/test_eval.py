"""The evaluation protocol, its baselines and the `stvup eval` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stvup.cli import cli
from stvup.data import duf_downsample
from stvup.eval_methods import bicubic_blend, ffmpeg_baseline
from stvup.evaluation import degrade_frames, evaluate, find_clips, score_frames
from stvup.metrics import psnr
from stvup.model import build_model
from stvup.weights import save_safetensors

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
    from stvup.loader import load_upscaler

    clip = make_clip(tmp_path / "c.mp4", width=80, height=64, frames=7, audio=None)
    report = evaluate([clip], upscaler=load_upscaler(weights, device="cpu"), crop=4)
    data = report.to_dict()
    assert set(data["mean"]) == {"stvup", "bicubic", "bicubic-aligned", "ffmpeg", "v-f", "f-v"}
    for method, parts in data["mean"].items():
        assert set(parts) == {"kept", "new", "all"}
        assert all(np.isfinite(v) for v in parts["new"].values()), method
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
    assert set(scores) == {"kept", "new", "all", "t=1/4", "t=2/4", "t=3/4"}
    assert scores["kept"]["psnr_y"] == scores["t=1/4"]["psnr_y"] == float("inf")
    assert scores["t=2/4"]["psnr_y"] < 10 and scores["new"]["psnr_y"] == float("inf")  # means over the per-frame inf


def test_evaluate_at_x3_time_runs_every_method_and_reports_per_time(tmp_path, weights):
    from stvup.loader import load_upscaler

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
                                                                             "t=3/4"}  # fmt: skip
    res = CliRunner().invoke(cli, ["eval", str(clip), "--methods", "bicubic", "--time", "1"])
    assert res.exit_code == 2 and "--time" in res.output
