"""Training STVUN from video (paper section 3.3): stage 1 on L_S, stage 2 on λ_M·L_M + λ_S·L_S + λ_F·L_F.

Stage 1 pre-trains the encoder, EFST and decoder for space upsampling only (Eq. 9); stage 2 trains the whole network,
PWC-Net included, on Eq. 12. Both use Adam with a learning rate halved every ``lr_halve_every`` steps of the stage.
The paper's values are the defaults (batch 32, 128/256-pixel HR patches, 300K + 400K steps, 1e-4 / 5e-5, halving
every 100K); a CPU run shortens the schedule with options.

A run lives in one folder: ``log.jsonl`` (one JSON object per logged step: each loss term, learning rate,
samples per second), ``checkpoints/step_NNNNNNN.pt`` (model, optimiser, step) every ``checkpoint_every`` steps and on
interruption, ``last.pt``, and at the end ``model.safetensors`` (weights only, loadable with ``--weights``).
Batches depend only on ``(seed, step)``, so ``resume`` continues exactly where a run stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from stvup.data.degrade import Degradation
from stvup.data.sampler import Batch, Sampler
from stvup.data.sources import Clip, load_clips
from stvup.errors import CheckpointError, UsageError
from stvup.losses import LossWeights, spatial_loss, time_losses, total_loss
from stvup.model import STVUN, build_model
from stvup.pipeline import resolve_device
from stvup.weights import atomic_target, load_weights, save_safetensors

__all__ = ["TrainConfig", "TrainProgress", "TrainResult", "bf16_supported", "train", "training_step"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    Patch sizes are in LR pixels (the paper's 128 / 256 HR patches are 32 / 64 at ×4). ``init``: weights to start
    from instead of random ones. ``zero_init``: a random start gets a zero residual head and zero flow outputs, so
    the untrained network already gives bilinear upsampling and frame blending and training starts from there.
    """

    data: list[str]
    out_dir: str = "runs/stvun-small"
    model: str = "stvun-small"
    init: str | None = None
    zero_init: bool = True
    pretrain_steps: int = 300_000
    steps: int = 400_000
    batch_size: int = 32
    patch: int = 32
    patch2: int = 64
    lr: float = 1e-4
    lr2: float = 5e-5
    lr_halve_every: int = 100_000
    lambda_m: float = 1.0
    lambda_s: float = 1.0
    lambda_f: float = 1.0
    stride: int | None = 2
    max_times: int = 3
    kernel: str = "duf"
    noise: float = 0.0
    crf: tuple[int, int] | None = None
    degrade_probability: float = 1.0
    augment: bool = True
    max_frames: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    checkpoint_every: int = 1000
    log_every: int = 10
    threads: int | None = None

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.steps

    def stage(self, step: int) -> int:
        return 1 if step < self.pretrain_steps else 2

    def learning_rate(self, step: int) -> float:
        """Stage's initial rate halved every ``lr_halve_every`` steps of the stage."""
        base, into = (self.lr, step) if self.stage(step) == 1 else (self.lr2, step - self.pretrain_steps)
        return base * 0.5 ** (into // max(1, self.lr_halve_every))


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


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is worth it here: CUDA with bf16, or a CPU with AMX / AVX-512 BF16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


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


def zero_heads(model: STVUN) -> None:
    """Zero the residual head and every flow output: output = bilinear upsampling, flow = 0 (frame blending)."""
    heads: list[nn.Module] = [model.decoder.rconv1, model.pwcnet.dc_conv7]
    heads += [m for name, m in model.pwcnet.named_children() if name.startswith("predict_flow")]
    for m in heads:
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)


def stage_parameters(model: STVUN, stage: int) -> list[nn.Parameter]:
    """Stage 1: encoder, EFST and decoder (the VSR part). Stage 2: every trainable parameter."""
    parts = (model.encoder, model.efst, model.decoder) if stage == 1 else (model,)
    return [p for part in parts for p in part.parameters() if p.requires_grad]


def training_step(
    model: STVUN, batch: Batch, stage: int, weights: LossWeights, autocast: torch.dtype | None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one batch (to be back-propagated) and its terms. Stage 1 uses L_S only."""
    frames = [f * 2 - 1 for f in batch.lr]
    device_type = frames[0].device.type
    with torch.autocast(device_type, dtype=autocast or torch.float32, enabled=autocast is not None):
        if stage == 1:
            feats = [model.encode(f) for f in frames]
            center, _ = model.upsample_center(frames[3], feats[3], model.fuse(feats))
            l_s = spatial_loss((center.float() + 1) / 2, batch.center)
            zero = l_s.new_zeros(())
            return l_s, {"loss": l_s, "l_s": l_s, "l_m": zero, "l_f": zero}
        out = model.run(frames, batch.times)
    l_s = spatial_loss((out.frames[0].float() + 1) / 2, batch.center)
    l_f = time_losses((out.frames[1:].float() + 1) / 2, batch.between)
    l_m = time_losses((out.lr_between.float() + 1) / 2, batch.lr_between)
    loss = total_loss(l_m, l_s, l_f, weights)
    return loss, {"loss": loss, "l_s": l_s, "l_m": l_m, "l_f": l_f}


def _save(path: Path, payload: dict) -> None:
    """Write a checkpoint atomically: a crash mid-write never leaves a truncated file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        torch.save(payload, tmp)


def _config_from(saved: dict) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in known}
    if values.get("crf") is not None:
        values["crf"] = tuple(values["crf"])
    return TrainConfig(**values)


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`train` (a file, or a run folder meaning its ``last.pt``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "last.pt"
    if not p.is_file():
        raise CheckpointError(f"{p}: no training checkpoint there")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise CheckpointError(f"{p}: not a readable training checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or not {"model", "step", "config"} <= set(ckpt):
        raise CheckpointError(f"{p}: not a stvup training checkpoint")
    ckpt["path"] = str(p)
    return ckpt


def train(
    config: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    clips: list[Clip] | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> TrainResult:
    """Run (or, with ``resume``, continue) a training run; returns where its results are.

    ``resume``: a checkpoint or a run folder; the run then continues with that checkpoint's saved config (the
    ``config`` argument only supplies the device, thread count and, if larger, new step counts). ``clips``:
    already decoded sources (tests), instead of reading ``config.data``.
    """
    say = on_message or (lambda _msg: None)
    start_step, ckpt = 0, None
    if resume is not None:
        ckpt = load_training_checkpoint(resume)
        saved = _config_from(ckpt["config"])
        saved.device, saved.threads, saved.out_dir = config.device, config.threads, config.out_dir
        saved.pretrain_steps = max(saved.pretrain_steps, config.pretrain_steps)
        saved.steps = max(saved.steps, config.steps)
        config = saved
        start_step = int(ckpt["step"])
        say(f"resuming {ckpt['path']} at step {start_step}")
    if config.batch_size < 1 or config.patch < 16 or config.patch2 < 16:
        raise UsageError("batch size must be positive and patches at least 16 LR pixels")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    autocast = _autocast_dtype(config.precision, device)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = build_model(config.model)
    if ckpt is not None:
        load_weights(model, ckpt["model"])
    elif config.init:
        load_weights(model, config.init)
    elif config.zero_init:
        zero_heads(model)
    model.to(device).train()

    if clips is None:

        def report(path: str, clip: Clip | None, error: str | None) -> None:
            say(
                f"skipped {error}"
                if clip is None
                else f"loaded {path}: {len(clip.frames)} frames, "
                f"{clip.frames.shape[2]}x{clip.frames.shape[1]}, {len(clip.shot_starts)} shot(s)"
            )

        clips = load_clips(config.data, config.max_frames, report)
    if not clips:
        raise UsageError("no training video found in " + ", ".join(map(str, config.data)))
    degradation = Degradation(config.kernel, config.noise, config.crf, config.degrade_probability)
    samplers = {
        patch: Sampler(
            clips,
            scale=model.scale,
            patch=patch,
            stride=config.stride,
            degradation=degradation,
            max_times=config.max_times,
            augment=config.augment,
            seed=config.seed,
        )
        for patch in {config.patch, config.patch2}
    }
    for path, why in samplers[config.patch2].skipped:
        say(f"not sampled: {path}: {why}")
    weights = LossWeights(config.lambda_m, config.lambda_s, config.lambda_f)

    stage = config.stage(start_step)
    optimizer = torch.optim.Adam(stage_parameters(model, stage), lr=config.learning_rate(start_step))
    if ckpt is not None and ckpt.get("optimizer") is not None and ckpt.get("stage") == stage:
        optimizer.load_state_dict(ckpt["optimizer"])
    elapsed = float(ckpt.get("elapsed", 0.0)) if ckpt is not None else 0.0
    log_path = out_dir / "log.jsonl"
    config_dict = dataclasses.asdict(config)

    def checkpoint(step: int) -> Path:
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "stage": stage,
            "config": config_dict,
            "model_name": config.model,
            "elapsed": elapsed,
        }
        path = out_dir / "checkpoints" / f"step_{step:07d}.pt"
        _save(path, payload)
        _save(out_dir / "last.pt", payload)
        return path

    sums: dict[str, float] = {}
    count, samples, tick = 0, 0, time.perf_counter()
    last_logged: dict[str, float] = {}
    step = start_step
    try:
        with log_path.open("a") as log:
            while step < config.total_steps:
                if config.stage(step) != stage:
                    # Stage 2 trains every part, PWC-Net included, with a fresh optimiser at its own rate.
                    stage = config.stage(step)
                    optimizer = torch.optim.Adam(stage_parameters(model, stage), lr=config.learning_rate(step))
                lr = config.learning_rate(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                patch = config.patch if stage == 1 else config.patch2
                batch = samplers[patch].batch(step, config.batch_size).to(device)
                loss, terms = training_step(model, batch, stage, weights, autocast)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {float(loss)} at step {step}; lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                count += 1
                samples += config.batch_size
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                if count >= config.log_every or step == config.total_steps:
                    now = time.perf_counter()
                    elapsed += now - tick
                    rate = samples / max(now - tick, 1e-9)
                    last_logged = {k: v / count for k, v in sums.items()}
                    record = {
                        "step": step,
                        "stage": stage,
                        **last_logged,
                        "lr": lr,
                        "samples_per_s": rate,
                        "elapsed_s": round(elapsed, 2),
                    }
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    if on_progress is not None:
                        on_progress(TrainProgress(step, config.total_steps, stage, last_logged, lr, rate))
                    sums, count, samples, tick = {}, 0, 0, now
                if step % config.checkpoint_every == 0 and step < config.total_steps:
                    checkpoint(step)
    except KeyboardInterrupt:
        if step > start_step:
            say(f"interrupted: saved {checkpoint(step)}; continue with --resume {out_dir}")
        raise
    last = checkpoint(step)
    meta = {"stvup_model": config.model, "steps": str(step), "train_config": json.dumps(config_dict)}
    weights_path = out_dir / "model.safetensors"
    save_safetensors(model.state_dict(), weights_path, meta)
    windows = samplers[config.patch2].windows
    return TrainResult(out_dir, weights_path, last, step, elapsed, len(clips), windows, last_logged)
