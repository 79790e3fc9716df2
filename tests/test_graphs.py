"""CUDA graphs of the window steps (stvup.upscaling.graphs), dry-run on a CPU through the replay stand-in, and the
correlation's three ways (stvup.model.pwcnet)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from stvup.errors import UsageError
from stvup.model import build_model
from stvup.model.pwcnet import CORRELATIONS, correlation
from stvup.upscaling.graphs import GraphedStep, RerunGraphs, graphed_twin
from stvup.upscaling.pipeline import Upscaler

from .test_upscale import _frames, _tiny


@pytest.mark.parametrize("md", [1, 4])
def test_the_correlations_agree(md):
    torch.manual_seed(0)
    f1, f2 = torch.randn(2, 5, 7, 9), torch.randn(2, 5, 7, 9)
    ref = correlation(f1, f2, md, "loop")
    assert ref.shape == (2, (2 * md + 1) ** 2, 7, 9)
    # The centre displacement is the plain channel mean of the product.
    assert torch.allclose(ref[:, (2 * md + 1) ** 2 // 2], (f1 * f2).mean(1), atol=1e-6)
    for mode in CORRELATIONS:
        assert torch.allclose(correlation(f1, f2, md, mode), ref, atol=1e-6), mode


def test_a_graphed_step_captures_once_per_input_and_returns_copies():
    backend = RerunGraphs()
    step = GraphedStep(lambda xs, t: [x * t for x in xs], backend, limit=2)
    a = step([torch.ones(2)], 2.0)
    b = step([torch.full((2,), 3.0)], 2.0)  # same shapes and value of t: the same graph, replayed
    assert backend.captures == 1 and a[0].tolist() == [2.0, 2.0] and b[0].tolist() == [6.0, 6.0]
    step([torch.ones(3)], 2.0)  # another shape
    step([torch.ones(2)], 0.5)  # another plain argument
    assert backend.captures == 2  # the second limit: the third input ran eagerly
    assert step([torch.ones(2)], 0.5)[0].tolist() == [0.5, 0.5]


def test_graphed_windows_give_the_eager_frames():
    """Every step replayed through the stand-in, which overwrites its outputs at each replay as a CUDA graph does:
    the frames equal eager ones only if each result is copied out before the next replay (the cached encoder
    features live for seven windows), including mirrored windows, tiles and the self-ensemble's copies."""
    for settings in ({"tile": None}, {"tile": 32, "ensemble": 2}):
        eager = Upscaler(_tiny(), device="cpu", precision="fp32", compile="off", **settings)
        graphed = Upscaler(_tiny(), device="cpu", precision="fp32", compile="off", **settings)
        backend = RerunGraphs()
        graphed._twin, graphed.compiled = graphed_twin(graphed.model, backend), True
        clip = _frames(6, h=40, w=56)
        a = [o.image for o in eager.stream(clip, Fraction(25), Fraction(75))]
        b = [o.image for o in graphed.stream(clip, Fraction(25), Fraction(75))]
        assert len(a) == len(b) == 18 and all(np.array_equal(x, y) for x, y in zip(a, b))
        assert backend.captures >= 5


def test_cuda_graphs_need_a_gpu_and_stvun(monkeypatch):
    import stvup.upscaling.pipeline as pipeline

    with pytest.raises(UsageError, match="needs a CUDA device"):
        Upscaler(_tiny(), device="cpu", compile="cuda-graphs")
    # Past the device check (as on a GPU; here the CPU passes it and the replay stand-in captures), STVUN is graphed
    # and a two-stream network is refused: its steps are not STVUN's windows.
    accelerate = pipeline.accelerate

    def on_a_gpu(model, device, memory_format="auto", compile="auto"):
        return accelerate(model, device, memory_format)

    monkeypatch.setattr(pipeline, "accelerate", on_a_gpu)
    monkeypatch.setattr(pipeline, "CudaGraphs", lambda device: RerunGraphs())
    assert Upscaler(_tiny(), device="cpu", compile="cuda-graphs").compiled
    two_stream = build_model("two-stream:espcn-tiny+dvf-tiny").eval()
    with pytest.raises(UsageError, match="works with STVUN networks, not two-stream ones"):
        Upscaler(two_stream, device="cpu", compile="cuda-graphs")
    assert not Upscaler(two_stream, device="cpu", compile="off").compiled  # the network itself is welcome


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_match_eager_on_the_gpu():
    eager = Upscaler(_tiny(), device="cuda", precision="fp32", tile=None, compile="off")
    graphed = Upscaler(_tiny(), device="cuda", precision="fp32", tile=None, compile="cuda-graphs")
    clip = _frames(6)
    a = [o.image for o in eager.stream(clip, Fraction(25), Fraction(50))]
    b = [o.image for o in graphed.stream(clip, Fraction(25), Fraction(50))]
    assert len(a) == len(b) == 12
    assert max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b)) <= 1
