"""PWC-Net (the PWC-DC variant) with its correlation and warping layers, in plain PyTorch.

STVUN estimates the optical flow between input frames 3 and 4 with PWC-Net (paper section 3.2, "Intermediate
Feature Interpolation"). The reference implementation needs a compiled CUDA correlation; here correlation is a
loop of shifted products, which runs on any device and any dtype.

Conventions of the authors' weights (trained on PyTorch 1.2):

* backward warping samples ``x + flow`` with ``grid_sample(align_corners=True, padding_mode="border")`` and no
  validity mask;
* correlation is the mean over channels of ``f1(p) * f2(p + d)`` for every displacement ``d`` within
  ``±max_displacement`` (zero outside the image), channel index ``(dy + md) * (2 md + 1) + (dx + md)``;
* the network's output is the level-2 flow (1/4 of the input size) in the network's own units: the pyramid rescales
  it by 20 / 2**level when warping, but STVUN uses the final output as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import LEAKY_SLOPE, conv_lrelu

#: The pyramid has six levels; the coarsest works at 1/64 of the input size.
LEVELS = 6


def backward_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Samples ``x`` at ``p + flow(p)``: ``(b, c, h, w)``, flow ``(b, 2, h, w)`` in pixels (x then y).

    Sampling positions are always computed in float32 (and half-precision inputs sampled in float32): bf16 cannot
    even count pixels past 256, and its grid steps would be wider than a pixel.
    """
    b, _, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, w)
    flow = flow.float()
    # align_corners=True: pixel 0 maps to -1 and pixel w-1 to +1.
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=3)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    # The result keeps the input's layout: grid_sample answers channels-first, and the decoder's bf16 convolutions
    # on channels-first input took 2.2x as long on a CPU (docs/speed.md).
    return out.to(dtype=x.dtype, memory_format=layout_of(x))


def layout_of(x: torch.Tensor) -> torch.memory_format:
    """``channels_last`` for a 4-D tensor stored so (and not also plain contiguous), else ``contiguous_format``."""
    last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if last else torch.contiguous_format


#: How :func:`correlation` is computed. The values are the same; the count of operations and the memory differ.
CORRELATIONS = ("loop", "rows", "batched")


def correlation(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int = 4, mode: str = "loop") -> torch.Tensor:
    """Cost volume ``(b, (2 md + 1)**2, h, w)``: channel-mean of ``f1(p) * f2(p + d)`` for all ``|d| <= md``.

    ``mode``: ``loop``, one product per displacement (81 at md = 4: many small operations, no extra memory);
    ``rows``, one per row of displacements (9), over a strided view of the row's shifts (memory: 2 md + 1 times
    ``f1``); ``batched``, all at once ((2 md + 1)² times ``f1``). On a 2-core CPU, for the default weights' PWC-Net
    at a 960×540 output, the five levels took 10.4 / 9.8 / 28.9 ms: the loop stays there. On a GPU, where each
    operation costs a launch, ``examples/speed_variants.py --correlations`` measures them.
    """
    md = max_displacement
    b, c, h, w = f1.shape
    padded = F.pad(f2, (md, md, md, md))
    if mode == "batched":
        shifted = padded.unfold(2, h, 1).unfold(3, w, 1)  # (b, c, dy, dx, h, w), a view
        return (f1[:, :, None, None] * shifted).mean(1).reshape(b, -1, h, w)
    if mode == "rows":
        rows = []
        for dy in range(2 * md + 1):
            shifted = padded[:, :, dy : dy + h].unfold(3, w, 1)  # (b, c, h, dx, w): column x + dx, a view
            rows.append((f1.unsqueeze(3) * shifted).mean(1).transpose(1, 2))
        return torch.cat(rows, 1)
    costs = []
    for dy in range(2 * md + 1):
        for dx in range(2 * md + 1):
            costs.append((f1 * padded[:, :, dy : dy + h, dx : dx + w]).mean(1))
    return torch.stack(costs, 1)


class PWCNet(nn.Module):
    """PWC-DC-Net flow estimator: ``forward(im1, im2)`` gives the flow from ``im1`` to ``im2``.

    Inputs ``(b, 3, H, W)``; output ``(b, 2, H / 4, W / 4)``. Inputs whose size is not a multiple of 64 are padded
    (edge replication) and the flow cropped back, so any size divisible by 4 works; the authors' setting (×4
    upsampled LR frames whose LR size is a multiple of 16) never pads.

    ``pyramid``: feature channels of levels 1..6; ``estimator``: the five densely connected convolutions of each
    level's flow estimator; ``context``: the six dilated context convolutions.
    """

    def __init__(
        self,
        pyramid: tuple[int, ...] = (16, 32, 64, 96, 128, 196),
        estimator: tuple[int, ...] = (128, 128, 96, 64, 32),
        context: tuple[int, ...] = (128, 128, 128, 96, 64, 32),
        max_displacement: int = 4,
    ) -> None:
        super().__init__()
        if len(pyramid) != LEVELS or len(estimator) != 5 or len(context) != 6:
            raise ValueError("PWCNet needs 6 pyramid widths, 5 estimator widths and 6 context widths")
        self.md = max_displacement
        self.correlation_mode = "loop"  # how the cost volumes are computed (CORRELATIONS); speed only
        prev = 3
        for level, ch in enumerate(pyramid, start=1):
            # The authors' file names the strided convolution of level 6 "conv6aa" and of the others "convNa".
            names = ("aa", "a", "b") if level == LEVELS else ("a", "aa", "b")
            for j, suffix in enumerate(names):
                stride, cin = (2, prev) if j == 0 else (1, ch)
                self.add_module(f"conv{level}{suffix}", conv_lrelu(cin, ch, stride=stride))
            prev = ch
        nd = (2 * max_displacement + 1) ** 2
        dense = [sum(estimator[: i + 1]) for i in range(5)]
        for level in range(LEVELS, 1, -1):
            # Level input: cost volume, plus (below the top) image features, upsampled flow and upsampled features.
            od = nd if level == LEVELS else nd + pyramid[level - 1] + 4
            for i, ch in enumerate(estimator):
                self.add_module(f"conv{level}_{i}", conv_lrelu(od + (dense[i - 1] if i else 0), ch))
            self.add_module(f"predict_flow{level}", nn.Conv2d(od + dense[4], 2, 3, padding=1))
            self.add_module(f"deconv{level}", nn.ConvTranspose2d(2, 2, 4, 2, 1))
            if level > 2:
                self.add_module(f"upfeat{level}", nn.ConvTranspose2d(od + dense[4], 2, 4, 2, 1))
        dilations = (1, 2, 4, 8, 16, 1)
        prev = od + dense[4]
        for i, (ch, dil) in enumerate(zip(context, dilations), start=1):
            self.add_module(f"dc_conv{i}", conv_lrelu(prev, ch, dilation=dil))
            prev = ch
        self.dc_conv7 = nn.Conv2d(prev, 2, 3, padding=1)
        # deconv2 exists in the authors' checkpoint but the level-2 flow is never upsampled: it is kept only so
        # that their file loads strictly, and frozen so that optimisers and gradient checks ignore it.
        self.deconv2.requires_grad_(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for level in range(1, LEVELS + 1):
            names = ("aa", "a", "b") if level == LEVELS else ("a", "aa", "b")
            for suffix in names:
                x = getattr(self, f"conv{level}{suffix}")(x)
            feats.append(x)
        return feats

    def _estimate(self, level: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for i in range(5):
            x = torch.cat((getattr(self, f"conv{level}_{i}")(x), x), 1)
        return getattr(self, f"predict_flow{level}")(x), x

    def forward(
        self, im1: torch.Tensor, im2: torch.Tensor, pyramid: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The flow; with ``pyramid``, also the coarser levels' flows (levels 6 to 3, each ``(b, 2, H/2^l, W/2^l)``,
        in the pyramid's own units: ×20 is input pixels), which unsupervised pre-training supervises too."""
        h, w = im1.shape[-2:]
        ph, pw = -h % 64, -w % 64
        if ph or pw:
            im1 = F.pad(im1, (0, pw, 0, ph), mode="replicate")
            im2 = F.pad(im2, (0, pw, 0, ph), mode="replicate")
        # Both images share the pyramid: one batched pass.
        feats = self._features(torch.cat((im1, im2), 0))
        b = im1.shape[0]
        f1 = [f[:b] for f in feats]
        f2 = [f[b:] for f in feats]

        corr = F.leaky_relu(correlation(f1[-1], f2[-1], self.md, self.correlation_mode), LEAKY_SLOPE)
        flow, x = self._estimate(LEVELS, corr)
        coarse = []
        for level in range(LEVELS - 1, 1, -1):
            coarse.append(flow)
            up_flow = getattr(self, f"deconv{level + 1}")(flow)
            up_feat = getattr(self, f"upfeat{level + 1}")(x)
            warped = backward_warp(f2[level - 1], up_flow * (20.0 / 2**level))
            corr = F.leaky_relu(correlation(f1[level - 1], warped, self.md, self.correlation_mode), LEAKY_SLOPE)
            flow, x = self._estimate(level, torch.cat((corr, f1[level - 1], up_flow, up_feat), 1))
        for i in range(1, 7):
            x = getattr(self, f"dc_conv{i}")(x)
        flow = flow + self.dc_conv7(x)
        if ph or pw:
            flow = flow[..., : h // 4, : w // 4]
            coarse = [f[..., : -(-h // 2**lv), : -(-w // 2**lv)] for f, lv in zip(coarse, range(LEVELS, 2, -1))]
        return (flow, coarse) if pyramid else flow
