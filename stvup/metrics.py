"""Image quality metrics as video super-resolution papers report them: PSNR and SSIM on RGB or on luma (Y).

Images are ``(h, w, 3)`` uint8 arrays or float tensors in [0, 255]. Y is ITU-R BT.601 studio-range luma (MATLAB's
``rgb2ycbcr``: 16–235), which is what "PSNR (Y)" means in the VSR literature. Borders of ``crop`` pixels are left
out because no method can know what lies beyond the frame. SSIM is Wang et al. (2004): 11×11 Gaussian window,
σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, averaged over the valid window positions and, for RGB, over channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: BT.601 RGB→Y for [0, 255] input, giving studio-range luma.
Y_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
Y_OFFSET = 16.0


def _tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    return x.to(torch.float64)


def to_y(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Luma of an ``(h, w, 3)`` RGB image in [0, 255]: ``(h, w)`` float64."""
    x = _tensor(image)
    w = torch.tensor(Y_WEIGHTS, dtype=torch.float64)
    return x @ w + Y_OFFSET


def _prepare(a, b, crop: int, y: bool) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _tensor(a), _tensor(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    if y:
        a, b = to_y(a), to_y(b)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return a, b


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, crop: int = 0, y: bool = False) -> float:
    """PSNR in dB between two [0, 255] images (``inf`` when identical)."""
    a, b = _prepare(a, b, crop, y)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)[None, None]


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, crop: int = 0, y: bool = False) -> float:
    """Mean SSIM between two [0, 255] images; RGB images average their three channels."""
    a, b = _prepare(a, b, crop, y)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    a, b = a.permute(2, 0, 1)[:, None], b.permute(2, 0, 1)[:, None]  # (c, 1, h, w)
    w = _window()
    if min(a.shape[-2:]) < w.shape[-1]:
        raise ValueError("images are smaller than the 11×11 SSIM window")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = F.conv2d(a, w), F.conv2d(b, w)
    var_a = F.conv2d(a * a, w) - mu_a**2
    var_b = F.conv2d(b * b, w) - mu_b**2
    cov = F.conv2d(a * b, w) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float((num / den).mean())
