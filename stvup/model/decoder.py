"""STVUN's decoder: one stage of three dense blocks per encoder level, then the residual head (paper Fig. 3).

The same decoder (shared weights) serves the spatial path, fed with the centre frame's features and the EFST
output, and the space-time path, fed with the interpolated features ``m_T`` and the spatial pass's decoded
features ``D^i`` (paper section 3.2, "Decoder").
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import DenseBlock, conv_lrelu


class Decoder(nn.Module):
    """Decodes features into a residual image at ``scale`` × the LR size.

    ``forward(frame_feats, side_feats)`` takes two lists of ``blocks`` tensors ``(b, c, h, w)`` (deepest first) and
    returns ``(decoded, residual)``: the per-stage decoded features (fed to the space-time pass) and the residual
    ``(b, 3 * scale**2, h, w)`` before pixel shuffling.
    """

    def __init__(self, channels: int = 64, blocks: int = 4, scale: int = 4) -> None:
        super().__init__()
        self.blocks = blocks
        self.scale = scale
        od = channels * 2
        for k in range(blocks):
            if k > 0:
                # Mixes the previous stage's output with the side input of this level.
                self.add_module(f"cconv{k}", nn.Conv2d(channels * 2, channels, 1))
            self.add_module(f"block{k}_0", DenseBlock(od, od))
            self.add_module(f"block{k}_1", DenseBlock(od * 2, od * 2))
            self.add_module(f"block{k}_2", DenseBlock(od * 4, channels))
        out = 3 * scale**2
        self.rconv0 = conv_lrelu(channels, out)
        self.rconv1 = nn.Conv2d(out, out, 3, padding=1)

    def forward(
        self, frame_feats: list[torch.Tensor], side_feats: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        decoded = []
        side = side_feats[0]
        for k in range(self.blocks):
            if k > 0:
                side = getattr(self, f"cconv{k}")(torch.cat((decoded[-1], side_feats[k]), 1))
            x = torch.cat((frame_feats[k], side), 1)
            x = torch.cat((x, getattr(self, f"block{k}_0")(x)), 1)
            x = torch.cat((x, getattr(self, f"block{k}_1")(x)), 1)
            decoded.append(getattr(self, f"block{k}_2")(x))
        return decoded, self.rconv1(self.rconv0(decoded[-1]))
