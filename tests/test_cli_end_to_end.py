"""What users type, end to end (issue 48): the command line on tiny models and tiny generated clips, checked in the
files it writes and in what it shows. Each flag here was otherwise reached only through the library, or only with
the ``../shared`` footage; nothing here needs that footage."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

import stvup
from stvup.cli.main import cli
from stvup.model import build_model
from stvup.model.weights import read_safetensors, save_safetensors
from stvup.video import iter_frames, probe

from .conftest import make_clip, pattern
from .helpers import seeded_state
from .test_upscale import weights  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: object) -> Result:
    """``stvup ARGS`` in this process, on a wide terminal (rich's tables keep their rows whole); never a traceback."""
    res = CliRunner(env={"COLUMNS": "200"}).invoke(cli, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


def _ok(*args: object) -> Result:
    res = _cli(*args)
    assert res.exit_code == 0, res.output
    return res


def _json(*args: object) -> dict:
    """The result of ``stvup ARGS --json`` (on the CPU)."""
    return json.loads(_ok(*args, "--device", "cpu", "--json").stdout)


def _decoded(path: Path) -> list[np.ndarray]:
    with iter_frames(path) as stream:
        return [f.image.astype(np.int16) for f in stream]


def _write(path: Path, frames: list[np.ndarray], rate: int, options: dict[str, str] | None = None) -> Path:
    """An H.264 clip of these RGB frames, nearly lossless (``options`` go to the encoder)."""
    with av.open(str(path), "w") as container:
        settings = {"preset": "ultrafast", "crf": "6", **(options or {})}
        video = container.add_stream("libx264", rate=rate, options=settings)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


# -- ×2 space ------------------------------------------------------------------------------------------------------


def test_space_two_writes_a_file_twice_the_size(clips, weights, tmp_path):  # noqa: F811
    """``--space 2``: a file twice the input's size (whatever network makes it), every frame there at the asked rate,
    the audio kept, under the default name that says ×2."""
    src = tmp_path / "clip.mp4"
    src.write_bytes(clips["aac"].read_bytes())  # 64x48, 12 frames at 24 fps, with sound
    result = _json("upscale", src, "--weights", weights, "--space", "2", "--time", "2")
    out = tmp_path / "clip_stvup_x2.mp4"
    assert result["output"] == str(out) and result["output_size"] == [128, 96], result
    info = probe(out)
    assert (info.width, info.height) == (128, 96) and info.rate == 48 and info.has_audio
    assert len(_decoded(out)) == result["frames_out"] == 24


# -- what a person sees ----------------------------------------------------------------------------------------------


def test_upscale_shows_progress_and_its_result_line(clips, weights, tmp_path):  # noqa: F811
    out = tmp_path / "out.mp4"
    res = _ok("upscale", clips["aac"], "-o", out, "--weights", weights, "--time", "2", "--device", "cpu")
    assert res.stdout == ""  # all of it on stderr: stdout stays free for --json
    lines = res.stderr.splitlines()
    assert any(line.startswith("aac.mp4 (") and "12/12" in line for line in lines), res.stderr  # the progress bar
    made = "24 frames 256x192 @ 48 fps from 12 input frames"
    assert re.fullmatch(rf"{re.escape(str(out))}: {made} in \d+\.\d s \((fp32|bf16) on cpu\)", lines[-1]), res.stderr
    assert probe(out).frame_count == 24


def test_batch_shows_each_result_and_a_summary(clips, weights, tmp_path):  # noqa: F811
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a.mp4").write_bytes(clips["aac"].read_bytes())
    (src / "b.mp4").write_text("not a video\n" * 40)
    res = _cli("batch", src, out, "--weights", weights, "--device", "cpu")
    assert res.exit_code == 1 and res.stdout == ""
    err = res.stderr.splitlines()  # a progress bar for a.mp4, then its result, the failure and the summary
    assert re.fullmatch(rf"{re.escape(str(out / 'a.mp4'))}: 12 frames 256x192 @ 24 fps from 12 input frames in .*",
                        err[-3]), res.stderr  # fmt: skip
    assert err[-2].startswith(f"failed: {src / 'b.mp4'}: not a video file") and err[-1] == "1 done, 0 skipped, 1 failed"
    (src / "b.mp4").unlink()
    res = _ok("batch", src, out, "--weights", weights, "--device", "cpu")
    shown = [line for line in res.stderr.splitlines() if line]  # the bar of a skipped video is an empty line
    assert shown == [f"{out / 'a.mp4'}: already complete, skipped", "0 done, 1 skipped, 0 failed"], res.stderr


def test_bench_shows_its_table(weights):  # noqa: F811
    res = _ok("bench", "--size", "64x48", "--frames", "3", "--weights", weights, "--device", "cpu")
    text = res.stdout
    assert re.search(rf"^stvun-tiny on cpu \((fp32|bf16), \d+ threads, .*; weights: {re.escape(str(weights))}$", text,
                     re.M), text  # fmt: skip
    assert "input 16x12 @ 25 fps, 3 frames → output 64x48 @ 50 fps, 6 frames" in text
    rows = dict(re.findall(r"^│ (decode|model|encode|total \(wall\)) +│ (\d+\.\d{4}) +│$", text, re.M))
    assert set(rows) == {"decode", "model", "encode", "total (wall)"} and float(rows["total (wall)"]) > 0, text
    assert re.search(r"^stvup: \d+\.\d\d output frames/s$", text, re.M), text
    assert re.search(r"^ffmpeg lanczos \+ minterpolate: \d+\.\d{4} s/frame, \d+\.\d\d frames/s$", text, re.M), text


def test_info_shows_its_tables_and_a_videos_facts(clips, weights, tmp_path, monkeypatch):  # noqa: F811
    shipped = tmp_path / "weights"
    shipped.mkdir()
    (shipped / "default.safetensors").write_bytes(Path(weights).read_bytes())
    monkeypatch.setattr("stvup.cli.info.WEIGHTS_DIR", shipped)
    monkeypatch.setattr("stvup.model.weights.WEIGHTS_DIR", shipped)
    text = _ok("info").stdout
    lines = text.splitlines()
    assert lines[0] == f"stvup {stvup.__version__}" and f"torch {torch.__version__}" in lines[1], text
    assert re.search(r"^devices: cpu \(--precision auto: (fp32|bf16)\)", text, re.M), text
    assert re.search(r"^│ stvun +│ ×4 +│ 30,882,276 +│", text, re.M), text  # the models' table
    assert re.search(r"^│ espcn-tiny +│ spatial +│", text, re.M), text  # the two-stream modules' table
    shown = f"weights: {shipped / 'default.safetensors'} (default), stvun-tiny, duf grid, pwc flow, 1.2 MB"
    assert shown in lines, text
    assert re.search(r"^compiling \(--compile auto\): .*, \d+ shapes compiled$", text, re.M), text
    facts = _ok("info", clips["ntsc"]).stdout.splitlines()
    for line in ("kind: video", "codec: h264", "size: 64x48", "rate: 24000/1001", "frames: 12", "audio streams: 1"):
        assert line in facts, facts


# -- interlaced input ------------------------------------------------------------------------------------------------


def _bars(k: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Soft vertical bars that move 2 pixels to the right per field; the same histogram at every position."""
    xs = np.arange(width)
    grey = 128 + 90 * np.sin(2 * np.pi * (xs - 2 * k) / 16)
    return np.repeat(np.repeat(grey[None, :, None], height, axis=0), 3, axis=2).round().astype(np.uint8)


@pytest.fixture(scope="module")
def woven(tmp_path_factory) -> Path:
    """8 interlaced frames at 25 fps, bottom field first and flagged so: each frame's even lines are 1/50 s later.
    (FFmpeg's x264 takes the field order from each frame's flags, which PyAV cannot set: its frames say bottom first,
    so the pictures are woven that way too.)"""
    frames = []
    for i in range(8):
        frame = _bars(2 * i + 1)
        frame[1::2] = _bars(2 * i)[1::2]
        frames.append(frame)
    return _write(tmp_path_factory.mktemp("woven") / "woven.mp4", frames, 25, {"x264-params": "interlaced=1"})


def _combing(frames: list[np.ndarray]) -> float:
    """Line-to-line zipper energy at the input's line pitch (the ×4 output averaged back over 4×4 blocks)."""
    energy = []
    for image in frames:
        y = image.mean(axis=2)
        y = y.reshape(y.shape[0] // 4, 4, y.shape[1] // 4, 4).mean(axis=(1, 3))
        energy.append(np.abs(2 * y[1:-1] - y[:-2] - y[2:]).mean())
    return float(np.mean(energy))


def _pan(a: np.ndarray, b: np.ndarray) -> int:
    """How many pixels to the right the bars of output frame ``b`` stand from those of ``a`` (within half a period)."""
    pa, pb = a.mean(axis=(0, 2)), b.mean(axis=(0, 2))
    return min(range(-31, 33), key=lambda s: float(np.abs(np.roll(pa, s) - pb).mean()))


def test_deinterlace_flags(woven, weights, tmp_path):  # noqa: F811
    def run(name: str, *flags: str) -> tuple[dict, list[np.ndarray]]:
        out = tmp_path / f"{name}.mkv"
        return _json("upscale", woven, "-o", out, "--weights", weights, "--codec", "ffv1", *flags), _decoded(out)

    runs = {mode: run(mode, "--deinterlace", mode) for mode in ("auto", "on", "off")}
    (auto, auto_frames), (on, on_frames), (off, off_frames) = runs["auto"], runs["on"], runs["off"]
    assert any(p.startswith("interlaced input (bottom field first") for p in auto["problems"]), auto["problems"]
    assert on["problems"] == ["deinterlaced with bwdif (one frame per frame), as --deinterlace on asks"]
    assert off["problems"] == [] and off["cuts"] == []
    for result, frames in ((auto, auto_frames), (on, on_frames), (off, off_frames)):
        assert result["frames_in"] == result["frames_out"] == len(frames) == 8 and result["output_rate"] == "25"
    # Deinterlaced, the comb is gone; kept (off), the network upsampled it with the picture.
    assert _combing(on_frames) < 0.5 * _combing(off_frames), (_combing(on_frames), _combing(off_frames))
    assert _combing(auto_frames) < 0.5 * _combing(off_frames)
    # One frame per frame: the bars move 4 input pixels (16 output pixels) from frame to frame.
    assert _pan(on_frames[3], on_frames[4]) in (15, 16, 17)

    field, field_frames = run("field", "--deinterlace", "on", "--deinterlace-rate", "field")
    assert field["problems"] == ["deinterlaced with bwdif (one frame per field), as --deinterlace on asks"]
    assert field["input_rate"] == field["output_rate"] == "50" and field["frames_in"] == 16
    assert len(field_frames) == 16 and probe(tmp_path / "field.mkv").rate == 50
    # One frame per field, in the order they were taken: half the motion, 2 input pixels (8 output pixels), each time.
    pans = [_pan(a, b) for a, b in zip(field_frames[4:11], field_frames[5:12])]
    assert all(pan in (7, 8, 9) for pan in pans), pans


# -- scene cuts --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory) -> Path:
    """Two shots of 8 frames at 24 fps, a hard cut at frame 8: a slow pan over one picture, then over its negative."""
    first = [np.roll(pattern(0, 64, 48), k, axis=1)[:, :48] for k in range(8)]
    second = [255 - np.roll(pattern(0, 64, 48)[:, ::-1], k, axis=0)[:, :48] for k in range(8)]
    return _write(tmp_path_factory.mktemp("shots") / "two_shots.mp4", first + second, 24)


def test_scene_cut_flags(two_shots, weights, tmp_path):  # noqa: F811
    common = ("--weights", weights, "--time", "2", "--codec", "ffv1")
    found = _ok("upscale", two_shots, "-o", tmp_path / "cut.mkv", *common, "--device", "cpu")
    assert "  1 scene cut, each shot upsampled alone: 0.33 s" in found.stderr.splitlines(), found.stderr
    cut = _json("upscale", two_shots, "-o", tmp_path / "default.mkv", "--overwrite", *common)
    assert cut["cuts"] == [{"frame": 8, "time": 0.333333}] and cut["frames_out"] == 32
    # The largest threshold asks for a change of the whole histogram: this cut is not that large.
    high = _json("upscale", two_shots, "-o", tmp_path / "high.mkv", "--scene-threshold", "1", *common)
    none = _json("upscale", two_shots, "-o", tmp_path / "none.mkv", "--no-scene-detect", *common)
    assert high["cuts"] == none["cuts"] == [] and high["frames_out"] == none["frames_out"] == 32
    # At the cut (output frame 15, halfway from input 7 to 8): shot A's last kept frame again when cut, a frame made
    # from both shots when not.
    frames = {name: _decoded(tmp_path / f"{name}.mkv") for name in ("default", "none")}
    assert np.array_equal(frames["default"][15], frames["default"][14])
    assert not np.array_equal(frames["none"][15], frames["none"][14])


# -- --overwrite -----------------------------------------------------------------------------------------------------


def test_overwrite_replaces_what_batch_preview_and_convert_wrote(clips, weights, tmp_path):  # noqa: F811
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a.mp4").write_bytes(clips["aac"].read_bytes())
    batch = ("batch", src, out, "--weights", weights)
    assert [r["skipped"] for r in _json(*batch)["results"]] == [False]
    first = (out / "a.mp4").stat().st_ino
    assert [r["skipped"] for r in _json(*batch)["results"]] == [True] and (out / "a.mp4").stat().st_ino == first
    again = _json(*batch, "--overwrite")["results"]
    assert [(r["skipped"], r["frames_out"]) for r in again] == [(False, 12)]
    assert (out / "a.mp4").stat().st_ino != first and probe(out / "a.mp4").frame_count == 12  # a new file

    png = tmp_path / "p.png"
    preview = ("preview", clips["aac"], "-o", png, "--weights", weights, "--device", "cpu")
    _ok(*preview)
    png.write_bytes(b"not a picture")
    refused = _cli(*preview)
    assert refused.exit_code == 1 and "exists; pass --overwrite to replace it" in refused.output
    assert png.read_bytes() == b"not a picture"
    shown = json.loads(_ok(*preview, "--overwrite", "--json").stdout)
    with av.open(str(png)) as container:
        picture = next(container.decode(video=0))
    assert (picture.width, picture.height) == tuple(shown["size"])

    checkpoint, converted = tmp_path / "run.pth", tmp_path / "tiny.safetensors"
    state = build_model("stvun-tiny").state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, checkpoint)
    converted.write_bytes(b"an older file")
    refused = _cli("convert", checkpoint, converted, "--model", "stvun-tiny")
    assert refused.exit_code == 1 and "exists" in refused.output and converted.read_bytes() == b"an older file"
    done = _ok("convert", checkpoint, converted, "--model", "stvun-tiny", "--overwrite")
    tensors, meta = read_safetensors(converted)
    assert str(converted) in done.output and meta["stvup_model"] == "stvun-tiny" and set(tensors) == set(state)


# -- the shipped paper weights, and flags otherwise reached only through the library ---------------------------------


def test_weights_paper_names_the_shipped_paper_weights(clips, tmp_path):
    src = make_clip(tmp_path / "small.mp4", width=32, height=24, frames=3, audio=None)
    common = ("--codec", "ffv1", "--precision", "fp32")
    by_name = _json("upscale", src, "-o", tmp_path / "name.mkv", "--weights", "paper", *common)
    _json("upscale", src, "-o", tmp_path / "path.mkv", "--weights", REPO / "weights" / "paper.safetensors", *common)
    _json("upscale", src, "-o", tmp_path / "default.mkv", *common)
    assert by_name["frames_out"] == 3 and by_name["output_size"] == [128, 96]
    name, path, default = (_decoded(tmp_path / f"{n}.mkv") for n in ("name", "path", "default"))
    assert all(np.array_equal(a, b) for a, b in zip(name, path)) and len(name) == 3
    assert not all(np.array_equal(a, b) for a, b in zip(name, default))  # not the default weights


def test_tile_flag(weights, tmp_path):  # noqa: F811
    src = make_clip(tmp_path / "c.mp4", width=96, height=64, frames=4, audio=None)
    common = ("--weights", weights, "--codec", "ffv1", "--precision", "fp32")
    _json("upscale", src, "-o", tmp_path / "tiled.mkv", "--tile", "32", *common)
    _json("upscale", src, "-o", tmp_path / "whole.mkv", "--tile", "off", *common)
    tiled, whole = _decoded(tmp_path / "tiled.mkv"), _decoded(tmp_path / "whole.mkv")
    # 32-pixel tiles: the same picture up to rounding at the seams (so really tiled, and tiled well).
    worst = max(int(np.abs(a - b).max()) for a, b in zip(tiled, whole))
    assert len(tiled) == len(whole) == 4 and 0 < worst <= 8, worst
    for tile, message in (("7", r"--tile must be at least \d+ pixels, got 7"), ("big", "--tile must be auto, off")):
        res = _cli("upscale", src, "-o", tmp_path / "bad.mkv", *common, "--tile", tile)
        assert res.exit_code == 1 and re.search(message, res.output), res.output
    assert not (tmp_path / "bad.mkv").exists()


def test_input_fps_flag(weights, tmp_path):  # noqa: F811
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        av.VideoFrame.from_ndarray(pattern(i, 48, 32), format="rgb24").save(str(folder / f"{i:03d}.png"))
    result = _json("upscale", folder, "-o", tmp_path / "a.mp4", "--weights", weights, "--input-fps", "30", "--time=2")
    assert (result["input_rate"], result["output_rate"], result["frames_out"]) == ("30", "60", 10)
    assert probe(tmp_path / "a.mp4").rate == 60 and probe(tmp_path / "a.mp4").frame_count == 10
    ntsc = _json("upscale", folder, "-o", tmp_path / "b.mp4", "--weights", weights, "--input-fps", "30000/1001")
    assert ntsc["output_rate"] == "30000/1001" and probe(tmp_path / "b.mp4").rate == Fraction(30000, 1001)


def test_time_mode_flag(tmp_path):
    net = build_model("two-stream:espcn-tiny+dvf-tiny")
    net.load_state_dict(seeded_state(net))
    two_stream = tmp_path / "two-stream.safetensors"
    save_safetensors(net.state_dict(), two_stream, {"stvup_model": "two-stream:espcn-tiny+dvf-tiny"})
    src = make_clip(tmp_path / "c.mp4", width=32, height=32, frames=4, audio=None)
    common = ("--model", "two-stream", "--weights", two_stream, "--time", "4", "--codec", "ffv1", "--precision", "fp32")
    runs = {}
    for mode in ("recursive", "direct"):
        assert _json("upscale", src, "-o", tmp_path / f"{mode}.mkv", "--time-mode", mode, *common)["frames_out"] == 16
        runs[mode] = _decoded(tmp_path / f"{mode}.mkv")
    # Kept frames (every fourth) are f_S of the input either way; t = 1/4, 1/2, 3/4 are made differently: by
    # halving twice, or by f_T at t directly.
    differs = [not np.array_equal(a, b) for a, b in zip(runs["recursive"], runs["direct"])]
    assert not any(differs[0::4]) and all(differs[1::4]) and all(differs[3::4]), differs
    bad = _cli("upscale", src, *common, "--time-mode", "sideways")
    assert bad.exit_code == 2 and "--time-mode" in bad.output


def test_eval_reduction_flag(tmp_path):
    src = make_clip(tmp_path / "hr.mp4", width=80, height=64, frames=5, audio=None)
    reports = {}
    for reduction in ("bicubic", "area"):
        report = tmp_path / f"{reduction}.json"
        _ok("eval", src, "--methods", "bicubic", "--protocol", "real", "--reduction", reduction, "--crf", "none",
            "--json", report, "-q")  # fmt: skip
        data = json.loads(report.read_text())
        reports[reduction] = data[0] if isinstance(data, list) else data
    for reduction, data in reports.items():
        protocol = data["protocol"]
        assert protocol["reduction"] == reduction and f"({reduction} antialiased" in protocol["degradation"], protocol
    # Another reduction, another low-resolution input: other scores.
    scores = {r: d["mean"]["bicubic"]["kept"]["psnr_y"] for r, d in reports.items()}
    assert scores["bicubic"] != scores["area"], scores
    bad = _cli("eval", src, "--methods", "bicubic", "--protocol", "real", "--reduction", "nearest")
    assert bad.exit_code == 2 and "--reduction" in bad.output
