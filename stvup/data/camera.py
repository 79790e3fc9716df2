"""Moving windows cut from still photographs: a camera path drawn at random, the frames rendered along it.

A photograph has no motion of its own, but a sharp 2–3K photo holds more fine detail than any of the small clips a
CPU can train on. Cutting the seven frames of a window along a camera path (a sub-pixel pan, a slow zoom, a small
roll, a little hand shake) turns it into video whose true motion is known: after the ×4 reduction every frame samples
the scene at another sub-pixel phase, which is what lets a multi-frame network gather detail that no single frame
holds. The path is continuous in source time, so the frames between inputs (the time targets) lie on it too.

The centre frame (time 0) is an exact crop of the (pre-reduced) photograph, so the spatial target keeps every pixel
of detail; the others are resampled bicubically, which softens a little what the ×4 reduction removes anyway.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

BICUBIC_SUPPORT = 3  # pixels beyond a footprint that bicubic sampling reads, with one to spare


@dataclass(frozen=True)
class CameraMotion:
    """The largest camera motion a drawn path has, per input step (``stride`` source frames): ``pan`` in LR pixels
    (the magnitude is drawn uniformly below it, so most pans are sub-pixel to a few pixels, as in handheld footage),
    ``zoom`` as a relative change of scale, ``roll`` in degrees, and ``shake`` the standard deviation of a per-frame
    jitter in LR pixels. Zoom, roll and shake are each in half of the paths."""

    pan: float = 3.0
    zoom: float = 0.02
    roll: float = 0.5
    shake: float = 0.25


DEFAULT_MOTION = CameraMotion()


def camera_path(
    times: Sequence[float], stride: int, scale: int, rng: np.random.Generator, motion: CameraMotion = DEFAULT_MOTION
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random camera path sampled at ``times`` (source frames relative to the centre frame, which is at 0).

    Returns ``(a, t)``: ``a`` ``(k, 2, 2)`` the linear part (zoom and roll) and ``t`` ``(k, 2)`` the shift in HR
    pixels, ``(y, x)`` order, mapping a frame's pixel offset from its centre to the photo's: ``src = c + a·o + t``.
    The centre frame's map is the identity.
    """
    u = torch.tensor([float(x) / stride for x in times], dtype=torch.float64)  # in input steps
    angle = float(rng.uniform(0, 2 * math.pi))
    speed = float(rng.uniform(0, motion.pan)) * scale
    velocity = torch.tensor([math.sin(angle), math.cos(angle)], dtype=torch.float64) * speed
    zoom = float(rng.uniform(-motion.zoom, motion.zoom)) if rng.integers(2) else 0.0
    roll = math.radians(float(rng.uniform(-motion.roll, motion.roll))) if rng.integers(2) else 0.0
    t = u[:, None] * velocity
    if rng.integers(2):
        jitter = torch.from_numpy(rng.normal(0, motion.shake * scale, (len(u), 2)))
        t = t + jitter * (u != 0)[:, None]
    z, th = torch.exp(zoom * u), roll * u
    a = torch.stack([torch.stack([th.cos(), -th.sin()], -1), torch.stack([th.sin(), th.cos()], -1)], -2)
    return a * z[:, None, None], t


def footprint(a: torch.Tensor, t: torch.Tensor, size: int) -> int:
    """Side of the square around the centre that every frame of ``size`` pixels reads, bicubic support included."""
    corners = torch.tensor([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=torch.float64) * (size / 2)
    reach = (torch.einsum("kij,cj->kci", a, corners) + t[:, None]).abs().amax()
    return 2 * (math.ceil(float(reach)) + BICUBIC_SUPPORT)


def render(base: torch.Tensor, a: torch.Tensor, t: torch.Tensor, size: int) -> torch.Tensor:
    """The frames ``(k, c, size, size)`` that the maps ``(a, t)`` cut from ``base`` ``(c, B, B)``, centred on it.

    A frame whose map is the identity is an exact crop (``B − size`` is even), the rest are bicubic samples clamped to
    [0, 1].
    """
    c, side = base.shape[0], base.shape[-1]
    if (side - size) % 2:
        raise ValueError(f"the base ({side} px) and the frames ({size} px) must differ by an even number of pixels")
    off = (side - size) // 2
    o = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    offsets = torch.stack(torch.meshgrid(o, o, indexing="ij"), -1)  # (size, size, 2) as (y, x)
    src = torch.einsum("kij,hwj->khwi", a, offsets) + t[:, None, None] + (side - 1) / 2
    grid = ((2 * src + 1) / side - 1).flip(-1).float()  # grid_sample wants (x, y), align_corners=False
    identity = [bool(torch.equal(a[k], torch.eye(2, dtype=a.dtype)) and not t[k].any()) for k in range(len(a))]
    out = base.new_empty(len(a), c, size, size)
    moving = [k for k in range(len(a)) if not identity[k]]
    if moving:
        batch = base[None].expand(len(moving), -1, -1, -1)
        sampled = F.grid_sample(batch, grid[moving], mode="bicubic", padding_mode="border", align_corners=False)
        out[moving] = sampled.clamp(0, 1)
    for k in range(len(a)):
        if identity[k]:
            out[k] = base[:, off : off + size, off : off + size]
    return out


def photo_window(
    image: np.ndarray,
    times: Sequence[float],
    stride: int,
    size: int,
    scale: int,
    rng: np.random.Generator,
    prescale: float = 1.0,
    motion: CameraMotion = DEFAULT_MOTION,
) -> torch.Tensor:
    """Frames ``(len(times), 3, size, size)`` in [0, 1] cut from ``image`` ``(h, w, 3)`` uint8 along a random camera
    path, at source ``times`` relative to the centre frame (0).

    ``prescale`` ≥ 1 first reduces the photo by that factor (antialiased bicubic), so that the frames see detail at
    the level of real footage and not only the photo's own; it is lowered where the photo is too small for it.
    Raises ValueError when the photo cannot hold the path's footprint at all.
    """
    a, t = camera_path(times, stride, scale, rng, motion)
    side = footprint(a, t, size)
    side += (side - size) % 2
    h, w = image.shape[:2]
    if side > min(h, w):
        raise ValueError(f"a {w}x{h} photo is too small for {size}-pixel frames moving this far ({side} px needed)")
    prescale = min(prescale, min(h, w) / side)
    crop = side if prescale <= 1 else min(min(h, w), math.ceil(side * prescale))
    y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    base = torch.from_numpy(np.ascontiguousarray(image[y0 : y0 + crop, x0 : x0 + crop])).permute(2, 0, 1).float() / 255
    if crop != side:
        base = F.interpolate(base[None], size=(side, side), mode="bicubic", align_corners=False, antialias=True)[0]
        base = base.clamp(0, 1)
    return render(base, a, t, size)
