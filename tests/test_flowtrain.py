"""Stage 0: PWC-Net pre-training without flow labels (photometric loss, smoothness, occlusion check)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from stvup.data import Batch, Sampler
from stvup.errors import UsageError
from stvup.model import build_model
from stvup.training.flowtrain import flow_step, inside_mask
from stvup.training.loop import TrainConfig, train, zero_heads
from stvup.training.losses import occlusion_mask, photometric_loss, smoothness_loss

from .test_train import _config, _texture_clip


def _texture(b: int = 2, h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 3, h // 4 + 2, w // 4 + 2, generator=g)
    return F.interpolate(base, size=(h + 8, w + 8), mode="bicubic", align_corners=False).clamp(0, 1)


def _shifted_pair(dx: int = 2):
    """Frame 3 and frame 4 = frame 3 moved ``dx`` pixels right: the flow 3→4 is +dx, 4→3 is −dx."""
    big = _texture()
    x3 = big[..., 4:-4, 4:-4]
    x4 = big[..., 4:-4, 4 - dx : big.shape[-1] - 4 - dx]
    return x3, x4


def _constant_flow(x: torch.Tensor, dx: float) -> torch.Tensor:
    flow = torch.zeros(x.shape[0], 2, *x.shape[-2:])
    flow[:, 0] = dx
    return flow


def test_photometric_loss_is_lowest_at_the_true_flow():
    from stvup.model.pwcnet import backward_warp

    x3, x4 = _shifted_pair(2)
    assert photometric_loss(x3, x3) == pytest.approx(0.0, abs=1e-6)
    losses = {dx: float(photometric_loss(backward_warp(x4, _constant_flow(x3, dx)), x3)) for dx in (-2, 0, 1, 2, 3)}
    assert min(losses, key=losses.get) == 2
    assert losses[2] < 0.2 * losses[0]
    # A mask restricts the average to the pixels that count.
    mask = torch.zeros(2, 1, *x3.shape[-2:])
    assert float(photometric_loss(x4, x3, mask)) == 0.0


def test_occlusion_and_inside_masks():
    f = _constant_flow(torch.zeros(1, 3, 8, 10), 1.5)
    assert occlusion_mask(f, -f).min() == 1  # forward and backward cancel: visible
    assert occlusion_mask(f, f).max() == 0  # they add up to 3 px: occluded (or wrong)
    inside = inside_mask(f)
    assert inside[..., :8].min() == 1 and inside[..., -1].max() == 0  # the last column points outside the frame


def test_smoothness_ignores_affine_flow_and_punishes_noise():
    h, w = 16, 20
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    affine = torch.stack((0.1 * xs + 0.05 * ys + 1, -0.2 * ys))[None]
    image = torch.rand(1, 3, h, w)
    assert float(smoothness_loss(affine, image)) == pytest.approx(0.0, abs=1e-5)
    noisy = affine + torch.randn_like(affine)
    assert float(smoothness_loss(noisy, image)) > 0.1
    # Across a strong image edge the same flow change costs less.
    edge = torch.zeros(1, 3, h, w)
    edge[..., w // 2 :] = 1
    step = torch.zeros(1, 2, h, w)
    step[:, :, :, w // 2 :] = 3
    assert float(smoothness_loss(step, edge)) < 0.5 * float(smoothness_loss(step, torch.zeros(1, 3, h, w)))


class _FixedFlow:
    """A stand-in for STVUN whose PWC-Net answers a fixed pair of flows (no coarse levels)."""

    def __init__(self, f34: torch.Tensor, f43: torch.Tensor) -> None:
        self.flows = (f34, f43)

    def estimate_flow_pyramid(self, x3, x4):
        return self.flows, []


def test_flow_step_prefers_the_true_motion():
    x3, x4 = _shifted_pair(2)
    batch = Batch(torch.stack((x3, x4)), x3, [0.5], x3[None], x3[None])
    true = _FixedFlow(_constant_flow(x3, 2), _constant_flow(x3, -2))
    zero = _FixedFlow(_constant_flow(x3, 0), _constant_flow(x3, 0))
    backwards = _FixedFlow(_constant_flow(x3, -2), _constant_flow(x3, 2))
    scores = {name: flow_step(m, batch, None)[1] for name, m in (("true", true), ("zero", zero), ("back", backwards))}
    assert float(scores["true"]["loss"]) < 0.3 * float(scores["zero"]["loss"])
    assert float(scores["zero"]["loss"]) < float(scores["back"]["loss"])
    # The occlusion check passes the consistent flows (only the border that leaves the frame is dropped) ...
    assert float(scores["true"]["occluded"]) < 0.1
    # ... and fails flows that do not return where they came from; without the check only pixels whose target
    # leaves the frame are left out.
    inconsistent = _FixedFlow(_constant_flow(x3, 2), _constant_flow(x3, 2))
    assert float(flow_step(inconsistent, batch, None)[1]["occluded"]) > 0.9
    assert float(flow_step(inconsistent, batch, None, occlusion=False)[1]["occluded"]) < 0.1
    assert {"l_photo", "l_smooth", "l_m"} <= set(scores["true"])


def test_pyramid_levels_are_returned_in_their_own_pixels():
    model = build_model("stvun-tiny").eval()
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        (f34, f43), coarse = model.estimate_flow_pyramid(x, x.flip(-1))
        assert torch.equal(f34, model.estimate_flows(x, x.flip(-1))[0])
    assert f34.shape == (2, 2, 64, 96)
    # Levels 6, 5, 4, 3 of PWC-Net's input (the tiny model runs it on the LR frames, padded to a multiple of 64).
    assert [tuple(c34.shape[-2:]) for c34, _ in coarse] == [(1, 2), (2, 3), (4, 6), (8, 12)]


def test_stage_0_trains_only_pwcnet_and_lowers_the_photometric_loss(tmp_path):
    clip = _texture_clip(h=112, w=128, speed=6)
    torch.manual_seed(0)
    torch.manual_seed(0)
    start = build_model("stvun-tiny").state_dict()
    torch.save(start, tmp_path / "start.pt")
    cfg = _config(tmp_path, flow_steps=25, pretrain_steps=0, steps=0, flow_patch=24, flow_lr=2e-3, batch_size=4,
                  init=str(tmp_path / "start.pt"), log_every=5, checkpoint_every=100)  # fmt: skip
    fixed = Sampler([clip], patch=24, frames=2, seed=77).batch(0, 8)
    before = build_model("stvun-tiny")
    before.load_state_dict(start)
    result = train(cfg, clips=[clip])
    after = build_model("stvun-tiny")
    after.load_state_dict(torch.load(result.last_checkpoint, weights_only=False)["model"])
    changed = {k for k, v in after.state_dict().items() if not torch.equal(v, start[k])}
    assert changed and all(k.startswith("pwcnet.") for k in changed)
    with torch.no_grad():
        l0 = float(flow_step(before, fixed, None, occlusion=False)[1]["l_photo"])
        l1 = float(flow_step(after, fixed, None, occlusion=False)[1]["l_photo"])
    assert l1 < 0.97 * l0, (l0, l1)  # measured 0.94 when written
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} == {0} and {"l_photo", "l_smooth", "l_m", "occluded"} <= set(log[-1])


def test_flow_stage_resumes_exactly_and_hands_over_to_stage_2(tmp_path):
    clip = _texture_clip()
    kw = dict(flow_steps=4, pretrain_steps=2, steps=3, flow_patch=16, checkpoint_every=100)
    torch.manual_seed(0)
    whole = train(_config(tmp_path / "a", **kw), clips=[clip])
    torch.manual_seed(0)
    cut = train(_config(tmp_path / "b", **kw), clips=[clip], time_limit=0.0)
    assert cut.steps == 1 and not cut.finished  # stops after one step, as a chunk of the GPU kit would
    resumed = train(_config(tmp_path / "b", **kw), clips=[clip], resume=tmp_path / "b" / "run")
    a = torch.load(whole.last_checkpoint, weights_only=False)["model"]
    b = torch.load(resumed.last_checkpoint, weights_only=False)["model"]
    assert resumed.steps == whole.steps == 9 and resumed.finished
    assert all(torch.equal(a[k], b[k]) for k in a)
    stages = [json.loads(line)["stage"] for line in (tmp_path / "a" / "run" / "log.jsonl").read_text().splitlines()]
    assert stages[0] == 0 and stages[-1] == 2 and 1 in stages


def test_flow_reset_starts_pwcnet_afresh(tmp_path):
    trained = build_model("stvun-tiny")
    init = tmp_path / "init.pt"
    torch.save(trained.state_dict(), init)
    cfg = _config(tmp_path, init=str(init), flow_reset=True, flow_steps=0, pretrain_steps=0, steps=0)
    result = train(cfg, clips=[_texture_clip()])
    state = torch.load(result.last_checkpoint, weights_only=False)["model"]
    assert torch.equal(state["decoder.rconv1.weight"], trained.state_dict()["decoder.rconv1.weight"])
    assert not state["pwcnet.dc_conv7.weight"].any()  # flow output zero: frame blending until stage 0 trains it
    assert not torch.equal(state["pwcnet.conv1a.0.weight"], trained.state_dict()["pwcnet.conv1a.0.weight"])


def test_freeze_flow_keeps_pwcnet_through_stage_2_and_trains_the_rest(tmp_path):
    trained = build_model("stvun-tiny")
    init = tmp_path / "init.pt"
    torch.save(trained.state_dict(), init)
    start = trained.state_dict()
    ends = {}
    for frozen in (True, False):
        cfg = _config(tmp_path / str(frozen), init=str(init), pretrain_steps=0, steps=3, freeze_flow=frozen)
        ends[frozen] = torch.load(train(cfg, clips=[_texture_clip()]).last_checkpoint, weights_only=False)["model"]
    pwc = [k for k in start if k.startswith("pwcnet.")]
    rest = [k for k in start if not k.startswith("pwcnet.") and start[k].is_floating_point()]
    assert pwc and all(torch.equal(ends[True][k], start[k]) for k in pwc)
    assert any(not torch.equal(ends[False][k], start[k]) for k in pwc)  # the same run without the flag moves it
    assert any(not torch.equal(ends[True][k], start[k]) for k in rest)
    with pytest.raises(UsageError, match="PWC-Net"):
        TrainConfig(data=[], method="two-stream", freeze_flow=True)


def test_freeze_flow_after_stage_0_keeps_what_stage_0_learned(tmp_path):
    cfg = _config(tmp_path, flow_steps=2, flow_patch=16, pretrain_steps=1, steps=3, freeze_flow=True,
                  checkpoint_every=2)  # fmt: skip
    result = train(cfg, clips=[_texture_clip()])
    after0 = torch.load(tmp_path / "run" / "checkpoints" / "step_0000002.pt", weights_only=False)["model"]
    end = torch.load(result.last_checkpoint, weights_only=False)["model"]
    start = build_model("stvun-tiny")
    zero_heads(start)
    pwc = [k for k in after0 if k.startswith("pwcnet.")]
    assert any(not torch.equal(after0[k], start.state_dict()[k]) for k in pwc if "predict_flow" in k or "dc_conv7" in k)
    assert all(torch.equal(end[k], after0[k]) for k in pwc)
    assert any(not torch.equal(end[k], after0[k]) for k in after0 if k.startswith("decoder."))


def test_flow_steps_are_refused_for_the_two_stream_network():
    with pytest.raises(UsageError, match="PWC-Net"):
        TrainConfig(data=[], method="two-stream", flow_steps=10)


def test_stage_boundaries_and_rates():
    cfg = TrainConfig(data=[], flow_steps=10, pretrain_steps=20, steps=30, flow_lr=3e-4, lr=2e-4, lr2=1e-4,
                      lr_halve_every=15)  # fmt: skip
    assert [cfg.stage(s) for s in (0, 9, 10, 29, 30, 59)] == [0, 0, 1, 1, 2, 2]
    assert cfg.total_steps == 60
    assert [cfg.learning_rate(s) for s in (0, 10, 25, 30, 45)] == [3e-4, 2e-4, 1e-4, 1e-4, 5e-5]
    assert SimpleNamespace(**vars(cfg)).flow_reset is False
