"""Speed settings (stvup.upscaling.acceleration): memory layout and torch.compile change speed, not the pictures."""

from __future__ import annotations

import json
import os
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


def _fake_compile(monkeypatch, calls: list | None = None, fail: bool = False) -> None:
    """``torch.compile`` recorded (the part's type and mode) and left eager, or a part that fails when called:
    compiling for real takes minutes (test_compiled_network_gives_the_same_pictures does it once)."""

    class Broken(torch.nn.Module):
        def forward(self, *args, **kwargs):
            raise RuntimeError("inductor: C++ compile error (made up)")

    def compile(part, **kw):
        if calls is not None:
            calls.append((type(part).__name__, kw["mode"]))
        return Broken() if fail else part

    monkeypatch.setattr(torch, "compile", compile)
    monkeypatch.setattr("stvup.upscaling.acceleration.shutil.which", lambda name: f"/usr/bin/{name}")


def test_compile_option_reaches_every_part_of_the_network(weights, tmp_path, monkeypatch):  # noqa: F811
    """``--compile`` on the command line compiles each part with the mode asked, and the cache's list of compiled
    shapes learns the shape, as with ``auto``."""
    from stvup.upscaling.acceleration import compile_summary

    monkeypatch.setenv("STVUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache" / "inductor"))
    calls: list[tuple[str, str]] = []
    _fake_compile(monkeypatch, calls)
    src = make_clip(tmp_path / "in.mp4", width=40, height=24, frames=4, audio=None)
    out = tmp_path / "out.mp4"
    res = CliRunner().invoke(cli, ["upscale", str(src), "-o", str(out), "--weights", str(weights), "--device", "cpu",
                                   "--compile", "max-autotune", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["compiled"] is True and compile_summary()["compiled_shapes"] == 1
    assert sorted(calls) == [(name, "max-autotune-no-cudagraphs") for name in ("Decoder", "EFST", "Encoder", "PWCNet")]
    calls.clear()
    res = CliRunner().invoke(cli, ["bench", "--size", "64x48", "--frames", "2", "--weights", str(weights), "--device",
                                   "cpu", "--compile", "default", "--memory-format", "contiguous", "--no-baseline",
                                   "--job-frames", "100", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert (report["compile"], report["compiled"], report["memory_format"]) == ("default", True, "contiguous")
    assert report["warmup_s"] > 0 and len(calls) == 4 and report["job_frames"] == 100 and report["first_compile"]
    # The one-off cost spread over the job: never below the steady time per frame.
    assert report["amortised_s_per_frame"] == pytest.approx(
        report["stages_s_per_frame"]["total"] + report["compile_s"] / 100
    )


def test_auto_compiles_a_job_only_when_it_repays_the_compile(monkeypatch, tmp_path):
    """``auto``: a short job stays eager; a long one compiles, and the shape is remembered, so that a job long
    enough to repay only a cached compile compiles on the second run and not on a fresh cache."""
    from stvup.upscaling.acceleration import compile_pays

    assert not compile_pays(100, cached=False) and compile_pays(1000, cached=False)
    assert not compile_pays(20, cached=True) and compile_pays(100, cached=True)
    monkeypatch.setenv("STVUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache" / "inductor"))
    calls: list = []
    _fake_compile(monkeypatch, calls)
    # stvun-tiny is priced as stvun-small: 6.6e-7 s per output pixel in bf16, 160x96 = 0.010 s a frame.
    up = Upscaler(_tiny(), device="cpu", precision="bf16", tile=None)
    assert not up.plan_compile(1000, 24, 40) and not up.compiled and not calls  # 10 s of eager work
    assert up.plan_compile(100_000, 24, 40) and up.compiling and len(calls) == 4  # 17 min of it
    eager = Upscaler(_tiny(), device="cpu", precision="bf16", tile=None, compile="off")
    a, b = _outputs(up), _outputs(eager)
    assert not up.compiling and all((x == y).all() for x, y in zip(a, b))  # the fake compile is the eager network
    again = Upscaler(_tiny(), device="cpu", precision="bf16", tile=None)
    assert again.plan_compile(10_000, 24, 40) and not again.compiling  # 100 s of work repays a cached compile
    assert not again.plan_compile(10_000, 40, 40)  # another frame size (padded: 48 rows, not 32) is not cached
    assert not again.plan_compile(None, 24, 40)  # a job of unknown length stays eager
    assert not Upscaler(_tiny(), device="cpu", tile=None, compile="off").plan_compile(10**9, 24, 40)


def test_auto_without_a_c_compiler_runs_eager_and_says_why(monkeypatch, weights, tmp_path):  # noqa: F811
    monkeypatch.setattr("stvup.upscaling.acceleration.shutil.which", lambda name: None)
    up = Upscaler(_tiny(), device="cpu", tile=None)
    assert not up.plan_compile(10**9, 24, 40)
    assert up.notes == ["not compiled (no C compiler (gcc or clang) on the PATH): frames run about 1.3x slower than "
                        "compiled"]  # fmt: skip
    with pytest.raises(UsageError, match="needs a C compiler: no C compiler"):
        Upscaler(_tiny(), device="cpu", compile="default")
    src = make_clip(tmp_path / "in.mp4", width=40, height=24, frames=4, audio=None)
    res = CliRunner().invoke(cli, ["upscale", str(src), "-o", str(tmp_path / "o.mp4"), "--weights", str(weights),
                                   "--compile", "default"])  # fmt: skip
    assert res.exit_code != 0 and "needs a C compiler" in res.output and "Traceback" not in res.output


def test_a_failed_compile_goes_on_eager_with_the_same_frames(monkeypatch, weights, tmp_path):  # noqa: F811
    """A compile that breaks at the first window (here a made-up compiler error) leaves an ``auto`` job eager:
    every frame made, the same as eager's, and one line saying what happened. The progress said "compiling"
    until then."""
    from stvup.api import load_upscaler, upscale

    _fake_compile(monkeypatch, fail=True)
    monkeypatch.setattr("stvup.upscaling.pipeline.compile_pays", lambda seconds, cached: True)
    src = make_clip(tmp_path / "in.mp4", width=40, height=24, frames=6, audio=None)
    stages: list[str] = []
    # Lossless output: x264 encodes of the same frames are not always identical (up to 14 levels apart in separate
    # runs of this clip), FFV1's are.
    up = load_upscaler(weights, device="cpu")
    res = upscale(src, tmp_path / "auto.mkv", upscaler=up, time=2, codec="ffv1",
                  progress=lambda p: stages.append(p.stage))  # fmt: skip
    ref = upscale(src, tmp_path / "eager.mkv", weights=weights, device="cpu", time=2, codec="ffv1", compile="off")
    assert res.frames_out == ref.frames_out == 12 and not res.compiled and not ref.compiled
    assert [p for p in res.problems if p.startswith("compiling failed, went on without (RuntimeError: inductor")]
    assert stages[0] == "compiling" and stages[-1] == ""
    assert not up.plan_compile(10**6, 24, 40)  # the next job of a batch does not try again
    from stvup.video import iter_frames

    with iter_frames(tmp_path / "auto.mkv") as x, iter_frames(tmp_path / "eager.mkv") as y:
        assert all((a.image == b.image).all() for a, b in zip(x, y))


@pytest.mark.skipif(not shutil.which("cc") and not shutil.which("gcc"), reason="torch.compile on a CPU needs gcc")
def test_compiled_network_gives_the_same_pictures():
    """Real inductor compiling of the tiny network (the slowest test: about a minute and a half on two cores). Five
    frames: every window is mirrored at an end, each pattern of repeated frames differently, and none of them
    compiles the fusion again (each would be another 30 s on a real network)."""
    from torch._dynamo.utils import counters

    eager = Upscaler(_tiny(), device="cpu", precision="fp32", tile=None, compile="off")
    compiled = Upscaler(_tiny(), device="cpu", precision="fp32", tile=None, compile="default")
    counters.clear()
    a, b = _outputs(eager), _outputs(compiled)
    assert max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b)) <= 1
    # Graphs: encoder, fusion, PWC-Net, and the decoder twice (the centre's channels-last input, the warped one).
    assert counters["stats"]["unique_graphs"] <= 5, dict(counters["stats"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_turns_on_cudnn_autotuning_and_matches_the_cpu():
    torch.backends.cudnn.benchmark = False
    gpu = Upscaler(_tiny(), device="cuda", precision="fp32", tile=None)
    assert torch.backends.cudnn.benchmark and gpu.memory_format_name == "contiguous"
    cpu = Upscaler(_tiny(), device="cpu", precision="fp32", tile=None)
    a, b = _outputs(gpu), _outputs(cpu)
    assert max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b)) <= 1


def test_a_batch_counts_the_clips_queued_behind_each_job(monkeypatch, weights, tmp_path):  # noqa: F811
    """Three short clips of one size: the first job weighs all three clips' frames (a compile would serve them all),
    the last only its own; a clip of another size counts alone."""
    from stvup.api import batch

    asked: list[float] = []
    monkeypatch.setattr("stvup.upscaling.pipeline.compile_pays", lambda seconds, cached: asked.append(seconds))
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        make_clip(folder / f"{name}.mp4", width=40, height=24, frames=4, audio=None)
    make_clip(folder / "d.mp4", width=64, height=48, frames=4, audio=None)
    result = batch(folder, tmp_path / "out", weights=weights, device="cpu", time=2)
    assert not result.failures and len(result.results) == 4
    one = asked[2]  # clip c: its own 8 output frames
    assert asked[:3] == pytest.approx([3 * one, 2 * one, one])
    assert asked[3] == pytest.approx(one * (64 * 48) / (40 * 24))
    asked.clear()
    batch(folder, tmp_path / "out", weights=weights, device="cpu", time=2)  # all complete: nothing asked
    assert asked == []


def test_the_compile_cache_is_stvups_unless_the_user_chose_one(monkeypatch, tmp_path):
    """Importing torch._dynamo sets TORCHINDUCTOR_CACHE_DIR to PyTorch's /tmp default: that is not a choice."""
    import torch._dynamo  # noqa: F401 - sets the variable if unset
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from stvup.upscaling.acceleration import compile_summary, inductor_dir, use_persistent_cache

    monkeypatch.setenv("STVUP_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert use_persistent_cache() == tmp_path / "mine" / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "chosen"))
    assert inductor_dir() == tmp_path / "chosen" and compile_summary()["cache"] == str(tmp_path / "chosen")
