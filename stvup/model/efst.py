"""Early Fusion with Spatio-Temporal weights (EFST), paper section 3.2, Eqs. 1-3 and Fig. 4.

Seven frames' features are fused without any explicit alignment: an early-fusion 1×1 convolution gives ``E``;
confidence scores ``s_t = sigmoid(θ(e_t)·δ(E))`` re-weight each frame's features; a small pyramid of max- and
average-pooled convolutions over the re-weighted stack yields the spatio-temporal weights ``α`` and ``β``, and the
fused features are ``Ẽ = α ⊙ E + β``. In the authors' implementation (whose weights we load) ``α = 2·sigmoid(a)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import conv_lrelu


class SpatioTemporalWeights(nn.Module):
    """Computes ``Ẽ = α ⊙ E + β`` from the stack of frame features and the early-fused ``E``.

    Attribute names follow the authors' checkpoint (``efst.ff.*``): ``tAtt0`` is θ, ``tAtt1`` is δ, the ``sAtt*``
    layers form the pooling pyramid. Spatial size must be divisible by 4 (two 2× poolings).
    """

    def __init__(self, frames: int = 7, channels: int = 64) -> None:
        super().__init__()
        nif = channels
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avgpool = nn.AvgPool2d(3, stride=2, padding=1)
        self.tAtt0 = nn.Conv2d(nif, nif, 3, padding=1)
        self.tAtt1 = nn.Conv2d(nif, nif, 3, padding=1)
        self.sAtt1 = conv_lrelu(frames * nif, nif, kernel_size=1)
        self.sAtt2 = conv_lrelu(nif * 2, nif, kernel_size=1)
        self.sAtt3 = conv_lrelu(nif, nif, kernel_size=3)
        self.sAtt4 = conv_lrelu(nif, nif, kernel_size=1)
        self.sAtt5 = nn.Conv2d(nif, nif, 3, padding=1)
        self.sAttL1 = conv_lrelu(nif, nif, kernel_size=1)
        self.sAttL2 = conv_lrelu(nif * 2, nif, kernel_size=3)
        self.sAttL3 = conv_lrelu(nif, nif, kernel_size=3)
        self.sAttA1 = conv_lrelu(nif, nif, kernel_size=1)
        self.sAttA2 = nn.Conv2d(nif, nif, 1)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.maxpool(x), self.avgpool(x)), 1)

    def forward(self, stack: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        """``stack``: ``(b, n, c, h, w)`` frame features; ``fused``: ``(b, c, h, w)`` early fusion ``E``."""
        b, n, c, h, w = stack.shape
        # Eq. 1: per-pixel dot product of the embedded frame features with the embedded E, squashed to [0, 1].
        emb_ref = self.tAtt1(fused)
        emb = self.tAtt0(stack.reshape(b * n, c, h, w)).view(b, n, c, h, w)
        score = torch.sigmoid((emb * emb_ref.unsqueeze(1)).sum(2, keepdim=True))  # (b, n, 1, h, w)
        # Eq. 2: re-weight every frame's features by its confidence.
        weighted = (stack * score).reshape(b, n * c, h, w)

        # Pyramid of pooled convolutions: enlarges the receptive field at little cost.
        att = self.sAtt1(weighted)
        init_att = att
        att = self.sAtt2(self._pool(att))
        att_l = self.sAttL1(att)
        att_l = self.sAttL3(self.sAttL2(self._pool(att_l)))
        att_l = F.interpolate(att_l, scale_factor=2, mode="bilinear", align_corners=False)
        att = self.sAtt4(self.sAtt3(att) + att_l)
        att = F.interpolate(att, scale_factor=2, mode="bilinear", align_corners=False)
        att = self.sAtt5(init_att + att)
        beta = self.sAttA2(self.sAttA1(att))
        alpha = torch.sigmoid(att) * 2
        # Eq. 3.
        return fused * alpha + beta


class EFST(nn.Module):
    """Fuses the features of seven frames, level by level (one shared module for all encoder levels).

    Input: a sequence of ``frames`` feature lists (as returned by :class:`~stvup.model.encoder.Encoder`); output one
    fused tensor ``(b, c, h, w)`` per level, in the same (deepest-first) order.
    """

    def __init__(self, frames: int = 7, channels: int = 64) -> None:
        super().__init__()
        self.ff = SpatioTemporalWeights(frames, channels)
        self.early_fusion = nn.Conv2d(channels * frames, channels, 1)

    def forward(self, feats: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        out = []
        for level in range(len(feats[0])):
            per_frame = [f[level] for f in feats]
            fused = self.early_fusion(torch.cat(per_frame, 1))
            out.append(self.ff(torch.stack(per_frame, 1), fused))
        return out
