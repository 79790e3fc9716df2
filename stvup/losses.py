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
