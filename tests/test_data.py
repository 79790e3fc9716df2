"""Degradation, training sources and the sample sampler."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from stvup.data import Clip, Degradation, Sampler, compress_clip, duf_downsample, find_sources, gaussian_kernel
from stvup.data.degrade import REAL_KERNELS, REAL_VIDEO, quantize, reduce
from stvup.errors import UsageError
from stvup.evaluation.metrics import psnr
from stvup.upscaling.shots import shot_starts

from .conftest import DATA


def _g(x: int, sigma: float, radius: int) -> float:
    """Normalised 1-D weight of the authors' kernel at offset x, by hand from the Gaussian formula."""
    total = sum(math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-radius, radius + 1))
    return math.exp(-(x * x) / (2 * sigma * sigma)) / total if abs(x) <= radius else 0.0


@pytest.mark.parametrize("scale,radius", [(4, 6), (2, 3)])
def test_kernel_is_the_truncated_gaussian(scale, radius):
    k = gaussian_kernel(scale)
    assert k.shape == (13, 13) and abs(float(k.sum()) - 1) < 1e-12
    for x, y in [(0, 0), (1, 0), (3, 2), (6, 6), (4, 0)]:
        assert float(k[6 + y, 6 + x]) == pytest.approx(_g(x, 0.4 * scale, radius) * _g(y, 0.4 * scale, radius))


def test_duf_downsample_of_a_point_and_a_constant():
    # A single bright HR pixel at (row 12, col 16): LR pixel (i, j) sees it through kernel tap (12 - 4i, 16 - 4j).
    x = torch.zeros(1, 32, 32, dtype=torch.float64)
    x[0, 12, 16] = 1.0
    y = duf_downsample(x, 4)
    assert y.shape == (1, 8, 8)
    s = 1.6
    expect = {(3, 4): (0, 0), (2, 4): (4, 0), (3, 3): (0, 4), (4, 5): (-4, -4), (3, 5): (0, -4)}
    for (i, j), (dy, dx) in expect.items():
        assert float(y[0, i, j]) == pytest.approx(_g(dy, s, 6) * _g(dx, s, 6), rel=1e-6)
    assert float(y[0, 0, 0]) == 0.0  # 12 and 16 pixels away: outside the 13×13 support
    # A flat image stays flat (the kernel sums to one), and ×2 gives half the size.
    flat = torch.full((2, 3, 24, 40), 0.25)
    assert torch.allclose(duf_downsample(flat, 4), torch.full((2, 3, 6, 10), 0.25))
    assert duf_downsample(flat, 2).shape == (2, 3, 12, 20)
    with pytest.raises(ValueError, match="multiple"):
        duf_downsample(torch.zeros(1, 30, 32), 4)


def test_degradation_options():
    rng = np.random.default_rng(0)
    hr = torch.rand(7, 3, 64, 64)
    clean = Degradation()(hr, 4, rng)
    assert clean.shape == (7, 3, 16, 16)
    assert torch.equal(clean, torch.round(duf_downsample(hr, 4).clamp(0, 1) * 255) / 255)
    noisy = Degradation(noise=10)(hr, 4, np.random.default_rng(1))
    assert noisy.shape == clean.shape and not torch.equal(noisy, clean)
    with pytest.raises(ValueError):
        Degradation(kernel="box")


@pytest.mark.parametrize("kernel", ["bicubic", "area", "lanczos", "bilinear"])
def test_real_video_reductions_sit_on_the_block_centre_grid(kernel):
    """LR pixel i of a horizontal ramp reads 4i + 1.5 (the centre of its 4-pixel block), not 4i (the DUF grid);
    flat images stay flat."""
    ramp = torch.arange(64, dtype=torch.float32).repeat(1, 1, 32, 1)
    row = reduce(ramp, 4, kernel)[0, 0, 4, 3:12]
    torch.testing.assert_close(row, torch.arange(3, 12, dtype=torch.float32) * 4 + 1.5, atol=1e-4, rtol=0)
    flat = torch.full((2, 3, 32, 48), 0.3)
    torch.testing.assert_close(reduce(flat, 4, kernel), torch.full((2, 3, 8, 12), 0.3), atol=1e-6, rtol=0)
    assert duf_downsample(ramp, 4)[0, 0, 4, 5] == pytest.approx(20.0, abs=1e-4)  # the paper's grid: 4i


def test_lanczos_is_sharper_than_bicubic_and_bilinear_softer():
    """The four kernels differ as scalers' do: on fine detail Lanczos keeps the most contrast, bilinear the least."""
    x = torch.arange(128, dtype=torch.float32)
    stripes = (torch.sin(x * 2 * torch.pi / 11) * 0.5 + 0.5).repeat(1, 1, 16, 1)
    spread = {k: float(reduce(stripes, 4, k)[..., 4:-4].std()) for k in ("lanczos", "bicubic", "bilinear")}
    assert spread["lanczos"] > spread["bicubic"] > spread["bilinear"]
    with pytest.raises(ValueError, match="unknown reduction"):
        reduce(stripes, 4, "nearest")


def test_real_video_mix_degrades_a_clip_alike_and_its_target_cleanly():
    """REAL_VIDEO: 8-bit LR inputs, a clean L_M target reduced by the same kernel (so on the same grid), the same
    draw for the same generator state, and differing draws across samples (compressed or not, noisy or not)."""
    torch.manual_seed(0)
    hr = torch.rand(7, 3, 64, 72).clamp(0, 1)
    between = hr[3:4].clone()
    lr, target = REAL_VIDEO.sample(hr, between, 4, np.random.default_rng(5))
    assert lr.shape == (7, 3, 16, 18) and target.shape == (1, 3, 16, 18)
    assert torch.equal(lr, torch.round(lr * 255) / 255) and 0 <= float(lr.min()) and float(lr.max()) <= 1
    again, _ = REAL_VIDEO.sample(hr, between, 4, np.random.default_rng(5))
    assert torch.equal(lr, again)
    # Without blur, noise or codec: the inputs and the target are the same kernel's clean reductions.
    plain = Degradation("real", probability=0.0)
    for k in range(4):
        lr_plain, target = plain.sample(hr, between, 4, np.random.default_rng(k))
        kernels = [n for n in REAL_KERNELS if torch.equal(target, quantize(reduce(between, 4, n)))]
        assert len(kernels) == 1 and torch.equal(lr_plain, quantize(reduce(hr, 4, kernels[0])))
    draws = {float((REAL_VIDEO.sample(hr, between, 4, np.random.default_rng(k))[0] - lr).abs().sum()) for k in range(6)}
    assert len(draws) > 3
    assert REAL_VIDEO.grid == "block-centre" and Degradation().grid == "duf" and Degradation("mixed").grid is None


def test_degradation_refuses_impossible_mixes():
    with pytest.raises(ValueError, match="crf range"):
        Degradation("real", mpeg2=0.5)
    with pytest.raises(ValueError, match="within 0..1"):
        Degradation("real", blur=1.5)


def test_clean_real_samples_keep_only_4_2_0_chroma():
    """A sample outside ``probability`` keeps its luma exactly (lossless H.264) but loses chroma detail (4:2:0)."""
    hr = torch.rand(7, 3, 64, 64)
    clean = Degradation("bicubic", chroma=True, probability=0.0)
    lr = clean(hr, 4, np.random.default_rng(0))
    ref = quantize(reduce(hr, 4, "bicubic"))
    y = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert float(((lr - ref) * y).sum(1).abs().mean()) < 2 / 255
    assert float((lr - ref).abs().mean()) > 5 / 255  # random colours lose most of their chroma detail


def test_compression_round_trip_is_lossy_but_close():
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 48), indexing="ij")
    clip = torch.stack([torch.stack((xs, ys, 0.5 + 0.3 * torch.sin(6 * xs + 0.3 * i))) for i in range(7)])
    out = compress_clip(clip, 23)
    assert out.shape == clip.shape
    a, b = (t.permute(0, 2, 3, 1).numpy() * 255 for t in (clip, out))
    assert 25 < psnr(a[3], b[3]) < 60
    # MPEG-2 as on a DVD: a coarser quantiser loses more; odd sizes are padded for the encoder and cut again.
    fine, coarse = (compress_clip(clip, q, codec="mpeg2video") for q in (2, 12))
    scores = [psnr(a[3], t.permute(0, 2, 3, 1).numpy()[3] * 255) for t in (fine, coarse)]
    assert scores[0] > scores[1] > 20
    assert compress_clip(clip[..., :31, :47], 30).shape == (7, 3, 31, 47)


def _numbered_clip(n: int = 40, h: int = 48, w: int = 64) -> Clip:
    """Frame k is filled with value 3k (so sampled frames can be identified)."""
    frames = np.stack([np.full((h, w, 3), 3 * k, np.uint8) for k in range(n)])
    return Clip("numbers", frames, Fraction(30))


def test_sampler_picks_the_papers_frames():
    sampler = Sampler([_numbered_clip()], patch=8, stride=2, augment=False, seed=3)
    batch = sampler.batch(0, 4)
    assert batch.lr.shape == (7, 4, 3, 8, 8) and batch.center.shape == (4, 3, 32, 32)
    assert batch.times == [0.5] and batch.between.shape == (1, 4, 3, 32, 32)
    assert batch.lr_between.shape == (1, 4, 3, 8, 8)
    for b in range(4):
        idx = [round(float(batch.lr[i, b].mean()) * 255 / 3) for i in range(7)]
        start = idx[0]
        assert idx == [start + 2 * i for i in range(7)]  # source frames 0, 2, …, 12 of the window
        assert round(float(batch.center[b].mean()) * 255 / 3) == start + 6  # HR centre: source frame 6
        assert round(float(batch.between[0, b].mean()) * 255 / 3) == start + 7  # skipped frame 7, T_in = 0.5


def test_sampler_reversed_order_and_strides():
    sampler = Sampler([_numbered_clip()], patch=8, stride=4, max_times=3, augment=True, seed=0)
    assert sampler.batch(2, 8).times == [0.25, 0.5, 0.75]
    seen_reverse = False
    for step in range(6):
        batch = sampler.batch(step, 4)
        for b in range(4):
            idx = [round(float(batch.lr[i, b].mean()) * 255 / 3) for i in range(7)]
            d = idx[1] - idx[0]
            assert d in (4, -4) and all(idx[i + 1] - idx[i] == d for i in range(6))
            seen_reverse |= d < 0
            mids = [round(float(batch.between[j, b].mean()) * 255 / 3) for j in range(3)]
            assert mids == [idx[3] + d // 4 * j for j in (1, 2, 3)]  # between inputs 3 and 4, in order
    assert seen_reverse
    # Batches depend only on (seed, step): what resuming relies on.
    assert torch.equal(sampler.batch(5, 4).lr, sampler.batch(5, 4).lr)
    assert not torch.equal(sampler.batch(5, 4).lr, sampler.batch(6, 4).lr)


def test_sampler_mixes_strides():
    # 40 frames: every clip gives windows at stride 2 (13 frames) and 4 (25); a stride of 8 (49) is reported.
    sampler = Sampler([_numbered_clip(n=40)], patch=8, stride=(4, 2, 8), max_times=3, augment=False, seed=1)
    assert sampler.strides == [2, 4]
    assert sampler.skipped == [("numbers", "no shot of 49 frames (stride 8)")]
    seen = set()
    for step in range(12):
        batch = sampler.batch(step, 2)
        d = round(float(batch.lr[1, 0].mean() - batch.lr[0, 0].mean()) * 255 / 3)
        assert batch.times == {2: [0.5], 4: [0.25, 0.5, 0.75]}[d]  # one stride per batch, its own time targets
        seen.add(d)
    assert seen == {2, 4}
    with pytest.raises(ValueError, match="at least 2"):
        Sampler([_numbered_clip(n=40)], patch=8, stride=(1, 2))


def test_sampler_aligns_lr_and_hr():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (14, 96, 96, 3), dtype=np.uint8)
    sampler = Sampler([Clip("noise", frames, Fraction(25))], patch=16, augment=False)
    batch = sampler.batch(0, 2)
    # The LR centre is the degraded HR centre; only the reflected border of this small crop may differ.
    own = torch.round(duf_downsample(batch.center, 4) * 255) / 255
    assert torch.allclose(own[..., 3:-3, 3:-3], batch.lr[3][..., 3:-3, 3:-3], atol=1e-6)


def test_sampler_skips_sources_that_cannot_give_a_sample():
    short = Clip("short", np.zeros((10, 64, 64, 3), np.uint8), Fraction(30))
    small = Clip("small", np.zeros((30, 20, 20, 3), np.uint8), Fraction(30))
    sampler = Sampler([short, small, _numbered_clip()], patch=8)
    assert {p for p, _ in sampler.skipped} == {"short", "small"}
    with pytest.raises(ValueError):
        Sampler([short], patch=8)


def test_shot_cuts_split_windows():
    frames = np.concatenate([np.full((20, 16, 16, 3), 40, np.uint8), np.full((20, 16, 16, 3), 200, np.uint8)])
    frames[:, :, :8] += np.arange(40, dtype=np.uint8)[:, None, None, None] // 4  # gentle motion everywhere
    clip = Clip("cut", frames, Fraction(25), shot_starts(frames))
    assert clip.shot_starts == [0, 20]
    starts = clip.windows(13)
    assert all(s + 13 <= 20 or s >= 20 for s in starts) and len(starts) == 16


def test_test_sets_are_refused(tmp_path):
    vid4 = tmp_path / "vid4" / "GT" / "walk"
    vid4.mkdir(parents=True)
    with pytest.raises(UsageError, match="test set"):
        find_sources([tmp_path / "vid4"])
    (tmp_path / "train").mkdir()
    assert find_sources([tmp_path]) == []  # the vid4 folder inside is passed over


@pytest.mark.skipif(not (DATA / "mmaction2" / "test.mp4").exists(), reason="shared data not present")
def test_real_video_gives_samples():
    from stvup.data import load_clip

    clip = load_clip(DATA / "mmaction2" / "test.mp4", max_frames=20)
    assert clip.frames.shape == (20, 256, 340, 3) and clip.rate == 30
    batch = Sampler([clip], patch=16).batch(0, 2)
    assert batch.lr.shape == (7, 2, 3, 16, 16)


def test_deep_footage_trains_in_eight_bits(tmp_path):
    """A 10-bit clip loads for training as uint8 frames on the same scale as 8-bit footage (not raw 16-bit values)."""
    from stvup.data import load_clip
    from stvup.video.color import eight_bit

    from .test_formats import _ramp10, assert_ramp_in_eight_bits

    clip = load_clip(_ramp10(tmp_path / "deep.mkv", frames=4))
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (4, 64, 128, 3)
    for frame in clip.frames:
        assert_ramp_in_eight_bits(frame)
    assert eight_bit(np.array([[0, 257, 65535]], np.uint16)).tolist() == [[0, 1, 255]]
