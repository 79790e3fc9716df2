"""The batches a training run draws from: one :class:`~stvup.data.sampler.Sampler` per patch size, unlabeled footage,
and the flow pre-training pairs, built once from a run's settings.

Every draw depends only on ``(seed, step)``, as the samplers' do, so a resumed run sees the batches an uninterrupted
run would have seen. Kept apart from :mod:`stvup.training.loop` so that the training loop only asks for a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from stvup.data.degrade import Degradation
from stvup.data.sampler import Batch, Sampler
from stvup.data.sources import Clip, Photo

UNLABELED_SEED_STEP = 7919  # unlabeled sources draw independently of the labeled ones
FLOW_SEED_OFFSET = 104729


@dataclass
class Feeds:
    """Samplers of one run. ``labeled[patch]``: the labeled windows at that LR patch size; ``unlabeled[patch]``: the
    sources of unlabeled LR pairs (the unlabeled part of the footage, then low-resolution folders); ``flow``: LR
    pairs one input apart for PWC-Net's pre-training (stage 0), or None."""

    labeled: dict[int, Sampler]
    unlabeled: dict[int, list[Sampler]] = field(default_factory=dict)
    flow: Sampler | None = None
    total_windows: dict[int, int] = field(default_factory=dict)
    seed: int = 0

    def batch(self, step: int, patch: int, size: int) -> Batch:
        """The labeled batch of ``step`` at LR patch size ``patch``."""
        return self.labeled[patch].batch(step, size)

    def draw(
        self, step: int, stage: int, patch: int, size: int, unlabeled: int = 0
    ) -> tuple[Batch, torch.Tensor | None]:
        """Everything training step ``step`` of ``stage`` takes, on the CPU: stage 0's flow pairs or the labeled
        batch at ``patch``, and in stage 2 ``unlabeled`` LR pairs (None without them). What
        :class:`~stvup.data.prefetch.Prefetch` draws ahead."""
        if stage == 0:
            return self.flow.batch(step, size), None
        extra = self.unlabeled_lr(step, patch, unlabeled) if stage == 2 and unlabeled else None
        return self.batch(step, patch, size), extra

    def unlabeled_lr(self, step: int, patch: int, size: int) -> torch.Tensor | None:
        """``(2, size, 3, p, p)`` unlabeled LR pairs for ``step``, from a source picked in proportion to its
        windows; None when the run has no unlabeled footage."""
        sources = self.unlabeled.get(patch, [])
        if not sources or size < 1:
            return None
        sizes = np.array([src.windows for src in sources], dtype=np.float64)
        pick = int(np.random.default_rng([self.seed, step, 31]).choice(len(sources), p=sizes / sizes.sum()))
        return sources[pick].batch(step, size).lr


def build_feeds(
    clips: list[Clip],
    *,
    patches: set[int],
    scale: int,
    degradation: Degradation,
    stride: int | list[int],
    augment: bool,
    frames: int,
    max_times: int,
    seed: int,
    labeled_fraction: float = 1.0,
    keep_hr: bool = False,
    unlabeled_clips: list[Clip] | None = None,
    flow_patch: int | None = None,
    photos: list[Photo] | None = None,
    photo_share: float = 0.0,
    prescale: float = 1.0,
) -> Feeds:
    """Samplers for every LR patch size in ``patches``; ``flow_patch`` adds the stage-0 pairs (two frames, the true
    middle frame kept for the L_M monitor). ``labeled_fraction`` < 1 leaves the rest of the windows unlabeled.
    ``photos``, ``photo_share`` and ``prescale`` go to the labeled samplers (:class:`~stvup.data.sampler.Sampler`)."""
    labeled: dict[int, Sampler] = {}
    unlabeled: dict[int, list[Sampler]] = {}
    total: dict[int, int] = {}
    for patch in sorted(patches):
        common = {"patch": patch, "stride": stride, "augment": augment, "frames": frames}
        full = Sampler(clips, scale=scale, degradation=degradation, max_times=max_times, seed=seed, keep_hr=keep_hr,
                       photos=photos or (), photo_share=photo_share, prescale=prescale, **common)  # fmt: skip
        total[patch] = full.windows
        labeled[patch], rest = full.split(labeled_fraction, seed)
        sources = [rest] if rest is not None else []
        if unlabeled_clips:
            sources.append(Sampler(unlabeled_clips, low_res=True, **common))
        for k, source in enumerate(sources):
            source.seed = seed + UNLABELED_SEED_STEP * (k + 1)
        unlabeled[patch] = sources
    flow = None
    if flow_patch is not None:
        flow = Sampler(clips, scale=scale, degradation=degradation, patch=flow_patch, stride=stride, max_times=1,
                       augment=augment, seed=seed + FLOW_SEED_OFFSET, frames=2)  # fmt: skip
    return Feeds(labeled, unlabeled, flow, total, seed)


def report(feeds: Feeds, patch: int, labeled_fraction: float, say: Callable[[str], None]) -> None:
    """Tells which clips give no windows at ``patch`` and why, and how many windows are labeled."""
    for path, why in feeds.labeled[patch].skipped:
        say(f"not sampled: {path}: {why}")
    if labeled_fraction < 1:
        say(f"labeled: {feeds.labeled[patch].windows} of {feeds.total_windows[patch]} windows")
    sampler = feeds.labeled[patch]
    if sampler.photos:
        say(f"photographs: {len(sampler.photos)}, {sampler.photo_share:.0%} of the samples")
