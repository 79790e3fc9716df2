"""Checkpoint formats, strict loading with useful errors, safetensors round trips and `stvup convert`."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from click.testing import CliRunner

from stvup.cli.main import cli
from stvup.errors import CheckpointError, UsageError
from stvup.model import build_model
from stvup.model.averaging import average_state_dicts
from stvup.model.weights import (
    convert_checkpoint,
    load_checkpoint,
    load_weights,
    read_safetensors,
    resolve_weights,
    save_safetensors,
    sha256_file,
    training_metadata,
    weights_grid,
)

from .helpers import seeded_frames, seeded_state


@pytest.fixture(scope="module")
def state():
    return seeded_state(build_model("stvun-tiny"))


def _check_loaded(path, state):
    model = build_model("stvun-tiny")
    load_weights(model, path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k].to(v.dtype))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"params": s},
        lambda s: {"model": s, "optimizer": {"lr": 1e-4}},
        lambda s: {f"module.{k}": v for k, v in s.items()},
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    ],
    ids=["plain", "state_dict", "params", "model", "module-prefix", "wrapped-prefix"],
)
def test_pytorch_formats(tmp_path, state, wrap):
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(state), path)
    _check_loaded(path, state)


def test_safetensors_round_trip(tmp_path, state):
    path = tmp_path / "w.safetensors"
    save_safetensors(state, path, {"note": "test"})
    tensors, meta = read_safetensors(path)
    assert meta == {"note": "test"}
    assert tensors.keys() == state.keys()
    _check_loaded(path, state)
    # Other dtypes survive exactly.
    mixed = {"h": torch.randn(3, 2).half(), "b": torch.randn(4).bfloat16(), "i": torch.arange(5), "e": torch.zeros(0)}
    save_safetensors(mixed, tmp_path / "m.safetensors")
    back, _ = read_safetensors(tmp_path / "m.safetensors")
    for k, v in mixed.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)


def test_fp16_checkpoint_loads_into_fp32_model(tmp_path, state):
    path = tmp_path / "half.safetensors"
    save_safetensors({k: v.half() for k, v in state.items()}, path)
    model = build_model("stvun-tiny")
    load_weights(model, path)
    k = "decoder.rconv1.weight"
    assert model.state_dict()[k].dtype == torch.float32
    torch.testing.assert_close(model.state_dict()[k], state[k].half().float())


def test_mismatches_are_listed_never_dropped(tmp_path, state):
    bad = dict(state)
    del bad["efst.ff.tAtt0.weight"]
    bad["extra.weight"] = torch.zeros(1)
    bad["decoder.rconv1.bias"] = torch.zeros(7)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_weights(build_model("stvun-tiny"), tmp_path / "bad.pth")
    msg = str(err.value)
    assert "bad.pth" in msg
    assert "1 missing: efst.ff.tAtt0.weight" in msg
    assert "1 unexpected: extra.weight" in msg
    assert "decoder.rconv1.bias (7,) != (48,)" in msg


def test_wrong_model_is_refused(tmp_path, state):
    torch.save(state, tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_weights(build_model("stvun-tiny", scale=2), tmp_path / "tiny.pth")


def test_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth: not a PyTorch or safetensors checkpoint"):
        load_checkpoint(junk)
    torch.save({"a": torch.zeros(1000)}, tmp_path / "full.pth")
    cut = tmp_path / "cut.pth"
    cut.write_bytes((tmp_path / "full.pth").read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cut.pth: cannot read"):
        load_checkpoint(cut)
    save_safetensors({"a": torch.zeros(1000)}, tmp_path / "full.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / "full.safetensors").read_bytes()[:500])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a valid safetensors file"):
        load_checkpoint(cut)
    torch.save({"epoch": 1, "lr": 0.1}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_checkpoint(tmp_path / "nostate.pth")


def test_loaded_weights_reproduce_outputs(tmp_path, state):
    """Saving and loading is lossless: the reloaded model computes exactly the same frames."""
    a = build_model("stvun-tiny").eval()
    a.load_state_dict(state)
    save_safetensors(a.state_dict(), tmp_path / "a.safetensors")
    b = load_weights(build_model("stvun-tiny").eval(), tmp_path / "a.safetensors")
    frames = seeded_frames(h=16, w=16)
    with torch.no_grad():
        assert torch.equal(a(frames, [0.5]), b(frames, [0.5]))


def test_convert_command(tmp_path, state):
    src = tmp_path / "STVUN.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, src)
    dst = tmp_path / "stvun.safetensors"
    runner = CliRunner()
    res = runner.invoke(cli, ["convert", str(src), str(dst), "--model", "stvun-tiny", "--dtype", "fp16"])
    assert res.exit_code == 0, res.output
    assert sha256_file(dst) in res.output
    tensors, meta = read_safetensors(dst)
    assert meta["stvup_model"] == "stvun-tiny"
    assert all(t.dtype == torch.float16 for t in tensors.values())
    # Refuses to overwrite, and refuses a checkpoint of another model, with one line and exit code 1.
    res = runner.invoke(cli, ["convert", str(src), str(dst), "--model", "stvun-tiny"])
    assert res.exit_code == 1 and "exists" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["convert", str(src), str(tmp_path / "x.safetensors"), "--model", "stvun"])
    assert res.exit_code == 1 and "does not match the model" in res.output
    assert not (tmp_path / "x.safetensors").exists()


def test_convert_averages_checkpoints_of_one_run(tmp_path, state):
    # Three training checkpoints (wrapped as `stvup train` writes them) become their element-wise mean.
    states = [state, seeded_state(build_model("stvun-tiny"), seed=1), seeded_state(build_model("stvun-tiny"), seed=2)]
    paths = []
    for i, s in enumerate(states):
        paths.append(tmp_path / f"step_{i}.pt")
        torch.save({"model": s, "optimizer": {"state": {}}, "step": i}, paths[-1])
    dst = tmp_path / "avg.safetensors"
    res = CliRunner().invoke(cli, ["convert", *map(str, paths), str(dst), "--model", "stvun-tiny"])
    assert res.exit_code == 0, res.output
    tensors, meta = read_safetensors(dst)
    assert meta["averaged"] == "3" and meta["source"] == "step_0.pt, step_1.pt, step_2.pt"
    for k, v in tensors.items():
        mean = sum(s[k].double() for s in states) / 3
        torch.testing.assert_close(v.double(), mean, rtol=0, atol=1e-6)
        assert v.dtype == state[k].dtype
    # A checkpoint of another model among them: one line naming that file, nothing written.
    other = tmp_path / "other.safetensors"
    save_safetensors(seeded_state(build_model("stvun-small")), other)
    res = CliRunner().invoke(
        cli, ["convert", str(paths[0]), str(other), str(tmp_path / "x.safetensors"), "--model", "stvun-tiny"]
    )
    assert res.exit_code == 1 and "other.safetensors" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.safetensors").exists()


def test_averaging_refuses_what_has_no_mean():
    a = {"w": torch.ones(2), "n": torch.tensor(3)}
    files = {"a": a, "b": {"w": torch.zeros(2), "n": torch.tensor(3)}, "c": {"w": torch.zeros(2), "n": torch.tensor(4)}}
    mean = average_state_dicts(["a", "b"], files.__getitem__)
    assert torch.equal(mean["w"], torch.full((2,), 0.5)) and int(mean["n"]) == 3
    with pytest.raises(CheckpointError, match=r"^c: n is not floating point and differs from a"):
        average_state_dicts(["a", "c"], files.__getitem__)
    files["d"] = {"w": torch.zeros(3), "n": torch.tensor(3)}
    with pytest.raises(CheckpointError, match=r"^d: w is torch.float32 \(3,\)"):
        average_state_dicts(["a", "d"], files.__getitem__)
    files["e"] = {"w": torch.zeros(2)}
    with pytest.raises(CheckpointError, match=r"^e: keys differ from a \(n\)"):
        average_state_dicts(["a", "e"], files.__getitem__)


def _raw_safetensors(header: dict | bytes, body: bytes, length: int | None = None) -> bytes:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(head) if length is None else length) + head + body


@pytest.mark.parametrize(
    "name, blob",
    [
        (
            "huge-header",
            _raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, length=2**62),
        ),
        ("not-json", _raw_safetensors(b"{not json at all}", b"")),
        (
            "past-the-end",
            _raw_safetensors({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 16),
        ),
        (
            "overlap",
            _raw_safetensors(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                },
                b"\0" * 12,
            ),
        ),
        ("shape-lies", _raw_safetensors({"a": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 8]}}, b"\0" * 8)),
        ("bad-dtype", _raw_safetensors({"a": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)),
        ("empty", b""),
    ],
)
def test_damaged_or_hostile_safetensors_get_one_line(tmp_path, clips, name, blob):
    """The safetensors library's checks turn every malformed file into one line naming it; nothing is loaded."""
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError) as err:
        load_weights(build_model("stvun-tiny"), path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    out = tmp_path / "out.mp4"
    res = CliRunner().invoke(cli, ["upscale", str(clips["aac"]), "-o", str(out), "--weights", str(path)])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [f"error: {msg}"]
    assert not out.exists()


def test_weights_know_their_grid_and_convert_carries_it(tmp_path, state):
    """Weights without the key (the authors', and stvup's before it existed) are on the paper's DUF grid; a run's
    settings name the grid, and converting (one file or an average) keeps it; mixed grids are not averaged."""
    plain = tmp_path / "plain.safetensors"
    save_safetensors(state, plain, {"stvup_model": "stvun-tiny"})
    assert weights_grid(plain) == "duf" and weights_grid(tmp_path / "authors.pth") == "duf"
    real = tmp_path / "real.safetensors"
    save_safetensors(state, real, {"stvup_model": "stvun-tiny", "train_config": json.dumps({"kernel": "real"})})
    assert training_metadata(real) == {"stvup_degradation": "real", "stvup_grid": "block-centre"}
    run = tmp_path / "last.pt"
    torch.save({"model": state, "step": 3, "config": {"kernel": "area"}}, run)
    assert training_metadata(run)["stvup_grid"] == "block-centre"
    out = tmp_path / "out.safetensors"
    convert_checkpoint([real, run], out, "stvun-tiny", torch.float16)
    assert weights_grid(out) == "block-centre" and read_safetensors(out)[1]["stvup_degradation"] == "real"
    with pytest.raises(CheckpointError, match="different pixel grids"):
        convert_checkpoint([real, plain], tmp_path / "mixed.safetensors", "stvun-tiny")
    odd = tmp_path / "odd.safetensors"
    save_safetensors(state, odd, {"stvup_model": "stvun-tiny", "stvup_grid": "hexagonal"})
    with pytest.raises(CheckpointError, match="unknown pixel grid"):
        weights_grid(odd)


def test_shipped_weights_are_named(tmp_path, monkeypatch, state):
    """``--weights paper`` names weights/paper.safetensors; a path still wins; an unknown name says what exists."""
    import stvup.model.weights as weights

    shipped = tmp_path / "weights"
    shipped.mkdir()
    save_safetensors(state, shipped / "paper.safetensors", {"stvup_model": "stvun-tiny"})
    monkeypatch.setattr(weights, "WEIGHTS_DIR", shipped)
    assert resolve_weights("paper") == shipped / "paper.safetensors"
    assert resolve_weights("paper.safetensors") == shipped / "paper.safetensors"
    local = tmp_path / "mine.safetensors"
    local.write_bytes(b"x")
    assert resolve_weights(local) == local
    with pytest.raises(UsageError, match="nor shipped weights of that name \\(paper\\)"):
        resolve_weights("nope")
    from .conftest import make_clip

    clip = make_clip(tmp_path / "c.mp4", audio=None)
    res = CliRunner().invoke(cli, ["upscale", str(clip), "--weights", "nope"])
    assert res.exit_code != 0 and "nope" in res.output and "Traceback" not in res.output
