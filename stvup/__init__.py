"""stvup: space-time video upsampling with STVUN (Kang et al., ECCV 2020).

Library first: everything the ``stvup`` command does is a call here. Importing the package does no work and touches
no device.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

# Public names and the module that defines each. They are imported on first use (PEP 562), so ``import stvup``
# stays cheap and works where optional pieces are missing: the GPU training kit runs ``stvup.kit`` on machines
# that have PyTorch but no PyAV, and training never touches video decoding there.
_EXPORTS = {
    "batch": "batching.folder",
    "load_upscaler": "upscaling.loader",
    "upscale": "upscaling.job",
    "UpscaleOptions": "upscaling.options",
    "Progress": "upscaling.job",
    "CheckpointError": "errors",
    "InputError": "errors",
    "OutputError": "errors",
    "StvupError": "errors",
    "UsageError": "errors",
    "EvalReport": "evaluation.protocol",
    "evaluate": "evaluation.protocol",
    "find_clips": "evaluation.protocol",
    "build_model": "model",
    "list_models": "model",
    "TrainConfig": "training.loop",
    "TrainResult": "training.loop",
    "train": "training.loop",
    "preview": "upscaling.comparison",
    "convert_checkpoint": "model.weights",
    "load_checkpoint": "model.weights",
    "load_weights": "model.weights",
}

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .batching.folder import batch
    from .errors import CheckpointError, InputError, OutputError, StvupError, UsageError
    from .evaluation.protocol import EvalReport, evaluate, find_clips
    from .model import build_model, list_models
    from .model.weights import convert_checkpoint, load_checkpoint, load_weights
    from .training.loop import TrainConfig, TrainResult, train
    from .upscaling.comparison import preview
    from .upscaling.job import Progress, upscale
    from .upscaling.loader import load_upscaler
    from .upscaling.options import UpscaleOptions


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stvup' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "CheckpointError",
    "EvalReport",
    "InputError",
    "OutputError",
    "Progress",
    "StvupError",
    "TrainConfig",
    "TrainResult",
    "UpscaleOptions",
    "UsageError",
    "__version__",
    "batch",
    "build_model",
    "convert_checkpoint",
    "evaluate",
    "find_clips",
    "list_models",
    "load_checkpoint",
    "load_upscaler",
    "load_weights",
    "preview",
    "train",
    "upscale",
]
