"""The geometric self-ensemble (``--ensemble``): the symmetries and their grid correction, the averaged streaming
run, and the option through the library and the CLI."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import stvup.upscaling.pipeline as pipeline
from stvup.cli.main import cli
from stvup.errors import UsageError
from stvup.model import build_model
from stvup.model.weights import save_safetensors
from stvup.upscaling.ensemble import ensemble_transforms
from stvup.upscaling.pipeline import Upscaler
from stvup.upscaling.tiling import estimate_bytes, frames_bytes

from .helpers import seeded_state


def _tiny() -> torch.nn.Module:
    model = build_model("stvun-tiny")
    state = seeded_state(model)
    state["decoder.rconv1.weight"] = state["decoder.rconv1.weight"] * 0.02
    model.load_state_dict(state)
    return model.eval()


def _frames(n: int, h: int, w: int) -> list[tuple[np.ndarray, Fraction]]:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (h + n, w + n, 3), dtype=np.uint8)
    return [(np.ascontiguousarray(base[i : i + h, i : i + w]), Fraction(i, 25)) for i in range(n)]


def _grid_upsample(x: torch.Tensor, s: int) -> torch.Tensor:
    """Linear interpolation that puts LR pixel i on output pixel s·i (the DUF grid), clamped past the last pixel:
    a stand-in for a network trained on that grid, exact enough to show a one-pixel misplacement."""
    for dim in (2, 3):
        n = x.shape[dim]
        pos = torch.arange(n * s, dtype=torch.float64) / s
        i0 = pos.floor().long().clamp(max=n - 1)
        i1 = (i0 + 1).clamp(max=n - 1)
        f = (pos - i0).to(x.dtype).view([-1 if d == dim else 1 for d in range(4)])
        x = x.index_select(dim, i0) * (1 - f) + x.index_select(dim, i1) * f
    return x


@pytest.mark.parametrize("scale", [2, 4])
def test_each_symmetry_maps_back_onto_the_networks_grid(scale):
    """forward → a DUF-grid upsampler → inverse gives the upsampler's own output for all eight symmetries; a flip
    without the scale − 1 correction would be off by that many output pixels."""
    x = torch.randn(1, 3, 16, 24, dtype=torch.float64)
    ref = _grid_upsample(x, scale)
    for g in ensemble_transforms(8):
        moved = g.forward(x, 8)
        size = (16 + 8 * (2 in g.flip), 24 + 8 * (3 in g.flip))
        assert moved.shape[-2:] == (size[::-1] if g.transpose else size)
        back = g.inverse(_grid_upsample(moved, scale), 8, scale)
        torch.testing.assert_close(back, ref, atol=1e-12, rtol=0)
    naive = ensemble_transforms(2)[1]
    plain = _grid_upsample(x.flip(3), scale).flip(3)
    assert (plain - ref).abs().max() > 0.1 and naive.flip == (3,)


@pytest.mark.parametrize("scale", [2, 4])
def test_flips_need_no_correction_on_the_block_centre_grid(scale):
    """Weights trained on real video's grid (LR pixel i on the centre of its block) are stood in for by bilinear
    upsampling with align_corners=False: every symmetry maps back exactly with grid="block-centre", and the DUF
    correction would move a flipped copy scale − 1 pixels off."""
    x = torch.randn(1, 3, 16, 24, dtype=torch.float64)

    def up(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(t, scale_factor=scale, mode="bilinear", align_corners=False)

    ref = up(x)
    for g in ensemble_transforms(8):
        back = g.inverse(up(g.forward(x, 8)), 8, scale, "block-centre")
        torch.testing.assert_close(back, ref, atol=1e-12, rtol=0)
    flip = ensemble_transforms(2)[1]
    assert (flip.inverse(up(flip.forward(x, 8)), 8, scale, "duf") - ref).abs().max() > 0.1


def test_upscaler_ensemble_follows_the_weights_grid(tmp_path):
    """An untrained (zero-head) STVUN upsamples bilinearly on the block-centre grid, so its two-copy ensemble equals
    the plain run when the weights say block-centre, and not when they say duf; the grid comes from the file."""
    from stvup.training.steps import zero_heads
    from stvup.upscaling.loader import load_upscaler

    model = build_model("stvun-tiny")
    zero_heads(model)  # zero residual head and zero flow: bilinear upsampling and frame blending
    frames = _frames(8, 32, 48)
    outputs = {}
    for grid in ("block-centre", "duf"):
        path = tmp_path / f"{grid}.safetensors"
        save_safetensors(model.state_dict(), path, {"stvup_model": "stvun-tiny", "stvup_grid": grid})
        plain = load_upscaler(path, device="cpu", precision="fp32", tile="off")
        assert plain.grid == grid
        two = load_upscaler(path, device="cpu", precision="fp32", tile="off", ensemble=2)
        a = [o.image.astype(int) for o in plain.stream(iter(frames), Fraction(25), Fraction(2))]
        b = [o.image.astype(int) for o in two.stream(iter(frames), Fraction(25), Fraction(2))]
        outputs[grid] = max(int(np.abs(x - y).max()) for x, y in zip(a, b))
    assert outputs["block-centre"] <= 1 and outputs["duf"] > 10


def test_sizes_and_order():
    assert [len(ensemble_transforms(n)) for n in (1, 2, 4, 8)] == [1, 2, 4, 8]
    eight = ensemble_transforms(8)
    assert eight[0].flip == () and not eight[0].transpose and len(set(eight)) == 8
    assert [g.transpose for g in eight] == [False] * 4 + [True] * 4
    for bad in (0, 3, 16):
        with pytest.raises(UsageError, match="--ensemble"):
            ensemble_transforms(bad)
    with pytest.raises(UsageError, match="--ensemble"):
        Upscaler(_tiny(), device="cpu", ensemble=3)


def test_eight_copies_make_the_run_transpose_equivariant():
    """Averaged over all eight symmetries, the output of transposed frames is the transposed output (up to the
    order of the sums), for any weights; the plain run of the same random network is not."""
    model = _tiny()
    frames = _frames(4, 32, 48)
    flipped = [(np.ascontiguousarray(img.transpose(1, 0, 2)), t) for img, t in frames]

    def run(ensemble, clip):
        up = Upscaler(model, device="cpu", precision="fp32", tile="off", ensemble=ensemble)
        return [o.image.astype(int) for o in up.stream(clip, Fraction(25), Fraction(50), scene_threshold=None)]

    for ensemble, equivariant in ((8, True), (1, False)):
        a, b = run(ensemble, frames), run(ensemble, flipped)
        assert len(a) == len(b) == 8
        diffs = [np.abs(x.transpose(1, 0, 2) - y) for x, y in zip(a, b)]
        if equivariant:
            assert max(d.max() for d in diffs) <= 1 and np.mean([d.mean() for d in diffs]) < 0.01
        else:
            assert np.mean([d.mean() for d in diffs]) > 0.5


def test_ensemble_runs_tiled_and_two_copies_differ_from_one():
    model = _tiny()
    frames = _frames(3, 80, 112)
    runs = {}
    for tile, ensemble in (("off", 1), ("off", 4), (48, 4)):
        up = Upscaler(model, device="cpu", precision="fp32", tile=tile, tile_overlap=16, ensemble=ensemble)
        runs[(tile, ensemble)] = [o.image for o in up.stream(frames, Fraction(25), Fraction(50))]
    whole, tiled, plain = runs[("off", 4)], runs[(48, 4)], runs[("off", 1)]
    assert len(whole) == len(tiled) == 6 and whole[0].shape == (320, 448, 3)
    for a, b in zip(whole, tiled):  # tiles blend as in a plain run (tests/test_upscale.py)
        mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 38
    assert np.abs(whole[1].astype(int) - plain[1].astype(int)).mean() > 0.5


def test_ensemble_changes_the_fingerprint_and_the_memory_plan(monkeypatch):
    model = _tiny()
    one, eight = (Upscaler(model, device="cpu", precision="fp32", ensemble=n) for n in (1, 8))
    assert one.fingerprint() != eight.fingerprint()
    # A budget that holds a whole 240×136 frame's window with one copy of its features, not with eight: the eight
    # copies then either tile the frame or stop keeping features between windows.
    need = estimate_bytes("stvun-tiny", "fp32", 240 * 136) + frames_bytes(240 * 136 * 16, 2, tiled=False)
    monkeypatch.setattr(pipeline, "memory_budget", lambda device: need + 3 * one._cached_bytes(136, 240))
    assert one.plan_tile(136, 240) is None and one.keep_features
    assert (eight.plan_tile(136, 240), eight.keep_features) != (None, True)


def test_cli_ensemble_option(clips, tmp_path):
    weights = tmp_path / "tiny.safetensors"
    save_safetensors(_tiny().state_dict(), weights, {"stvup_model": "stvun-tiny"})
    runner = CliRunner()
    res = runner.invoke(cli, ["upscale", str(clips["aac"]), "-o", str(tmp_path / "o.mp4"), "--weights", str(weights),
                              "--json", "--ensemble", "2", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["ensemble"] == 2 and data["frames_out"] == 12
    res = runner.invoke(cli, ["upscale", str(clips["aac"]), "-o", str(tmp_path / "p.mp4"), "--weights", str(weights),
                              "--ensemble", "3"])  # fmt: skip
    assert res.exit_code == 2 and "--ensemble" in res.output and not (tmp_path / "p.mp4").exists()
    res = runner.invoke(cli, ["bench", "--size", "64x48", "--frames", "3", "--weights", str(weights), "--device", "cpu",
                              "--ensemble", "2", "--json", "--no-baseline"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["ensemble"] == 2
