"""Training STVUN from video (paper section 3.3): stage 1 on L_S, stage 2 on λ_M·L_M + λ_S·L_S + λ_F·L_F.

Stage 1 pre-trains the encoder, EFST and decoder for space upsampling only (Eq. 9); stage 2 trains the whole network,
PWC-Net included, on Eq. 12. Both use Adam with a learning rate halved every ``lr_halve_every`` steps of the stage.
The paper's values are the defaults (batch 32, 128/256-pixel HR patches, 300K + 400K steps, 1e-4 / 5e-5, halving
every 100K); a CPU run shortens the schedule with options.

A run lives in one folder: ``log.jsonl`` (one JSON object per logged step: each loss term, learning rate,
samples per second), ``checkpoints/step_NNNNNNN.pt`` (model, optimiser, step) every ``checkpoint_every`` steps and on
interruption, ``last.pt``, and at the end ``model.safetensors`` (weights only, loadable with ``--weights``; with
``ema_decay``, the moving average of the weights, :mod:`stvup.training.ema`).
Batches depend only on ``(seed, step)``, so ``resume`` continues exactly where a run stopped.

``method="two-stream"`` trains the second paper's network (:mod:`stvup.model.twostream`) instead: stage 1 trains
f_S and f_T separately on their own tasks (f_S on the HR frames of the inputs, f_T on LR and HR triplets), which is
the paper's module pre-training and, on its own, its baseline B; stage 2 trains both streams on L_R + λ·L_C
(Eqs. 5-7), with unlabeled pairs adding to L_C only (Eq. 8). Unlabeled pairs come from the unlabeled part of the
training footage (``labeled_fraction`` < 1) and from ``unlabeled`` folders of low-resolution video.

``lambda_c`` > 0 with ``method="stvun"`` adds the cross-stream idea to STVUN's stage 2: the joint output at T_in
between frames 3 and 4 is pulled towards the interpolation (STVUN's own flows, Eqs. 4 and 6) of its own spatial
outputs for frames 3 and 4, the latter from the window centred on frame 4 (so samples take 8 frames).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from stvup.data.degrade import GRIDS
from stvup.data.feeds import Feeds, build_feeds
from stvup.data.feeds import report as report_feeds
from stvup.data.prefetch import Prefetch, prefetch_workers
from stvup.data.sampler import Batch
from stvup.data.sources import Clip, Photo, load_clips, load_photos
from stvup.errors import UsageError
from stvup.model import build_model
from stvup.model.stvun import STVUN, init_conv
from stvup.model.twostream import TwoStream
from stvup.model.weights import (
    DEGRADATION_KEY,
    FLOW_KEY,
    GRID_KEY,
    flow_override,
    load_checkpoint,
    load_weights,
    save_safetensors,
)
from stvup.training.ema import WeightEMA
from stvup.training.flowtrain import flow_step
from stvup.training.losses import LossWeights
from stvup.training.runs import METHODS, TrainConfig, continued, load_training_checkpoint, save_checkpoint, trim_log
from stvup.training.steps import stage_parameters, training_step, two_stream_step, zero_heads
from stvup.upscaling.hardware import fast_bf16, resolve_device

__all__ = [
    "METHODS",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "bf16_supported",
    "train",
    "training_step",
    "two_stream_step",
    "zero_heads",
]


@dataclass
class TrainProgress:
    """What a progress callback receives after each step (``losses`` averaged over the last log interval)."""

    step: int
    total: int
    stage: int
    losses: dict[str, float]
    lr: float
    samples_per_s: float
    message: str | None = None


@dataclass
class TrainResult:
    out_dir: Path
    weights: Path
    last_checkpoint: Path
    steps: int
    seconds: float
    clips: int
    windows: int
    final_losses: dict[str, float] = field(default_factory=dict)
    finished: bool = True


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is worth it here (:func:`stvup.upscaling.hardware.fast_bf16`)."""
    return fast_bf16(device)


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type not in ("cpu", "cuda"):
            raise UsageError(f"bf16 autocast is not available on {device}")
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if bf16_supported(device) else None
    raise UsageError(f"unknown precision {precision!r}; use auto, fp32 or bf16")


def train(
    config: TrainConfig | None,
    *,
    resume: str | os.PathLike | dict | None = None,
    clips: list[Clip] | None = None,
    unlabeled_clips: list[Clip] | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    time_limit: float | None = None,
    prefetch: int | None = None,
) -> TrainResult:
    """Run (or, with ``resume``, continue) a training run; returns where its results are.

    ``resume``: a checkpoint or a run folder (or :func:`~stvup.training.runs.load_training_checkpoint`'s result, so that
    a caller who read it already does not read it again); the run then continues in its own folder with its saved
    settings (``config`` may be None; if given, it may differ from them only in :data:`stvup.training.runs.RESUMABLE`
    settings, see :func:`stvup.training.runs.resume_config`). ``clips`` and ``unlabeled_clips``: already decoded sources
    (tests, the GPU kit), instead of reading ``config.data`` / ``config.unlabeled``. ``time_limit``: stop after
    this many seconds of training in this call, with a checkpoint and the weights written as at the end
    (``TrainResult.finished`` is then False; ``resume`` continues), so that a run can be cut into chunks that each
    fit a time slot. ``prefetch``: threads that draw the next steps' batches meanwhile (None: two on a GPU, none on
    a CPU; :mod:`stvup.data.prefetch`); the batches are the same either way.
    """
    say = on_message or (lambda _msg: None)
    start_step, ckpt = 0, None
    if resume is not None:
        ckpt = resume if isinstance(resume, dict) else load_training_checkpoint(resume)
        config = continued(ckpt, config)
        start_step = int(ckpt["step"])
        say(f"resuming {ckpt['path']} at step {start_step}")
    if config is None:
        raise UsageError("training needs its settings (a TrainConfig), or a run to resume")
    if config.batch_size < 1 or config.patch < 16 or config.patch2 < 16:
        raise UsageError("batch size must be positive and patches at least 16 LR pixels")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    autocast = _autocast_dtype(config.precision, device)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    two = config.method == "two-stream"
    model, ema = _prepare_model(config, ckpt, device)
    feeds, clips = _prepare_feeds(config, model.scale, clips, unlabeled_clips, say)
    weights = LossWeights(config.lambda_m, config.lambda_s, config.lambda_f)
    # Unlabeled LR pairs feed L_C only: two-stream stage 2 with lambda_c > 0.
    unlabeled_batch = (config.unlabeled_batch or config.batch_size) if two and config.lambda_c else 0

    stage = config.stage(start_step)
    optimizer = _optimiser(config, model, stage, start_step)
    if ckpt is not None and ckpt.get("optimizer") is not None and ckpt.get("stage") == stage:
        optimizer.load_state_dict(ckpt["optimizer"])
    meter = _Meter(float(ckpt.get("elapsed", 0.0)) if ckpt is not None else 0.0)
    log_path = out_dir / "log.jsonl"
    if ckpt is not None:
        trim_log(log_path, start_step)

    def checkpoint(step: int) -> Path:
        return _checkpoint(out_dir, config, model, optimizer, ema, step, stage, meter.elapsed)

    step = start_step
    began = time.perf_counter()

    def draw(step: int) -> tuple[Batch, torch.Tensor | None]:
        at = config.stage(step)
        return feeds.draw(step, at, config.patch if at == 1 else config.patch2, config.batch_size, unlabeled_batch)

    workers = prefetch_workers(device) if prefetch is None else prefetch
    try:
        with Prefetch(draw, workers, config.total_steps) as batches, log_path.open("a") as log:
            while step < config.total_steps:
                if config.stage(step) != stage:
                    # Stage 2 trains every part, PWC-Net included unless frozen, with a fresh optimiser at its rate.
                    stage = config.stage(step)
                    optimizer = _optimiser(config, model, stage, step)
                lr = config.learning_rate(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch, extra = batches.get(step)
                batch, extra = batch.to(device), None if extra is None else extra.to(device)
                loss, terms = _loss(config, model, batch, extra, stage, step, weights, autocast)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {float(loss)} at step {step}; lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                step += 1
                meter.add(terms, config.batch_size)
                if meter.count >= config.log_every or step == config.total_steps:
                    record = meter.line(step, stage, lr)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    if on_progress is not None:
                        on_progress(TrainProgress(step, config.total_steps, stage, meter.last, lr,
                                                  record["samples_per_s"]))  # fmt: skip
                if step % config.checkpoint_every == 0 and step < config.total_steps:
                    checkpoint(step)
                if time_limit is not None and time.perf_counter() - began >= time_limit:
                    break
    except KeyboardInterrupt:
        if step > start_step:
            say(f"interrupted: saved {checkpoint(step)}; continue with --resume {out_dir}")
        raise
    meter.close()  # a time limit cut the log interval short: count its time
    last = checkpoint(step)
    weights_path = _save_weights(config, model, ema, step, out_dir / "model.safetensors")
    windows = feeds.labeled[config.patch2].windows
    finished = step >= config.total_steps
    return TrainResult(out_dir, weights_path, last, step, meter.elapsed, len(clips), windows, meter.last, finished)


def _prepare_model(config: TrainConfig, ckpt: dict | None, device: torch.device) -> tuple[nn.Module, WeightEMA | None]:
    """The network of the run on ``device`` in training mode (from the checkpoint, ``init`` or a zero-head start)
    and its moving average, if the run keeps one."""
    two = config.method == "two-stream"
    try:
        model = (
            TwoStream(config.spatial, config.temporal)
            if two
            else build_model(config.model, **flow_override(config.flow))
        )
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    if ckpt is not None:
        load_weights(model, ckpt["model"])
    elif config.init:
        load_weights(model, _init_state(model, config.init))
        if config.flow_reset and not two:
            model.pwcnet.apply(init_conv)
            zero_heads(model, flow_only=True)
    elif config.zero_init:
        model.zero_heads() if two else zero_heads(model)
    model.to(device).train()
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay else None
    if ema is not None and ckpt is not None:
        ema.restore(ckpt)
    return model, ema


def _init_state(model: nn.Module, init: str) -> dict[str, torch.Tensor]:
    """The state dict of ``init`` for ``model``: all of it, or, for a network with a classical flow started from
    weights that have a PWC-Net, all but the PWC-Net (which that network has not). Any other mismatch is left for
    the strict load to report."""
    state = load_checkpoint(init)
    if isinstance(model, STVUN) and model.pwcnet is None:
        state = {k: v for k, v in state.items() if not k.startswith("pwcnet.")}
    if isinstance(model, STVUN) and model.unshuffle > 1:
        state = widen_stem(state, model.unshuffle)
    return state


def widen_stem(state: dict[str, torch.Tensor], unshuffle: int) -> dict[str, torch.Tensor]:
    """A ×4 network's weights as the start of a ×2 one that unshuffles its input by ``unshuffle``
    (:class:`~stvup.model.configs.STVUNConfig`): every tensor as it is but the encoder's stem, whose weights for each
    colour are shared out over that colour's u² unshuffled channels (divided by u²). The ×2 network then begins by
    seeing each u×u block's mean, the input the ×4 network was trained on; a stem that already fits is kept."""
    key = "encoder.conv.0.weight"
    stem = state.get(key)
    if stem is None or stem.shape[1] != 3:
        return state
    widened = stem.repeat_interleave(unshuffle**2, dim=1) / unshuffle**2  # pixel_unshuffle keeps a colour's together
    return {**state, key: widened}


def _prepare_feeds(
    config: TrainConfig,
    scale: int,
    clips: list[Clip] | None,
    unlabeled_clips: list[Clip] | None,
    say: Callable[[str], None],
) -> tuple[Feeds, list[Clip]]:
    """The footage (decoded here unless given) and the batches the run draws from it, reported through ``say``."""
    if (config.crf is not None or config.chroma) and importlib.util.find_spec("av") is None:
        # Not at the first compressed sample, minutes in: the GPU kit's machine has no PyAV unless it is carried.
        raise UsageError("this degradation compresses (H.264/MPEG-2, 4:2:0) and needs PyAV, which is not installed")

    def report(path: str, clip: Clip | None, error: str | None) -> None:
        say(
            f"skipped {error}"
            if clip is None
            else f"loaded {path}: {len(clip.frames)} frames, "
            f"{clip.frames.shape[2]}x{clip.frames.shape[1]}, {len(clip.shot_starts)} shot(s)"
        )

    if clips is None:
        clips = load_clips(config.data, config.max_frames, report)
    if not clips:
        raise UsageError("no training video found in " + ", ".join(map(str, config.data)))
    if unlabeled_clips is None and config.unlabeled:
        unlabeled_clips = load_clips(config.unlabeled, config.max_frames, report)
        if not unlabeled_clips:
            raise UsageError("no unlabeled video found in " + ", ".join(map(str, config.unlabeled)))
    photos: list[Photo] = []
    if config.photos:
        photos = load_photos(config.photos, lambda path, photo, error: say(f"skipped {error}") if error else None)
        if not photos:
            raise UsageError("no photograph found in " + ", ".join(map(str, config.photos)))
        say(f"loaded {len(photos)} photographs")
    two = config.method == "two-stream"
    frames = 2 if two else 8 if config.lambda_c > 0 else 7
    feeds = build_feeds(clips, patches={config.patch, config.patch2}, scale=scale, degradation=config.degradation,
                        stride=config.stride, augment=config.augment, frames=frames,
                        max_times=config.max_times, seed=config.seed, labeled_fraction=config.labeled_fraction,
                        keep_hr=two, unlabeled_clips=unlabeled_clips,
                        flow_patch=config.flow_patch if config.flow_steps and not two else None,
                        photos=photos, photo_share=config.photo_share, prescale=config.prescale)  # fmt: skip
    report_feeds(feeds, config.patch2, config.labeled_fraction, say)
    return feeds, clips


def _loss(
    config: TrainConfig,
    model: nn.Module,
    batch: Batch,
    extra: torch.Tensor | None,
    stage: int,
    step: int,
    weights: LossWeights,
    autocast: torch.dtype | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one step and its terms, by stage and method."""
    if stage == 0:
        # The occlusion check joins halfway through stage 0, once the flow is no longer noise.
        occlusion = step >= config.flow_steps // 2
        return flow_step(model, batch, autocast, config.flow_smooth, occlusion)
    if config.method == "two-stream":
        return two_stream_step(model, batch, stage, autocast, config.lambda_c, extra)
    return training_step(model, batch, stage, weights, autocast, config.lambda_c)


def _save_weights(config: TrainConfig, model: nn.Module, ema: WeightEMA | None, step: int, path: Path) -> Path:
    """The run's weights (the moving average if it keeps one) as safetensors, with its settings, pixel grid and
    degradation in the metadata."""
    settings = json.dumps(dataclasses.asdict(config))
    meta = {"stvup_model": config.model_name, "steps": str(step), "train_config": settings,
            DEGRADATION_KEY: config.kernel}  # fmt: skip
    if GRIDS.get(config.kernel):  # a mixed run learns both grids and claims neither
        meta[GRID_KEY] = GRIDS[config.kernel]
    if config.flow != "pwc":
        meta[FLOW_KEY] = config.flow
    if ema is not None:
        meta.update(ema_decay=str(config.ema_decay), ema_updates=str(ema.updates))
    save_safetensors((model if ema is None else ema).state_dict(), path, meta)
    return path


def _optimiser(config: TrainConfig, model: nn.Module, stage: int, step: int) -> torch.optim.Adam:
    """A fresh Adam over what ``stage`` trains, at the schedule's rate for ``step``."""
    frozen = config.freeze_flow and stage == 2  # TrainConfig refuses freeze_flow for two-stream runs
    if config.method != "two-stream" and model.pwcnet is not None:
        # A frozen PWC-Net needs no gradient at all, so its backward pass is skipped, not just its update.
        model.pwcnet.requires_grad_(not frozen)
    return torch.optim.Adam(stage_parameters(model, stage, frozen), lr=config.learning_rate(step))


def _checkpoint(
    out_dir: Path,
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: WeightEMA | None,
    step: int,
    stage: int,
    elapsed: float,
) -> Path:
    """Saves everything a resumed run needs as ``checkpoints/step_N.pt`` and ``last.pt``; returns the first."""
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "stage": stage,
               "config": dataclasses.asdict(config), "model_name": config.model_name, "elapsed": elapsed}  # fmt: skip
    if ema is not None:
        payload.update(ema.checkpoint_entries())
    path = out_dir / "checkpoints" / f"step_{step:07d}.pt"
    save_checkpoint(path, payload)
    save_checkpoint(out_dir / "last.pt", payload)
    return path


class _Meter:
    """The loss terms and samples since the last log line, and the run's training time (``elapsed``, carried over
    from a resumed checkpoint), for the log's records."""

    def __init__(self, elapsed: float) -> None:
        self.elapsed = elapsed
        self.last: dict[str, float] = {}
        self._reset(time.perf_counter())

    def _reset(self, now: float) -> None:
        self.sums: dict[str, float] = {}
        self.count, self.samples, self.tick = 0, 0, now

    def add(self, terms: dict[str, torch.Tensor], samples: int) -> None:
        self.count += 1
        self.samples += samples
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())

    def line(self, step: int, stage: int, lr: float) -> dict[str, float]:
        """The log record of the steps since the last one (means of the terms, samples per second)."""
        now = time.perf_counter()
        self.elapsed += now - self.tick
        rate = self.samples / max(now - self.tick, 1e-9)
        self.last = {k: v / self.count for k, v in self.sums.items()}
        record = {"step": step, "stage": stage, **self.last, "lr": lr, "samples_per_s": rate,
                  "elapsed_s": round(self.elapsed, 2)}  # fmt: skip
        self._reset(now)
        return record

    def close(self) -> None:
        if self.count:
            self.elapsed += time.perf_counter() - self.tick
