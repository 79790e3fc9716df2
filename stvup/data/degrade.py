"""Degradations that turn high-resolution frames into the network's low-resolution input.

Two families, two pixel grids:

* **The paper's** (section 3.3, ``"duf"``): a 13×13 Gaussian blur with σ = 0.4 × scale, then every ``scale``-th
  pixel (the "DUF" downsampling of the authors' code). LR pixel ``i`` is the blur centred on HR pixel ``scale · i``,
  so an ``r·H × r·W`` image gives exactly ``H × W``. Image borders are reflected, as in their code.
* **Real video's** (``"bicubic"``, ``"area"``, ``"lanczos"``, ``"bilinear"``, and ``"real"`` for a random one of
  them per clip): an antialiased reduction, as cameras, phones and transcoders make low-resolution video. LR pixel
  ``i`` is centred on its ``scale × scale`` block, HR position ``scale · i + (scale − 1) / 2`` (the "block-centre"
  grid). Real video is then stored as 4:2:0 and compressed, so :class:`Degradation` can add a mild optical blur
  before the reduction, sensor-like noise after it, and a real H.264 or MPEG-2 round trip (through PyAV, in
  memory) that brings 4:2:0 chroma and the codec's blocks and ringing.

A network learns the grid it is trained on: weights say which one in their metadata (:data:`GRIDS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

KERNEL_SIZE = 13
REAL_KERNELS = ("bicubic", "area", "lanczos", "bilinear")
KERNELS = ("duf", *REAL_KERNELS, "mixed", "real")
GRIDS = {"duf": "duf", **{k: "block-centre" for k in REAL_KERNELS}, "real": "block-centre"}
"""The pixel grid each kernel puts LR pixels on; ``mixed`` trains both grids at once and has none."""


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
    return reduce(x, scale, "bicubic")


def _lanczos_weights(scale: int, lobes: int = 3) -> torch.Tensor:
    """1-D antialiased Lanczos taps for a ×``scale`` reduction on the block-centre grid, ``(2·lobes·scale,)``."""
    # Tap k sits (k + 0.5 − lobes·scale) HR pixels from the block's centre; stretched by the scale (antialiasing).
    d = (torch.arange(2 * lobes * scale, dtype=torch.float64) + 0.5 - lobes * scale) / scale
    w = torch.sinc(d) * torch.sinc(d / lobes)
    return w / w.sum()


def reduce(x: torch.Tensor, scale: int, kernel: str = "bicubic") -> torch.Tensor:
    """Antialiased ×``scale`` reduction of ``(..., c, H, W)`` images on the block-centre grid (H, W multiples of
    ``scale``): ``kernel`` is ``bicubic``, ``area``, ``lanczos`` (3 lobes) or ``bilinear``, as image and video
    scalers do it. Returns ``(..., c, H / scale, W / scale)`` in the input's dtype (Lanczos may overshoot the range).
    """
    *lead, c, h, w = x.shape
    flat = x.reshape(-1, c, h, w).float()
    size = (h // scale, w // scale)
    if kernel in ("bicubic", "bilinear"):
        y = F.interpolate(flat, size=size, mode=kernel, align_corners=False, antialias=True)
    elif kernel == "area":
        y = F.avg_pool2d(flat[..., : size[0] * scale, : size[1] * scale], scale)
    elif kernel == "lanczos":
        taps = _lanczos_weights(scale).to(device=x.device, dtype=torch.float32)
        pad = (len(taps) - scale) // 2
        one = flat.reshape(-1, 1, h, w)[..., : size[0] * scale, : size[1] * scale]
        one = F.conv2d(F.pad(one, (pad, pad, 0, 0), mode="replicate"), taps.view(1, 1, 1, -1), stride=(1, scale))
        one = F.conv2d(F.pad(one, (0, 0, pad, pad), mode="replicate"), taps.view(1, 1, -1, 1), stride=(scale, 1))
        y = one.reshape(-1, c, *size)
    else:
        raise ValueError(f"unknown reduction kernel {kernel!r}; use {', '.join(REAL_KERNELS)}")
    return y.reshape(*lead, c, *size).to(x.dtype)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(..., c, H, W)`` images with σ = ``sigma`` pixels (borders replicated)."""
    radius = max(1, int(3 * sigma + 0.5))
    g = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    *lead, c, h, w = x.shape
    one = x.reshape(-1, 1, h, w).float()
    one = F.conv2d(F.pad(one, (radius, radius, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    one = F.conv2d(F.pad(one, (0, 0, radius, radius), mode="replicate"), g.view(1, 1, -1, 1))
    return one.reshape(*lead, c, h, w).to(x.dtype)


def sensor_noise(lr: torch.Tensor, sigma: float, rng: np.random.Generator) -> torch.Tensor:
    """Add camera-like noise of at most ``sigma`` (in [0, 1] units at full brightness) to ``(t, 3, h, w)`` frames.

    A random share is signal-dependent (shot noise: variance grows with brightness), the rest constant (read
    noise); half the clips get it in luma only (a camera's processed output), half per colour channel.
    """
    shot = float(rng.uniform(0, 1))
    std = torch.sqrt((1 - shot) * sigma**2 + shot * sigma**2 * lr.clamp(0, 1))
    luma_only = bool(rng.integers(2))
    shape = (lr.shape[0], 1, *lr.shape[2:]) if luma_only else lr.shape
    noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(lr.device)
    return lr + std * noise


@dataclass(frozen=True)
class Degradation:
    """A random degradation for training: what the LR input looks like.

    ``kernel``: the reduction, one of :data:`KERNELS`: ``"duf"`` (the paper), ``"bicubic"``, ``"area"``,
    ``"lanczos"``, ``"bilinear"`` (antialiased, block-centre grid), ``"real"`` (one of those four per clip) or
    ``"mixed"`` (duf or bicubic per clip). ``blur``: the share of clips blurred mildly (Gaussian σ 0.3–1.0 HR
    pixels, a soft lens or a camera's processing) before the reduction. ``noise``: the largest standard deviation of
    sensor-like noise, in 8-bit levels (each clip draws one in [0, noise]). ``crf``: ``(low, high)`` H.264 constant
    rate factor range for compressing the seven LR frames as one clip, or None. ``mpeg2``: the share of compressed
    clips that go through MPEG-2 (as on a DVD, quantiser 2–10) instead of H.264. ``probability``: the share of clips
    that get noise and compression at all, so clean input stays covered. ``chroma``: clips that are not compressed
    still go through 4:2:0 chroma (lossless H.264), as every real video is stored.
    """

    kernel: str = "duf"
    noise: float = 0.0
    crf: tuple[int, int] | None = None
    probability: float = 1.0
    blur: float = 0.0
    mpeg2: float = 0.0
    chroma: bool = False

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown degradation kernel {self.kernel!r}; use {', '.join(KERNELS)}")
        if self.noise < 0:
            raise ValueError("noise must be non-negative")
        if self.crf is not None and not (0 <= self.crf[0] <= self.crf[1] <= 51):
            raise ValueError(f"crf range must lie within 0..51, got {self.crf}")
        for name in ("probability", "blur", "mpeg2"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie within 0..1, got {getattr(self, name)}")
        if self.mpeg2 and self.crf is None:
            raise ValueError("MPEG-2 clips are a share of the compressed ones: give a crf range too")

    @property
    def is_clean(self) -> bool:
        return self.kernel == "duf" and self.noise == 0 and self.crf is None

    @property
    def grid(self) -> str | None:
        """``"duf"`` or ``"block-centre"``: where LR pixels sit on the HR image (None for ``mixed``)."""
        return GRIDS.get(self.kernel)

    def __call__(self, hr: torch.Tensor, scale: int, rng: np.random.Generator) -> torch.Tensor:
        """``hr``: ``(t, 3, H, W)`` float in [0, 1], one clip; returns ``(t, 3, H/s, W/s)`` in [0, 1], 8-bit values.

        The whole clip gets the same kernel, noise level and compression, as one camera would give it.
        """
        return self.sample(hr, hr[:0], scale, rng)[0]

    def sample(
        self, hr: torch.Tensor, between: torch.Tensor, scale: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The degraded inputs of ``hr`` ``(t, 3, H, W)`` and the clean reductions of the frames ``between`` them
        ``(k, 3, H, W)`` (the L_M target, Eq. 7), both by the same kernel and blur so they share one grid."""
        kernel = self.kernel
        if kernel == "mixed":
            kernel = ("duf", "bicubic")[int(rng.integers(2))]
        elif kernel == "real":
            kernel = REAL_KERNELS[int(rng.integers(len(REAL_KERNELS)))]
        if self.blur and rng.random() < self.blur:
            sigma = float(rng.uniform(0.3, 1.0))
            hr, between = gaussian_blur(hr, sigma), gaussian_blur(between, sigma)

        def down(x: torch.Tensor) -> torch.Tensor:
            return duf_downsample(x, scale) if kernel == "duf" else reduce(x, scale, kernel)

        lr, lr_between = down(hr), quantize(down(between)) if len(between) else between
        extra = rng.random() < self.probability
        if extra and self.noise > 0 and (self.kernel != "real" or rng.integers(2)):
            lr = sensor_noise(lr, float(rng.uniform(0, self.noise)) / 255, rng)
        lr = quantize(lr)
        if extra and self.crf is not None:
            if self.mpeg2 and rng.random() < self.mpeg2:
                lr = compress_clip(lr, int(rng.integers(2, 11)), codec="mpeg2video")
            else:
                lr = compress_clip(lr, int(rng.integers(self.crf[0], self.crf[1] + 1)))
        elif self.chroma:
            lr = compress_clip(lr, 0)
        return lr, lr_between


REAL_VIDEO = Degradation("real", noise=4.0, crf=(15, 35), probability=0.8, blur=0.25, mpeg2=0.15, chroma=True)
"""The real-video mix: a random antialiased kernel on the block-centre grid, a mild blur for a quarter of the
clips, sensor-like noise (up to 4 levels) for half of the compressed ones, H.264 at CRF 15–35 or (15 %) MPEG-2 for
80 %, and 4:2:0 chroma for all."""


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] images to 8-bit levels, as storing them as PNG or video would."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def compress_clip(clip: torch.Tensor, quality: int, codec: str = "libx264", preset: str = "veryfast") -> torch.Tensor:
    """Encode ``(t, 3, h, w)`` [0, 1] frames as yuv420p and decode them again, in memory.

    ``codec``: ``libx264`` at CRF ``quality`` (0 is lossless, so only 4:2:0 chroma remains) or ``mpeg2video`` at
    quantiser ``quality`` (2–31), as on a DVD; ``preset`` is x264's (training uses a fast one). An odd width or
    height is padded by one replicated pixel for the encoder and cut again. Real codec artefacts (blocking, ringing,
    smeared chroma) are what a model for real-world input has to learn to ignore; blur-and-noise models of them are
    a poor substitute.
    """
    import av  # here, not at the top: training without compression must run where PyAV is missing (the GPU kit)

    t, _, h, w = clip.shape
    if h % 2 or w % 2:
        padded = F.pad(clip, (0, w % 2, 0, h % 2), mode="replicate")
        return compress_clip(padded, quality, codec, preset)[..., :h, :w]
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.framerate = Fraction(25)
    if codec == "libx264":
        enc.options = {"crf": str(quality), "preset": preset}
    elif codec == "mpeg2video":
        # A fixed quantiser, as a DVD encoder's rate control settles on for a scene; B-frames as on discs.
        enc.options = {"qmin": str(quality), "qmax": str(quality), "bf": "2", "g": "12"}
    else:
        raise ValueError(f"unknown codec {codec!r}; use libx264 or mpeg2video")
    images = (clip.permute(0, 2, 3, 1).mul(255).round().clamp(0, 255).to(torch.uint8)).cpu().numpy()
    packets = []
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets.extend(enc.encode(frame))
    packets.extend(enc.encode(None))
    dec = av.CodecContext.create("h264" if codec == "libx264" else codec, "r")
    out = []
    for packet in packets:
        out.extend(dec.decode(packet))
    out.extend(dec.decode(None))
    if len(out) != t:
        raise RuntimeError(f"{codec} round trip returned {len(out)} of {t} frames")
    decoded = np.stack([f.to_ndarray(format="rgb24") for f in out])
    return torch.from_numpy(decoded).permute(0, 3, 1, 2).float().to(clip.device) / 255
