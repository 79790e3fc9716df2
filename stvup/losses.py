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
