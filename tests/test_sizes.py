"""``--to``: output sizes as people name them, exact frames at that size, and the ×2 network beside ×4 weights."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.errors import UsageError
from stvup.model import build_model
from stvup.model.weights import save_safetensors
from stvup.upscaling.loader import load_upscaler
from stvup.upscaling.options import UpscaleOptions
from stvup.upscaling.sizes import parse_target, plan_target
from stvup.video import probe

from .conftest import make_clip
from .helpers import seeded_state


@pytest.mark.parametrize(
    ("value", "height"), [("4k", 2160), ("4K", 2160), ("8k", 4320), ("1080p", 1080), ("1440", 1440), (720, 720)]
)
def test_names_and_numbers(value, height):
    assert parse_target(value) == height


@pytest.mark.parametrize("value", ["huge", "4kp", "-1", "1080i", ""])
def test_what_is_not_a_height_is_refused(value):
    with pytest.raises(UsageError, match="--to must be an output height"):
        parse_target(value)


@pytest.mark.parametrize(
    ("size", "target", "space", "out"),
    [
        ((854, 480), 1080, 4, (1922, 1080)),  # 480p (16:9) to 1080p: ×2 falls short, ×4 then reduced
        ((720, 480), 1080, 4, (1620, 1080)),  # a DVD's 720×480 frames: the width follows the height
        ((1280, 720), 2160, 4, (3840, 2160)),  # 720p to 4K
        ((1280, 720), 1440, 2, (2560, 1440)),  # 720p to 1440p: exactly ×2, nothing to reduce
        ((1920, 1080), 2160, 2, (3840, 2160)),  # 1080p to 4K: ×2
        ((1920, 1080), 4320, 4, (7680, 4320)),  # 1080p to 8K: ×4
    ],
)
def test_the_plan_picks_the_smaller_factor_and_keeps_the_shape(size, target, space, out):
    assert plan_target(*size, target) == (space, out)
    w, h = out
    assert abs(w / h - size[0] / size[1]) < 2 / h  # the same picture shape, to the rounding of an even width


def test_impossible_targets_say_why():
    with pytest.raises(UsageError, match="already 1080 rows"):
        plan_target(1920, 1080, 1080)
    with pytest.raises(UsageError, match="more than ×4"):
        plan_target(640, 360, 2160)
    with pytest.raises(UsageError, match="either --space or --to"):
        UpscaleOptions(space=4, to="4k")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Tiny ×4 weights and, beside them, their ×2 network (``NAME-x2.safetensors``)."""
    folder = tmp_path_factory.mktemp("weights")
    x4, x2 = folder / "tiny.safetensors", folder / "tiny-x2.safetensors"
    four = build_model("stvun-tiny")
    save_safetensors(seeded_state(four), x4, {"stvup_model": "stvun-tiny"})
    state = seeded_state(build_model("stvun-tiny-x2"), seed=5)
    state["decoder.rconv1.weight"] = state["decoder.rconv1.weight"] * 0.02
    save_safetensors(state, x2, {})
    return x4, x2


def test_space_two_takes_the_x2_network_beside_the_weights_and_falls_back_with_one_line(pair, tmp_path):
    x4, x2 = pair
    up = load_upscaler(x4, device="cpu", space=2)
    assert up.weights_path == x2 and up.model.scale == 2 and up.model.unshuffle == 2 and not up.notes
    assert load_upscaler(x4, device="cpu").model.scale == 4  # ×4 stays ×4
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes(x4.read_bytes())  # no ×2 beside it: ×4, then reduced, said once
    up = load_upscaler(alone, device="cpu", space=2)
    assert up.model.scale == 4 and up.space == 2
    assert up.notes == ["--space 2: alone.safetensors has no ×2 network, so it ran ×4 and reduced the frames (about "
                        "4x the work)"]  # fmt: skip


@pytest.mark.parametrize(("to", "size", "name"), [("96", (128, 96), "96p"), ("80p", (106, 80), "80p"),
                                                   ("150", (200, 150), "150p")])  # fmt: skip
def test_cli_to_writes_exactly_the_size_asked(pair, tmp_path, to, size, name):
    x4, _ = pair
    clip = make_clip(tmp_path / "c.mp4", width=64, height=48, frames=4, audio=None)
    res = CliRunner().invoke(cli, ["upscale", str(clip), "--weights", str(x4), "--to", to, "--time", "2",
                                   "--device", "cpu", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    out = tmp_path / f"c_stvup_{name}.mp4"
    assert result["output"] == str(out) and tuple(result["output_size"]) == size
    info = probe(out)
    assert (info.width, info.height) == size and info.frame_count == 8
    assert not any("no ×2 network" in p for p in result["problems"])  # ×2 ran on the ×2 network beside the weights


def test_cli_to_refuses_a_size_it_cannot_make_in_one_line(pair, tmp_path):
    x4, _ = pair
    clip = make_clip(tmp_path / "c.mp4", width=64, height=48, frames=4, audio=None)
    res = CliRunner().invoke(cli, ["upscale", str(clip), "--weights", str(x4), "--to", "4k"])
    assert res.exit_code != 0 and "more than ×4" in res.output and "Traceback" not in res.output
    assert not list(tmp_path.glob("c_stvup_*"))
    res = CliRunner().invoke(cli, ["upscale", str(clip), "--weights", str(x4), "--to", "4k", "--space", "2"])
    assert res.exit_code != 0 and "either --space or --to" in res.output


def test_batch_to_runs_each_input_at_its_own_factor(pair, tmp_path):
    x4, _ = pair
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "small.mp4", width=32, height=24, frames=3, audio=None)  # 96 rows: ×4
    make_clip(src / "large.mp4", width=64, height=48, frames=3, audio=None)  # 96 rows: ×2
    res = CliRunner().invoke(cli, ["batch", str(src), str(tmp_path / "out"), "--weights", str(x4), "--to", "96",
                                   "--device", "cpu", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    sizes = {r["input"].split("/")[-1]: tuple(r["output_size"]) for r in json.loads(res.stdout)["results"]}
    assert sizes == {"small.mp4": (128, 96), "large.mp4": (128, 96)}
    for name in ("small", "large"):
        assert (probe(tmp_path / "out" / f"{name}.mp4").width, probe(tmp_path / "out" / f"{name}.mp4").height) == (
            128,
            96,
        )


def test_a_x4_output_beyond_4k_suggests_to(pair, tmp_path, monkeypatch):
    x4, _ = pair
    monkeypatch.setattr("stvup.upscaling.job.UHD", 100 * 80)  # stand in for 3840×2160 at test size
    clip = make_clip(tmp_path / "c.mp4", width=32, height=24, frames=3, audio=None)
    res = CliRunner().invoke(cli, ["upscale", str(clip), "--weights", str(x4), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert any("--to 4k" in n for n in json.loads(res.stdout)["notes"])
    res = CliRunner().invoke(cli, ["upscale", str(clip), "-o", str(tmp_path / "b.mp4"), "--weights", str(x4),
                                   "--to", "96", "--device", "cpu", "--json"])  # fmt: skip
    assert not any("--to 4k" in n for n in json.loads(res.stdout)["notes"])


def test_cli_eval_space_two_scores_the_x2_network_and_the_baselines_at_x2(pair, tmp_path):
    x4, _ = pair
    clip = make_clip(tmp_path / "c.mp4", width=96, height=64, frames=5, audio=None)
    js = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["eval", str(clip), "--weights", str(x4), "--space", "2", "--protocol", "real",
                                   "--crf", "23", "--methods", "stvup,bicubic,ffmpeg", "--json", str(js), "-q",
                                   "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(js.read_text())  # one protocol: one report
    assert report["protocol"]["scale"] == 2 and set(report["mean"]) == {"stvup", "bicubic", "ffmpeg"}
    assert "×2 space" in res.output


def test_training_a_x2_network_starts_from_x4_weights(pair, tmp_path):
    from stvup.model.weights import read_safetensors
    from stvup.training.loop import train

    from .test_train import _config, _texture_clip

    x4, _ = pair
    cfg = _config(tmp_path, model="stvun-tiny-x2", init=str(x4), pretrain_steps=0, steps=2, patch2=32)
    result = train(cfg, clips=[_texture_clip()])
    tensors, meta = read_safetensors(result.weights)
    assert meta["stvup_model"] == "stvun-tiny-x2" and tensors["encoder.conv.0.weight"].shape[1] == 12
    up = load_upscaler(result.weights, device="cpu")
    assert up.model.scale == 2 and up.space == 2
