"""stvup: space-time video upsampling with STVUN (Kang et al., ECCV 2020).

Library first: everything the ``stvup`` command does is a call here. Importing the package does no work and touches
no device.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import batch, load_upscaler, upscale
from .errors import CheckpointError, InputError, OutputError, StvupError, UsageError
from .evaluation import EvalReport, evaluate, find_clips
from .model import build_model, list_models
from .training import TrainConfig, TrainResult, train
from .weights import convert_checkpoint, load_checkpoint, load_weights

__all__ = [
    "CheckpointError",
    "EvalReport",
    "InputError",
    "OutputError",
    "StvupError",
    "TrainConfig",
    "TrainResult",
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
    "train",
    "upscale",
]
