"""Speed settings (stvup.upscaling.acceleration): memory layout and torch.compile change speed, not the pictures."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.errors import UsageError
from stvup.upscaling.pipeline import Upscaler

from .conftest import make_clip
from .test_upscale import _frames, _tiny, weights  # noqa: F401 - the fixture


def _outputs(upscaler: Upscaler) -> list[np.ndarray]:
    return [o.image for o in upscaler.stream(_frames(5), Fraction(25), Fraction(50))]


def test_memory_formats_give_the_same_pictures():
    torch.manual_seed(0)
    last = Upscaler(_tiny(), device="cpu", precision="fp32", tile=None, memory_format="channels-last")
    first = Upscaler(_tiny(), device="cpu", precision="fp32", tile=None, memory_format="contiguous")
    assert last.memory_format_name == "channels-last" and first.memory_format_name == "contiguous"
    assert Upscaler(_tiny(), device="cpu", tile=None).memory_format_name == "channels-last"  # auto on a CPU
    a, b = _outputs(last), _outputs(first)
    assert len(a) == len(b) == 10
    assert max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b)) <= 1
    # Layout and compiling are not part of the fingerprint: a run resumes across them.
    assert last.fingerprint() == first.fingerprint()


def test_unknown_settings_are_refused():
    with pytest.raises(UsageError, match="unknown compile mode 'fast'"):
        Upscaler(_tiny(), device="cpu", compile="fast")
    with pytest.raises(UsageError, match="unknown memory format"):
        Upscaler(_tiny(), device="cpu", memory_format="nhwc")


def test_compile_option_reaches_every_part_of_the_network(weights, tmp_path, monkeypatch):  # noqa: F811
    """``--compile`` on the command line compiles each part with the mode asked (recorded, not run: compiling
    takes minutes; the next test compiles for real)."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: calls.append((type(self).__name__, kw["mode"])))
    monkeypatch.setattr(
        "stvup.upscaling.acceleration.shutil.which", lambda name: f"/usr/bin/{name}"
    )  # no compiler needed
    src = make_clip(tmp_path / "in.mp4", width=40, height=24, frames=4, audio=None)
    out = tmp_path / "out.mp4"
    res = CliRunner().invoke(cli, ["upscale", str(src), "-o", str(out), "--weights", str(weights), "--device", "cpu",
                                   "--compile", "max-autotune", "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(calls) == [(name, "max-autotune-no-cudagraphs") for name in ("Decoder", "EFST", "Encoder", "PWCNet")]
    calls.clear()
    res = CliRunner().invoke(cli, ["bench", "--size", "64x48", "--frames", "2", "--weights", str(weights), "--device",
                                   "cpu", "--compile", "default", "--memory-format", "contiguous", "--no-baseline",
                                   "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert (report["compile"], report["memory_format"]) == ("default", "contiguous")
    assert report["warmup_s"] > 0 and len(calls) == 4


@pytest.mark.skipif(not shutil.which("cc") and not shutil.which("gcc"), reason="torch.compile on a CPU needs gcc")
def test_compiled_network_gives_the_same_pictures():
    """Real inductor compiling of the tiny network (the slowest test: about a minute and a half on two cores)."""
    eager = Upscaler(_tiny(), device="cpu", precision="fp32", tile=None)
    compiled = Upscaler(_tiny(), device="cpu", precision="fp32", tile=None, compile="default")
    a, b = _outputs(eager), _outputs(compiled)
    assert max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b)) <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_turns_on_cudnn_autotuning_and_matches_the_cpu():
    torch.backends.cudnn.benchmark = False
    gpu = Upscaler(_tiny(), device="cuda", precision="fp32", tile=None)
    assert torch.backends.cudnn.benchmark and gpu.memory_format_name == "contiguous"
    cpu = Upscaler(_tiny(), device="cpu", precision="fp32", tile=None)
    a, b = _outputs(gpu), _outputs(cpu)
    assert max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b)) <= 1
