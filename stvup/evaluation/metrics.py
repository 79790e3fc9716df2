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
    if isinstance(image, torch.Tensor):
        return image.to(torch.float64)
    return torch.from_numpy(np.array(image, dtype=np.float64))


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
    """The 1-D half of the separable 11×11 Gaussian window."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Valid-mode 2-D Gaussian filtering of ``(n, 1, h, w)`` as two 1-D convolutions."""
    g = g.to(x.dtype)
    return F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, crop: int = 0, y: bool = False) -> float:
    """Mean SSIM between two [0, 255] images; RGB images average their three channels."""
    a, b = _prepare(a, b, crop, y)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    a, b = a.permute(2, 0, 1)[:, None], b.permute(2, 0, 1)[:, None]  # (c, 1, h, w)
    g = _window()
    if min(a.shape[-2:]) < len(g):
        raise ValueError("images are smaller than the 11×11 SSIM window")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    # The five local statistics in one batched float32 pass (float64 convolutions are many times slower). Values
    # are centred on 128 first, which keeps E[x²] − μ² accurate to ~1e-7 of SSIM in float32.
    n = a.shape[0]
    a, b = (a - 128).float(), (b - 128).float()
    stats = _filter(torch.cat((a, b, a * a, b * b, a * b)), g).double()
    mu_a, mu_b, aa, bb, ab = stats.split(n)
    var_a = aa - mu_a**2
    var_b = bb - mu_b**2
    cov = ab - mu_a * mu_b
    mu_a, mu_b = mu_a + 128, mu_b + 128
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float((num / den).mean())
