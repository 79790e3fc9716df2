"""STVUN's training losses (paper Eqs. 7, 9, 11, 12): L1 distances on images in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    """λ_M, λ_S, λ_F of Eq. 12 (the paper uses 1, 1, 1)."""

    m: float = 1.0
    s: float = 1.0
    f: float = 1.0


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference in float32 (outputs may come from a bf16 autocast region)."""
    return F.l1_loss(a.float(), b.float())


def spatial_loss(center: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 9, L_S = ‖Ŷ_3 − Y_3‖₁: ``(b, 3, H, W)`` each."""
    return l1(center, target)


def time_losses(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 7 / Eq. 11: Σ_T ‖Â_T − A_T‖₁ over the leading time axis of ``(n_T, b, 3, h, w)`` tensors."""
    if outputs.shape[0] == 0:
        return outputs.new_zeros((), dtype=torch.float32)
    return sum(l1(o, t) for o, t in zip(outputs, targets))


def total_loss(
    l_m: torch.Tensor, l_s: torch.Tensor, l_f: torch.Tensor, weights: LossWeights = LossWeights()
) -> torch.Tensor:
    """Eq. 12: λ_M·L_M + λ_S·L_S + λ_F·L_F."""
    return weights.m * l_m + weights.s * l_s + weights.f * l_f


# -- two-stream network (second paper) -----------------------------------------------------------------------------


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference in float32 (the second paper's ‖·‖²)."""
    return F.mse_loss(a.float(), b.float())


def reconstruction_loss(ts: torch.Tensor, st: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 6, L_R = ‖F_ST − I_t‖² + ‖F_TS − I_t‖²: both streams against the HR ground truth ``(b, 3, H, W)``."""
    return l2(st, target) + l2(ts, target)


def consistency_loss(ts: torch.Tensor, st: torch.Tensor) -> torch.Tensor:
    """Eq. 7, L_C = ‖F_ST − F_TS‖²: needs no ground truth, so unlabeled LR pairs can supply it (Eq. 8)."""
    return l2(st, ts)


# -- unsupervised optical flow (PWC-Net pre-training without flow labels) ------------------------------------------


def photometric_loss(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """0.85·(1 − SSIM)/2 + 0.15·L1 between ``(b, 3, h, w)`` images in [0, 1], averaged where ``mask`` is 1.

    SSIM on 3×3 windows compares local structure, so it is little moved by brightness changes between frames, and
    the L1 part keeps colours right (the mix of Godard et al., used by most unsupervised flow methods). ``mask``
    ``(b, 1, h, w)``: pixels that count (visible in both frames).
    """
    a, b = a.float(), b.float()
    mu_a, mu_b = F.avg_pool2d(a, 3, 1, 1), F.avg_pool2d(b, 3, 1, 1)
    var_a = F.avg_pool2d(a * a, 3, 1, 1) - mu_a**2
    var_b = F.avg_pool2d(b * b, 3, 1, 1) - mu_b**2
    cov = F.avg_pool2d(a * b, 3, 1, 1) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    dist = (0.85 * (1 - ssim) / 2 + 0.15 * (a - b).abs()).mean(1, keepdim=True)
    if mask is None:
        return dist.mean()
    return (dist * mask).sum() / mask.sum().clamp_min(1.0)


def smoothness_loss(flow: torch.Tensor, image: torch.Tensor, edge_weight: float = 10.0) -> torch.Tensor:
    """Edge-aware second-order smoothness of ``flow`` ``(b, 2, h, w)`` guided by ``image`` ``(b, 3, h, w)``.

    Second differences of the flow are penalised except across image edges, so flow may change abruptly at object
    boundaries but is otherwise close to piecewise affine (camera pans and zooms cost nothing).
    """
    flow, image = flow.float(), image.float()
    wx = torch.exp(-edge_weight * (image[..., :, 2:] - image[..., :, :-2]).abs().mean(1, keepdim=True))
    wy = torch.exp(-edge_weight * (image[..., 2:, :] - image[..., :-2, :]).abs().mean(1, keepdim=True))
    dxx = flow[..., :, 2:] - 2 * flow[..., :, 1:-1] + flow[..., :, :-2]
    dyy = flow[..., 2:, :] - 2 * flow[..., 1:-1, :] + flow[..., :-2, :]
    return (wx * dxx.abs()).mean() / 2 + (wy * dyy.abs()).mean() / 2


def occlusion_mask(forward: torch.Tensor, backward_at_forward: torch.Tensor) -> torch.Tensor:
    """Forward-backward check: 1 where a pixel's flow and the return flow at its target cancel, else 0.

    ``forward`` ``(b, 2, h, w)`` maps frame A to B; ``backward_at_forward`` is B's flow to A sampled at the forward
    targets. Pixels that fail (occluded in B, or wrong flow) are left out of the photometric loss (Meister et al.,
    UnFlow, with their thresholds 0.01 and 0.5). The mask carries no gradient.
    """
    f, b = forward.detach().float(), backward_at_forward.detach().float()
    mismatch = ((f + b) ** 2).sum(1, keepdim=True)
    bound = 0.01 * ((f**2).sum(1, keepdim=True) + (b**2).sum(1, keepdim=True)) + 0.5
    return (mismatch < bound).float()
