"""Training runs: the settings that define one (:class:`TrainConfig`), its checkpoints, and what may change when it
continues.

A run is resumed from its saved settings, never from whatever defaults the caller happens to have: only
:data:`RESUMABLE` settings can change (where the footage is, where the run is written, the machine, the step counts
of stages not yet begun or the current one), so continuing a run cannot quietly move it back to an earlier stage or
onto another recipe.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stvup.data.degrade import Degradation
from stvup.errors import CheckpointError, UsageError
from stvup.model.flow import check_flow_name
from stvup.model.twostream import two_stream_name
from stvup.model.weights import atomic_target

__all__ = ["METHODS", "RESUMABLE", "TrainConfig", "continued", "load_training_checkpoint", "resume_config",
           "run_folder", "save_checkpoint", "trim_log"]  # fmt: skip

METHODS = ("stvun", "two-stream")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    Patch sizes are in LR pixels (the paper's 128 / 256 HR patches are 32 / 64 at ×4). ``init``: weights to start
    from instead of random ones. ``zero_init``: a random start gets a zero residual head and zero flow outputs, so
    the untrained network already gives bilinear upsampling and frame blending and training starts from there.
    ``stride``: source frames between LR inputs (``stride − 1`` time targets), a tuple of them (each batch draws one),
    or None for one per clip by frame rate; ``max_times`` caps the time targets of a batch. ``kernel``, ``noise``,
    ``crf``, ``degrade_probability``, ``blur``, ``mpeg2`` and ``chroma`` describe the LR inputs
    (:class:`~stvup.data.degrade.Degradation`; :data:`~stvup.data.degrade.REAL_VIDEO` is the real-video mix).

    ``flow_steps`` (stage 0, before stage 1): PWC-Net alone learns motion from LR pairs without labels
    (:mod:`stvup.training.flowtrain`), at ``flow_lr`` on ``flow_patch``-pixel LR patches, with smoothness weight
    ``flow_smooth``. The paper starts from a pre-trained PWC-Net instead; 0 skips the stage. ``flow_reset``: start
    PWC-Net afresh (random weights, zero flow output) even when ``init`` gave it weights. ``freeze_flow``: stage 2
    leaves PWC-Net as ``init`` or stage 0 left it and trains the rest (STVUN only). ``flow``: the network's flow
    (:mod:`stvup.model.flow`): ``pwc``, its own PWC-Net, or a classical estimator (e.g. ``dis-medium-x2``) that has no
    weights, so the rest learns to use a flow that already knows motion; an ``init`` with a PWC-Net then gives
    everything but it. ``ema_decay``: keep an
    exponential moving average of the weights with this decay per step (:mod:`stvup.training.ema`) and write it as the
    run's weights; None keeps the last step's.

    Two-stream runs (``method="two-stream"``): ``spatial`` / ``temporal`` name the modules; ``pretrain_steps`` train
    them separately, ``steps`` train the two streams on L_R + ``lambda_c``·L_C. ``labeled_fraction`` keeps HR
    ground truth for only that share of the footage; ``unlabeled`` adds folders of LR video; each step then adds
    ``unlabeled_batch`` unlabeled pairs (default: ``batch_size``) to L_C. ``lambda_c`` defaults to 4 for two-stream
    runs and 0 (off) for STVUN.

    ``photos``: still photographs (files or folders), cut into moving windows along random camera paths
    (:mod:`stvup.data.camera`) for a ``photo_share`` of the samples. ``prescale``: photographs and footage of 720p
    and more are reduced by a random factor up to this one before a patch is cut (1: never), so the HR targets have
    the detail of real footage and not only a 3K photo's.
    """

    data: list[str]
    photos: list[str] = field(default_factory=list)
    photo_share: float = 0.0
    prescale: float = 1.0
    method: str = "stvun"
    spatial: str = "espcn"
    temporal: str = "dvf"
    lambda_c: float | None = None
    labeled_fraction: float = 1.0
    unlabeled: list[str] = field(default_factory=list)
    unlabeled_batch: int | None = None
    out_dir: str = "runs/stvun-small"
    model: str = "stvun-small"
    init: str | None = None
    zero_init: bool = True
    flow_steps: int = 0
    flow_lr: float = 1e-4
    flow_patch: int = 64
    flow_smooth: float = 0.5
    flow_reset: bool = False
    freeze_flow: bool = False
    flow: str = "pwc"
    ema_decay: float | None = None
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
    stride: int | tuple[int, ...] | None = 2
    max_times: int = 3
    kernel: str = "duf"
    noise: float = 0.0
    crf: tuple[int, int] | None = None
    degrade_probability: float = 1.0
    blur: float = 0.0
    mpeg2: float = 0.0
    chroma: bool = False
    augment: bool = True
    max_frames: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    checkpoint_every: int = 1000
    log_every: int = 10
    threads: int | None = None

    def __post_init__(self) -> None:
        # Settings read from JSON (the GPU kit's train.json) give lists where the fields hold tuples.
        if isinstance(self.crf, list):
            self.crf = tuple(self.crf)
        if isinstance(self.stride, list):
            self.stride = tuple(self.stride)
        if self.method not in METHODS:
            raise UsageError(f"unknown method {self.method!r}; use {' or '.join(METHODS)}")
        if self.lambda_c is None:
            self.lambda_c = 4.0 if self.method == "two-stream" else 0.0
        if self.lambda_c < 0:
            raise UsageError("the consistency weight (--lambda) must not be negative")
        if not 0 < self.labeled_fraction <= 1:
            raise UsageError(f"--labeled-fraction must be in (0, 1], got {self.labeled_fraction}")
        if self.method == "two-stream" and self.flow_steps:
            raise UsageError("flow pre-training (--flow-steps) is for STVUN's PWC-Net; the two-stream network has none")
        if self.method == "two-stream" and self.freeze_flow:
            raise UsageError("--freeze-flow is for STVUN's PWC-Net; the two-stream network has none")
        try:
            check_flow_name(self.flow)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if self.flow != "pwc" and self.method == "two-stream":
            raise UsageError("--flow is STVUN's; the two-stream network estimates its own")
        if self.flow != "pwc" and (self.flow_steps or self.flow_reset):
            raise UsageError(f"the flow {self.flow} has no weights: flow pre-training (--flow-steps, --flow-reset) "
                             "is for PWC-Net")  # fmt: skip
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise UsageError(f"the EMA decay (--ema) must lie between 0 and 1, got {self.ema_decay}")
        if not 0 <= self.photo_share < 1:
            raise UsageError(f"--photo-share must lie within 0..1 (1 would leave the footage unused), got "
                             f"{self.photo_share}")  # fmt: skip
        if self.photo_share and not self.photos:
            raise UsageError("--photo-share needs photographs (--photos)")
        if self.prescale < 1:
            raise UsageError(f"--prescale is a reduction factor of at least 1, got {self.prescale}")
        if self.method == "stvun" and (self.unlabeled or self.labeled_fraction < 1):
            raise UsageError("unlabeled data needs --method two-stream (STVUN has no label-free loss on it)")

    @property
    def degradation(self) -> Degradation:
        """The LR inputs' degradation these settings describe (validated when the run starts)."""
        try:
            return Degradation(self.kernel, self.noise, self.crf, self.degrade_probability, self.blur, self.mpeg2,
                               self.chroma)  # fmt: skip
        except ValueError as exc:
            raise UsageError(f"degradation: {exc}") from None

    @property
    def model_name(self) -> str:
        return two_stream_name(self.spatial, self.temporal) if self.method == "two-stream" else self.model

    @property
    def total_steps(self) -> int:
        return self.flow_steps + self.pretrain_steps + self.steps

    def stage_start(self, stage: int) -> int:
        """The first step of ``stage`` (0: flow pre-training, 1: L_S, 2: the whole network)."""
        return (0, self.flow_steps, self.flow_steps + self.pretrain_steps)[stage]

    def stage(self, step: int) -> int:
        return 0 if step < self.flow_steps else 1 if step < self.stage_start(2) else 2

    def learning_rate(self, step: int) -> float:
        """Stage's initial rate halved every ``lr_halve_every`` steps of the stage."""
        stage = self.stage(step)
        base = (self.flow_lr, self.lr, self.lr2)[stage]
        return base * 0.5 ** ((step - self.stage_start(stage)) // max(1, self.lr_halve_every))


#: Settings that a resumed run may change; every other one is the run's own.
RESUMABLE = (
    "data",
    "photos",
    "out_dir",
    "device",
    "threads",
    "precision",
    "flow_steps",
    "pretrain_steps",
    "steps",
    "checkpoint_every",
    "log_every",
)


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write a checkpoint atomically: a crash mid-write never leaves a truncated file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        torch.save(payload, tmp)


def trim_log(path: Path, step: int) -> None:
    """Drop a run log's records past ``step``, the step a resumed run continues from.

    Those records describe training that no checkpoint kept (an interrupted run logs steps after its last save, and a
    run may be resumed from an earlier checkpoint), so kept they would give those steps twice, with other numbers. A
    line cut short by a crash goes too.
    """
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)

    def logged(line: str) -> int | None:
        try:
            return int(json.loads(line)["step"]) if line.endswith("\n") else None
        except (ValueError, KeyError, TypeError):
            return None

    kept = [line for line in lines if (n := logged(line)) is not None and n <= step]
    if len(kept) != len(lines):
        with atomic_target(path) as tmp:
            tmp.write_text("".join(kept))


def config_from(saved: dict) -> TrainConfig:
    """The :class:`TrainConfig` saved in a checkpoint (settings unknown to this version are ignored)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in known}
    for key in ("crf", "stride"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return TrainConfig(**values)


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`stvup.training.loop.train` (a file, or a run folder meaning its ``last.pt``)."""
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


def run_folder(checkpoint_path: str | os.PathLike) -> Path:
    """The run folder a checkpoint belongs to: ``RUN/last.pt`` and ``RUN/checkpoints/step_N.pt`` both give RUN."""
    p = Path(checkpoint_path)
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def resume_config(checkpoint: dict, **changes) -> TrainConfig:
    """The settings a run continues with: its saved ones, written to its own folder, with ``changes`` applied.

    ``changes`` may name only :data:`RESUMABLE` settings (``None`` values are ignored). Stage lengths may change
    only where the run has not yet reached the stage's end: moving a boundary the run has passed, or moving one to
    or before the current step, would resume at another stage or another point of the learning-rate schedule.
    """
    where = checkpoint["path"]
    changes = {k: v for k, v in changes.items() if v is not None}
    fixed = sorted(set(changes) - set(RESUMABLE))
    if fixed:
        raise UsageError(
            f"{where}: a resumed run keeps its own settings; {', '.join(fixed)} cannot change (only where the footage "
            "and run are, the device, threads, precision, stage lengths and logging)"
        )
    saved = config_from(checkpoint["config"])
    saved.out_dir = str(run_folder(where))
    config = dataclasses.replace(saved, **changes)
    step = int(checkpoint["step"])
    for stage in (1, 2):
        old, new = saved.stage_start(stage), config.stage_start(stage)
        if old != new and min(old, new) <= step:
            raise UsageError(
                f"{where}: the run is at step {step}, in stage {saved.stage(step)}; that stage-length change would "
                f"move the start of stage {stage} from step {old} to {new}; only stages not yet finished can change"
            )
    return config


def continued(checkpoint: dict, config: TrainConfig | None) -> TrainConfig:
    """What :func:`stvup.training.loop.train` continues a checkpoint with, given the caller's ``config`` (or none).

    ``config`` must agree with the saved settings except in :data:`RESUMABLE` ones, so that a caller's defaults
    cannot silently turn a resumed run into another one.
    """
    if config is None:
        return resume_config(checkpoint)
    saved = config_from(checkpoint["config"])
    changes = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(config, f.name) != getattr(saved, f.name)
    }
    return resume_config(checkpoint, **changes)
