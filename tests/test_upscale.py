"""The streaming upscaler, `stvup.upscale`/`batch` and the `upscale`/`batch`/`bench` commands, on tiny models."""

from __future__ import annotations

import json
import os
import weakref
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import stvup
from stvup.cli.main import cli
from stvup.errors import InputError, UsageError
from stvup.model import build_model
from stvup.model.weights import save_safetensors
from stvup.upscaling.pipeline import Upscaler, reflect
from stvup.video import iter_frames, probe

from .conftest import DATA, make_clip
from .helpers import seeded_state


def _tiny(**overrides) -> torch.nn.Module:
    model = build_model("stvun-tiny", **overrides)
    state = seeded_state(model)
    # A small residual, as a trained model has: outputs stay near the bilinear image instead of saturating.
    state["decoder.rconv1.weight"] = state["decoder.rconv1.weight"] * 0.02
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_safetensors(_tiny().state_dict(), path, {"stvup_model": "stvun-tiny"})
    return path


def _frames(n: int, h: int = 24, w: int = 40, rate: Fraction = Fraction(25)):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h + n, w + n, 3), dtype=np.uint8)
    return [(np.ascontiguousarray(base[i : i + h, i : i + w]), Fraction(i) / rate) for i in range(n)]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- the streaming core -------------------------------------------------------------------------------------------


def test_reflect_mirrors_without_repeating_edges():
    assert [reflect(i, 5) for i in range(-3, 8)] == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    assert [reflect(i, 2) for i in range(-3, 5)] == [1, 0, 1, 0, 1, 0, 1, 0]


@pytest.mark.parametrize(("n", "factor", "expected"), [(5, 1, 5), (5, 2, 10), (4, 4, 16), (4, Fraction(5, 2), 10)])
def test_frame_counts(n, factor, expected):
    up = Upscaler(_tiny(), device="cpu")
    outs = list(up.stream(_frames(n), Fraction(25), Fraction(25) * factor))
    assert [o.index for o in outs] == list(range(expected))
    assert outs[0].image.shape == (96, 160, 3)


def test_every_frame_encoded_once_and_memory_bounded():
    """Each frame goes through the encoder once, and the stream holds a bounded number of frames whatever the clip's
    length: it reads at most one frame beyond the window it works on, and keeps the encoder features of no more than
    the 7 frames of a window and the one read ahead (freed, not merely unused, once no window needs them)."""
    model = _tiny()
    alive: list[weakref.ref] = []
    encode = model.encode

    def counted(x):
        features = encode(x)
        alive.append(weakref.ref(features[0] if isinstance(features, (list, tuple)) else features))
        return features

    model.encode = counted
    up = Upscaler(model, device="cpu")
    read, consumed = [], []

    def source():
        for k, item in enumerate(_frames(16)):
            read.append(k)
            yield item

    held, ahead = [], []
    for out in up.stream(source(), Fraction(25), Fraction(50), on_frame=consumed.append):
        held.append(sum(ref() is not None for ref in alive))
        ahead.append(len(read) - 1 - out.source)
    assert len(alive) == 16  # the reference encodes every frame seven times
    assert consumed == list(range(16))
    assert max(held) <= 8 and max(ahead) <= 4, (held, ahead)


def test_windows_are_mirrored_at_the_ends():
    """Frame 0's output is the network's centre output for the window (3, 2, 1, 0, 1, 2, 3): no frame is lost."""
    model = _tiny()
    frames = _frames(6)
    up = Upscaler(model, device="cpu")
    outs = list(up.stream(frames, Fraction(25), Fraction(50)))
    assert len(outs) == 12 and outs[0].source == 0 and outs[-1].source == 5

    def window(ids):
        with torch.no_grad():
            y = model([up._prepare(frames[i][0]) for i in ids], [0.5])
        return [up._finish(v, 24, 40).astype(int) for v in y]

    def close(a, b):  # batched and single-frame encoding may round differently in the last bit
        return np.abs(a.astype(int) - b).max() <= 1

    first = window([3, 2, 1, 0, 1, 2, 3])
    assert close(outs[0].image, first[0]) and close(outs[1].image, first[1])
    last = window([2, 3, 4, 5, 4, 3, 2])
    assert close(outs[-1].image, last[1])
    # Edge replication instead of mirroring would give other frames: the check above can tell them apart.
    assert not close(outs[0].image, window([0, 0, 0, 0, 1, 2, 3])[0])


def test_rational_times_map_to_pairs():
    up = Upscaler(_tiny(), device="cpu")
    outs = list(up.stream(_frames(4), Fraction(25), Fraction(125, 2)))  # ×2.5
    assert [(o.source, o.t_in) for o in outs[:5]] == [
        (0, 0), (0, Fraction(2, 5)), (0, Fraction(4, 5)), (1, Fraction(1, 5)), (1, Fraction(3, 5))
    ]  # fmt: skip


def test_variable_frame_rate_uses_timestamps():
    frames = _frames(5)
    # Frames at 0, 1, 4, 6, 8 (in 1/25 s): three periods pass between frames 1 and 2.
    frames = [(img, t * (2 if i >= 2 else 1)) for i, (img, t) in enumerate(frames)]
    up = Upscaler(_tiny(), device="cpu")
    outs = list(up.stream(frames, Fraction(25), Fraction(50)))
    gap = [o for o in outs if o.source == 1]
    assert [o.t_in for o in gap] == [Fraction(k, 6) for k in range(6)]
    assert len(outs) == 18  # (8 + 1) / 25 s at 50 fps


def test_tiled_matches_untiled():
    model = _tiny()
    frames = _frames(4, h=80, w=112)
    whole = list(Upscaler(model, device="cpu", precision="fp32").stream(frames, Fraction(25), Fraction(50)))
    tiled = Upscaler(model, device="cpu", precision="fp32", tile=48, tile_overlap=16)
    tiled = list(tiled.stream(frames, Fraction(25), Fraction(50)))
    for a, b in zip(whole, tiled):
        diff = a.image.astype(np.float64) - b.image.astype(np.float64)
        psnr = 10 * np.log10(255**2 / max(np.mean(diff**2), 1e-12))
        assert psnr > 38, psnr
        # No seam: the tiled image is not rougher across tile borders than the untiled one.
        grad_a = np.abs(np.diff(a.image.astype(np.float64), axis=1)).mean(axis=(0, 2))
        grad_b = np.abs(np.diff(b.image.astype(np.float64), axis=1)).mean(axis=(0, 2))
        assert np.max(grad_b - grad_a) < 4


def test_batched_new_frames_match_one_at_a_time():
    """×4 time: the three new frames of each window through the decoder as one batch, or in chunks, or one by one,
    give the same images (fp32; batched kernels may round differently in the last bit, never by a grey level)."""
    model = _tiny()
    frames = _frames(4, h=32, w=48)
    runs = {b: list(Upscaler(model, device="cpu", precision="fp32", time_batch=b).stream(frames, Fraction(25),
                                                                                        Fraction(100)))
            for b in (1, 2, 8)}  # fmt: skip
    assert len(runs[1]) == 16 and [o.t_in for o in runs[1][:4]] == [0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)]
    for b in (2, 8):
        for one, many in zip(runs[1], runs[b]):
            assert one.index == many.index
            assert np.abs(one.image.astype(int) - many.image.astype(int)).max() <= 1
    with torch.no_grad():
        x = [torch.rand(1, 3, 32, 48) * 2 - 1 for _ in range(7)]
        together = model.run(x, [0.25, 0.5, 0.75])
        alone = [model.run(x, [t]) for t in (0.25, 0.5, 0.75)]
    for k, single in enumerate(alone):
        # 1 % of a grey level: batch-size-dependent kernel choices only reorder sums (see test_model).
        torch.testing.assert_close(together.frames[1 + k], single.frames[1], atol=1e-4, rtol=0)
        torch.testing.assert_close(together.lr_between[k], single.lr_between[0], atol=1e-4, rtol=0)
    with pytest.raises(UsageError, match="time batch"):
        Upscaler(model, device="cpu", time_batch=0)


def test_precision_auto_follows_the_hardware(monkeypatch):
    import stvup.upscaling.hardware as hardware

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert hardware.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert hardware.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert hardware.resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert hardware.resolve_precision("auto", cuda) == "fp16"
    assert hardware.resolve_precision("fp32", cuda) == "fp32"
    with pytest.raises(UsageError, match="unknown precision"):
        hardware.resolve_precision("int8", cpu)
    # The upscaler runs what was chosen.
    up = Upscaler(_tiny(), device="cpu")
    assert up.precision == "fp32" and up.dtype == torch.float32


def test_space_two_from_a_four_times_model_and_bf16():
    up = Upscaler(_tiny(), device="cpu", space=2)
    outs = list(up.stream(_frames(3), Fraction(25), Fraction(25)))
    assert outs[0].image.shape == (48, 80, 3)
    ref = list(Upscaler(_tiny(), device="cpu", precision="fp32").stream(_frames(3), Fraction(25), Fraction(25)))
    bf = list(Upscaler(_tiny(), device="cpu", precision="bf16").stream(_frames(3), Fraction(25), Fraction(25)))
    assert np.abs(ref[1].image.astype(int) - bf[1].image.astype(int)).mean() < 3


def test_upscaler_rejects_bad_settings():
    with pytest.raises(UsageError, match="fp16 needs a CUDA"):
        Upscaler(_tiny(), device="cpu", precision="fp16")
    with pytest.raises(UsageError, match="--space 4"):
        Upscaler(_tiny(scale=2), device="cpu", space=4)
    with pytest.raises(InputError, match="at least 2"):
        list(Upscaler(_tiny(), device="cpu").stream(_frames(1), Fraction(25), Fraction(50)))


# -- files --------------------------------------------------------------------------------------------------------


def test_upscale_video_keeps_duration_audio_and_rate(clips, weights, tmp_path):
    out = tmp_path / "out.mp4"
    res = stvup.upscale(clips["ntsc"], out, time=2, weights=weights, device="cpu")
    info, src = probe(out), probe(clips["ntsc"])
    assert info.rate == Fraction(48000, 1001) and res.output_rate == Fraction(48000, 1001)
    assert (info.width, info.height) == (src.width * 4, src.height * 4)
    with iter_frames(out) as stream:
        n = sum(1 for _ in stream)
    assert n == res.frames_out == 2 * res.frames_in == 24
    assert info.has_audio
    assert abs(float(info.duration - src.duration)) <= float(1 / info.rate)


def test_upscale_fps_and_frame_folder_output(clips, weights, tmp_path):
    res = stvup.upscale(clips["aac"], tmp_path / "frames", fps=60, weights=weights, device="cpu")
    assert res.output_rate == 60 and res.frames_out == 30  # 12 frames at 24 fps last 0.5 s
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 30


def test_rotation_carried(clips, weights, tmp_path):
    out = tmp_path / "rot.mp4"
    stvup.upscale(clips["rotated"], out, weights=weights, device="cpu")
    assert probe(out).rotation == probe(clips["rotated"]).rotation != 0


@pytest.mark.skipif(not (DATA / "zsm_vimeo_lr" / "0625").is_dir(), reason="../shared/data is not present")
def test_frame_folder_input(weights, tmp_path):
    out = tmp_path / "zsm.mp4"
    res = stvup.upscale(DATA / "zsm_vimeo_lr" / "0625", out, time=2, input_fps=30, weights=weights, device="cpu")
    assert res.frames_in == 7 and res.frames_out == 14
    info = probe(out)
    assert info.rate == 60 and (info.width, info.height) == (448, 256)


def test_interrupt_leaves_nothing(clips, weights, tmp_path):
    out = tmp_path / "cut.mp4"

    def stop(p):
        if p.frames_in == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stvup.upscale(clips["aac"], out, time=2, weights=weights, device="cpu", progress=stop)
    assert _files(tmp_path) == []


# -- the command line ---------------------------------------------------------------------------------------------


def _run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in res.output
    return res


def test_cli_upscale_json_and_default_name(clips, weights, tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(clips["aac"].read_bytes())
    res = _run("upscale", src, "--weights", weights, "--time", "2", "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["output"] == str(tmp_path / "clip_stvup_x4.mp4") and data["frames_out"] == 24
    # The default precision is auto, and the result says what it chose on this machine.
    from stvup.upscaling.hardware import resolve_precision

    assert data["device"] == "cpu" and data["precision"] == resolve_precision("auto", torch.device("cpu"))
    # Never overwrites without --overwrite.
    res = _run("upscale", src, "--weights", weights, "--quiet")
    assert res.exit_code == 1 and "exists" in res.output
    assert _run("upscale", src, "--weights", weights, "--quiet", "--overwrite").exit_code == 0


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("missing", [], "no such file"),
        ("text", [], "notes.mp4"),
        ("audio_only", [], "no video stream"),
        ("truncated", [], "truncated.mp4"),
        ("aac", ["--time", "0"], "--time must be positive"),
        ("aac", ["--fps", "abc"], "frame rate must be"),
        ("aac", ["--time", "2", "--fps", "50"], "either --time or --fps"),
        ("aac", ["-o", "/nonexistent/dir/out.mp4"], "does not exist"),
    ],
)
def test_cli_bad_input(clips, weights, tmp_path, name, args, message):
    src = clips[name] if name in clips else tmp_path / "missing.mp4"
    before = _files(src.parent) if src.parent.exists() else []
    res = _run("upscale", src, "--weights", weights, "--quiet", "-o", tmp_path / "o.mp4", *args)
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    assert not (tmp_path / "o.mp4").exists()
    if src.parent.exists():
        assert _files(src.parent) == before


def test_cli_one_frame_and_unwritable(clips, weights, tmp_path):
    one = make_clip(tmp_path / "one.mp4", frames=1, audio=None)
    res = _run("upscale", one, "--weights", weights, "--quiet")
    assert res.exit_code == 1 and "at least 2" in res.output and "one.mp4" in res.output
    assert _files(tmp_path) == ["one.mp4"]
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # root ignores permission bits; /proc accepts no new files from anyone.
    target = Path("/proc/o.mp4") if os.geteuid() == 0 else locked / "o.mp4"
    try:
        res = _run("upscale", clips["aac"], "--weights", weights, "--quiet", "-o", target)
        assert res.exit_code == 1 and ("not writable" in res.output or "cannot write" in res.output), res.output
        assert str(target) in res.output
    finally:
        locked.chmod(0o700)
    assert _files(locked) == []


def test_cli_without_weights_says_what_to_pass(clips, monkeypatch):
    monkeypatch.setattr("stvup.upscaling.loader.default_weights_path", lambda: None)
    res = _run("upscale", clips["aac"], "--quiet")
    assert res.exit_code == 1 and "--weights" in res.output


def test_batch_skips_finished_and_carries_on(clips, weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.mp4").write_bytes(clips["aac"].read_bytes())
    (src / "b.mkv").write_bytes(clips["truncated"].read_bytes())
    (src / "c.mp4").write_bytes(clips["ntsc"].read_bytes())
    out = tmp_path / "out"
    res = _run("batch", src, out, "--weights", weights, "--time", "2", "--json")
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert [Path(r["output"]).name for r in data["results"]] == ["a.mp4", "c.mp4"]
    assert list(data["failures"]) == [str(src / "b.mkv")]
    assert _files(out) == ["a.mp4", "c.mp4"]
    stamp = (out / "a.mp4").stat().st_mtime_ns
    (src / "b.mkv").unlink()
    res = _run("batch", src, out, "--weights", weights, "--time", "2", "--json")
    assert res.exit_code == 0
    assert all(r["skipped"] for r in json.loads(res.output)["results"])
    assert (out / "a.mp4").stat().st_mtime_ns == stamp


def test_bench_reports_stages(weights):
    res = _run("bench", "--size", "64x48", "--frames", "3", "--weights", weights, "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    stages = report["stages_s_per_frame"]
    # Every stage was timed (how the figures relate is test_overlap's: test_each_stage_is_timed_where_it_runs).
    assert set(stages) == {"decode", "model", "encode", "total"} and min(stages.values()) > 0, stages
    assert report["precision"] in ("fp32", "bf16")
    assert report["output"].endswith("6 frames")
    # The FFmpeg binary comes with imageio-ffmpeg, a dependency: the baseline runs, it does not merely report why not.
    baseline = report["baseline"]
    assert "error" not in baseline and baseline["frames"] > 0 and baseline["s_per_frame"] > 0, baseline


def test_bench_times_the_asked_model_even_when_the_shipped_weights_are_another(monkeypatch, tmp_path):
    import stvup.evaluation.bench as bench

    shipped = tmp_path / "default.safetensors"
    save_safetensors(_tiny().state_dict(), shipped, {"stvup_model": "stvun-tiny"})
    monkeypatch.setattr(bench, "default_weights_path", lambda: shipped)
    report = bench.benchmark(size=(64, 32), frames=2, device="cpu", baseline=False)
    assert report["model"] == "stvun-tiny" and report["weights"] == str(shipped)
    res = _run("bench", "--model", "nonsense", "--size", "64x48", "--frames", "2", "--device", "cpu")
    assert res.exit_code == 1 and "unknown model" in res.output and "Traceback" not in res.output
    monkeypatch.setattr(bench, "build_model", lambda name: _tiny(scale=2) if name == "stvun-x2" else None)
    report = bench.benchmark(size=(64, 32), frames=2, model="stvun-x2", device="cpu", baseline=False)
    assert report["weights"] == "random (speed only: the shipped weights are stvun-tiny, not stvun-x2)"
    assert report["output"].startswith("64x32")


def test_info_lists_versions_devices_models_and_weights(weights, tmp_path, monkeypatch):
    shipped = tmp_path / "weights"
    shipped.mkdir()
    (shipped / "default.safetensors").write_bytes(Path(weights).read_bytes())
    monkeypatch.setattr("stvup.cli.info.WEIGHTS_DIR", shipped)
    monkeypatch.setattr("stvup.model.weights.WEIGHTS_DIR", shipped)
    res = _run("info", "--json")
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert {"stvup", "torch", "av", "python"} <= set(data["versions"])
    assert data["devices"][0]["name"] == "cpu"
    assert {m["name"]: m["parameters"] for m in data["models"]}["stvun"] == 30_882_276
    assert data["weights"] == [
        {
            "path": str(shipped / "default.safetensors"),
            "model": "stvun-tiny",
            "grid": "duf",
            "flow": "pwc",
            "megabytes": 1.2,
            "default": True,
        }
    ]
    # And the shipped default is what upscale uses without --weights.
    assert stvup.load_upscaler(device="cpu").model.config.name == "stvun-tiny"


def test_model_variant_recognised_from_a_plain_pth(tmp_path):
    """A .pth without metadata (like the authors' STVUN.pth) is matched to its variant by tensor shapes."""
    state = _tiny().state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "plain.pth")
    assert stvup.load_upscaler(tmp_path / "plain.pth", device="cpu").model.config.name == "stvun-tiny"
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(stvup.CheckpointError, match="matches none of the known models"):
        stvup.load_upscaler(tmp_path / "other.pth", device="cpu")
