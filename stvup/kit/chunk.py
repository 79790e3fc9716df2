"""One training chunk on the GPU machine: train for a fixed time, then hand the weights back in shards.

The device tool runs one command of at most 10 minutes and keeps the machine (and so the run folder) only while
calls follow each other closely. Each chunk therefore resumes the run folder if it is still there (exactly, with
the optimiser state), otherwise starts from ``init`` weights carried in (the shards of the previous chunk, joined),
and always ends with the current weights written to the output folder, so that losing the machine loses at most
one chunk's optimiser state, never the weights.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from stvup.errors import UsageError
from stvup.kit.pack import TRAIN_SETTINGS, load_pack
from stvup.kit.shards import write_shards
from stvup.model.weights import load_checkpoint, save_safetensors, training_metadata
from stvup.training.loop import TrainProgress, train
from stvup.training.runs import TrainConfig, load_training_checkpoint, resume_config

__all__ = ["ChunkResult", "MAX_RETURN_BYTES", "run_chunk"]

#: Largest weights file that comes back whole: 64 MiB of returned files, less room for the manifest and the log.
MAX_RETURN_BYTES = 60 * 1024 * 1024


@dataclass
class ChunkResult:
    """Where the run stands after a chunk: ``step`` of ``total``, and the shard manifest in the output folder."""

    step: int
    total: int
    finished: bool
    resumed: bool
    seconds: float
    losses: dict[str, float]
    manifest: Path
    weights_dtype: str


def _settings(kit: Path) -> dict:
    path = kit / TRAIN_SETTINGS
    if not path.is_file():
        raise UsageError(f"{path}: no training settings (build the kit with `stvup kit pack`)")
    try:
        settings = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from None
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UsageError(f"{path}: unknown training settings {', '.join(unknown)}")
    return settings


def run_chunk(
    kit_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    minutes: float,
    device: str = "auto",
    decoder: str = "auto",
    init: str | os.PathLike | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> ChunkResult:
    """Trains ``minutes`` more of the kit's run in ``run_dir``; writes the weights' shards to ``out_dir``.

    ``init``: weights to start from when ``run_dir`` holds no run yet (the previous chunk's, after a lost machine);
    otherwise the settings' own ``init`` (if any) or random weights. Weights come back in fp32 when they fit the
    tool's return limit, else in fp16 (the full ``stvun``: 62 MB instead of 124).
    """
    if minutes <= 0:
        raise UsageError(f"--minutes must be positive, got {minutes}")
    kit, run = Path(kit_dir), Path(run_dir)
    settings = _settings(kit)
    resume = load_training_checkpoint(run) if (run / "last.pt").is_file() else None
    if resume is not None:  # the run's own settings, as saved (they include an ``init`` a first chunk was given)
        config = resume_config(resume, device=device)
    else:
        config = TrainConfig(**{**settings, "data": [], "out_dir": str(run), "device": device})
        if init is not None:
            config.init = str(init)
    clips = load_pack(kit, decoder)
    began = time.perf_counter()
    result = train(config, resume=resume, clips=clips, time_limit=minutes * 60, on_progress=on_progress,
                   on_message=on_message)  # fmt: skip
    weights, dtype = result.weights, "fp32"
    if weights.stat().st_size > MAX_RETURN_BYTES:
        state = load_checkpoint(weights)
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        weights, dtype = weights.with_name("model-fp16.safetensors"), "fp16"
        meta = {"stvup_model": config.model_name, "steps": str(result.steps), **training_metadata(result.weights)}
        save_safetensors(half, weights, meta)
    info = {"step": result.steps, "total": config.total_steps, "finished": result.finished,
            "model": config.model_name, "dtype": dtype, "losses": result.final_losses, "ema_decay": config.ema_decay,
            "device": str(torch.device(config.device)) if config.device != "auto" else "auto"}  # fmt: skip
    manifest = write_shards(weights, out_dir, info=info)
    log = run / "log.jsonl"
    if log.is_file():  # the last lines of the training log travel back with the weights
        (Path(out_dir) / "log.jsonl").write_text("".join(log.read_text().splitlines(keepends=True)[-200:]))
    return ChunkResult(result.steps, config.total_steps, result.finished, resume is not None,
                       time.perf_counter() - began, result.final_losses, manifest, dtype)  # fmt: skip
