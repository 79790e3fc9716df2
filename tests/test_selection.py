"""The selection set that training cycles are judged on: fixed windows, kept-frame scores, the shipping rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.data.sources import HELD_OUT
from stvup.errors import InputError, UsageError
from stvup.evaluation import selection
from stvup.evaluation.selection import (
    HELD_OUT_CLIPS,
    SelectionReport,
    kept_frame,
    score_selection,
    selection_windows,
    split_roots,
)
from stvup.model import build_model
from stvup.model.weights import load_weights, save_safetensors
from stvup.training.steps import zero_heads
from stvup.upscaling.comparison import _write_png

from .conftest import make_clip
from .helpers import seeded_state


def _texture(h: int, w: int, k: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (127 + 100 * np.sin(np.stack([x * 0.3 + k, y * 0.25 - k, (x + y) * 0.2], -1))).astype(np.uint8)


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    """A tiny training-footage folder with the held-out clips, and a data folder with eight septuplets."""
    monkeypatch.setattr(selection, "CROP", 64)
    data, footage = tmp_path / "data", tmp_path / "footage"
    for s in range(1, 9):
        folder = data / selection.VIMEO / f"{s:04d}"
        folder.mkdir(parents=True)
        for i in range(7):
            _write_png(folder / f"im{i + 1}.png", _texture(64, 80, s + i))
    for rel in HELD_OUT_CLIPS:
        path = footage / rel
        if path.suffix == ".mp4":
            path.parent.mkdir(parents=True, exist_ok=True)
            make_clip(path, width=96, height=80, frames=20, audio=None)
            continue
        path.mkdir(parents=True)
        for i in range(16):
            _write_png(path / f"{i:05d}.png", _texture(72, 96, i))
    return footage, data


def test_held_out_clips_are_never_trained_on():
    assert {p.split("/")[-1] for p in HELD_OUT_CLIPS} <= HELD_OUT


def test_windows_are_fixed_and_spread_over_each_clip(roots):
    footage, data = roots
    windows = selection_windows(footage, data)
    assert len(windows) == 8 + 4 * len(HELD_OUT_CLIPS) >= 24
    assert all(len(w.frames) == 7 for w in windows)
    assert windows[0].frames[0].shape == (64, 80, 3)  # a septuplet: the whole frame
    dance = [w for w in windows if w.group == "dance-twirl"]
    assert [w.frames[0].shape for w in dance] == [(64, 64, 3)] * 4

    # Seven frames two apart from starts spread over 16 frames (0, 1, 2, 3): the first window's centre is frame 6,
    # the last one's frame 9, each a 64-pixel crop of it.
    def source_frame(window) -> int:
        crops = {k: _texture(72, 96, k) for k in range(16)}
        return next(k for k, f in crops.items() for y in range(9) for x in range(33)
                    if np.array_equal(f[y : y + 64, x : x + 64], window.frames[3]))  # fmt: skip

    assert [source_frame(w) for w in (dance[0], dance[-1])] == [6, 9]
    again = selection_windows(footage, data)
    assert all(np.array_equal(a.frames[3], b.frames[3]) for a, b in zip(windows, again))
    assert not np.array_equal(dance[0].frames[3], dance[-1].frames[3])


def test_missing_footage_is_named(roots):
    footage, data = roots
    import shutil

    shutil.rmtree(footage / HELD_OUT_CLIPS[0])
    with pytest.raises(InputError, match="gather.sh"):
        selection_windows(footage, data)


def test_roots_are_told_apart_in_any_order(roots):
    footage, data = roots
    assert split_roots([data, footage]) == (footage, data)
    with pytest.raises(UsageError, match="two folders"):
        split_roots([footage])


def test_kept_frame_is_the_upsampled_centre_input():
    """With a zero residual the network's kept frame is its bilinear upsampling of input 3, not of a neighbour."""
    model = build_model("stvun-tiny").eval()
    load_weights(model, seeded_state(model))
    zero_heads(model)
    lr = [_texture(16, 16, 3 * k) for k in range(7)]
    out = kept_frame(model, lr)
    x = torch.from_numpy(lr[3]).permute(2, 0, 1)[None].float()
    expect = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    assert np.abs(out.astype(float) - expect.numpy()).max() <= 1.0


def test_scores_and_verdict_on_the_set(roots):
    footage, data = roots
    windows = selection_windows(footage, data)
    a = build_model("stvun-tiny")
    load_weights(a, seeded_state(a))
    report = score_selection(windows, {"a": a}, crfs=(0, 23))
    assert set(report.scores) == {"a", "bicubic"} and len(report.scores["a"][0]) == len(windows)
    assert report.group_names[0] == "vimeo" and len(report.group_names) == 1 + len(HELD_OUT_CLIPS)
    assert report.scores["a"][0] != report.scores["a"][23]
    shipped, why = report.verdict("a", "a")
    assert not shipped and "CRF 0 mean +0.000" in why


def _report(deltas: dict[tuple[str, int], float]) -> SelectionReport:
    """Two methods over two clips of two windows: ``new`` is ``ref`` plus the given delta per (clip, CRF)."""
    report = SelectionReport((0, 23, 32), reference="ref")
    report.groups = {"v/0": "v", "v/1": "v", "c/0": "c", "c/1": "c"}
    report.scores = {"ref": {c: {n: 30.0 for n in report.groups} for c in report.crfs}}
    report.scores["new"] = {c: {n: 30.0 + deltas.get((g, c), 0.0) for n, g in report.groups.items()}
                            for c in report.crfs}  # fmt: skip
    return report


def test_shipping_rule():
    good = {("v", 0): 0.1, ("c", 0): 0.1, ("v", 23): 0.06, ("c", 23): 0.06}
    assert _report(good).verdict("new", "ref")[0]
    small = _report({**good, ("v", 23): 0.03, ("c", 23): 0.03})  # CRF 23 gains only 0.03 on the mean
    shipped, why = small.verdict("new", "ref")
    assert not shipped and "CRF 23 mean +0.030" in why
    losing = _report({**good, ("c", 32): -0.06})
    shipped, why = losing.verdict("new", "ref")
    assert not shipped and "c at CRF 32" in why
    assert _report({**good, ("c", 32): -0.04}).verdict("new", "ref")[0]  # within the tolerance
    assert "ref" in _report(good).to_markdown() and "30.100 (+0.100)" in _report(good).to_markdown()


def test_cli_selection(roots, tmp_path):
    footage, data = roots
    paths = []
    for seed in (0, 1):
        model = build_model("stvun-tiny")
        path = tmp_path / f"w{seed}.safetensors"
        save_safetensors(seeded_state(model, seed), path, {"stvup_model": "stvun-tiny"})
        paths.append(str(path))
    out = tmp_path / "sel.json"
    res = CliRunner().invoke(cli, ["eval", str(footage), str(data), "--selection", "--weights", paths[0], "--against",
                                   paths[1], "--crf", "0", "--json", str(out), "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "ship" in res.output.splitlines()[-1] and "| bicubic |" in res.output
    import json

    saved = json.loads(out.read_text())
    assert saved["reference"] == paths[1] and set(saved["scores"]) == {paths[0], paths[1], "bicubic"}
