"""Training samples for STVUN, drawn from decoded clips (paper section 3.3, with the time targets of issue 4).

One sample takes seven source frames at stride ``s`` (source frames 0, s, …, 6s of a window): degraded, they are the
LR input. Source frame 3s, the centre, is the spatial target Y_3; the skipped frames 3s + j (j = 1 … s-1) are the
time targets Y_T at T_in = j / s, between input frames 3 and 4. Ordinary 25–30 fps video at s = 2 therefore
supervises ×2 time from footage alone; a larger stride gives several time targets (s = 4: T_in = 1/4, 1/2, 3/4),
and several strides at once (each batch draws one) train ×2 and ×4 time together.

The two-stream network (second paper) takes the same kind of sample with ``frames=2``: LR frames ``s`` apart and the
HR frame between them (a triplet, Eq. 6). :meth:`Sampler.split` divides the windows into a labeled and an unlabeled
part by whole segments of footage (the labeled-fraction experiments), and ``low_res=True`` samples footage that is
already low-resolution (unlabeled video: LR frames only, nothing degraded).

Still photographs join the footage with ``photos``: a ``photo_share`` of the samples is cut from one of them along
a random camera path (:mod:`stvup.data.camera`). ``prescale`` reduces the HR patches of sharp sources (photographs,
and footage at least :data:`PRESCALE_MIN_SIDE` pixels on its short side) by a random factor in [1, ``prescale``]
first, so that the network sees the detail of real footage at every level and not only pristine 2–3K detail.

Every random choice of a batch comes from a generator seeded with ``(seed, step)``, so a resumed run sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stvup.data.camera import DEFAULT_MOTION, CameraMotion, photo_window
from stvup.data.degrade import Degradation
from stvup.data.sources import Clip, Photo

FRAMES = 7  # STVUN's inputs; the window's centre is input (frames - 1) // 2
LR_MARGIN = 4  # LR pixels of context degraded along with each patch and then cut away, so no reflected border
SEGMENT = 24  # source frames per segment when windows are split into labeled and unlabeled footage
PRESCALE_MIN_SIDE = 720  # footage this sharp (720p and up) gets its HR patches reduced by a random factor first


@dataclass
class Batch:
    """One training batch; images in [0, 1].

    ``lr``: ``(7, b, 3, p, p)`` the seven degraded inputs (``(2, b, …)`` with ``frames=2``; the only field filled by a
    ``low_res`` sampler). ``center``: ``(b, 3, s·p, s·p)`` Y_3, the HR frame of the centre input. ``times``: the T_in
    values. ``between``: ``(len(times), b, 3, s·p, s·p)`` Y_T. ``lr_between``: ``(len(times), b, 3, p, p)`` the
    clean reduction of X_T by the inputs' kernel (the target of L_M, Eq. 7). ``hr``: ``(frames, b, 3, s·p, s·p)``
    the inputs' HR frames, when the sampler keeps them.
    """

    lr: torch.Tensor
    center: torch.Tensor
    times: list[float]
    between: torch.Tensor
    lr_between: torch.Tensor
    hr: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        moved = [x.to(device) for x in (self.lr, self.center, self.between, self.lr_between)]
        return Batch(*moved[:2], self.times, *moved[2:], None if self.hr is None else self.hr.to(device))


def auto_stride(rate: float, lr_rate: float = 15.0) -> int:
    """Stride that brings a source near ``lr_rate`` input frames per second, at least 2 (one time target)."""
    return max(2, int(round(rate / lr_rate)))


class Sampler:
    """Draws batches of random patches from ``clips``.

    ``patch``: LR patch size (HR patches are ``scale × patch``). ``stride``: source frames between LR inputs, several
    of them (each batch draws one at random, with equal chance), or ``None`` for :func:`auto_stride` per clip.
    ``max_times``: at most this many time targets per batch (chosen at
    random when a stride offers more). ``augment``: random left-right flip, 90°/180°/270° rotation and reversed order.
    ``frames``: inputs per sample (7 for STVUN, 8 for STVUN with the consistency loss, 2 for the two-stream network);
    the time targets lie between input ``(frames − 1) // 2`` and the next. ``low_res``: the clips are LR already.
    ``keep_hr``: batches also carry the HR frames of all inputs (``Batch.hr``). ``photos``: still photographs, of
    which a ``photo_share`` of the samples is cut along camera paths limited by ``motion``. ``prescale``: the largest
    factor (drawn log-uniformly from 1) by which photographs and footage of at least :data:`PRESCALE_MIN_SIDE` pixels
    are reduced before the patch is cut; 1 leaves them as they are.
    """

    def __init__(
        self,
        clips: list[Clip],
        *,
        scale: int = 4,
        patch: int = 32,
        stride: int | Sequence[int] | None = 2,
        degradation: Degradation | None = None,
        max_times: int = 3,
        augment: bool = True,
        seed: int = 0,
        frames: int = FRAMES,
        low_res: bool = False,
        keep_hr: bool = False,
        photos: Sequence[Photo] = (),
        photo_share: float = 0.0,
        prescale: float = 1.0,
        motion: CameraMotion = DEFAULT_MOTION,
    ) -> None:
        choices = None if stride is None else sorted({stride} if isinstance(stride, int) else set(stride))
        if choices is not None and (not choices or choices[0] < 2):
            raise ValueError("strides must be at least 2 so that a skipped frame gives a time target")
        if frames < 2:
            raise ValueError("a sample needs at least 2 input frames")
        if not 0 <= photo_share <= 1:
            raise ValueError(f"the share of photo samples must lie within 0..1, got {photo_share}")
        if prescale < 1:
            raise ValueError(f"the prescale factor must be at least 1, got {prescale}")
        if photos and low_res:
            raise ValueError("photographs are HR sources; a low-resolution sampler cannot use them")
        self.prescale, self.motion = prescale, motion
        self.scale, self.patch, self.augment, self.seed = scale, patch, augment, seed
        self.frames, self.center, self.low_res, self.keep_hr = frames, (frames - 1) // 2, low_res, keep_hr
        self.max_times = max(1, max_times)
        self.degradation = degradation or Degradation()
        self.skipped: list[tuple[str, str]] = []
        # (clip, stride, window starts) for every clip that can give a sample.
        self.entries: list[tuple[Clip, int, np.ndarray]] = []
        need = patch if low_res else patch * scale
        for clip in clips:
            h, w = clip.frames.shape[1:3]
            if min(h, w) < need:
                self.skipped.append((clip.path, f"{w}x{h} is smaller than the {need}-pixel patch"))
                continue
            for s in choices or [auto_stride(float(clip.rate))]:
                span = (frames - 1) * s + 1
                starts = clip.windows(span)
                if len(starts) == 0:
                    at = f" (stride {s})" if choices and len(choices) > 1 else ""
                    self.skipped.append((clip.path, f"no shot of {span} frames{at}"))
                    continue
                self.entries.append((clip, s, starts))
        # A photo must hold a patch moved, zoomed and rolled at the limits of the motion, with room to spare.
        room = 1.5 * need + 2 * 7 * motion.pan * scale
        self.photos = []
        for photo in photos:
            h, w = photo.image.shape[:2]
            if min(h, w) >= room:
                self.photos.append(photo)
            else:
                self.skipped.append((photo.path, f"{w}x{h} is too small for moving {need}-pixel patches"))
        self.photo_share = photo_share if self.photos else 0.0
        if not self.entries and not self.photos:
            raise ValueError("no training source is large and long enough for one sample")
        if self.entries and self.photo_share == 1:
            raise ValueError("a photo share of 1 leaves the footage unused; give less, or no footage")
        self.strides = sorted({s for _, s, _ in self.entries}) or (choices or [2])

    @property
    def windows(self) -> int:
        """Number of distinct sample windows (before cropping and augmentation)."""
        return sum(len(starts) for _, _, starts in self.entries)

    def split(self, fraction: float, seed: int = 0) -> tuple[Sampler, Sampler | None]:
        """``(labeled, unlabeled)`` samplers over disjoint footage; ``unlabeled`` is None at ``fraction`` 1.

        Footage is cut into segments of :data:`SEGMENT` source frames and a seeded random ``fraction`` of all
        segments (at least one) is labeled. A labeled window lies wholly inside labeled segments, so its HR frames
        are all labeled footage; every other window is unlabeled and is only ever used for its LR frames.
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"labeled fraction must be in (0, 1], got {fraction}")
        if fraction == 1:
            return self, None
        segments = [(i, g) for i, (clip, _, _) in enumerate(self.entries)
                    for g in range(-(-len(clip.frames) // SEGMENT))]  # fmt: skip
        order = np.random.default_rng([seed, 1009]).permutation(len(segments))
        chosen = {segments[k] for k in order[: max(1, round(fraction * len(segments)))]}
        labeled, unlabeled = [], []
        for i, (clip, s, starts) in enumerate(self.entries):
            span = (self.frames - 1) * s
            inside = np.array([all((i, g) in chosen for g in range(a // SEGMENT, (a + span) // SEGMENT + 1))
                               for a in starts], dtype=bool)  # fmt: skip
            if inside.any():
                labeled.append((clip, s, starts[inside]))
            if (~inside).any():
                unlabeled.append((clip, s, starts[~inside]))
        if not labeled:
            raise ValueError(f"a labeled fraction of {fraction} leaves no whole labeled sample; raise it")
        return self._with(labeled), self._with(unlabeled, photos=False) if unlabeled else None

    def _with(self, entries: list[tuple[Clip, int, np.ndarray]], photos: bool = True) -> Sampler:
        other = copy.copy(self)
        other.entries = entries
        other.strides = sorted({s for _, s, _ in entries})
        if not photos:
            other.photos, other.photo_share = [], 0.0
        return other

    def batch(self, step: int, size: int) -> Batch:
        """The batch of training step ``step``: ``size`` samples from clips that share one stride."""
        rng = np.random.default_rng([self.seed, step])
        stride = self.strides[int(rng.integers(len(self.strides)))]
        group = [e for e in self.entries if e[1] == stride]
        weights = np.array([len(starts) for _, _, starts in group], dtype=np.float64)
        js = list(range(1, stride))
        if len(js) > self.max_times:
            js = sorted(rng.choice(js, self.max_times, replace=False).tolist())
        samples = []
        for _ in range(size):
            # No draw at all without photos (or with a share of 0), so that runs without them keep their batches.
            if self.photos and (not group or (self.photo_share > 0 and rng.random() < self.photo_share)):
                samples.append(self._photo_sample(self.photos[int(rng.integers(len(self.photos)))], stride, js, rng))
            else:
                samples.append(self._sample(group[int(rng.choice(len(group), p=weights / weights.sum()))], js, rng))
        lr, center, between, lr_between, hr = (
            torch.stack(parts, 0 if i == 1 else 1) for i, parts in enumerate(zip(*samples))
        )
        times = [] if self.low_res else [j / stride for j in js]
        return Batch(lr, center, times, between, lr_between, hr if self.keep_hr else None)

    def _sample(
        self, entry: tuple[Clip, int, np.ndarray], js: list[int], rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        clip, stride, starts = entry
        s, p = self.scale, self.patch
        start = int(starts[int(rng.integers(len(starts)))])
        h, w = clip.frames.shape[1:3]
        n, c = self.frames, self.center
        factor = 1.0
        if self.low_res:
            size, ch, cw = p, p, p
        else:
            # Degrade the patch together with a margin of real context where the frame has it, then cut the margin.
            size = (p + 2 * LR_MARGIN) * s
            ch, cw = min(size, h - h % s), min(size, w - w % s)
            if self.prescale > 1 and min(h, w) >= PRESCALE_MIN_SIDE:
                factor = min(self._prescale_factor(rng), h / ch, w / cw)
        sh, sw = (ch, cw) if factor <= 1 else (min(h, math.ceil(ch * factor)), min(w, math.ceil(cw * factor)))
        y0, x0 = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
        reverse = self.augment and bool(rng.integers(2))
        direction = -1 if reverse else 1
        centre = start + c * stride if not reverse else start + (n - 1 - c) * stride
        inputs = [centre + direction * stride * (i - c) for i in range(n)]
        targets = [] if self.low_res else [centre + direction * j for j in js]
        crop = clip.frames[inputs + targets, y0 : y0 + sh, x0 : x0 + sw]
        hr = torch.from_numpy(np.ascontiguousarray(crop)).permute(0, 3, 1, 2).float() / 255
        if (sh, sw) != (ch, cw):
            hr = F.interpolate(hr, size=(ch, cw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        return self._finish(self._augment(hr, rng), rng)

    def _photo_sample(
        self, photo: Photo, stride: int, js: list[int], rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A sample cut from ``photo`` along a random camera path: inputs ``stride`` source frames apart, the time
        targets ``js`` frames after the centre. The path is random already, so it is never reversed."""
        c = self.center
        times = [stride * (i - c) for i in range(self.frames)] + list(js)
        size = (self.patch + 2 * LR_MARGIN) * self.scale
        factor = self._prescale_factor(rng) if self.prescale > 1 else 1.0
        hr = photo_window(photo.image, times, stride, size, self.scale, rng, factor, self.motion)
        return self._finish(self._augment(hr, rng), rng)

    def _prescale_factor(self, rng: np.random.Generator) -> float:
        """A reduction factor drawn log-uniformly from [1, prescale]."""
        return float(math.exp(rng.uniform(0, math.log(self.prescale))))

    def _finish(
        self, hr: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sample's tensors from its HR frames ``(frames + times, 3, H, W)``, inputs first: degraded, with the
        margin cut away."""
        s, p, n, c = self.scale, self.patch, self.frames, self.center
        if self.low_res:
            empty = hr.new_zeros(0)
            return hr, empty, empty, empty, empty
        lr, lr_between = self.degradation.sample(hr[:n], hr[n:], s, rng)
        # Cut the margin: LR pixel i covers the same HR pixels (s·i on the DUF grid, the block s·i … s·i + s − 1 on
        # the block-centre one) after the cut, so equal offsets in LR pixels keep LR and HR aligned.
        my, mx = (lr.shape[-2] - p) // 2, (lr.shape[-1] - p) // 2
        lr, lr_between = lr[..., my : my + p, mx : mx + p], lr_between[..., my : my + p, mx : mx + p]
        hr = hr[..., my * s : (my + p) * s, mx * s : (mx + p) * s]
        return lr, hr[c], hr[n:], lr_between, hr[:n] if self.keep_hr else hr.new_zeros(0)

    def _augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if self.augment:
            if rng.integers(2):
                x = x.flip(-1)
            x = torch.rot90(x, int(rng.integers(4)), (-2, -1))
        return x
