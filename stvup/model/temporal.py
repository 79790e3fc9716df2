"""Temporal SR modules f_T for the two-stream network (second paper, Eq. 3): two frames in, the frame at time t out.

Both work at any resolution (the two-stream network runs them on LR frames in one stream and on HR frames in the
other) and share one interface: ``forward(a, b, t)`` with ``a``, ``b`` ``(b, 3, h, w)`` in [-1, 1] and ``0 < t < 1``
returns ``(b, 3, h, w)``; ``h`` and ``w`` must be multiples of ``size_multiple``. With their output layers zeroed
(``zero_head``) both give plain frame blending ``(1 − t)·a + t·b``, where training starts.

* ``DVFTemporal`` (after Liu et al., 2017, deep voxel flow): one U-Net predicts, for every pixel of the new frame,
  the motion ``m`` that passes through it and a selection mask. Frame ``a`` is sampled at ``p − t·m``, frame ``b``
  at ``p + (1 − t)·m``, assuming linear motion. It is trained at t = 0.5 (the middle of a triplet); at other t the
  midpoint motion is reused, which is exact only for straight, even motion.
* ``SloMoTemporal`` (after Jiang et al., 2018, Super SloMo): one U-Net estimates the flows between the two frames
  in both directions, they are combined into flows from time t (the same quadratic approximation as STVUN's Eq. 4),
  and a second U-Net refines them and predicts visibility maps. This one is built for any t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pwcnet import backward_warp
from .stvun import intermediate_flows

EPS = 1e-6


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1)
    )


class UNet(nn.Module):
    """A small U-Net: ``(b, cin, h, w)`` → ``(b, cout, h, w)``; ``h``, ``w`` multiples of ``2 ** (len(widths) − 1)``.

    Average pooling down, bilinear up, skip connections by concatenation; the output layer is ``head``.
    """

    def __init__(self, cin: int, cout: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        prev = cin
        for w in widths:
            self.down.append(_double_conv(prev, w))
            prev = w
        self.up = nn.ModuleList(_double_conv(widths[i + 1] + widths[i], widths[i]) for i in range(len(widths) - 1))
        self.head = nn.Conv2d(widths[0], cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.avg_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat((x, skips[i]), 1))
        return self.head(x)


def _check(a: torch.Tensor, t: float, multiple: int) -> None:
    if not 0 < t < 1:
        raise ValueError(f"t must lie strictly between 0 and 1, got {t}")
    h, w = a.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"frame size {w}x{h} is not a multiple of {multiple}; pad the frames first")


def _fuse(wa: torch.Tensor, wb: torch.Tensor, va: torch.Tensor, t: float) -> torch.Tensor:
    """Blend two warped frames with weights ``(1 − t)·v`` and ``t·(1 − v)`` (temporal distance times visibility)."""
    ka, kb = (1 - t) * va, t * (1 - va)
    return (ka * wa + kb * wb) / (ka + kb + EPS)


class DVFTemporal(nn.Module):
    """DVF-like f_T: a U-Net gives the voxel flow (motion through each new pixel) and a mask."""

    def __init__(self, widths: tuple[int, ...] = (24, 32, 48, 64)) -> None:
        super().__init__()
        self.net = UNet(6, 3, widths)
        self.size_multiple = 2 ** (len(widths) - 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        _check(a, t, self.size_multiple)
        out = self.net(torch.cat((a, b), 1)).float()
        motion, mask = out[:, :2], torch.sigmoid(out[:, 2:3])
        wa, wb = backward_warp(a, -t * motion), backward_warp(b, (1 - t) * motion)
        return _fuse(wa.float(), wb.float(), mask, t).to(a.dtype)


class SloMoTemporal(nn.Module):
    """Super-SloMo-like f_T: bidirectional flow U-Net, flows at time t, refinement and visibility U-Net."""

    def __init__(
        self, flow_widths: tuple[int, ...] = (24, 32, 48, 64), refine_widths: tuple[int, ...] = (16, 24, 32, 48)
    ) -> None:
        super().__init__()
        self.flow = UNet(6, 4, flow_widths)
        self.refine = UNet(20, 5, refine_widths)
        self.size_multiple = 2 ** (max(len(flow_widths), len(refine_widths)) - 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        _check(a, t, self.size_multiple)
        flows = self.flow(torch.cat((a, b), 1)).float()
        fab, fba = flows[:, :2], flows[:, 2:]
        fta, ftb = intermediate_flows(fab, fba, t)
        ga, gb = backward_warp(a, fta), backward_warp(b, ftb)
        flows_in = [f.to(a.dtype) for f in (fab, fba, fta, ftb)]
        r = self.refine(torch.cat((a, b, *flows_in, ga, gb), 1)).float()
        fta, ftb = fta + r[:, 0:2], ftb + r[:, 2:4]
        vis = torch.sigmoid(r[:, 4:5])
        return _fuse(backward_warp(a, fta).float(), backward_warp(b, ftb).float(), vis, t).to(a.dtype)
