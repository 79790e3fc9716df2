"""The example scripts run end to end (tiny weights, tiny generated clip)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from stvup.model import build_model
from stvup.model.weights import save_safetensors
from stvup.video import probe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ex") / "tiny.safetensors"
    save_safetensors(build_model("stvun-tiny").state_dict(), path, {"stvup_model": "stvun-tiny"})
    return str(path)


def test_examples_run(tmp_path, tiny_weights, capsys):
    clip = tmp_path / "in" / "sample.mp4"
    clip.parent.mkdir()
    _load("make_sample_clip").main([str(clip), "--size", "48x32", "--frames", "6"])
    info = probe(clip)
    assert (info.width, info.height, info.has_audio) == (48, 32, True)

    _load("upscale_video").main([str(clip), str(tmp_path / "x4.mp4"), "--weights", tiny_weights])
    assert probe(tmp_path / "x4.mp4").width == 192

    assert _load("batch_folder").main([str(clip.parent), str(tmp_path / "out"), "--weights", tiny_weights]) == 0
    assert (tmp_path / "out" / "sample.mp4").is_file()

    hr = tmp_path / "hr.mp4"
    _load("make_sample_clip").make_sample_clip(str(hr), width=192, height=128, frames=16)
    _load("readme_picture").main([str(hr), str(tmp_path / "p.png"), "--frame", "7", "--crop", "64x48+8+8",
                                  "--weights", tiny_weights])  # fmt: skip
    import cv2

    picture = cv2.imread(str(tmp_path / "p.png"))
    assert picture.shape == (48, 4 * 64 + 3 * 4, 3)  # bicubic, FFmpeg, stvup and the truth, side by side

    capsys.readouterr()
    _load("benchmark").main(["--size", "64x32", "--frames", "2", "--weights", tiny_weights])
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "stvun-tiny" and report["stages_s_per_frame"]["total"] > 0


def test_train_and_evaluate_example(tmp_path, capsys):
    data = tmp_path / "train"
    data.mkdir()
    _load("make_sample_clip").make_sample_clip(str(data / "a.mp4"), width=96, height=80, frames=16)
    test = tmp_path / "test.mp4"
    _load("make_sample_clip").make_sample_clip(str(test), width=64, height=48, frames=5)
    _load("train_and_evaluate").main(
        [
            str(data),
            str(test),
            "--out",
            str(tmp_path / "run"),
            "--model",
            "stvun-tiny",
            "--steps",
            "2",
            "--batch-size",
            "1",
            "--patch",
            "16",
        ]
    )
    out = capsys.readouterr().out
    assert "| stvup (as stvup upscale runs it) |" in out and "| bicubic + frame blending |" in out
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_two_stream_study_example(tmp_path, capsys):
    data = tmp_path / "train"
    data.mkdir()
    _load("make_sample_clip").make_sample_clip(str(data / "a.mp4"), width=96, height=80, frames=30)
    test = tmp_path / "test.mp4"
    _load("make_sample_clip").make_sample_clip(str(test), width=64, height=48, frames=5)
    study = _load("two_stream_study")
    root = str(tmp_path / "runs")
    common = ["--pretrain-steps", "2", "--steps", "2", "--batch", "1", "--patch", "16"]
    study.main(["train", root, str(data), "--combos", "espcn+dvf", *common])
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["B-espcn+dvf", "F-espcn+dvf", "S1-10", "S1-20", "sweep-10-lc0", "sweep-10-lc4", "sweep-100-lc0",
                    "sweep-20-lc0", "sweep-20-lc4"]  # fmt: skip
    capsys.readouterr()
    study.main(["report", root, str(test), "--out", str(tmp_path / "study.md")])
    text = (tmp_path / "study.md").read_text()
    assert "| B0-espcn+dvf |" in text and "| B-espcn+dvf |" in text and "| F-espcn+dvf |" in text
    assert "| 10 % | without |" in text
    assert "| 100 % | λ = 4 |" in text and "| bicubic + blend |" in text


def test_flow_check_scores_blending_and_each_weights(tmp_path, tiny_weights, capsys):
    from .conftest import make_clip

    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "a.mp4", width=64, height=48, frames=7, audio=None)
    _load("flow_check").main(str(clips), [tiny_weights])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("frame blending: L_M ") and lines[1].startswith(f"{tiny_weights}: L_M ")
    assert all("(3 frames)" in line for line in lines)  # 7 frames: 4 kept inputs, 3 odd targets between them


def test_tile_memory_example():
    report = _load("tile_memory").main(["stvun-tiny", "fp32", "32", "--frames", "2"])
    # The peak is not compared with the size after loading: it only ever grows, so that would hold by construction.
    assert set(report) == {"model", "precision", "side", "loaded_mb", "peak_mb", "s_per_frame"}
    assert (report["model"], report["side"]) == ("stvun-tiny", 32) and report["loaded_mb"] > 0
    assert report["s_per_frame"] > 0


def test_speed_variants_example_runs_without_pyav(tmp_path, monkeypatch):
    """The GPU session's timing script, dry-run on CPU: every variant is timed, and one that fails is reported
    while the others still run. It imports nothing of PyAV (the GPU machine has none)."""
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # importing PyAV now fails
    out = tmp_path / "variants.json"
    args = ["--model", "stvun-tiny", "--device", "cpu", "--size", "64x48", "--frames", "3"]
    rows = _load("speed_variants").main([*args, "--precisions", "fp32,fp16", "--compile", "off,cuda-graphs",
                                         "--correlations", "loop,rows", "--out", str(out)])  # fmt: skip
    assert json.loads(out.read_text()) == rows
    timed = [r for r in rows if "ms_per_frame" in r]
    assert [(r["precision"], r["memory_format"], r["correlation"]) for r in timed] == [
        ("fp32", "contiguous", "loop"),
        ("fp32", "channels-last", "loop"),
        ("fp32", "contiguous", "rows"),
    ]
    assert all(r["frames_out"] == 6 and r["ms_per_frame"] > 0 for r in timed)
    # fp16 and CUDA graphs need CUDA: reported, and the other variants still ran.
    failed = [(r["precision"], r["compile"], r["correlation"]) for r in rows if "error" in r]
    assert failed == [("fp16", "off", "loop")] * 2 + [("fp32", "cuda-graphs", "loop")] * 2 + [
        ("fp32", "cuda-graphs", "rows")
    ]
