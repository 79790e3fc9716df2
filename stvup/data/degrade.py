"""Degradations that turn high-resolution frames into the network's low-resolution input.

The default is the one STVUN was trained and evaluated with (paper section 3.3): a 13×13 Gaussian blur with
σ = 0.4 × scale, then keeping every ``scale``-th pixel (the "DUF" downsampling of the authors' code). LR pixel ``i``
is the blur centred on HR pixel ``scale · i`` (not on the centre of an HR block, as with area or bicubic
resampling), so an ``r·H × r·W`` image gives exactly ``H × W``. Image borders are reflected, as in their code.

For footage that is not clean (phones, streaming, old camcorders), :class:`Degradation` adds optional bicubic
downsampling, Gaussian noise and real H.264 compression (through PyAV, in memory) at random strengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

KERNEL_SIZE = 13


def gaussian_kernel(scale: int, size: int = KERNEL_SIZE) -> torch.Tensor:
    """The authors' ``size × size`` blur kernel for ``scale``, ``(size, size)`` float64 summing to 1.

    Their kernel is SciPy's ``gaussian_filter(delta, σ)``: a separable Gaussian with σ = 0.4·scale truncated at
    radius ``int(4σ + 0.5)`` (so ×2 has a 7×7 support inside the 13×13 array, ×4 fills it).
    """
    sigma = 0.4 * scale
    radius = min(int(4 * sigma + 0.5), size // 2)
    x = torch.arange(-(size // 2), size // 2 + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = torch.where(x.abs() <= radius, g, torch.zeros_like(g))
    g = g / g.sum()
    return torch.outer(g, g)


def duf_downsample(x: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """Gaussian blur and subsampling of ``(..., c, H, W)`` images (H and W multiples of ``scale``).

    Returns ``(..., c, H / scale, W / scale)`` in the input's dtype; values stay within the input's range.
    """
    if scale not in (2, 4):
        raise ValueError(f"scale must be 2 or 4, got {scale}")
    *lead, h, w = x.shape
    if h % scale or w % scale:
        raise ValueError(f"image size {w}x{h} is not a multiple of {scale}")
    pad = KERNEL_SIZE // 2 + 2 * scale
    if min(h, w) <= pad:
        raise ValueError(f"image size {w}x{h} is too small to degrade (needs more than {pad} pixels)")
    flat = x.reshape(-1, 1, h, w)
    kernel = gaussian_kernel(scale).to(device=x.device, dtype=torch.float32)[None, None]
    y = F.conv2d(F.pad(flat.float(), (pad, pad, pad, pad), mode="reflect"), kernel, stride=scale)
    y = y[:, :, 2:-2, 2:-2]
    return y.reshape(*lead, h // scale, w // scale).to(x.dtype)


def bicubic_downsample(x: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """Antialiased bicubic reduction (MATLAB ``imresize``-like) of ``(..., c, H, W)`` images."""
    *lead, h, w = x.shape
    flat = x.reshape(-1, x.shape[-3], h, w).float()
    y = F.interpolate(flat, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=True)
    return y.reshape(*lead, h // scale, w // scale).to(x.dtype)


@dataclass(frozen=True)
class Degradation:
    """A random degradation for training: what the LR input looks like.

    ``kernel``: ``"duf"`` (the paper), ``"bicubic"``, or ``"mixed"`` (each sample picks one). ``noise``: the largest
    standard deviation of added Gaussian noise, in 8-bit levels (each sample draws one in [0, noise]).
    ``crf``: ``(low, high)`` H.264 constant-rate-factor range for compressing the seven LR frames as one clip, or
    None. ``probability``: chance that a sample gets noise/compression at all, so clean input stays covered.
    """

    kernel: str = "duf"
    noise: float = 0.0
    crf: tuple[int, int] | None = None
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.kernel not in ("duf", "bicubic", "mixed"):
            raise ValueError(f"unknown degradation kernel {self.kernel!r}; use duf, bicubic or mixed")
        if self.noise < 0:
            raise ValueError("noise must be non-negative")
        if self.crf is not None and not (0 <= self.crf[0] <= self.crf[1] <= 51):
            raise ValueError(f"crf range must lie within 0..51, got {self.crf}")

    @property
    def is_clean(self) -> bool:
        return self.kernel == "duf" and self.noise == 0 and self.crf is None

    def __call__(self, hr: torch.Tensor, scale: int, rng: np.random.Generator) -> torch.Tensor:
        """``hr``: ``(t, 3, H, W)`` float in [0, 1], one clip; returns ``(t, 3, H/s, W/s)`` in [0, 1], 8-bit values.

        The whole clip gets the same kernel, noise level and compression, as one camera would give it.
        """
        kernel = self.kernel if self.kernel != "mixed" else ("duf", "bicubic")[int(rng.integers(2))]
        lr = duf_downsample(hr, scale) if kernel == "duf" else bicubic_downsample(hr, scale)
        extra = rng.random() < self.probability
        if extra and self.noise > 0:
            sigma = float(rng.uniform(0, self.noise)) / 255
            noise = torch.from_numpy(rng.standard_normal(lr.shape).astype(np.float32))
            lr = lr + sigma * noise
        lr = quantize(lr)
        if extra and self.crf is not None:
            lr = compress_clip(lr, int(rng.integers(self.crf[0], self.crf[1] + 1)))
        return lr


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] images to 8-bit levels, as storing them as PNG or video would."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def compress_clip(clip: torch.Tensor, crf: int) -> torch.Tensor:
    """Encode ``(t, 3, h, w)`` [0, 1] frames with H.264 (yuv420p) at ``crf`` and decode them again, in memory.

    Sizes must be even (4:2:0 chroma). Real codec artefacts (blocking, ringing, smeared chroma) are what a model for
    real-world input has to learn to ignore; blur-and-noise models of them are a poor substitute.
    """
    import av  # here, not at the top: training without compression must run where PyAV is missing (the GPU kit)

    t, _, h, w = clip.shape
    if h % 2 or w % 2:
        raise ValueError(f"compression needs even frame sizes, got {w}x{h}")
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
    images = (clip.permute(0, 2, 3, 1).mul(255).round().clamp(0, 255).to(torch.uint8)).numpy()
    packets = []
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets.extend(enc.encode(frame))
    packets.extend(enc.encode(None))
    dec = av.CodecContext.create("h264", "r")
    out = []
    for packet in packets:
        out.extend(dec.decode(packet))
    out.extend(dec.decode(None))
    if len(out) != t:
        raise RuntimeError(f"H.264 round trip returned {len(out)} of {t} frames")
    decoded = np.stack([f.to_ndarray(format="rgb24") for f in out])
    return torch.from_numpy(decoded).permute(0, 3, 1, 2).float() / 255
