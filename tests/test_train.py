"""Training: each loss term falls, resuming is exact, the command line writes a usable run."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.data import Clip, Sampler
from stvup.errors import UsageError
from stvup.model import build_model
from stvup.model.weights import load_weights, read_safetensors
from stvup.training.loop import TrainConfig, TrainProgress, train, training_step, zero_heads
from stvup.training.losses import LossWeights
from stvup.training.runs import config_from
from stvup.video import probe

from .conftest import make_clip


def _texture_clip(n: int = 30, h: int = 80, w: int = 96, speed: int = 2) -> Clip:
    """A smooth random texture panning ``speed`` HR pixels per frame."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, h // 4, (w + speed * n) // 4 + 1, generator=g)
    big = F.interpolate(base, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)[0]
    frames = [(big[:, :h, speed * k : speed * k + w].permute(1, 2, 0) * 255).to(torch.uint8).numpy() for k in range(n)]
    return Clip("texture", np.stack(frames), Fraction(30))


def _config(tmp_path, **kw) -> TrainConfig:
    base = dict(
        data=[],
        out_dir=str(tmp_path / "run"),
        model="stvun-tiny",
        pretrain_steps=4,
        steps=4,
        batch_size=2,
        patch=16,
        patch2=16,
        lr=1e-3,
        lr2=1e-3,
        log_every=2,
        checkpoint_every=3,
        precision="fp32",
    )
    base.update(kw)
    return TrainConfig(**base)


def _losses(model, batch, stage=2) -> dict[str, float]:
    with torch.no_grad():
        return {k: float(v) for k, v in training_step(model, batch, stage, LossWeights(), None)[1].items()}


def test_tiny_run_lowers_every_loss_term(tmp_path):
    clip = _texture_clip()
    torch.manual_seed(0)
    cfg = _config(tmp_path, pretrain_steps=15, steps=25, batch_size=4, zero_init=False, seed=1)
    fixed = Sampler([clip], patch=16, seed=99).batch(0, 8)  # a held-out batch from other seeds
    torch.manual_seed(0)
    start = build_model("stvun-tiny")
    before = _losses(start, fixed)
    result = train(cfg, clips=[clip])
    trained = load_weights(build_model("stvun-tiny"), result.weights)
    after = _losses(trained, fixed)
    # L_S and L_F fall fast; L_M (flow learning through PWC-Net) falls slowly in 25 steps but must fall.
    for term, ratio in (("l_s", 0.5), ("l_f", 0.6), ("l_m", 0.97)):
        assert after[term] < ratio * before[term], (term, before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log][:1] == [1] and log[-1]["stage"] == 2 and log[-1]["step"] == 40
    assert {"l_s", "l_m", "l_f", "lr", "samples_per_s"} <= set(log[-1])
    assert all(r["l_m"] == 0 for r in log if r["stage"] == 1)  # stage 1 is L_S only


def test_zero_heads_start_from_bilinear_and_blending():
    model = build_model("stvun-tiny")
    zero_heads(model)
    frames = [torch.rand(1, 3, 16, 16) * 2 - 1 for _ in range(7)]
    out = model.run(frames, [0.5])
    assert torch.allclose(out.frames[0], model.upsample(frames[3]), atol=1e-6)
    assert torch.allclose(out.lr_between[0], (frames[3] + frames[4]) / 2, atol=1e-5)


def test_resume_continues_exactly(tmp_path):
    clip = _texture_clip()
    torch.manual_seed(0)
    whole = train(_config(tmp_path / "a"), clips=[clip])
    torch.manual_seed(0)
    train(_config(tmp_path / "b", steps=2), clips=[clip])  # stops at step 6, inside stage 2
    resumed = train(_config(tmp_path / "b"), resume=tmp_path / "b" / "run", clips=[clip])
    assert resumed.steps == whole.steps == 8
    a, _ = read_safetensors(whole.weights)
    b, _ = read_safetensors(resumed.weights)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8]


def test_resume_from_an_earlier_checkpoint_rewinds_the_log(tmp_path):
    clip = _texture_clip()
    cfg = _config(tmp_path)
    train(cfg, clips=[clip])
    with (tmp_path / "run" / "log.jsonl").open("a") as log:
        log.write('{"step": 9, "lo')  # a line cut short by a crash
    train(cfg, resume=tmp_path / "run" / "checkpoints" / "step_0000003.pt", clips=[clip])
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 5, 7, 8]  # steps 4, 6 and 8 of the first pass are gone with the training they described


def test_interrupt_saves_a_checkpoint_to_resume_from(tmp_path):
    clip = _texture_clip()
    cfg = _config(tmp_path, log_every=1, checkpoint_every=100)

    def stop(p: TrainProgress) -> None:
        if p.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, clips=[clip], on_progress=stop)
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ckpt["step"] == 3 and ckpt["stage"] == 1
    assert train(cfg, resume=tmp_path / "run", clips=[clip]).steps == 8


def test_cli_train_then_upscale(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_clip(data / "a.mp4", width=96, height=80, frames=16, audio=None)
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "train",
            str(data),
            "--out",
            str(out),
            "--model",
            "stvun-tiny",
            "--pretrain-steps",
            "2",
            "--steps",
            "2",
            "--batch-size",
            "1",
            "--patch",
            "16",
            "--patch2",
            "16",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "trained 4 steps" in res.output
    assert (out / "model.safetensors").is_file() and (out / "last.pt").is_file()
    _, meta = read_safetensors(out / "model.safetensors")
    assert meta["stvup_model"] == "stvun-tiny" and meta["steps"] == "4"
    video = tmp_path / "up.mp4"
    res = runner.invoke(
        cli,
        [
            "upscale",
            str(data / "a.mp4"),
            "-o",
            str(video),
            "--weights",
            str(out / "model.safetensors"),
            "--time",
            "2",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    info = probe(video)
    assert (info.width, info.height, info.frame_count) == (384, 320, 32)
    res = runner.invoke(cli, ["train", str(tmp_path / "nothing-here")])
    assert res.exit_code != 0


def test_bf16_autocast_step_on_cpu():
    model = build_model("stvun-tiny")
    batch = Sampler([_texture_clip()], patch=16).batch(0, 2)
    loss, terms = training_step(model, batch, 2, LossWeights(), torch.bfloat16)
    loss.backward()
    assert torch.isfinite(loss) and terms["l_f"] > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.encoder.parameters())
    # The losses themselves are float32 even when the network ran in bf16.
    assert loss.dtype == torch.float32


def test_resume_refuses_to_move_a_finished_stage(tmp_path):
    """A caller's config may change where and how long a run goes, not its recipe or a stage it has passed."""
    clip = _texture_clip()
    train(_config(tmp_path, steps=2), clips=[clip])  # ends at step 6, in stage 2
    run = tmp_path / "run"
    with pytest.raises(UsageError, match="move the start of stage 2 from step 4 to 10"):
        train(_config(tmp_path, pretrain_steps=10), resume=run, clips=[clip])
    with pytest.raises(UsageError, match="lr2 cannot change"):
        train(_config(tmp_path, lr2=0.5), resume=run, clips=[clip])
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 6  # nothing ran


def test_cli_resume_continues_in_the_runs_folder_with_its_settings(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    make_clip(data / "a.mp4", width=96, height=80, frames=16, audio=None)
    run = tmp_path / "run"
    common = ["--batch-size", "1", "--patch", "16", "--patch2", "16", "--quiet"]
    first = ["train", str(data), "--out", str(run), "--model", "stvun-tiny", "--pretrain-steps", "2", "--steps", "2"]
    runner = CliRunner()
    res = runner.invoke(cli, [*first, "--log-every", "1", "--lr2", "2e-4", *common])
    assert res.exit_code == 0, res.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the --out default would land here if the run's own folder were not used
    res = runner.invoke(cli, ["train", "--resume", str(run), "--steps", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "trained 6 steps" in res.output and not any(elsewhere.iterdir())
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["stage"], r["lr"]) for r in records[-2:]] == [(5, 2, 2e-4), (6, 2, 2e-4)]
    for extra, cause in (["--pretrain-steps", "9"], "start of stage 2"), (["--lr2", "1"], "lr2 cannot change"):
        res = runner.invoke(cli, ["train", "--resume", str(run), *extra])
        assert res.exit_code == 1 and cause in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["train"])
    assert res.exit_code == 2 and "give the footage to train on" in res.output


def _tiny_cli_run(tmp_path, frames: int, pretrain_steps: int, steps: int) -> tuple[Path, list[str]]:
    """A one-clip footage folder and the ``stvup train`` arguments of a tiny run on it, into ``tmp_path/run``."""
    data = tmp_path / "data"
    data.mkdir()
    make_clip(data / "a.mp4", width=96, height=80, frames=frames, audio=None)
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--model", "stvun-tiny", "--pretrain-steps", str(pretrain_steps),
            "--steps", str(steps), "--batch-size", "1", "--patch", "16", "--patch2", "16", "--quiet"]  # fmt: skip
    return run, args


def test_cli_minutes_stops_with_weights_and_resume_finishes(tmp_path):
    run, args = _tiny_cli_run(tmp_path, frames=16, pretrain_steps=2, steps=2)
    runner = CliRunner()
    res = runner.invoke(cli, [*args, "--minutes", "0.000001"])  # over after the first step
    assert res.exit_code == 0, res.output
    assert f"stopped at the time limit, step 1 of 4; continue with --resume {run}" in res.output
    _, meta = read_safetensors(run / "model.safetensors")
    assert meta["steps"] == "1" and torch.load(run / "last.pt", weights_only=False)["step"] == 1
    res = runner.invoke(cli, ["train", "--resume", str(run), "--minutes", "5", "--quiet"])
    assert res.exit_code == 0 and "trained 4 steps" in res.output and "time limit" not in res.output, res.output
    res = runner.invoke(cli, [*args, "--minutes", "0"])
    assert res.exit_code == 2 and "--minutes" in res.output


def test_cli_trains_several_strides_and_resumes_with_them(tmp_path):
    run, args = _tiny_cli_run(tmp_path, frames=30, pretrain_steps=0, steps=3)
    args += ["--log-every", "1"]
    runner = CliRunner()
    res = runner.invoke(cli, [*args, "--stride", "4,2"])
    assert res.exit_code == 0, res.output
    saved = torch.load(run / "last.pt", weights_only=False)["config"]
    assert saved["stride"] == (2, 4)
    assert config_from({**saved, "stride": [2, 4]}).stride == (2, 4)  # as a JSON round trip gives it back
    res = runner.invoke(cli, ["train", "--resume", str(run), "--steps", "5", "--quiet"])
    assert res.exit_code == 0 and "trained 5 steps" in res.output, res.output
    assert torch.load(run / "last.pt", weights_only=False)["config"]["stride"] == (2, 4)
    for bad in ("1,2", "2,x"):
        res = runner.invoke(cli, [*args, "--stride", bad])
        assert res.exit_code == 2 and "--stride" in res.output and "Traceback" not in res.output


def test_cli_real_video_mix_is_saved_and_named_in_the_weights(tmp_path):
    """``--degradation real`` fills the strengths left unsaid from the real-video mix (an option given wins), saves
    them with the run, and the weights file names its grid, which the upscaler then follows."""
    from stvup.data.degrade import REAL_VIDEO
    from stvup.upscaling.loader import load_upscaler

    run, args = _tiny_cli_run(tmp_path, frames=16, pretrain_steps=0, steps=2)
    res = CliRunner().invoke(cli, [*args, "--degradation", "real", "--noise", "2"])
    assert res.exit_code == 0, res.output
    saved = torch.load(run / "last.pt", weights_only=False)["config"]
    assert saved["kernel"] == "real" and saved["noise"] == 2.0 and tuple(saved["crf"]) == REAL_VIDEO.crf
    assert (saved["blur"], saved["mpeg2"], saved["chroma"]) == (REAL_VIDEO.blur, REAL_VIDEO.mpeg2, True)
    _, meta = read_safetensors(run / "model.safetensors")
    assert meta["stvup_grid"] == "block-centre" and meta["stvup_degradation"] == "real"
    assert load_upscaler(run / "model.safetensors", device="cpu").grid == "block-centre"
    res = CliRunner().invoke(cli, [*args, "--degradation", "duf", "--mpeg2", "0.5"])
    assert res.exit_code != 0 and "crf range" in res.output and "Traceback" not in res.output


def test_a_compressing_degradation_without_pyav_fails_at_once(tmp_path, monkeypatch):
    """The GPU kit's machine has no PyAV unless it is carried: a run whose degradation compresses says so before
    its first step, not at its first compressed sample."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else real_find_spec(name))
    config = _config(tmp_path, kernel="real", crf=(15, 35), chroma=True, pretrain_steps=0, steps=2)
    with pytest.raises(UsageError, match="needs PyAV"):
        train(config, clips=[_texture_clip()])
    assert not (tmp_path / "run" / "last.pt").exists()
