"""Convolution helpers and the dense block shared by STVUN's encoder and decoder.

The attribute names (``conv0``, ``conv1`` and the ``.0`` index of the convolution inside its ``Sequential``) are part
of the checkpoint format: they are exactly those of the authors' ``STVUN.pth``.
"""

from __future__ import annotations

import torch
from torch import nn

LEAKY_SLOPE = 0.1


def conv_lrelu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int | None = None,
    dilation: int = 1,
) -> nn.Sequential:
    """A biased 2-D convolution followed by LeakyReLU(0.1); state-dict keys ``0.weight`` and ``0.bias``."""
    if padding is None:
        padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation),
        nn.LeakyReLU(LEAKY_SLOPE),
    )


class DenseBlock(nn.Module):
    """Two 3×3 convolutions with a dense connection: ``conv1(cat(conv0(x), x))``.

    Shapes: ``(b, c_in, h, w) -> (b, c_out, h, w)``. The concatenation order (new features first) matters for
    loading the authors' weights.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = conv_lrelu(in_channels, in_channels)
        self.conv1 = conv_lrelu(in_channels * 2, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(torch.cat((self.conv0(x), x), 1))
