"""The whole path on a CUDA GPU: upscale, bench and training (skipped without a GPU; README, "A GPU session")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.video import iter_frames

from .conftest import make_clip
from .test_train import _config, _texture_clip
from .test_upscale import weights  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cuda_upscale_matches_the_cpu(weights, tmp_path):  # noqa: F811
    src = make_clip(tmp_path / "in.mp4", width=48, height=32, frames=6, audio=None)
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.mkv"
        res = _run("upscale", src, "-o", out, "--weights", weights, "--time", "2", "--device", device,
                   "--precision", "fp32", "--codec", "ffv1", "--json")  # fmt: skip
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["device"].startswith(device)
        with iter_frames(out) as stream:
            outs[device] = [f.image.astype(int) for f in stream]
    assert len(outs["cpu"]) == len(outs["cuda"]) == 12
    assert max(int(np.abs(a - b).max()) for a, b in zip(outs["cpu"], outs["cuda"])) <= 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_bench_in_low_precision(weights, precision):  # noqa: F811
    res = _run("bench", "--size", "128x96", "--frames", "3", "--weights", weights, "--device", "cuda",
               "--precision", precision, "--no-baseline", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["device"].startswith("cuda") and report["precision"] == precision
    assert report["peak_memory_mb"] > 0 and report["warmup_s"] is not None


def test_cuda_training_steps(tmp_path):
    from stvup.training.loop import train

    result = train(_config(tmp_path, device="cuda", precision="bf16", pretrain_steps=2, steps=2),
                   clips=[_texture_clip()])  # fmt: skip
    assert result.steps == 4 and result.weights.is_file()
    assert all(np.isfinite(v) for v in result.final_losses.values())
