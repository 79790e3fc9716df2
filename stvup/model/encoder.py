"""STVUN's per-frame encoder: a stem convolution and a chain of dense blocks (paper Fig. 3)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import DenseBlock, conv_lrelu


class Encoder(nn.Module):
    """Extracts the multi-level features ``e_t^i`` of one LR frame.

    Input ``(b, in_channels, h, w)`` in [-1, 1] (3, or 3·u² for an input unshuffled by u); output a list of
    ``blocks`` tensors ``(b, channels, h, w)``, deepest block first, which is the order in which the decoder
    consumes them.
    """

    def __init__(self, channels: int = 64, blocks: int = 4, in_channels: int = 3) -> None:
        super().__init__()
        self.blocks = blocks
        self.conv = conv_lrelu(in_channels, channels)
        for i in range(blocks):
            self.add_module(f"block{i}", DenseBlock(channels, channels))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv(x)
        feats = []
        for i in range(self.blocks):
            x = getattr(self, f"block{i}")(x)
            feats.append(x)
        return feats[::-1]
