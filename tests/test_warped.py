"""Warped new frames (``--new-frames warped``): the upsampled frames around each new one, moved by the flow."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.errors import UsageError
from stvup.model.pwcnet import backward_warp
from stvup.model.stvun import blend_pair, intermediate_flows
from stvup.model.weights import save_safetensors
from stvup.upscaling.pipeline import Upscaler
from stvup.upscaling.tiling import FIXED, to_float
from stvup.upscaling.warped import upsample_flows, warp_outputs

from .conftest import make_clip
from .test_upscale import _frames, _tiny

pytest.importorskip("cv2")


def _dis() -> torch.nn.Module:
    return _tiny(flow="dis-medium-x2")


@pytest.mark.parametrize("t", [0.25, 0.5, 0.75])
def test_warping_in_blocks_of_rows_is_warping_the_whole_frame(t):
    torch.manual_seed(0)
    a, b = (torch.rand(1, 3, 90, 110) * 2 - 1 for _ in range(2))
    flows = (torch.randn(1, 2, 90, 110) * 7, torch.randn(1, 2, 90, 110) * 7)
    ft_a, ft_b = intermediate_flows(*flows, t)
    whole = blend_pair(backward_warp(a, ft_a), backward_warp(b, ft_b), t, "linear")
    for rows in (5, 32, 1000):
        assert float((warp_outputs(a, b, flows, t, "linear", rows) - whole).abs().max()) < 1e-4, rows
    # LR flows upsampled a block of rows at a time are the whole frame's upsampled flows.
    lr = (torch.randn(1, 2, 30, 36) * 2, torch.randn(1, 2, 30, 36) * 2)
    a3, b3 = a[:, :, :, :108], b[:, :, :, :108]
    upsampled = warp_outputs(a3, b3, upsample_flows(lr, 3), t, "linear", rows=1000)
    for rows in (4, 17, 64):
        assert float((warp_outputs(a3, b3, lr, t, "linear", rows, scale=3) - upsampled).abs().max()) < 1e-4, rows
    # Frames stored as 16-bit integers (tiled) come back as such, with the same picture.
    fixed = [(x * FIXED).round().to(torch.int16) for x in (a, b)]
    out = warp_outputs(*fixed, flows, t, "linear", rows=16)
    assert out.dtype == torch.int16 and float((to_float(out) - whole).abs().max()) < 1e-3


def test_flows_are_upsampled_onto_the_output_grid_in_its_pixels():
    f = torch.zeros(1, 2, 6, 8)
    f[:, 0] = 1.5  # LR pixels
    up, _ = upsample_flows((f, f), 4)
    assert up.shape == (1, 2, 24, 32) and torch.allclose(up[:, 0], torch.full((1, 24, 32), 6.0))


def test_auto_chooses_warped_for_a_classical_flow_and_joint_for_pwc():
    assert Upscaler(_dis(), device="cpu").new_frames == "warped"
    assert Upscaler(_tiny(), device="cpu").new_frames == "joint"
    assert Upscaler(_tiny(), device="cpu", new_frames="warped").new_frames == "warped"
    with pytest.raises(UsageError, match="--new-frames"):
        Upscaler(_tiny(), device="cpu", new_frames="magic")
    one, other = Upscaler(_dis(), device="cpu"), Upscaler(_dis(), device="cpu", new_frames="joint")
    assert one.fingerprint() != other.fingerprint()  # a resumed run never mixes the two


def test_new_frames_are_the_kept_frames_around_them_warped_by_the_flow():
    frames = _frames(6, h=32, w=48)
    model = _dis()
    warped = list(Upscaler(model, device="cpu", precision="fp32", new_frames="warped").stream(frames, Fraction(25),
                                                                                             Fraction(75)))  # fmt: skip
    joint = list(Upscaler(model, device="cpu", precision="fp32", new_frames="joint").stream(frames, Fraction(25),
                                                                                           Fraction(75)))  # fmt: skip
    assert [o.index for o in warped] == list(range(18)) == [o.index for o in joint]
    kept = [o.image for o in warped if o.t_in == 0]
    # Kept frames come from the same spatial path either way.
    assert all(np.array_equal(o.image, j.image) for o, j in zip(warped, joint) if o.t_in == 0)
    # A new frame is Eqs. 4 and 6 on the two kept frames, with the network's flow upsampled to their grid.
    x = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 127.5 - 1 for f, _ in frames]
    for o in warped:
        if o.t_in == 0 or o.source + 1 >= len(frames):
            continue
        i = o.source
        flows = upsample_flows(model.estimate_flows(x[i], x[i + 1]), 4)
        a, b = (torch.from_numpy(k).permute(2, 0, 1)[None].float() / 127.5 - 1 for k in (kept[i], kept[i + 1]))
        expected = warp_outputs(a, b, flows, float(o.t_in), "linear")
        expected = ((expected.clamp(-1, 1) + 1) * 127.5)[0].permute(1, 2, 0).numpy()
        # The pipeline blends the kept frames before rounding and clamping them; this reference, after.
        diff = np.abs(o.image.astype(float) - expected)
        assert diff.mean() < 0.3 and np.percentile(diff, 99) <= 1.01, (i, o.t_in)
    # New frames differ from the joint decoder's: another path.
    assert any(not np.array_equal(o.image, j.image) for o, j in zip(warped, joint) if o.t_in != 0)


def test_warped_streams_keep_shots_apart_and_resume_exactly():
    ys, xs = np.mgrid[0:40, 0:56]
    smooth = np.stack([120 + 80 * np.sin(xs / 6), 120 + 80 * np.cos(ys / 5), 100 + 0 * xs], -1)
    a, b = smooth.astype(np.uint8), (255 - smooth[::-1]).astype(np.uint8)  # a cut between inputs 3 and 4
    frames = [(np.roll(a if i < 4 else b, i, axis=1), Fraction(i, 25)) for i in range(8)]
    up = Upscaler(_dis(), device="cpu", precision="fp32")
    cuts = []
    outs = list(up.stream(frames, Fraction(25), Fraction(50), on_cut=lambda i, t: cuts.append(i)))
    assert cuts == [4]
    assert [o.index for o in outs] == list(range(16))
    # Frame 7 (between inputs 3 and 4, across the cut) copies frame 3: no blend of two shots.
    assert np.array_equal(outs[7].image, outs[6].image)
    later = list(Upscaler(_dis(), device="cpu", precision="fp32").stream(frames, Fraction(25), Fraction(50), skip=9))
    assert [o.index for o in later] == list(range(9, 16))
    assert all(np.array_equal(o.image, outs[o.index].image) for o in later)


def test_tiled_warped_frames_match_whole_ones():
    frames = _frames(5, h=64, w=96)
    whole = [o.image for o in Upscaler(_dis(), device="cpu", precision="fp32", tile="off").stream(
        frames, Fraction(25), Fraction(50))]  # fmt: skip
    tiled = [o.image for o in Upscaler(_dis(), device="cpu", precision="fp32", tile=48).stream(
        frames, Fraction(25), Fraction(50))]  # fmt: skip
    for w, t in zip(whole, tiled):  # tiles blend as in a joint run (tests/test_upscale.py)
        mse = np.mean((w.astype(float) - t.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 38


def test_cli_new_frames_option(tmp_path):
    weights = tmp_path / "dis.safetensors"
    save_safetensors(_dis().state_dict(), weights, {"stvup_model": "stvun-tiny", "stvup_flow": "dis-medium-x2"})
    clip = make_clip(tmp_path / "c.mp4", width=64, height=48, frames=5, audio=None)
    outs = {}
    for mode in ("warped", "joint"):
        out = tmp_path / f"{mode}.mp4"
        res = CliRunner().invoke(cli, ["upscale", str(clip), "-o", str(out), "--weights", str(weights), "--time", "2",
                                       "--new-frames", mode, "--device", "cpu", "--json"])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["frames_out"] == 10
        outs[mode] = out.read_bytes()
    assert outs["warped"] != outs["joint"]
    res = CliRunner().invoke(cli, ["upscale", str(clip), "--weights", str(weights), "--new-frames", "sideways"])
    assert res.exit_code == 2 and "--new-frames" in res.output


def test_splatting_moves_pixels_forward_and_leaves_holes_where_nothing_lands():
    from stvup.upscaling.warped import splat

    values = torch.arange(2 * 24 * 32, dtype=torch.float32).view(1, 2, 24, 32)
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, 0] = 3.0  # everything moves 3 pixels right
    flow[:, 1, :, :16] = -2.0  # the left half also 2 up
    moved, coverage = splat(values, flow, torch.ones(1, 1, 24, 32))
    assert torch.equal(moved[:, :, 10, 20], values[:, :, 10, 17])
    assert torch.equal(moved[:, :, 5, 10], values[:, :, 7, 7])
    assert (coverage[0, 0, :, :3] == 0).all() and (moved[:, :, :, :3] == 0).all()  # uncovered on the left
    assert (coverage[0, 0, 22:, 3:19] == 0).all()  # the left half left the bottom rows empty
    # Half a pixel: each pixel shares itself between two neighbours, each receives half of two.
    half = torch.zeros(1, 2, 24, 32)
    half[:, 0] = 0.5
    moved, coverage = splat(values, half, torch.ones(1, 1, 24, 32))
    assert torch.allclose(moved[:, :, 10, 20], (values[:, :, 10, 19] + values[:, :, 10, 20]) / 2)
    assert torch.allclose(coverage[0, 0, :, 1:], torch.ones(24, 31)) and torch.allclose(
        coverage[0, 0, :, 0], torch.full((24,), 0.5)
    )


def test_splatted_flows_follow_what_is_in_front_where_a_piece_covers_the_background():
    """A square moving right over a still background: at t = 1/2 the splatted flow back to A is the square's inside
    it and the background's outside, and A cannot show the background the square uncovers behind it."""
    from stvup.upscaling.warped import splatted_flows

    h, w = 40, 60
    f_ab, f_ba = torch.zeros(1, 2, h, w), torch.zeros(1, 2, h, w)
    f_ab[:, 0, 10:30, 10:30] = 8.0  # the square is at x 10..29 in A and 18..37 in B
    f_ba[:, 0, 10:30, 18:38] = -8.0
    ft_a, ft_b, seen_a, seen_b = splatted_flows((f_ab, f_ba), 0.5)
    # inside the square at t (x 14..33); the background that the square covers in B weighs in a little (softmax)
    assert torch.allclose(ft_a[0, 0, 20, 16:32], torch.full((16,), -4.0), atol=0.1)
    assert torch.allclose(ft_a[0, 0, 20, 40:], torch.zeros(20))
    assert torch.allclose(ft_b[0, 0, 20, 16:32], torch.full((16,), 4.0), atol=0.1)
    # Behind the square (x 10..13 at t) A cannot show the background, B can; in front of it (x 34..37) the reverse.
    assert float(seen_a[0, 0, 20, 10:14].max()) < 0.1 and float(seen_b[0, 0, 20, 10:14].min()) > 0.9
    assert float(seen_b[0, 0, 20, 34:38].max()) < 0.1 and float(seen_a[0, 0, 20, 34:38].min()) > 0.9


def test_splat_blend_beats_the_linear_one_where_things_cross_given_the_true_flow():
    from stvup.evaluation.flowcheck import make_pair

    from .test_flow import _textures

    pair = make_pair(np.random.default_rng(5), _textures(), "objects", 12.0, (96, 160))
    middle, known, occluded = pair.middle(0.5)
    a, b = (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1 for x in (pair.a, pair.b))
    flows = tuple(torch.from_numpy(f).permute(2, 0, 1)[None] for f in (pair.ab, pair.ba))
    truth = torch.from_numpy(middle).float()
    errors = {}
    for blend in ("linear", "splat"):
        out = (warp_outputs(a, b, flows, 0.5, blend)[0].permute(1, 2, 0) + 1) * 127.5
        errors[blend] = float((out - truth).abs().mean(-1)[torch.from_numpy(occluded & known)].mean())
    assert errors["splat"] < 0.7 * errors["linear"]
