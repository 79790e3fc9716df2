"""The moving average of the weights (``--ema``): its arithmetic, what a run writes, and exact resumption."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from stvup.cli.main import cli
from stvup.errors import CheckpointError, UsageError
from stvup.model.weights import load_checkpoint, read_safetensors
from stvup.training.ema import WeightEMA
from stvup.training.loop import train
from stvup.training.runs import load_training_checkpoint

from .test_train import _config, _texture_clip, _tiny_cli_run


def test_average_copies_first_then_moves_by_one_minus_decay():
    net = nn.Linear(3, 2)
    ema = WeightEMA(net, 0.75)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # the first update copies
    assert torch.equal(ema.state_dict()["weight"], torch.ones(2, 3)) and ema.updates == 1
    with torch.no_grad():
        net.weight.fill_(5.0)
    ema.update(net)
    assert torch.allclose(ema.state_dict()["weight"], torch.full((2, 3), 0.75 * 1 + 0.25 * 5))
    assert ema.updates == 2


def test_decay_outside_zero_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="between 0 and 1"):
        WeightEMA(nn.Linear(1, 1), 1.0)
    with pytest.raises(UsageError, match="--ema"):
        _config(tmp_path, ema_decay=0.0)


def test_run_writes_the_average_of_its_steps(tmp_path):
    clip = _texture_clip()
    torch.manual_seed(0)
    result = train(_config(tmp_path, ema_decay=0.6, checkpoint_every=1), clips=[clip])
    run = tmp_path / "run"
    # The average recomputed from every step's raw weights (each checkpoint's ``model``).
    expected = None
    for step in range(1, result.steps + 1):
        raw = torch.load(run / "checkpoints" / f"step_{step:07d}.pt", weights_only=False)["model"]
        expected = dict(raw) if expected is None else {k: 0.6 * expected[k] + 0.4 * raw[k] for k in raw}
    written, meta = read_safetensors(result.weights)
    assert meta["ema_decay"] == "0.6" and meta["ema_updates"] == str(result.steps)
    assert all(torch.allclose(written[k], expected[k], atol=1e-6) for k in expected)
    last = load_training_checkpoint(run)
    assert not all(torch.equal(last["model"][k], written[k]) for k in written)  # the raw weights are kept too
    # Loading the checkpoint as weights (convert, --weights, --init) takes the average.
    assert all(torch.equal(load_checkpoint(run / "last.pt")[k], written[k]) for k in written)


def test_resumed_run_continues_the_average_exactly(tmp_path):
    clip = _texture_clip()
    torch.manual_seed(0)
    whole = train(_config(tmp_path / "a", ema_decay=0.5), clips=[clip])
    torch.manual_seed(0)
    train(_config(tmp_path / "b", ema_decay=0.5, steps=2), clips=[clip])  # stops at step 6
    resumed = train(_config(tmp_path / "b", ema_decay=0.5), resume=tmp_path / "b" / "run", clips=[clip])
    a, b = read_safetensors(whole.weights)[0], read_safetensors(resumed.weights)[0]
    assert resumed.steps == whole.steps == 8
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_checkpoint_without_its_average_is_refused(tmp_path):
    clip = _texture_clip()
    cfg = _config(tmp_path, ema_decay=0.5, steps=2)
    train(cfg, clips=[clip])
    ckpt = load_training_checkpoint(tmp_path / "run")
    del ckpt["params_ema"]
    with pytest.raises(CheckpointError, match="has none"):
        train(_config(tmp_path, ema_decay=0.5), resume=ckpt, clips=[clip])


def test_cli_option_trains_with_an_average_and_resume_keeps_it(tmp_path):
    run, args = _tiny_cli_run(tmp_path, frames=16, pretrain_steps=0, steps=2)
    runner = CliRunner()
    res = runner.invoke(cli, [*args, "--ema", "0.9"])
    assert res.exit_code == 0, res.output
    assert read_safetensors(run / "model.safetensors")[1]["ema_updates"] == "2"
    res = runner.invoke(cli, ["train", "--resume", str(run), "--steps", "3", "--quiet"])
    assert res.exit_code == 0 and "trained 3 steps" in res.output, res.output
    meta = read_safetensors(run / "model.safetensors")[1]
    assert (meta["ema_decay"], meta["ema_updates"]) == ("0.9", "3")
    res = runner.invoke(cli, ["train", "--resume", str(run), "--ema", "0.99"])
    assert res.exit_code == 1 and "ema_decay cannot change" in res.output
    for bad in ("1.5", "0", "1"):
        res = runner.invoke(cli, [*args, "--ema", bad])
        assert res.exit_code == 2 and "--ema" in res.output and "Traceback" not in res.output
