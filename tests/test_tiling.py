"""--tile auto (issue 15, item 4): the choice under a memory budget, and running on after running out of memory."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from stvup.errors import UsageError
from stvup.upscaling.pipeline import Upscaler
from stvup.upscaling.tiling import SWEET, balanced_tile, choose_tile, estimate_bytes, parse_tile

from .test_upscale import _frames, _tiny

GB = 1 << 30


@pytest.mark.parametrize(
    ("size", "model", "precision", "budget", "expected"),
    [
        ((135, 240), "stvun-small", "bf16", 2 * GB, None),  # 540p output: whole frames
        ((270, 480), "stvun-small", "bf16", 2 * GB, SWEET),  # 1080p output: tiles of the fastest size
        ((540, 960), "stvun-small", "bf16", 2 * GB, SWEET),  # 4K output
        ((135, 240), "stvun", "fp32", GB, None),
        ((135, 240), "stvun", "fp32", 512 << 20, 112),  # the paper's network in fp32 needs 25.7 kB per pixel
    ],
)
def test_the_choice(size, model, precision, budget, expected):
    assert choose_tile(*size, model, precision, budget, scale=4) == expected


@pytest.mark.parametrize("budget", [3 * GB, 2 * GB, GB, 600 << 20, 300 << 20])
def test_a_smaller_budget_gives_smaller_tiles_that_fit(budget):
    tile = choose_tile(540, 960, "stvun", "fp32", budget, scale=4)
    assert tile % 16 == 0 and 32 <= tile <= SWEET
    if tile > 32:
        assert estimate_bytes("stvun", "fp32", tile * tile, 540 * 960 * 16) <= budget
    smaller = choose_tile(540, 960, "stvun", "fp32", budget // 2, scale=4)
    assert smaller <= tile


def test_parse_tile():
    assert (
        parse_tile("auto") == "auto"
        and parse_tile("off") is None
        and parse_tile("96") == 96
        and parse_tile(None) is None
    )
    with pytest.raises(UsageError, match="--tile must be auto, off or a size"):
        parse_tile("big")


def test_balanced_tiles_overlap_as_little_as_they_can():
    assert balanced_tile(540, 256, 16, 16) == 192  # three tiles of 192, not three of 256
    assert balanced_tile(960, 256, 16, 16) == 256 and balanced_tile(100, 256, 16, 16) == 100
    assert balanced_tile(270, 256, 16, 16) == 144  # two tiles of 144 instead of 256 + 256


def test_small_frames_stay_whole_with_auto():
    up = Upscaler(_tiny(), device="cpu")
    list(up.stream(_frames(4), Fraction(25), Fraction(50)))
    assert up.auto_tile and up.tile is None


def test_out_of_memory_halves_the_tile_and_loses_nothing(monkeypatch):
    frames = _frames(6, h=64, w=96)
    reference = [o.image for o in Upscaler(_tiny(), device="cpu", tile=48).stream(frames, Fraction(25), Fraction(50))]
    model = _tiny()
    encode = model.encode

    def limited(x):  # an allocator that cannot hold more than 48×48 pixels at once
        if x.shape[-1] * x.shape[-2] > 48 * 48:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes")
        return encode(x)

    monkeypatch.setattr(model, "encode", limited)
    up = Upscaler(model, device="cpu", tile="auto")
    outs = list(up.stream(frames, Fraction(25), Fraction(50)))
    assert [o.index for o in outs] == list(range(12))
    assert up.tile == 48 and up.notes == ["ran out of memory: went on with --tile 48"]
    assert all(np.array_equal(o.image, r) for o, r in zip(outs, reference))


def test_other_errors_are_not_taken_for_memory(monkeypatch):
    model = _tiny()
    monkeypatch.setattr(model, "encode", lambda x: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        list(Upscaler(model, device="cpu").stream(_frames(4), Fraction(25), Fraction(50)))


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_tiles_fit_a_capped_gpu():
    """Under a memory cap (a small GPU), auto picks tiles that fit, or halves them on running out: all frames come."""
    import torch

    from stvup.model import build_model

    torch.cuda.set_per_process_memory_fraction(0.02)  # about 1.6 GB of an 80 GB card
    try:
        up = Upscaler(build_model("stvun-small"), device="cuda", precision="fp16", tile="auto")
        frames = _frames(4, h=540, w=960)  # a 4K output
        outs = list(up.stream(frames, Fraction(25), Fraction(50)))
        assert [o.index for o in outs] == list(range(8)) and outs[0].image.shape == (2160, 3840, 3)
        assert (
            up.tile is not None
            and torch.cuda.max_memory_allocated() <= 0.02 * torch.cuda.get_device_properties(0).total_memory
        )
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
