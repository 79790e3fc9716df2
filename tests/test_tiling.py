"""--tile auto (issue 15, item 4): the choice under a memory budget, and running on after running out of memory."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from stvup.errors import UsageError
from stvup.upscaling.pipeline import Upscaler
from stvup.upscaling.tiling import (
    FIXED,
    SWEET,
    TileCanvas,
    balanced_tile,
    band_bytes,
    choose_tile,
    estimate_bytes,
    frames_bytes,
    parse_tile,
    ramp_weight,
    tile_boxes,
    to_float,
)

from .test_upscale import _frames, _tiny

GB = 1 << 30


@pytest.mark.parametrize(
    ("size", "model", "precision", "budget", "expected"),
    [
        ((135, 240), "stvun-small", "bf16", 2 * GB, None),  # 540p output: whole frames
        ((270, 480), "stvun-small", "bf16", 2 * GB, SWEET),  # 1080p output: tiles of the fastest size
        ((540, 960), "stvun-small", "bf16", 2 * GB, SWEET),  # 4K output
        # 1080p input, 8K output: the output frames do not squeeze the tile (they did: 32-pixel tiles, 7,973 a window)
        ((1080, 1920), "stvun-small", "bf16", 2 * GB, SWEET),
        ((135, 240), "stvun", "fp32", GB, None),
        ((135, 240), "stvun", "fp32", 512 << 20, 112),  # the paper's network in fp32 needs 25.7 kB per pixel
    ],
)
def test_the_choice(size, model, precision, budget, expected):
    assert choose_tile(*size, model, precision, budget, scale=4) == expected


@pytest.mark.parametrize("budget", [3 * GB, 2 * GB, GB, 600 << 20, 300 << 20])
def test_a_smaller_budget_gives_smaller_tiles_that_fit(budget):
    tile = choose_tile(540, 960, "stvun", "fp32", budget, scale=4)
    assert tile % 16 == 0 and 64 <= tile <= SWEET
    if tile > 64:
        fixed = frames_bytes(540 * 960 * 16, 2, tiled=True)
        assert fixed + estimate_bytes("stvun", "fp32", tile * tile) + band_bytes(tile, 960, 4, 2) <= budget
    smaller = choose_tile(540, 960, "stvun", "fp32", budget // 2, scale=4)
    assert smaller <= tile


def test_a_x2_network_that_unshuffles_prices_a_quarter_of_the_pixels():
    full = estimate_bytes("stvun-small", "bf16", 256 * 256)
    assert estimate_bytes("stvun-small", "bf16", 256 * 256, unshuffle=2) < full / 3
    # 4K input to 8K at ×2 keeps the largest tiles; the same input at ×4 (16K) falls to the smallest.
    assert choose_tile(2160, 3840, "stvun-small-x2", "bf16", 2 * GB, 2, 32, unshuffle=2) == 2 * SWEET  # 256 of its grid
    assert choose_tile(2160, 3840, "stvun-small", "bf16", 2 * GB, 4) == 64


def test_the_canvas_blends_tiles_back_into_the_frame_one_row_of_tiles_at_a_time():
    torch.manual_seed(0)
    h, w, s = 72, 104, 2
    frames = [torch.rand(1, 3, h * s, w * s) * 2 - 1 for _ in range(2)]
    canvas = TileCanvas(2, h, w, s, 16, torch.device("cpu"))
    boxes = tile_boxes(h, w, 48, 16, 8)
    assert len({(y0, y1) for y0, y1, _, _ in boxes}) > 1  # several rows of tiles
    # Each tile's output differs from its neighbours' where they overlap (as a network's do at tile edges): the
    # canvas must blend them as one weighted sum over the whole frame would.
    sums = [torch.zeros_like(f) for f in frames]
    weight = torch.zeros(1, 1, h * s, w * s)
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        outs = [f[:, :, y0 * s : y1 * s, x0 * s : x1 * s] + 0.03 * k for f in frames]
        canvas.add((y0, y1, x0, x1), outs)
        # Only the current row of tiles is held in floats, never the whole frame.
        assert canvas.sums[0].shape[2] == (y1 - y0) * s < h * s
        wy = ramp_weight(y1 - y0, 16 * s // 2, y0 > 0, y1 < h).repeat_interleave(s)
        wx = ramp_weight(x1 - x0, 16 * s // 2, x0 > 0, x1 < w).repeat_interleave(s)
        wt = wy[:, None] * wx[None, :]
        weight[:, :, y0 * s : y1 * s, x0 * s : x1 * s] += wt
        for total, out in zip(sums, outs):
            total[:, :, y0 * s : y1 * s, x0 * s : x1 * s] += out * wt
    done = canvas.frames()
    assert all(d.dtype == torch.int16 for d in done)
    for d, total in zip(done, sums):
        expected = (total / weight).clamp(-1, 1)
        assert float((to_float(d) - expected).abs().max()) <= 0.5 / FIXED + 1e-6


def test_the_canvas_refuses_tiles_out_of_order():
    canvas = TileCanvas(1, 64, 64, 2, 16, torch.device("cpu"))
    canvas.add((32, 64, 0, 64), [torch.zeros(1, 3, 64, 128)])
    with pytest.raises(ValueError, match="row by row"):
        canvas.add((0, 32, 0, 64), [torch.zeros(1, 3, 64, 128)])


@pytest.mark.parametrize("space", [4, 2])
def test_finishing_a_frame_in_blocks_of_rows_gives_the_whole_frames_result(space):
    up = Upscaler(_tiny(), device="cpu", space=space)
    torch.manual_seed(1)
    y = torch.rand(1, 3, 4 * 50, 4 * 60) * 2.2 - 1.1  # beyond [-1, 1] too, as network outputs are
    whole = up._finish(y, 50, 60, rows=10_000)
    assert whole.shape == (50 * space, 60 * space, 3)
    for rows in (7, 16, 33):
        assert np.array_equal(up._finish(y, 50, 60, rows=rows), whole), rows
    # A tiled frame's int16 (clamped when stored, so before a reduction) reads as the clamped floats do.
    fixed = (y.clamp(-1, 1) * FIXED).round().to(torch.int16)
    clamped = up._finish(y.clamp(-1, 1), 50, 60)
    assert np.abs(up._finish(fixed, 50, 60, rows=16).astype(int) - clamped.astype(int)).max() <= 1


def test_large_frames_recompute_features_instead_of_caching_them(monkeypatch):
    up = Upscaler(_tiny(), device="cpu")
    up.plan_tile(48, 64)
    assert up.keep_features
    monkeypatch.setattr("stvup.upscaling.pipeline.memory_budget", lambda device: up._cached_bytes(48, 64) * 2)
    up._planned = None
    up.plan_tile(48, 64)
    assert not up.keep_features
    frames = _frames(6, h=48, w=64)
    cached = [o.image for o in Upscaler(_tiny(), device="cpu").stream(frames, Fraction(25), Fraction(50))]
    calls = []
    encode = up.model.encode
    monkeypatch.setattr(up.model, "encode", lambda x: calls.append(1) or encode(x))
    outs = [o.image for o in up.stream(frames, Fraction(25), Fraction(50))]
    assert all(np.array_equal(a, b) for a, b in zip(outs, cached))
    # Each window encodes its distinct frames (mirrored at the clip's ends: 4, 5, 6, 6, 5, 4), nothing kept between
    # windows; with the cache it would be the 6 frames once each.
    assert len(calls) == 30


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
