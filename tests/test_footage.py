"""Training footage beyond video: photographs cut along camera paths, sharp footage reduced first, held-out clips."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.data import Clip, Sampler
from stvup.data.camera import CameraMotion, camera_path, photo_window, render
from stvup.data.sampler import PRESCALE_MIN_SIDE
from stvup.data.sources import HELD_OUT, Photo, find_photos, find_sources, load_photos
from stvup.errors import UsageError
from stvup.training.runs import TrainConfig
from stvup.upscaling.comparison import _write_png

STILL = CameraMotion(pan=0.0, zoom=0.0, roll=0.0, shake=0.0)


def _coordinates(h: int, w: int) -> np.ndarray:
    """A photo whose pixels say where they are: red = row mod 256, green = column mod 256, blue = the 256-blocks."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y % 256, x % 256, (y // 256) * 16 + x // 256], -1).astype(np.uint8)


def _positions(patch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every pixel of a ``(3, h, w)`` [0, 1] patch cut from :func:`_coordinates`."""
    p = (patch * 255).round().to(torch.int64).numpy()
    return p[0] + 256 * (p[2] // 16), p[1] + 256 * (p[2] % 16)


def test_render_moves_the_frame_by_the_shift_it_is_given():
    """t = (dy, dx) shows the photo dy rows lower and dx columns further right; the identity is an exact crop."""
    base = torch.from_numpy(_coordinates(40, 40)).permute(2, 0, 1).float() / 255
    a = torch.eye(2, dtype=torch.float64).expand(2, 2, 2)
    t = torch.tensor([[0.0, 0.0], [2.0, -3.0]], dtype=torch.float64)
    frames = render(base, a, t, 20)
    rows, cols = _positions(frames[0])
    assert rows[0, 0] == 10 and cols[0, 0] == 10 and (np.diff(rows, axis=0) == 1).all()
    assert torch.equal(frames[0], base[:, 10:30, 10:30])
    rows, cols = _positions(frames[1])
    assert rows[0, 0] == 12 and cols[0, 0] == 7 and (np.diff(cols, axis=1) == 1).all()


def test_camera_path_is_still_at_the_centre_and_moves_with_time():
    rng = np.random.default_rng(0)
    a, t = camera_path([-4, -2, 0, 2, 4], 2, 4, rng, CameraMotion(pan=3.0, zoom=0.02, roll=0.5, shake=0.0))
    assert torch.equal(a[2], torch.eye(2, dtype=a.dtype)) and not t[2].any()
    # Without shake the pan is linear in time: equal steps, opposite at opposite times.
    assert torch.allclose(t[3] - t[2], t[4] - t[3]) and torch.allclose(t[0], -t[4])
    assert float(t[4].norm()) <= 2 * 3.0 * 4 + 1e-9  # two input steps of at most 3 LR pixels at ×4


def test_photo_window_cuts_the_centre_exactly_and_the_rest_along_the_path():
    image = _coordinates(300, 400)
    frames = photo_window(image, [-2, 0, 2], 2, 32, 4, np.random.default_rng(5), motion=CameraMotion(3.0, 0, 0, 0))
    assert frames.shape == (3, 3, 32, 32)
    rows, cols = _positions(frames[1])  # the centre: a plain crop of the photo
    assert (np.diff(rows, axis=0) == 1).all() and (np.diff(cols, axis=1) == 1).all()
    assert (frames[0] != frames[1]).any() and (frames[2] != frames[1]).any()


def test_photo_window_prescale_reduces_the_photo_first():
    image = _coordinates(600, 600)
    frames = photo_window(image, [0], 2, 64, 4, np.random.default_rng(1), prescale=2.0, motion=STILL)
    rows, _ = _positions(frames[0])
    step = np.diff(rows[8:-8, 32].astype(float)).mean()  # rows of the photo per rendered row
    assert 1.9 < step < 2.1


def test_photo_window_refuses_a_photo_too_small_for_the_path():
    with pytest.raises(ValueError, match="too small"):
        photo_window(_coordinates(40, 40), [0], 2, 64, 4, np.random.default_rng(0))


def test_sampler_cuts_photo_samples_with_aligned_lr():
    photo = Photo("coords", _coordinates(512, 512))
    sampler = Sampler([], patch=16, photos=[photo], augment=False, seed=3)
    batch = sampler.batch(0, 3)
    assert batch.lr.shape == (7, 3, 3, 16, 16) and batch.center.shape == (3, 3, 64, 64)
    assert batch.between.shape == (1, 3, 3, 64, 64)
    for k in range(3):
        rows, cols = _positions(batch.center[k])
        assert (np.diff(rows, axis=0) == 1).all() and (np.diff(cols, axis=1) == 1).all()
    # The centre input is the target's reduction (lossless duf here): same place, not a neighbour's.
    from stvup.data.degrade import duf_downsample, quantize

    assert torch.allclose(batch.lr[3], quantize(duf_downsample(batch.center, 4)), atol=1.5 / 255)


def test_photo_share_decides_where_samples_come_from():
    dark = (_coordinates(96, 96) // 4)[None] + np.arange(20, dtype=np.uint8)[:, None, None, None]  # below 0.5
    clip = Clip("dark", dark, Fraction(30))
    photo = Photo("bright", np.full((400, 400, 3), 250, np.uint8))
    mixed = Sampler([clip], patch=16, photos=[photo], photo_share=0.5, seed=0).batch(0, 40)
    photo_samples = int((mixed.center.mean((1, 2, 3)) > 0.5).sum())
    assert 8 < photo_samples < 32
    none = Sampler([clip], patch=16, photos=[photo], photo_share=0.0, seed=0).batch(0, 20)
    assert (none.center.mean((1, 2, 3)) < 0.5).all()
    # No photos: the same batches as before photos existed (a resumed run keeps its samples).
    plain = Sampler([clip], patch=16, seed=0).batch(0, 20)
    assert torch.equal(plain.center, none.center)


def test_prescale_reduces_only_sharp_footage():
    ramp = lambda h, w: np.broadcast_to((np.arange(w) % 256).astype(np.uint8)[None, :, None], (h, w, 3))  # noqa: E731
    sharp = Clip("sharp", np.stack([ramp(PRESCALE_MIN_SIDE, 800)] * 14), Fraction(30))
    small = Clip("small", np.stack([ramp(200, 200)] * 14), Fraction(30))
    steps = []
    for clip in (sharp, small):
        batch = Sampler([clip], patch=16, prescale=2.0, augment=False, seed=1).batch(0, 12)
        row = (batch.center[:, 0, 10, 8:-8] * 255).round()
        steps.append(row.diff(dim=-1).median(dim=-1).values)  # ramp levels per HR pixel
    assert (steps[1] == 1).all()  # under 720p: as it is
    assert (steps[0] >= 1).all() and steps[0].max() > 1.3 and len(set(steps[0].tolist())) > 1


def test_held_out_clips_are_skipped_and_refused(tmp_path):
    footage = tmp_path / "footage"
    for name in ("dance-twirl", "camel"):
        (footage / "davis480" / name).mkdir(parents=True)
        (footage / "davis480" / name / "00000.jpg").write_bytes(b"")
    found = find_sources([footage])
    assert [p.name for p in found] == ["camel"]
    with pytest.raises(UsageError, match="held out"):
        find_sources([footage / "davis480" / "dance-twirl"])
    with pytest.raises(UsageError, match="held out"):
        find_photos([footage / "davis480" / "dance-twirl" / "00000.jpg"])
    assert "mmyolo__demo.mp4" in HELD_OUT


def test_photos_load_from_files_and_folders(tmp_path):
    (tmp_path / "photos" / "more").mkdir(parents=True)
    _write_png(tmp_path / "photos" / "a.png", _coordinates(64, 80))
    _write_png(tmp_path / "photos" / "more" / "b.png", _coordinates(48, 48))
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    photos = load_photos([tmp_path / "photos"])
    assert sorted(p.image.shape for p in photos) == [(48, 48, 3), (64, 80, 3)]
    assert np.array_equal(next(p for p in photos if p.image.shape == (64, 80, 3)).image, _coordinates(64, 80))


def test_training_settings_check_photo_options():
    with pytest.raises(UsageError, match="--photos"):
        TrainConfig(data=["x"], photo_share=0.3)
    with pytest.raises(UsageError, match="--prescale"):
        TrainConfig(data=["x"], prescale=0.5)
    with pytest.raises(UsageError, match="photo-share"):
        TrainConfig(data=["x"], photos=["p"], photo_share=1.0)


def test_cli_trains_on_footage_and_photos(tmp_path):
    from .conftest import make_clip

    data = tmp_path / "data"
    data.mkdir()
    make_clip(data / "a.mp4", width=96, height=80, frames=16, audio=None)
    (tmp_path / "photos").mkdir()
    _write_png(tmp_path / "photos" / "p.png", _coordinates(300, 320))
    out = tmp_path / "run"
    args = ["train", str(data), "--photos", str(tmp_path / "photos"), "--photo-share", "0.5", "--prescale", "1.5",
            "--out", str(out), "--model", "stvun-tiny", "--pretrain-steps", "2", "--steps", "0", "--batch-size", "2",
            "--patch", "16", "--patch2", "16", "--precision", "fp32"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "loaded 1 photographs" in res.output and "50% of the samples" in res.output
    from stvup.training.runs import load_training_checkpoint

    config = load_training_checkpoint(out)["config"]
    assert config["photos"] == [str(tmp_path / "photos")] and config["photo_share"] == 0.5
    assert config["prescale"] == 1.5
