"""The two-stream network of the second paper: shared weights, the losses of Eqs. 6-8, training and inference."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from stvup import load_upscaler, upscale
from stvup.cli.main import cli
from stvup.data import Sampler
from stvup.data.sampler import SEGMENT
from stvup.errors import UsageError
from stvup.evaluation.protocol import evaluate
from stvup.model import TwoStream, build_model, list_models
from stvup.model.twostream import interpolate_times
from stvup.model.weights import load_weights
from stvup.training.loop import TrainConfig, train, training_step, two_stream_step
from stvup.training.losses import consistency_loss
from stvup.video import probe

from .conftest import make_clip
from .test_train import _texture_clip

TINY = ("espcn-tiny", "dvf-tiny")
# The tests read loss terms as Python floats while their graphs are still alive; that is intended here.
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def _pair(seed: int = 0, n: int = 2, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _batch(seed: int = 0, frames: int = 2, size: int = 16, keep_hr: bool = True):
    return Sampler([_texture_clip()], patch=size, frames=frames, keep_hr=keep_hr, seed=seed).batch(0, 2)


@pytest.mark.parametrize("spatial", ["espcn-tiny", "vdsr-tiny"])
@pytest.mark.parametrize("temporal", ["dvf-tiny", "slomo-tiny"])
def test_streams_share_one_spatial_and_one_temporal_module(spatial, temporal):
    torch.manual_seed(0)
    model = TwoStream(spatial, temporal)
    assert {k.split(".")[0] for k in model.state_dict()} == {"spatial", "temporal"}
    a, b = _pair()
    ts, st = model(a, b)
    assert ts.shape == st.shape == (2, 3, 64, 64)
    # f_S's weights are used by both streams (once in T→S, twice in S→T), and so are f_T's.
    for part in (model.spatial, model.temporal):
        calls: list[int] = []
        handle = part.register_forward_hook(lambda m, i, o, calls=calls: calls.append(i[0].shape[0]))
        model(a, b)
        handle.remove()
        assert len(calls) == 2
        with torch.no_grad():
            next(p for n, p in part.named_parameters() if n.endswith("head.weight")).add_(0.05)
        ts2, st2 = model(a, b)
        assert not torch.allclose(ts, ts2) and not torch.allclose(st, st2)
        ts, st = ts2, st2


def test_consistency_is_zero_when_streams_agree_and_reaches_both_modules():
    model = TwoStream(*TINY)
    model.zero_heads()
    a, b = _pair()
    # Untrained heads: f_S is grid bicubic and f_T frame blending, two linear maps that commute.
    ts, st = model(a, b)
    assert float(consistency_loss(ts, st).detach()) < 1e-10
    assert float(consistency_loss(ts, ts.clone()).detach()) == 0.0
    torch.manual_seed(1)
    model = TwoStream(*TINY)
    ts, st = model(a, b)
    loss = consistency_loss(ts, st)
    assert float(loss.detach()) > 0
    loss.backward()
    for part in (model.spatial, model.temporal):
        assert sum(float(p.grad.abs().sum()) for p in part.parameters() if p.grad is not None) > 0


def test_unlabeled_pairs_feed_only_the_consistency_loss():
    torch.manual_seed(0)
    model = TwoStream(*TINY)
    batch = _batch()
    g = torch.Generator().manual_seed(5)
    u1, u2 = torch.rand(2, 3, 3, 16, 16, generator=g), torch.rand(2, 3, 3, 16, 16, generator=g)
    _, alone = two_stream_step(model, batch, 2, None, 4.0)
    _, with1 = two_stream_step(model, batch, 2, None, 4.0, u1)
    _, with2 = two_stream_step(model, batch, 2, None, 4.0, u2)
    assert float(alone["l_r"]) == float(with1["l_r"]) == float(with2["l_r"])
    assert float(with1["l_c"]) != float(with2["l_c"]) != float(alone["l_c"])
    # Gradient of the loss with respect to the unlabeled pixels: non-zero with λ > 0, absent at λ = 0.
    u = u1.clone().requires_grad_(True)
    two_stream_step(model, batch, 2, None, 4.0, u)[0].backward()
    assert float(u.grad.abs().sum()) > 0
    u = u1.clone().requires_grad_(True)
    loss, _ = two_stream_step(model, batch, 2, None, 0.0, u)
    loss.backward()
    assert u.grad is None or float(u.grad.abs().sum()) == 0
    assert float(loss) == float(alone["l_r"])


def test_stage_one_trains_each_module_on_its_own_task():
    torch.manual_seed(0)
    model = TwoStream(*TINY)
    batch = _batch()
    loss, terms = two_stream_step(model, batch, 1, None)
    loss.backward()
    assert float(terms["loss"]) == pytest.approx(float(terms["l_s"]) + float(terms["l_t"]))
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="keep_hr"):
        two_stream_step(model, _batch(keep_hr=False), 1, None)


def test_labeled_split_is_disjoint_whole_segments():
    clip = _texture_clip(n=120)
    full = Sampler([clip], patch=16, frames=2)
    labeled, unlabeled = full.split(0.25, seed=3)
    a, b = set(labeled.entries[0][2].tolist()), set(unlabeled.entries[0][2].tolist())
    assert a and b and not a & b and a | b == set(full.entries[0][2].tolist())
    segs = {s // SEGMENT for s in a}
    assert all((s + 2) // SEGMENT in segs for s in a)  # a labeled window never reaches into unlabeled footage
    assert len(segs) == round(0.25 * 5)
    assert full.split(1.0)[1] is None
    with pytest.raises(ValueError, match="fraction"):
        full.split(0.0)


def test_low_res_sampler_returns_raw_frames_only():
    clip = _texture_clip(n=12)
    batch = Sampler([clip], patch=16, frames=2, low_res=True, augment=False).batch(0, 3)
    assert batch.lr.shape == (2, 3, 3, 16, 16) and batch.times == [] and batch.center.numel() == 0
    frame = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 255
    first = batch.lr[0, 0]
    found = any(torch.equal(first, frame[i, :, y : y + 16, x : x + 16])
                for i in range(12) for y in range(frame.shape[2] - 15) for x in range(frame.shape[3] - 15))  # fmt: skip
    assert found


def test_recursive_time_reuses_midpoints_and_direct_passes_t():
    calls = []

    def f(a, b, t):
        calls.append(t)
        return a + t * (b - a)

    a, b = torch.zeros(1), torch.ones(1)
    out = interpolate_times(f, a, b, [0.25, 0.5, 0.75], "recursive")
    assert [float(x) for x in out] == [0.25, 0.5, 0.75] and calls == [0.5, 0.5, 0.5]
    calls.clear()
    out = interpolate_times(f, a, b, [1 / 3, 2 / 3], "recursive")  # not dyadic: passed through
    assert calls == [1 / 3, 2 / 3]
    calls.clear()
    interpolate_times(f, a, b, [0.25], "direct")
    assert calls == [0.25]


def _tiny_config(tmp_path, **kw) -> TrainConfig:
    base = dict(data=[], out_dir=str(tmp_path / "run"), method="two-stream", spatial=TINY[0], temporal=TINY[1],
                pretrain_steps=10, steps=10, batch_size=4, patch=16, patch2=16, lr=3e-3, lr2=1e-3, log_every=5,
                checkpoint_every=100, precision="fp32")  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_two_stream_run_lowers_the_loss_and_reloads(tmp_path):
    clip = _texture_clip(n=40)
    fixed = Sampler([clip], patch=16, frames=2, seed=99).batch(0, 8)
    start = TwoStream(*TINY)
    start.zero_heads()
    with torch.no_grad():
        before = {k: float(v) for k, v in two_stream_step(start, fixed, 2, None, 4.0)[1].items()}
    config = _tiny_config(tmp_path, labeled_fraction=0.5, seed=2, lr=1e-2, lr2=3e-3)
    result = train(config, clips=[clip], unlabeled_clips=[clip])
    trained = load_weights(TwoStream(*TINY), result.weights)
    with torch.no_grad():
        after = {k: float(v) for k, v in two_stream_step(trained, fixed, 2, None, 4.0)[1].items()}
    assert after["l_r"] < 0.85 * before["l_r"], (before, after)  # 0.71 when written
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log] == [1, 1, 2, 2] and {"l_r", "l_c", "l_r_ts", "l_r_st"} <= set(log[-1])
    assert log[-1]["l_c"] > 0

    # The checkpoint reloads by name and upscales a clip through either stream, at any time factor.
    clip_path = make_clip(tmp_path / "in.mp4", width=48, height=32, frames=5, audio=None)
    for weights in (result.weights, result.last_checkpoint):
        up = load_upscaler(weights, model="two-stream", device="cpu")
        assert isinstance(up.model, TwoStream) and up.model.name == "two-stream:espcn-tiny+dvf-tiny"
    for stream, time, mode, frames in (("ts", 2, "recursive", 10), ("st", 4, "recursive", 20), ("st", 3, "direct", 15)):
        out = tmp_path / f"{stream}{time}.mp4"
        done = upscale(clip_path, out, model="two-stream", weights=result.weights, time=time, stream=stream,
                       time_mode=mode, device="cpu")  # fmt: skip
        info = probe(out)
        assert (done.frames_out, info.width, info.height) == (frames, 192, 128)


def test_streams_differ_after_training_and_eval_reports_both(tmp_path):
    torch.manual_seed(0)
    model = TwoStream(*TINY)
    from stvup.upscaling.pipeline import Upscaler

    clip = tmp_path / "gt.mp4"
    make_clip(clip, width=64, height=48, frames=7, audio=None)
    up = Upscaler(model, device="cpu")
    report = evaluate([clip], methods=["ts", "st", "avg", "bicubic"], upscaler=up)
    name = clip.stem
    ts, st, avg = (report.scores[m][name]["new"]["psnr_y"] for m in ("ts", "st", "avg"))
    assert ts != st and avg == pytest.approx((ts + st) / 2)
    assert report.scores["ts"][name]["kept"] == report.scores["st"][name]["kept"]  # kept frames: f_S in both
    with pytest.raises(UsageError, match="STVUN"):
        evaluate([clip], methods=["v-f"], upscaler=up)
    with pytest.raises(UsageError, match="two-stream"):
        evaluate([clip], methods=["ts"], upscaler=Upscaler(build_model("stvun-tiny"), device="cpu"))


def test_stvun_consistency_option():
    torch.manual_seed(0)
    model = build_model("stvun-tiny")
    batch = Sampler([_texture_clip()], patch=16, frames=8).batch(0, 2)
    from stvup.training.losses import LossWeights

    loss0, t0 = training_step(model, batch, 2, LossWeights(), None, 0.0)
    loss1, t1 = training_step(model, batch, 2, LossWeights(), None, 2.0)
    assert "l_c" not in t0 and float(t1["l_c"]) > 0
    assert float(loss1) == pytest.approx(float(loss0) + 2.0 * float(t1["l_c"]), rel=1e-5)
    loss1.backward()
    assert model.pwcnet.predict_flow6.weight.grad is not None  # the interpolation's flows get gradient too
    with pytest.raises(ValueError, match="8 frames"):
        training_step(model, _batch(frames=7, keep_hr=False), 2, LossWeights(), None, 2.0)


def test_cli_two_stream_train_upscale_and_errors(tmp_path):
    data, lowres = tmp_path / "data", tmp_path / "lowres"
    data.mkdir()
    lowres.mkdir()
    make_clip(data / "a.mp4", width=96, height=80, frames=16, audio=None)
    make_clip(lowres / "b.mp4", width=32, height=32, frames=8, audio=None)
    out = tmp_path / "run"
    runner = CliRunner()
    args = ["train", str(data), "--out", str(out), "--method", "two-stream", "--spatial", "espcn-tiny",
            "--temporal", "slomo-tiny", "--lambda", "2", "--unlabeled", str(lowres), "--labeled-fraction", "0.5",
            "--pretrain-steps", "2", "--steps", "2", "--batch-size", "1", "--patch", "16", "--patch2", "16",
            "--precision", "fp32", "-q"]  # fmt: skip
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert saved["step"] == 4 and saved["l_c"] > 0
    clip = make_clip(tmp_path / "in.mp4", width=32, height=32, frames=3, audio=None)
    args = ["upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "two-stream", "--weights",
            str(out / "model.safetensors"), "--time", "2", "--stream", "st", "-q"]  # fmt: skip
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert probe(tmp_path / "o.mp4").frame_count == 6
    # STVUN weights are not a two-stream checkpoint; STVUN has no loss for unlabeled data.
    tiny = tmp_path / "stvun.safetensors"
    from stvup.model.weights import save_safetensors

    save_safetensors(build_model("stvun-tiny").state_dict(), tiny, {"stvup_model": "stvun-tiny"})
    res = runner.invoke(cli, ["upscale", str(clip), "--model", "two-stream", "--weights", str(tiny)])
    assert res.exit_code != 0 and "not a two-stream one" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["train", str(data), "--labeled-fraction", "0.5", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "two-stream" in res.output and len(res.output.strip().splitlines()) == 1


def test_two_stream_names():
    assert "two-stream:espcn+dvf" in list_models() and "two-stream:vdsr+slomo" in list_models()
    assert "two-stream:espcn-tiny+dvf-tiny" not in list_models()
    assert isinstance(build_model("two-stream:vdsr-tiny+slomo-tiny"), TwoStream)
    with pytest.raises(KeyError, match="name the modules"):
        build_model("two-stream")
    with pytest.raises(KeyError, match="spatial"):
        build_model("two-stream:nope+dvf")
