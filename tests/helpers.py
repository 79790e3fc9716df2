"""Deterministic weights and inputs for model tests, independent of module registration order."""

from __future__ import annotations

import zlib

import torch
from torch import nn


def seeded_state(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict whose every tensor depends only on its key, shape and ``seed`` (He-like scale)."""
    state = {}
    for key, ref in model.state_dict().items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()) ^ seed)
        t = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        if ref.dim() > 1:
            transposed = "deconv" in key or "upfeat" in key  # ConvTranspose2d weights are (in, out, k, k)
            fan_in = ref.shape[0 if transposed else 1] * ref[0, 0].numel()
            t = t * (2.0 / fan_in) ** 0.5
        else:
            t = t * 0.01
        state[key] = t.to(ref.dtype)
    return state


def seeded_frames(n: int = 7, b: int = 1, h: int = 32, w: int = 48, seed: int = 1) -> list[torch.Tensor]:
    """Seven smooth, moving test frames in [-1, 1], ``(b, 3, h, w)`` each."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(b, 3, 1, 1, generator=g) * 6.28
    ys = torch.linspace(0, 3.14, h).view(1, 1, h, 1)
    xs = torch.linspace(0, 6.28, w).view(1, 1, 1, w)
    frames = []
    for i in range(n):
        img = torch.sin(xs * 1.5 + ys + phase + 0.3 * i) * torch.cos(ys * 2 - 0.2 * i)
        noise = torch.rand(b, 3, h, w, generator=g) * 0.1
        frames.append((img * 0.9 + noise - 0.05).clamp(-1, 1))
    return frames
