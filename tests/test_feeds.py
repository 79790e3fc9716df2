"""The batches a training run draws (stvup.data.feeds): per-patch samplers, unlabeled pairs and flow pairs."""

from __future__ import annotations

import torch

from stvup.data.degrade import Degradation
from stvup.data.feeds import build_feeds, report

from .test_train import _texture_clip


def _feeds(**kw):
    base = dict(patches={16, 24}, scale=4, degradation=Degradation(), stride=2, augment=True, frames=2,
                max_times=3, seed=5)  # fmt: skip
    return build_feeds([_texture_clip(n=120, h=128, w=128)], **{**base, **kw})


def test_every_patch_size_gets_its_sampler_and_draws_depend_only_on_seed_and_step():
    a, b = _feeds(), _feeds()
    assert sorted(a.labeled) == [16, 24] and a.flow is None
    assert a.batch(3, 24, 2).lr.shape == (2, 2, 3, 24, 24)
    assert torch.equal(a.batch(3, 16, 2).lr, b.batch(3, 16, 2).lr)
    assert not torch.equal(a.batch(3, 16, 2).lr, a.batch(4, 16, 2).lr)
    assert a.unlabeled_lr(3, 16, 2) is None  # no unlabeled footage in this run


def test_unlabeled_pairs_come_from_the_unlabeled_part_and_low_res_folders():
    lr_clip = _texture_clip(n=40, h=32, w=32)
    feeds = _feeds(labeled_fraction=0.4, unlabeled_clips=[lr_clip])
    assert len(feeds.unlabeled[16]) == 2  # the footage's unlabeled segments, then the low-resolution clip
    assert feeds.labeled[16].windows < feeds.total_windows[16]
    pairs = feeds.unlabeled_lr(7, 16, 3)
    assert pairs.shape == (2, 3, 3, 16, 16)
    assert torch.equal(pairs, _feeds(labeled_fraction=0.4, unlabeled_clips=[lr_clip]).unlabeled_lr(7, 16, 3))
    assert feeds.unlabeled_lr(7, 16, 0) is None
    said: list[str] = []
    report(feeds, 16, 0.4, said.append)
    assert said == [f"labeled: {feeds.labeled[16].windows} of {feeds.total_windows[16]} windows"]


def test_flow_pairs_are_two_frames_with_the_middle_frame_kept():
    feeds = _feeds(frames=7, flow_patch=16)
    batch = feeds.flow.batch(0, 2)
    assert batch.lr.shape == (2, 2, 3, 16, 16) and batch.times == [0.5]
    assert batch.lr_between.shape == (1, 2, 3, 16, 16)


def test_clips_too_small_for_a_patch_are_reported():
    said: list[str] = []
    small = _texture_clip(n=20, h=40, w=40)  # 10×10 LR pixels
    feeds = build_feeds([_texture_clip(n=20), small], patches={16}, scale=4, degradation=Degradation(), stride=2,
                        augment=False, frames=7, max_times=3, seed=0)  # fmt: skip
    report(feeds, 16, 1.0, said.append)
    assert len(said) == 1 and said[0].startswith("not sampled: texture:") and "smaller than" in said[0]
