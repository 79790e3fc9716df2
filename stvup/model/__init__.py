"""STVUN in plain PyTorch: one module per part, a table of named variants, and :func:`build_model`."""

from __future__ import annotations

import torch

from .configs import MODEL_CONFIGS, STVUNConfig, get_config
from .stvun import STVUN, STVUNOutput

__all__ = ["MODEL_CONFIGS", "STVUN", "STVUNConfig", "STVUNOutput", "build_model", "get_config", "list_models"]


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return list(MODEL_CONFIGS)


def build_model(
    name: str = "stvun",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **overrides: object,
) -> STVUN:
    """A randomly initialised STVUN variant by name (see :data:`MODEL_CONFIGS`), on ``device`` in ``dtype``.

    ``overrides`` replace config fields, e.g. ``build_model("stvun-tiny", scale=2)``. Load weights with
    :func:`stvup.weights.load_weights`.
    """
    model = STVUN(get_config(name, **overrides))
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model
