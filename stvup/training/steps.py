"""What one training step computes, per method and stage, and what each stage trains.

:func:`training_step` is STVUN's loss for a batch (stage 1: L_S, Eq. 9; stage 2: Eq. 12, optionally with the
cross-stream consistency term); :func:`two_stream_step` is the second paper's (module pre-training, then L_R + λ·L_C,
Eqs. 5-8); stage 0's flow step is :func:`stvup.training.flowtrain.flow_step`. :func:`stage_parameters` says which parts
a stage updates and :func:`zero_heads` gives the identity start (bilinear upsampling, frame blending). The loop that
drives them, with checkpoints and logging, is :func:`stvup.training.loop.train`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stvup.data.sampler import Batch
from stvup.model import STVUN
from stvup.model.twostream import TwoStream
from stvup.training.losses import (
    LossWeights,
    consistency_loss,
    l1,
    l2,
    reconstruction_loss,
    spatial_loss,
    time_losses,
    total_loss,
)

__all__ = ["stage_parameters", "training_step", "two_stream_step", "zero_heads"]


def zero_heads(model: STVUN, flow_only: bool = False) -> None:
    """Zero the residual head and every flow output: output = bilinear upsampling, flow = 0 (frame blending). A
    classical flow (no PWC-Net) has no outputs to zero."""
    heads: list[nn.Module] = [] if flow_only else [model.decoder.rconv1]
    if model.pwcnet is not None:
        heads.append(model.pwcnet.dc_conv7)
        heads += [m for name, m in model.pwcnet.named_children() if name.startswith("predict_flow")]
    for m in heads:
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)


def stage_parameters(model: STVUN | TwoStream, stage: int, freeze_flow: bool = False) -> list[nn.Parameter]:
    """Stage 0: PWC-Net. Stage 1: encoder, EFST and decoder (the VSR part). Stage 2: every trainable parameter,
    or with ``freeze_flow`` all but PWC-Net's (whose flow stage 2 can pull away from what serves whole frames).

    A two-stream network trains all its parameters in both stages (in stage 1 each module has its own loss).
    """
    parts: tuple[nn.Module, ...] = (model,)
    if isinstance(model, STVUN) and (stage < 2 or freeze_flow):
        parts = (model.pwcnet,) if stage == 0 else (model.encoder, model.efst, model.decoder)
    return [p for part in parts for p in part.parameters() if p.requires_grad]


def _autocast(device_type: str, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)


def training_step(
    model: STVUN, batch: Batch, stage: int, weights: LossWeights, autocast: torch.dtype | None, lambda_c: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one batch (to be back-propagated) and its terms. Stage 1 uses L_S only.

    ``lambda_c`` > 0 (stage 2, batches of 8 frames): adds ``lambda_c``·L_C, the L1 distance between each joint
    output at T_in and the interpolation of the model's own spatial outputs Ŷ_3 and Ŷ_4 with its own flows.
    """
    frames = [f * 2 - 1 for f in batch.lr]
    with _autocast(frames[0].device.type, autocast):
        if stage == 1:
            feats = [model.encode(f) for f in frames[:7]]
            center, _ = model.upsample_center(frames[3], feats[3], model.fuse(feats))
            l_s = spatial_loss((center.float() + 1) / 2, batch.center)
            zero = l_s.new_zeros(())
            return l_s, {"loss": l_s, "l_s": l_s, "l_m": zero, "l_f": zero}
        features = None
        if lambda_c > 0:
            if len(frames) < 8:
                raise ValueError("the STVUN consistency loss needs batches of 8 frames")
            n = frames[0].shape[0]
            enc = model.encode(torch.cat(frames, 0))
            features = [[e[i * n : (i + 1) * n] for e in enc] for i in range(len(frames))]
        out = model.run(frames[:7], batch.times, features[:7] if features else None)
    l_s = spatial_loss((out.frames[0].float() + 1) / 2, batch.center)
    l_f = time_losses((out.frames[1:].float() + 1) / 2, batch.between)
    l_m = time_losses((out.lr_between.float() + 1) / 2, batch.lr_between)
    loss = total_loss(l_m, l_s, l_f, weights)
    terms = {"loss": loss, "l_s": l_s, "l_m": l_m, "l_f": l_f}
    if lambda_c > 0:
        with _autocast(frames[0].device.type, autocast):
            # Ŷ_4 from the window centred on frame 4 (inputs 1…7), then Eqs. 4 and 6 on the HR outputs.
            y4, _ = model.upsample_center(frames[4], features[4], model.fuse(features[1:8]))
        y3, s = out.frames[0].float(), model.scale
        f34, f43 = (F.interpolate(f.float(), scale_factor=s, mode="bilinear", align_corners=False) * s
                    for f in out.flows)  # fmt: skip
        l_c = out.frames.new_zeros((), dtype=torch.float32)
        for k, t in enumerate(batch.times):
            interp = model.warp_between(y3, y4.float(), (f34, f43), float(t))
            l_c = l_c + l1(out.frames[1 + k], interp)
        loss = loss + lambda_c * l_c
        terms.update(loss=loss, l_c=l_c)
    return loss, terms


def two_stream_step(
    model: TwoStream,
    batch: Batch,
    stage: int,
    autocast: torch.dtype | None,
    lambda_c: float = 4.0,
    unlabeled: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one two-stream batch and its terms (images in [0, 1] in, the network works in [-1, 1]).

    Stage 1, the modules on their own tasks: L_S = ‖f_S(I_k^L) − I_k^H‖² over both inputs, L_T = f_T's error on the
    LR triplet plus on the HR triplet. Stage 2, Eq. 8: L_R (Eq. 6) on the labeled batch plus ``lambda_c``·L_C
    (Eq. 7) on the labeled batch and ``unlabeled`` ``(2, u, 3, p, p)`` LR pairs together.
    """
    a, b = batch.lr[0] * 2 - 1, batch.lr[1] * 2 - 1
    with _autocast(a.device.type, autocast):
        if stage == 1:
            if batch.hr is None:
                raise ValueError("module pre-training needs the inputs' HR frames (a sampler with keep_hr)")
            hr = batch.hr * 2 - 1
            up = model.spatial(torch.cat((a, b), 0))
            l_s = l2((up.float() + 1) / 2, torch.cat((batch.hr[0], batch.hr[1]), 0))
            mid_lr = model.temporal(a, b, 0.5)
            mid_hr = model.temporal(hr[0], hr[1], 0.5)
            l_t = l2((mid_lr.float() + 1) / 2, batch.lr_between[0]) + l2((mid_hr.float() + 1) / 2, batch.between[0])
            loss = l_s + l_t
            return loss, {"loss": loss, "l_s": l_s, "l_t": l_t}
        n = a.shape[0]
        if unlabeled is not None and lambda_c > 0:
            a = torch.cat((a, unlabeled[0] * 2 - 1), 0)
            b = torch.cat((b, unlabeled[1] * 2 - 1), 0)
        ts, st = model(a, b, 0.5)
    ts, st = (ts.float() + 1) / 2, (st.float() + 1) / 2
    target = batch.between[0]
    l_r_ts, l_r_st = l2(ts[:n], target), l2(st[:n], target)
    l_r = reconstruction_loss(ts[:n], st[:n], target)
    l_c = consistency_loss(ts, st)
    loss = l_r + lambda_c * l_c if lambda_c > 0 else l_r
    return loss, {"loss": loss, "l_r": l_r, "l_c": l_c, "l_r_ts": l_r_ts, "l_r_st": l_r_st}
