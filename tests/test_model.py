"""STVUN architecture: parameter count, checkpoint layout, shapes, gradients, layers and golden outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stvup.model import MODEL_CONFIGS, build_model, get_config
from stvup.model.pwcnet import backward_warp, correlation

from .helpers import seeded_frames, seeded_state

OFFICIAL_KEYS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "stvun_official_keys.json"
GOLDEN = Path(__file__).with_name("golden") / "stvun_tiny.json"


@pytest.fixture(scope="module")
def full_model():
    return build_model("stvun")


def test_parameter_count(full_model):
    assert sum(p.numel() for p in full_model.parameters()) == 30_882_276


@pytest.mark.skipif(not OFFICIAL_KEYS.is_file(), reason="../shared/reference is not present")
def test_state_dict_matches_official_checkpoint(full_model):
    ref = json.loads(OFFICIAL_KEYS.read_text())
    expected = [(name, list(shape)) for name, shape in ref["tensors"]]
    ours = [(k, list(v.shape)) for k, v in full_model.state_dict().items()]
    assert ours == expected  # same names, shapes and order
    assert ref["total_params"] == sum(math.prod(s) for _, s in ours)


def test_x2_variant_changes_only_the_residual_head(full_model):
    x2 = build_model("stvun-x2").state_dict()
    x4 = full_model.state_dict()
    assert x2.keys() == x4.keys()
    differ = sorted(k for k in x4 if x4[k].shape != x2[k].shape)
    assert differ == sorted(
        ["decoder.rconv0.0.weight", "decoder.rconv0.0.bias", "decoder.rconv1.weight", "decoder.rconv1.bias"]
    )


def test_unknown_model_and_bad_config():
    with pytest.raises(KeyError, match="unknown model"):
        build_model("stvun-huge")
    with pytest.raises(ValueError):
        get_config("stvun-tiny", scale=3)


@pytest.mark.parametrize("times", [[], [0.5], [1 / 3, 2 / 3], [i / 8 for i in range(1, 8)]])
def test_output_shapes(times):
    model = build_model("stvun-tiny").eval()
    frames = seeded_frames(b=2, h=16, w=32)
    with torch.no_grad():
        out = model(frames, times)
    assert out.shape == (1 + len(times), 2, 3, 64, 128)
    assert torch.isfinite(out).all()


def test_x2_output_shape_and_flow_on_upsampled_frames():
    # flow_upsample=4 is the paper's setting: PWC-Net on ×4 upsampled frames gives LR-size flow directly.
    model = build_model("stvun-tiny", scale=2, flow_upsample=4).eval()
    frames = seeded_frames(h=16, w=16)
    with torch.no_grad():
        run = model.run(frames, [0.25, 0.75])
    assert run.frames.shape == (3, 1, 3, 32, 32)
    assert run.lr_between.shape == (2, 1, 3, 16, 16)
    assert run.flows[0].shape == (1, 2, 16, 16)


def test_small_f2_shares_small_weights_and_runs_flow_on_x2_frames():
    # stvun-small-f2 differs from stvun-small only in where PWC-Net looks: the same tensors, so weights carry over.
    small = build_model("stvun-small").state_dict()
    f2 = build_model("stvun-small-f2")
    assert {k: v.shape for k, v in small.items()} == {k: v.shape for k, v in f2.state_dict().items()}
    model = build_model("stvun-tiny", flow_upsample=2).eval()
    model.load_state_dict(seeded_state(model))
    x3, x4 = seeded_frames(h=32, w=48)[3:5]
    seen = []
    hook = model.pwcnet.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        f34, f43 = model.estimate_flows(x3, x4)
        hook.remove()
        up = [F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) for x in (x3, x4)]
        raw = model.pwcnet(torch.cat(up), torch.cat(up[::-1]))  # (2, 2, 16, 24): a quarter of the ×2 frames
    assert seen == [(2, 3, 64, 96)]  # both directions in one batch, on ×2 frames
    expected = F.interpolate(raw, size=(32, 48), mode="bilinear", align_corners=False) * (model.config.flow_scale / 2)
    assert f34.shape == (1, 2, 32, 48)
    torch.testing.assert_close(torch.cat((f34, f43)), expected)


def test_rejects_bad_inputs():
    model = build_model("stvun-tiny")
    with pytest.raises(ValueError, match="7 frames"):
        model(seeded_frames(n=5, h=16, w=16), [0.5])
    with pytest.raises(ValueError, match="multiple of 16"):
        model(seeded_frames(h=20, w=16), [0.5])


def test_precomputed_features_give_the_same_result():
    model = build_model("stvun-tiny").eval()
    frames = seeded_frames(h=16, w=16)
    with torch.no_grad():
        feats = [model.encode(f) for f in frames]
        a = model.run(frames, [0.5], features=feats).frames
        b = model(frames, [0.5])
    # Batched and one-by-one encoding may pick different CPU kernels (summation order): the tolerance is 1 % of a
    # grey level (outputs span [-1, 1], a level is 1/127.5), far above rounding noise on any x86 CPU (1.5e-5 seen)
    # and far below any real difference.
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_gradients_reach_every_trainable_parameter():
    model = build_model("stvun-tiny")
    # Not T_in = 0.5 alone: there a flow offset common to f_3→4 and f_4→3 cancels in Eq. 4 (no gradient for the
    # flow bias), a property of the equations rather than a broken path.
    run = model.run(seeded_frames(h=16, w=16), [0.3, 0.5])
    target = torch.zeros_like(run.frames)
    loss = (run.frames - target).abs().mean() + run.lr_between.abs().mean()
    loss.backward()
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    # deconv2 is in the authors' checkpoint but unused by their forward pass; it is the only frozen tensor.
    assert frozen == ["pwcnet.deconv2.bias", "pwcnet.deconv2.weight"]
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert dead == []


def test_correlation_matches_definition():
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(2, 5, 6, 7, generator=g), torch.randn(2, 5, 6, 7, generator=g)
    md = 2
    out = correlation(f1, f2, md)
    assert out.shape == (2, 25, 6, 7)
    for dy in range(-md, md + 1):
        for dx in range(-md, md + 1):
            ch = (dy + md) * (2 * md + 1) + (dx + md)
            y, x = 3, 2
            y2, x2 = y + dy, x + dx
            expect = (f1[:, :, y, x] * f2[:, :, y2, x2]).mean(1) if 0 <= y2 < 6 and 0 <= x2 < 7 else torch.zeros(2)
            torch.testing.assert_close(out[:, ch, y, x], expect)


def test_backward_warp_conventions():
    img = torch.arange(4 * 5, dtype=torch.float32).view(1, 1, 4, 5)
    zero = torch.zeros(1, 2, 4, 5)
    torch.testing.assert_close(backward_warp(img, zero), img)
    # One pixel to the right: sample x + 1; the last column repeats (border padding).
    shift = zero.clone()
    shift[:, 0] = 1
    expect = torch.cat((img[..., 1:], img[..., -1:]), -1)
    torch.testing.assert_close(backward_warp(img, shift), expect)
    # Half a pixel down: the mean of two rows (bilinear, align_corners=True pixel centres).
    half = zero.clone()
    half[:, 1] = 0.5
    torch.testing.assert_close(backward_warp(img, half)[..., :3, :], (img[..., :3, :] + img[..., 1:, :]) / 2)


@pytest.mark.parametrize("blend", ["mean", "linear"])
def test_intermediate_frame_equations(blend):
    """Eq. 4-6 with known flows: zero flow blends the two frames (evenly as the paper does, or by 1 − t and t);
    at T_in = 0 frame 3 is not moved."""
    model = build_model("stvun-tiny", time_blend=blend).eval()
    frames = seeded_frames(h=16, w=16)
    x3, x4 = frames[3], frames[4]
    with torch.no_grad():
        feats = [model.encode(f) for f in frames]
        _, decoded = model.upsample_center(x3, feats[3], model.fuse(feats))
        zero = torch.zeros(1, 2, 16, 16)
        out, lr_mid = model.upsample_between(x3, x4, feats[3], feats[4], decoded, (zero, zero), 0.3)
        torch.testing.assert_close(lr_mid, (x3 + x4) / 2 if blend == "mean" else 0.7 * x3 + 0.3 * x4)
        assert out.shape == (1, 3, 64, 64)
        f34 = torch.full((1, 2, 16, 16), 1.0)
        _, lr0 = model.upsample_between(x3, x4, feats[3], feats[4], decoded, (f34, -f34), 0.0)
        torch.testing.assert_close(lr0, (x3 + backward_warp(x4, f34)) / 2 if blend == "mean" else x3)


def test_linear_time_blend_is_the_mean_at_one_half_and_per_time_in_a_batch():
    """The small variants' ``linear`` blend gives the paper's bits at T_in = 1/2 (what their weights were trained
    at), and a batch of times weights each time's rows by its own t."""
    frames = seeded_frames(h=16, w=32)
    mean = build_model("stvun-tiny", time_blend="mean").eval()
    mean.load_state_dict(seeded_state(mean))
    linear = build_model("stvun-tiny", time_blend="linear").eval()
    linear.load_state_dict(mean.state_dict())
    with torch.no_grad():
        a, b = mean.run(frames, [0.5]), linear.run(frames, [0.5])
        assert torch.equal(a.frames, b.frames) and torch.equal(a.lr_between, b.lr_between)
        both = linear.run(frames, [0.25, 0.75])
        for k, t in enumerate((0.25, 0.75)):
            one = linear.run(frames, [t])
            torch.testing.assert_close(both.frames[1 + k], one.frames[1], rtol=1e-5, atol=1e-5)
        off = mean.run(frames, [0.25])
    assert not torch.allclose(off.frames[1], both.frames[1], atol=1e-3)  # the choice matters off 1/2


def test_time_blend_per_variant():
    """The paper's variants keep Eq. 5 as published (the authors' weights were trained with it at every T_in);
    stvup's own small variants blend by time."""
    from stvup.model.configs import MODEL_CONFIGS

    assert MODEL_CONFIGS["stvun"].time_blend == MODEL_CONFIGS["stvun-x2"].time_blend == "mean"
    assert MODEL_CONFIGS["stvun-small"].time_blend == MODEL_CONFIGS["stvun-small-f2"].time_blend == "linear"
    with pytest.raises(ValueError, match="time_blend"):
        build_model("stvun-tiny", time_blend="cubic")


def test_centre_output_is_bilinear_plus_residual():
    model = build_model("stvun-tiny").eval()
    for p in model.decoder.rconv1.parameters():
        torch.nn.init.zeros_(p)  # zero residual: the output must be exactly u(X_3) with align_corners=False
    frames = seeded_frames(h=16, w=16)
    with torch.no_grad():
        out = model(frames, [])
    expect = F.interpolate(frames[3], scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[0], expect)


def test_build_model_device_and_dtype():
    model = build_model("stvun-tiny", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    with torch.no_grad():
        out = model([f.double() for f in seeded_frames(h=16, w=16)], [0.5])
    assert out.dtype == torch.float64


def test_all_named_configs_build():
    for name in MODEL_CONFIGS:
        with torch.device("meta"):
            build_model(name)


def golden_numbers() -> dict[str, object]:
    torch.manual_seed(0)
    # The paper's Eq. 5 (the file predates time_blend; the linear blend is covered by the equation tests).
    model = build_model("stvun-tiny", time_blend="mean").eval()
    model.load_state_dict(seeded_state(model))
    frames = seeded_frames(h=32, w=48)
    with torch.no_grad():
        run = model.run(frames, [0.25, 0.5])
    out = run.frames
    flat = out.flatten()
    idx = torch.linspace(0, flat.numel() - 1, 24).long()
    return {
        "shape": list(out.shape),
        "mean": out.mean().item(),
        "abs_mean": out.abs().mean().item(),
        "per_frame_mean": out.mean((1, 2, 3, 4)).tolist(),
        "flow_abs_mean": run.flows[0].abs().mean().item(),
        "samples": flat[idx].tolist(),
    }


@pytest.mark.skipif(not GOLDEN.is_file(), reason="golden file missing")
def test_golden_outputs():
    """Outputs of a seeded tiny STVUN must not change unless the architecture deliberately does."""
    expected = json.loads(GOLDEN.read_text())
    got = golden_numbers()
    assert got["shape"] == expected["shape"]
    for key in ("mean", "abs_mean", "per_frame_mean", "flow_abs_mean", "samples"):
        torch.testing.assert_close(torch.tensor(got[key]), torch.tensor(expected[key]), rtol=1e-4, atol=1e-4)


if __name__ == "__main__":  # python -m tests.test_model  regenerates the golden file after an intended change
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(golden_numbers(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
