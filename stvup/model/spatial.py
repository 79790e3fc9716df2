"""Spatial SR modules f_S for the two-stream network (second paper, Eq. 2): one LR frame in, one ×scale frame out.

Both are CPU-sized relatives of the paper's choices and share one interface: ``forward(x)`` maps ``(b, 3, h, w)``
in [-1, 1] to ``(b, 3, s·h, s·w)``, and both add their learned residual to a bicubic upsampling of the input taken
on the grid of stvup's degradation (LR pixel i sits on HR pixel s·i, see :mod:`stvup.data.degrade`). With the last
layer zeroed (``zero_head``) a module is exactly that bicubic upsampling, which is where training starts.

* ``ESPCNSpatial`` (after Shi et al., 2016): convolutions at LR size, a sub-pixel (pixel-shuffle) output layer.
  Cheap: every convolution runs on LR pixels.
* ``VDSRSpatial`` (after Kim et al., 2016): a plain stack of 3×3 convolutions on the upsampled frame with a global
  residual. Shallower and narrower than VDSR's 20 × 64 so that it trains on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def grid_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic ×scale where HR pixel j samples LR position j / scale (edges clamped): ``(b, c, h, w)`` → ×scale.

    This is the inverse grid of the DUF degradation; ordinary ``align_corners=False`` resampling would be off by
    (scale − 1) / 2 HR pixels and leave the network to learn the shift.
    """
    b, c, h, w = x.shape
    gy = torch.arange(h * scale, device=x.device, dtype=torch.float32) / scale * (2 / max(h - 1, 1)) - 1
    gx = torch.arange(w * scale, device=x.device, dtype=torch.float32) / scale * (2 / max(w - 1, 1)) - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None].expand(b, -1, -1, -1)
    y = F.grid_sample(x.float(), grid, mode="bicubic", padding_mode="border", align_corners=True)
    return y.to(x.dtype)


class ESPCNSpatial(nn.Module):
    """ESPCN-like f_S: conv 5×5 → conv 3×3 → conv 3×3 to 3·s² channels → pixel shuffle, plus the grid upsampling."""

    size_multiple = 1

    def __init__(self, scale: int = 4, width: int = 64) -> None:
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(width, width // 2, 3, padding=1),
            nn.Tanh(),
        )
        self.head = nn.Conv2d(width // 2, 3 * scale * scale, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grid_upsample(x, self.scale) + F.pixel_shuffle(self.head(self.body(x)), self.scale)


class VDSRSpatial(nn.Module):
    """VDSR-like f_S: ``depth`` 3×3 convolutions (ReLU) on the grid-upsampled frame, added back to it."""

    size_multiple = 1

    def __init__(self, scale: int = 4, width: int = 32, depth: int = 8) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = grid_upsample(x, self.scale)
        return up + self.head(self.body(up))
