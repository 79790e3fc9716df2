"""Training samples for STVUN, drawn from decoded clips (paper section 3.3, with the time targets of issue 4).

One sample takes seven source frames at stride ``s`` (source frames 0, s, …, 6s of a window): degraded, they are the
LR input. Source frame 3s, the centre, is the spatial target Y_3; the skipped frames 3s + j (j = 1 … s-1) are the
time targets Y_T at T_in = j / s, between input frames 3 and 4. Ordinary 25–30 fps video at s = 2 therefore
supervises ×2 time from footage alone; faster sources may use a larger stride and give several time targets.

Every random choice of a batch comes from a generator seeded with ``(seed, step)``, so a resumed run sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stvup.data.degrade import Degradation, duf_downsample, quantize
from stvup.data.sources import Clip

FRAMES = 7
CENTER = 3
LR_MARGIN = 4  # LR pixels of context degraded along with each patch and then cut away, so no reflected border


@dataclass
class Batch:
    """One training batch; images in [0, 1].

    ``lr``: ``(7, b, 3, p, p)`` the seven degraded inputs. ``center``: ``(b, 3, s·p, s·p)`` Y_3. ``times``: the T_in
    values. ``between``: ``(len(times), b, 3, s·p, s·p)`` Y_T. ``lr_between``: ``(len(times), b, 3, p, p)`` the
    clean DUF-downsampled X_T (the target of L_M, Eq. 7).
    """

    lr: torch.Tensor
    center: torch.Tensor
    times: list[float]
    between: torch.Tensor
    lr_between: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.lr.to(device), self.center.to(device), self.times, self.between.to(device), self.lr_between.to(device)
        )


def auto_stride(rate: float, lr_rate: float = 15.0) -> int:
    """Stride that brings a source near ``lr_rate`` input frames per second, at least 2 (one time target)."""
    return max(2, int(round(rate / lr_rate)))


class Sampler:
    """Draws batches of random patches from ``clips``.

    ``patch``: LR patch size (HR patches are ``scale × patch``). ``stride``: source frames between LR inputs, or
    ``None`` for :func:`auto_stride` per clip. ``max_times``: at most this many time targets per batch (chosen at
    random when a stride offers more). ``augment``: random left-right flip, 90°/180°/270° rotation and reversed order.
    """

    def __init__(
        self,
        clips: list[Clip],
        *,
        scale: int = 4,
        patch: int = 32,
        stride: int | None = 2,
        degradation: Degradation | None = None,
        max_times: int = 3,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        if stride is not None and stride < 2:
            raise ValueError("stride must be at least 2 so that a skipped frame gives a time target")
        self.scale, self.patch, self.augment, self.seed = scale, patch, augment, seed
        self.max_times = max(1, max_times)
        self.degradation = degradation or Degradation()
        self.skipped: list[tuple[str, str]] = []
        # (clip, stride, window starts) for every clip that can give a sample.
        self.entries: list[tuple[Clip, int, np.ndarray]] = []
        need = patch * scale
        for clip in clips:
            s = stride or auto_stride(float(clip.rate))
            h, w = clip.frames.shape[1:3]
            if min(h, w) < need:
                self.skipped.append((clip.path, f"{w}x{h} is smaller than the {need}-pixel patch"))
                continue
            starts = clip.windows(6 * s + 1)
            if len(starts) == 0:
                self.skipped.append((clip.path, f"no shot of {6 * s + 1} frames"))
                continue
            self.entries.append((clip, s, starts))
        if not self.entries:
            raise ValueError("no training source is large and long enough for one sample")
        self.strides = sorted({s for _, s, _ in self.entries})

    @property
    def windows(self) -> int:
        """Number of distinct sample windows (before cropping and augmentation)."""
        return sum(len(starts) for _, _, starts in self.entries)

    def batch(self, step: int, size: int) -> Batch:
        """The batch of training step ``step``: ``size`` samples from clips that share one stride."""
        rng = np.random.default_rng([self.seed, step])
        stride = self.strides[int(rng.integers(len(self.strides)))]
        group = [e for e in self.entries if e[1] == stride]
        weights = np.array([len(starts) for _, _, starts in group], dtype=np.float64)
        js = list(range(1, stride))
        if len(js) > self.max_times:
            js = sorted(rng.choice(js, self.max_times, replace=False).tolist())
        samples = [
            self._sample(group[int(rng.choice(len(group), p=weights / weights.sum()))], js, rng) for _ in range(size)
        ]
        lr, center, between, lr_between = (
            torch.stack(parts, 1 if i in (0, 2, 3) else 0) for i, parts in enumerate(zip(*samples))
        )
        return Batch(lr, center, [j / stride for j in js], between, lr_between)

    def _sample(
        self, entry: tuple[Clip, int, np.ndarray], js: list[int], rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        clip, stride, starts = entry
        s, p = self.scale, self.patch
        start = int(starts[int(rng.integers(len(starts)))])
        h, w = clip.frames.shape[1:3]
        # Degrade the patch together with a margin of real context where the frame has it, then cut the margin.
        size = (p + 2 * LR_MARGIN) * s
        ch, cw = min(size, h - h % s), min(size, w - w % s)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        reverse = self.augment and bool(rng.integers(2))
        direction = -1 if reverse else 1
        centre = start + CENTER * stride if not reverse else start + (6 - CENTER) * stride
        inputs = [centre + direction * stride * (i - CENTER) for i in range(FRAMES)]
        targets = [centre + direction * j for j in js]
        crop = clip.frames[inputs + targets, y0 : y0 + ch, x0 : x0 + cw]
        hr = torch.from_numpy(np.ascontiguousarray(crop)).permute(0, 3, 1, 2).float() / 255
        if self.augment:
            if rng.integers(2):
                hr = hr.flip(-1)
            hr = torch.rot90(hr, int(rng.integers(4)), (-2, -1))
        lr = self.degradation(hr[:FRAMES], s, rng)
        lr_between = quantize(duf_downsample(hr[FRAMES:], s))
        # Cut the margin: LR pixel i is centred on HR pixel s·i, so equal offsets in LR pixels keep them aligned.
        my, mx = (lr.shape[-2] - p) // 2, (lr.shape[-1] - p) // 2
        lr, lr_between = lr[..., my : my + p, mx : mx + p], lr_between[..., my : my + p, mx : mx + p]
        hr = hr[..., my * s : (my + p) * s, mx * s : (mx + p) * s]
        return lr, hr[CENTER], hr[FRAMES:], lr_between
