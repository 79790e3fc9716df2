"""PSNR and SSIM against values worked out by hand and a brute-force SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stvup.evaluation.metrics import psnr, ssim, to_y


def test_psnr_by_hand():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a + 5
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    assert psnr(a, a) == math.inf
    # Grey pixels: Y = 16 + v · 219/255, so a step of 5 in RGB is a step of 5·219/255 in Y.
    assert psnr(a, b, y=True) == pytest.approx(10 * math.log10(255**2 / (5 * 219 / 255) ** 2))
    # Cropping removes the border, where all the error is here.
    c = a.copy()
    c[0] = 0
    assert psnr(a, c, crop=1) == math.inf and psnr(a, c) < 30


def test_y_is_bt601_studio_range():
    white, black = np.full((1, 1, 3), 255.0), np.zeros((1, 1, 3))
    assert float(to_y(white)[0, 0]) == pytest.approx(235.0)
    assert float(to_y(black)[0, 0]) == pytest.approx(16.0)


def test_ssim_of_flat_images_by_hand():
    # No variance anywhere: SSIM is the luminance term (2ab + C1) / (a² + b² + C1).
    c1 = (0.01 * 255) ** 2
    a, b = np.full((20, 20), 100.0), np.full((20, 20), 120.0)
    assert ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1))
    assert ssim(np.full((20, 20, 3), 7.0), np.full((20, 20, 3), 7.0)) == pytest.approx(1.0)


def _brute_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. written out window by window, in float64."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (24, 30)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).round()
    assert ssim(a, b) == pytest.approx(_brute_ssim(a, b), abs=1e-6)
    rgb_a = rng.integers(0, 256, (20, 20, 3)).astype(np.uint8)
    rgb_b = np.clip(rgb_a + rng.normal(0, 40, rgb_a.shape), 0, 255).astype(np.uint8)
    per_channel = [_brute_ssim(rgb_a[..., c].astype(float), rgb_b[..., c].astype(float)) for c in range(3)]
    assert ssim(rgb_a, rgb_b) == pytest.approx(np.mean(per_channel), abs=1e-6)
    with pytest.raises(ValueError):
        ssim(a, b[:-1])
