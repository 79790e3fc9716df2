"""The GPU training kit: data pack, chunked training that resumes, shards that come back and join (a CPU dry run)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.data.sources import load_clip
from stvup.errors import CheckpointError, InputError
from stvup.evaluation.metrics import psnr
from stvup.kit.pack import MANIFEST, PACK_FOLDER, build_pack, load_pack
from stvup.kit.shards import join_shards, write_shards
from stvup.model import build_model
from stvup.model.weights import load_weights
from stvup.video import VideoWriter

from .test_train import _texture_clip

TINY_RUN = {"model": "stvun-tiny", "flow_steps": 2, "pretrain_steps": 2, "steps": 4, "batch_size": 2, "patch": 16,
            "patch2": 16, "flow_patch": 16, "precision": "fp32", "log_every": 1, "checkpoint_every": 100}  # fmt: skip


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """A folder with one real H.264 clip: a texture panning across 128×112 pixels for 40 frames."""
    root = tmp_path_factory.mktemp("footage")
    clip = _texture_clip(n=40, h=112, w=128, speed=3)
    with VideoWriter(root / "pan.mp4", width=128, height=112, rate=Fraction(25), crf=10, preset="ultrafast") as out:
        for image in clip.frames:
            out.write(image)
    return root


def _no_pyav(tmp_path: Path) -> dict[str, str]:
    """Environment of a machine like the GPU one: importing PyAV fails there."""
    blocker = tmp_path / "no_pyav" / "av"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text("raise ImportError('PyAV is not installed on this machine')\n")
    return {**os.environ, "PYTHONPATH": str(blocker.parent)}


def _chunk(tmp_path, kit, run, out, *extra) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "stvup", "kit", "chunk", "--kit", str(kit), "--run", str(run), "--out", str(out),
           "--device", "cpu", "--decoder", "opencv", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=_no_pyav(tmp_path), timeout=300)


def test_shards_round_trip_and_refuse_damage(tmp_path):
    blob = tmp_path / "model.safetensors"
    blob.write_bytes(np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes())
    manifest = write_shards(blob, tmp_path / "out", shard_bytes=3_000, info={"step": 7})
    parts = sorted((tmp_path / "out").glob("model.safetensors.part*"))
    assert len(parts) == 4 and all(p.stat().st_size <= 3_000 for p in parts)
    assert json.loads(manifest.read_text())["info"] == {"step": 7}
    join_shards(tmp_path / "out", tmp_path / "joined.safetensors")
    assert (tmp_path / "joined.safetensors").read_bytes() == blob.read_bytes()
    # A damaged piece: one line naming it, nothing written.
    data = bytearray(parts[1].read_bytes())
    data[10] ^= 0xFF
    good = parts[1].read_bytes()
    parts[1].write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"part01: shard damaged"):
        join_shards(tmp_path / "out", tmp_path / "bad.safetensors")
    res = CliRunner().invoke(cli, ["kit", "join", str(tmp_path / "out"), "-o", str(tmp_path / "bad.safetensors")])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "shard damaged" in res.output
    assert not (tmp_path / "bad.safetensors").exists()
    parts[1].write_bytes(good)
    parts[2].unlink()
    with pytest.raises(CheckpointError, match="part02: shard missing"):
        join_shards(tmp_path / "out", tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="no \\*.shards.json manifest"):
        join_shards(tmp_path, tmp_path / "bad.safetensors")


def test_pack_holds_checked_segments_within_budget(tmp_path, footage):
    report = build_pack([footage], tmp_path / "kit", budget_mb=0.15, max_side=96, segment=20, settings={"steps": 3})
    manifest = json.loads((tmp_path / "kit" / PACK_FOLDER / MANIFEST).read_text())
    assert report.files == len(manifest["files"]) >= 1 and report.bytes <= 150_000
    assert report.frames == sum(f["frames"] for f in manifest["files"]) <= report.frames_available == 40
    assert all(f["width"] == 96 and f["height"] == 96 and 13 <= f["frames"] <= 20 for f in manifest["files"])
    assert json.loads((tmp_path / "kit" / "train.json").read_text()) == {"steps": 3}
    clips = load_pack(tmp_path / "kit", "pyav")
    assert [len(c.frames) for c in clips] == [f["frames"] for f in manifest["files"]]
    assert clips[0].frames.shape[1:] == (96, 96, 3) and clips[0].rate == 25
    # The re-encoding at CRF 14 keeps the footage: compare with the decoded source at the recorded crop.
    source = load_clip(footage / "pan.mp4").frames
    for entry, clip in zip(manifest["files"], clips):
        x0, y0 = entry["crop"]
        assert x0 % 2 == 0 and y0 % 2 == 0
        original = source[entry["start"] : entry["start"] + entry["frames"], y0 : y0 + 96, x0 : x0 + 96]
        assert psnr(clip.frames, original, y=True) > 35
    entry = manifest["files"][0]
    # A damaged segment is refused by its checksum.
    seg = tmp_path / "kit" / PACK_FOLDER / entry["name"]
    seg.write_bytes(seg.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InputError, match="damaged"):
        load_pack(tmp_path / "kit", "pyav")


def test_pack_refuses_test_sets_and_tiny_budgets(tmp_path, footage):
    vid4 = tmp_path / "vid4"
    vid4.mkdir()
    res = CliRunner().invoke(cli, ["kit", "pack", str(vid4), "--out", str(tmp_path / "k")])
    assert res.exit_code == 1 and "test set" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["kit", "pack", str(footage), "--out", str(tmp_path / "k"), "--budget", "1",
                                   "--max-side", "128", "--segment", "40", "--crf", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not list(tmp_path.glob("k/.pack.partial-*"))  # the work folder never stays behind


def test_opencv_and_pyav_read_the_pack_alike(tmp_path, footage):
    pytest.importorskip("cv2")
    build_pack([footage], tmp_path / "kit", budget_mb=1, max_side=96, segment=20)
    a, b = load_pack(tmp_path / "kit", "pyav"), load_pack(tmp_path / "kit", "opencv")
    assert [c.frames.shape for c in a] == [c.frames.shape for c in b]
    diff = np.mean([np.abs(x.frames.astype(np.int16) - y.frames).mean() for x, y in zip(a, b)])
    assert diff < 1.5  # the two decoders' YUV→RGB conversions differ by rounding only


def test_gpu_recipe_dry_run(tmp_path, footage):
    """The README's recipe end to end on CPU: pack, two chunks on a machine without PyAV (the second resumes the
    run folder), the shards back in a fake output folder, joined and loaded strictly; then a lost machine."""
    pytest.importorskip("cv2")
    kit, run = tmp_path / ".kit", tmp_path / "gpu-machine" / "runs" / "gpu"
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(TINY_RUN))
    args = ["--budget", "2", "--max-side", "96", "--segment", "20", "--settings", str(settings), "--set", "steps=5",
            "--set", "ema_decay=0.9"]  # fmt: skip
    res = CliRunner().invoke(cli, ["kit", "pack", str(footage), "--out", str(kit), *args])
    assert res.exit_code == 0, res.output
    assert json.loads((kit / "train.json").read_text())["steps"] == 5

    first = _chunk(tmp_path, kit, run, tmp_path / "out1", "--minutes", "0.0001")
    assert first.returncode == 0, first.stderr
    info = json.loads((tmp_path / "out1" / "model.safetensors.shards.json").read_text())["info"]
    assert info["step"] == 1 and not info["finished"] and "to be continued" in first.stdout

    second = _chunk(tmp_path, kit, run, tmp_path / "out2", "--minutes", "5")
    assert second.returncode == 0, second.stderr
    assert "resumed run" in second.stdout
    info = json.loads((tmp_path / "out2" / "model.safetensors.shards.json").read_text())["info"]
    assert info["step"] == info["total"] == 9 and info["finished"] and info["dtype"] == "fp32"
    returned = sorted(p.name for p in (tmp_path / "out2").iterdir())
    assert len(returned) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in (tmp_path / "out2").iterdir())
    assert "log.jsonl" in returned

    res = CliRunner().invoke(cli, ["kit", "join", str(tmp_path / "out2"), "-o", str(tmp_path / "gpu.safetensors")])
    assert res.exit_code == 0, res.output
    model = load_weights(build_model("stvun-tiny"), tmp_path / "gpu.safetensors")
    last = torch.load(run / "last.pt", weights_only=False)
    assert info["ema_decay"] == 0.9 and last["ema_updates"] == 9  # what comes back is the run's moving average
    assert all(torch.equal(v, last["params_ema"][k]) for k, v in model.state_dict().items())
    assert any(not torch.equal(v, last["model"][k]) for k, v in model.state_dict().items())

    # The machine went back: a fresh run folder starts from the joined weights instead of from scratch.
    fresh = tmp_path / "other-machine" / "runs" / "gpu"
    third = _chunk(tmp_path, kit, fresh, tmp_path / "out3", "--minutes", "0.0001", "--init",
                   str(tmp_path / "gpu.safetensors"))  # fmt: skip
    assert third.returncode == 0, third.stderr
    assert "new run" in third.stdout
    cfg = torch.load(fresh / "last.pt", weights_only=False)["config"]
    assert cfg["init"] == str(tmp_path / "gpu.safetensors")


def test_chunk_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["kit", "chunk", "--kit", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and res.output.startswith("error: ") and res.output.count("\n") == 1


@pytest.mark.parametrize("preset", ["default", "x2"])
def test_presets_are_runs_that_start_from_the_shipped_weights(preset):
    # The network each preset names is built as the training loop builds it and takes the preset's init strictly
    # (the old default named a PWC-Net that the shipped weights no longer have: it stopped a GPU session's first
    # chunk at its first line); its inputs are the shipped default's real-video mix.
    from stvup.data.degrade import REAL_VIDEO
    from stvup.kit.presets import PRESETS
    from stvup.training.loop import _prepare_model
    from stvup.training.runs import TrainConfig

    repo = Path(__file__).resolve().parents[1]
    settings = PRESETS[preset]
    cfg = TrainConfig(data=[], **{**settings, "init": str(repo / settings["init"])})
    model, ema = _prepare_model(cfg, None, torch.device("cpu"))
    assert model.config.flow == "dis-medium-x2" and ema is not None
    assert cfg.degradation == REAL_VIDEO, cfg.degradation
    if preset == "x2":  # ×2 from the ×4 weights, stage 1 only (its new frames are warped from its kept ones)
        assert model.scale == 2 and model.unshuffle == 2 and cfg.steps == 0 and cfg.pretrain_steps > 0


def test_pack_writes_the_preset_it_is_given(tmp_path, footage):
    from stvup.kit.presets import PRESETS

    res = CliRunner().invoke(cli, ["kit", "pack", str(footage), "--out", str(tmp_path / "kit"), "--budget", "1",
                                   "--max-side", "96", "--preset", "x2", "--set", "batch_size=4"])  # fmt: skip
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "kit" / "train.json").read_text())
    assert written == {**PRESETS["x2"], "batch_size": 4}


def test_gpu_session_script_dry_run(tmp_path, footage):
    """examples/gpu_session.sh, the one call a GPU session makes, on CPU with a tiny model: every stage runs and
    logs its status, and what comes back fits the device tool's limits (at most 8 files). What is checked holds on
    any machine, a CUDA one included: the chunk ends at its last step (its minutes and every stage's limit are far
    beyond the work, guards against hangs only), and the CUDA test is there, passed or skipped."""
    pytest.importorskip("cv2")
    repo = Path(__file__).resolve().parents[1]
    kit, out = tmp_path / "kit", tmp_path / "out"
    build_pack([footage], kit, budget_mb=1, max_side=96, segment=20, settings=TINY_RUN)
    out.mkdir()
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": sys.executable,
        "KIT": str(kit),
        "RUN": str(tmp_path / "run"),
        "WHEELS": str(tmp_path),
        "TRAIN_MINUTES": "8",
        "LIMIT_SCALE": "4",
        "DEVICE": "cpu",
        "MODEL": "stvun-tiny",
        "SIZE": "64x32",
        "BENCHES": "fp32:off:64x32",
        "TESTS": "test_cuda_training",
        "VARIANTS": "--compile off --precisions fp32 --layouts contiguous --correlations loop",
    }
    res = subprocess.run(["bash", str(repo / "examples" / "gpu_session.sh")], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    log = (out / "log.txt").read_text()
    for stage in ("train", "tests", "bench fp32 off 64x32", "variants"):
        assert f"== {stage}: rc=0 in" in log, log[-3000:]
    assert "chunk done: step 8/8 (finished)" in log, log[-3000:]
    # The one selected CUDA test, by name: passed on a GPU, skipped elsewhere (other modules may skip too, e.g.
    # without the Ray extra); nothing failed.
    passed = r"PASSED tests/test_cuda\.py::test_cuda_training_steps"
    skipped = r"SKIPPED \[1\] tests/test_cuda\.py:\d+: needs a CUDA GPU"
    ran = rf"^({passed}|{skipped})$"
    assert len(re.findall(ran, log, re.M)) == 1 and not re.search(r"\d+ (failed|errors?)\b", log), log[-3000:]
    assert '"precision": "fp32"' in log and '"ms_per_frame"' in log
    returned = list(out.iterdir())
    assert len(returned) <= 8 and (out / "model.safetensors.shards.json").is_file()


def test_gpu_session_script_leaves_its_own_dry_run_out_of_its_tests():
    """The script's default test selection runs the CUDA tests and not the dry run above, which would run the whole
    script again, inside its own tests stage, on the GPU machine."""
    repo = Path(__file__).resolve().parents[1]
    default = re.search(r'"\$\{TESTS=([^}]*)\}"', (repo / "examples" / "gpu_session.sh").read_text())
    assert default, "the script no longer sets a default TESTS"
    res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "tests/test_kit.py", "tests/test_cuda.py", "-k", default[1]],
                         cwd=repo, capture_output=True, text=True, timeout=300)  # fmt: skip
    selected = re.findall(r"^tests/\S+::(\w+)", res.stdout, re.M)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "test_cuda_training_steps" in selected and "test_cuda_upscale_matches_the_cpu" in selected, selected
    assert not any(name.startswith("test_gpu_session_script") for name in selected), selected


def test_gpu_session_installs_pyav_before_the_chunk_trains():
    # The presets' real-video mix compresses through PyAV, which the GPU machine has only from the carried wheel:
    # a chunk started before the install stops at its first line (the dry run above carries no wheel to show it).
    script = (Path(__file__).resolve().parents[1] / "examples" / "gpu_session.sh").read_text()
    assert script.index("pip install") < script.index("stvup kit chunk") < script.index("-m pytest")
