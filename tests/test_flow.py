"""Flows with known answers: the synthetic pairs of the flow check, the classical flow, and weights that name theirs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.errors import CheckpointError, UsageError
from stvup.evaluation.flowcheck import block_truth, clip_material, flow_check, make_pair
from stvup.model import build_model
from stvup.model.flow import ClassicalFlow, check_flow_name, classical_flow
from stvup.model.pwcnet import backward_warp
from stvup.model.weights import checkpoint_model_name, load_checkpoint, save_safetensors, weights_flow
from stvup.training.loop import train
from stvup.training.runs import TrainConfig
from stvup.upscaling.loader import load_upscaler

from .conftest import make_clip
from .helpers import seeded_state

pytest.importorskip("cv2")


def _textures(n: int = 4, h: int = 128, w: int = 192, seed: int = 0) -> list[np.ndarray]:
    """Smooth random pictures with detail at several scales (DIS needs texture, as real frames have)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = sum(F.interpolate(torch.rand(1, 3, h // s, w // s, generator=g), size=(h, w), mode="bicubic",
                              align_corners=False) for s in (2, 6, 16))  # fmt: skip
        out.append((x[0].permute(1, 2, 0) / 3 * 255).clamp(0, 255).to(torch.uint8).numpy())
    return out


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float()[None]


@pytest.mark.parametrize("kind", ["shift", "zoom-rotate", "objects"])
def test_a_pairs_true_flow_carries_one_frame_onto_the_other(kind):
    rng = np.random.default_rng(3)
    pair = make_pair(rng, _textures(), kind, 10.0, (96, 160))
    a, b = _to_tensor(pair.a), _to_tensor(pair.b)
    for src, dst, flow, known in ((b, a, pair.ab, pair.known_a), (a, b, pair.ba, pair.known_b)):
        _, valid = block_truth(flow, 1, margin=2, known=known)
        valid = torch.from_numpy(valid)

        def error(offset: tuple[float, float], src=src, dst=dst, flow=flow, valid=valid) -> torch.Tensor:
            shifted = torch.from_numpy(flow).permute(2, 0, 1)[None] + torch.tensor(offset).view(1, 2, 1, 1)
            moved = backward_warp(src, shifted)
            return (moved - dst).abs().mean(1)[0][valid]

        exact = error((0.0, 0.0))
        still = (src - dst).abs().mean(1)[0][valid]
        assert float(exact.median()) < 0.5 * float(still.median()), kind
        # The truth is exact, not roughly right: half a pixel off any way is far worse (resampling of the finest
        # texture is all that is left; occluded pixels in "objects" are a minority).
        for offset in ((0.5, 0.0), (-0.5, 0.0), (0.0, 0.5), (0.0, -0.5)):
            assert float(exact.mean()) < 0.6 * float(error(offset).mean()), (kind, offset)
    lengths = np.hypot(pair.ab[..., 0], pair.ab[..., 1])
    assert 5 < np.percentile(lengths, 99) < 30  # the motion has about the size asked for (10)


def test_block_truth_averages_the_flow_of_each_block_and_leaves_out_what_leaves_the_frame():
    flow = np.zeros((8, 8, 2), np.float32)
    flow[..., 0] = np.arange(8)[None, :]  # x motion grows to the right; the right columns leave the frame
    truth, valid = block_truth(flow, 4)
    assert truth.shape == (2, 2, 2) and np.allclose(truth[0, :, 0], [1.5, 5.5])
    assert valid.tolist() == [[False, False], [False, False]] or valid[:, 1].sum() == 0


def test_classical_flow_finds_a_sub_pixel_shift_in_both_directions():
    image = _textures(1, 64, 96)[0]
    x = _to_tensor(image) / 127.5 - 1
    shift = (1.5, -0.75)  # LR pixels, x then y
    moved = backward_warp(x, torch.tensor(shift).view(1, 2, 1, 1).expand(1, 2, 64, 96).neg())
    for name in ("dis-medium-x2", "dis-fast-x1", "dis-medium-x4"):
        f_ab, f_ba = classical_flow(name)(x, moved)
        assert f_ab.shape == (1, 2, 64, 96) and f_ab.dtype == torch.float32
        inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
        for flow, sign in ((f_ab, 1), (f_ba, -1)):
            mean = flow[inner].mean((0, 2, 3))
            assert torch.allclose(mean, sign * torch.tensor(shift), atol=0.15), (name, mean)


def test_flow_names_are_checked():
    assert check_flow_name("pwc") == "pwc" and classical_flow("dis-fast-x2") == ClassicalFlow("fast", 2)
    # ×k counts on the grid the body works on: a ×2 network that unshuffles by 2 runs DIS on its input at ×k/2.
    assert build_model("stvun-tiny-x2", flow="dis-medium-x2").classical_flow == ClassicalFlow("medium", 1)
    assert build_model("stvun-tiny", flow="dis-medium-x2").classical_flow == ClassicalFlow("medium", 2)
    with pytest.raises(ValueError, match="unknown flow"):
        check_flow_name("dis-slow-x3")
    with pytest.raises(ValueError, match="unknown flow"):
        build_model("stvun-tiny", flow="raft")


def test_flow_check_scores_a_classical_flow_far_below_zero_flow():
    images = _textures(4, 160, 256)
    triplets = [(images[0], images[0], images[0])]
    report = flow_check(images, triplets, {"dis": classical_flow("dis-medium-x2")}, crfs=[None, 23], pairs=6,
                        crop=(128, 224))  # fmt: skip
    assert report.flows == ["zero", "dis"]
    for crf in ("none", "23"):
        big = [b for b in report.epe["zero"][crf] if float(b.split("-")[0]) >= 2]
        assert len(big) >= 4 and all(report.epe["dis"][crf][b] < 0.5 * report.epe["zero"][crf][b] for b in big)
        # A still triplet: both flows interpolate it alike, and well.
        assert report.interp["dis"][crf] > 30
    assert report.worst_ratio("dis", 23) < 0.5 and report.worst_ratio("zero", 23) == 1
    text = report.to_markdown()
    assert "| dis |" in text and "| zero |" in text and "H.264 CRF 23" in text
    assert json.loads(json.dumps(report.to_dict()))["epe"]["dis"]["none"]


def test_clip_material_picks_frames_triplets_and_a_crop_that_fits():
    frames = [_textures(7, 80, 120)]
    images, triplets, crop = clip_material(frames)
    assert len(images) == 3 and len(triplets) == 3 and crop == (64, 96)
    with pytest.raises(ValueError, match="too small"):
        clip_material([_textures(3, 24, 32)])


def test_a_classical_flow_network_has_no_pwcnet_and_its_weights_name_the_flow(tmp_path):
    model = build_model("stvun-tiny", flow="dis-fast-x2")
    assert model.pwcnet is None and not any(k.startswith("pwcnet.") for k in model.state_dict())
    path = tmp_path / "dis.safetensors"
    save_safetensors(seeded_state(model), path, {"stvup_flow": "dis-fast-x2"})
    assert weights_flow(path) == "dis-fast-x2"
    # The model is recognised from the tensors and the flow from the metadata; the loader builds it with that flow.
    assert checkpoint_model_name(path, load_checkpoint(path)) == "stvun-tiny"
    up = load_upscaler(path, device="cpu", precision="fp32", compile="off")
    assert up.model.config.flow == "dis-fast-x2" and up.model.pwcnet is None
    frames = [torch.rand(1, 3, 32, 48) * 2 - 1 for _ in range(7)]
    out = up.model.run(frames, [0.5])
    assert out.frames.shape == (2, 1, 3, 128, 192) and out.flows[0].shape == (1, 2, 32, 48)
    # A file without the key is PWC-Net's; a file naming an unknown flow fails in one line, naming the file.
    plain = tmp_path / "plain.safetensors"
    save_safetensors(seeded_state(build_model("stvun-tiny")), plain, {})
    assert weights_flow(plain) == "pwc" and load_upscaler(plain, device="cpu").model.pwcnet is not None
    bad = tmp_path / "bad.safetensors"
    save_safetensors(seeded_state(model), bad, {"stvup_flow": "magic"})
    with pytest.raises(CheckpointError, match="bad.safetensors: unknown flow 'magic'"):
        weights_flow(bad)


def test_the_upscaler_runs_a_classical_flow_network_end_to_end(tmp_path):
    model = build_model("stvun-tiny", flow="dis-medium-x2")
    path = tmp_path / "dis.safetensors"
    save_safetensors(seeded_state(model), path, {"stvup_flow": "dis-medium-x2", "stvup_model": "stvun-tiny"})
    clip = make_clip(tmp_path / "in.mp4", width=64, height=48, frames=6, audio=None)
    res = CliRunner().invoke(cli, ["upscale", str(clip), "-o", str(tmp_path / "out.mp4"), "--weights", str(path),
                                   "--time", "2", "--json", "--compile", "off"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["frames_out"] == 12


def test_training_with_a_classical_flow_starts_from_pwc_weights_and_records_the_flow(tmp_path):
    from .test_train import _config, _texture_clip

    init = tmp_path / "init.safetensors"
    save_safetensors(seeded_state(build_model("stvun-tiny")), init, {})
    cfg = _config(tmp_path, init=str(init), flow="dis-fast-x1", pretrain_steps=0, steps=2)
    result = train(cfg, clips=[_texture_clip()])
    assert weights_flow(result.weights) == "dis-fast-x1"
    up = load_upscaler(result.weights, device="cpu")
    assert up.model.pwcnet is None
    with pytest.raises(UsageError, match="has no weights"):
        TrainConfig(data=[], flow="dis-fast-x1", flow_steps=10)
    with pytest.raises(UsageError, match="unknown flow"):
        TrainConfig(data=[], flow="nope")


def test_cli_eval_flow_check_writes_the_table(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    import cv2

    for i, image in enumerate(_textures(6, 96, 160)):
        cv2.imwrite(str(clip / f"{i:03d}.png"), image[..., ::-1])
    md = tmp_path / "flow.md"
    res = CliRunner().invoke(cli, ["eval", str(clip), "--flow-check", "--flows", "dis-fast-x1", "--pairs", "3",
                                   "--crf", "none", "--markdown", str(md), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "| dis-fast-x1 |" in md.read_text() and "| zero |" in res.output
    assert "pwc (paper.safetensors)" in res.output  # every shipped weights file's flow is scored too
    res = CliRunner().invoke(cli, ["eval", str(clip), "--flow-check", "--flows", "dis-slow-x9"])
    assert res.exit_code == 1 and "unknown flow" in res.output


@pytest.mark.parametrize("kind", ["shift", "objects"])
def test_a_pairs_middle_frame_lies_halfway_on_the_true_motion(kind):
    """The frame at T_in = 1/2 is what each end's true flow, halved, carries it to; the occluded pixels are those one
    end cannot show: none but the borders for a pan, a band around the pieces for moving objects."""
    rng = np.random.default_rng(5)
    pair = make_pair(rng, _textures(), kind, 12.0, (96, 160))
    middle, known, occluded = pair.middle(0.5)
    assert middle.shape == pair.a.shape and known.mean() > 0.9
    mid = _to_tensor(middle)
    for end, flow in ((_to_tensor(pair.a), pair.ba), (_to_tensor(pair.b), pair.ab)):  # a(p + f_b→a(p)/2), …
        # A pixel of the middle frame came from p + f/2 in one end, where f is the end-to-end flow at p (exact for
        # a pan, and away from occlusions nearly so for pieces that barely turn).
        half = torch.from_numpy(flow).permute(2, 0, 1)[None] / 2
        seen = torch.from_numpy(known & ~occluded)[4:-4, 4:-4]
        error = (backward_warp(end, half) - mid).abs().mean(1)[0][4:-4, 4:-4][seen]
        still = (end - mid).abs().mean(1)[0][4:-4, 4:-4][seen]
        assert float(error.median()) < 0.5 * float(still.median()), kind
    inner = occluded[16:-16, 16:-16]
    if kind == "shift":
        assert not inner.any() and occluded.any()  # only what enters or leaves at the borders
    else:
        assert 0.005 < inner.mean() < 0.5
    assert np.array_equal(pair.middle(0.0)[0], pair.a) and np.array_equal(pair.middle(1.0)[0], pair.b)
