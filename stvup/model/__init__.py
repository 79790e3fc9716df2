"""STVUN in plain PyTorch: one module per part, a table of named variants, and :func:`build_model`.

Also the second paper's two-stream network (:mod:`.twostream`), named ``two-stream:<spatial>+<temporal>``.
"""

from __future__ import annotations

import torch

from .configs import MODEL_CONFIGS, STVUNConfig, get_config
from .stvun import STVUN, STVUNOutput
from .twostream import PREFIX, SPATIAL_MODULES, TEMPORAL_MODULES, TwoStream, parse_two_stream_name, two_stream_name

__all__ = [
    "MODEL_CONFIGS",
    "STVUN",
    "STVUNConfig",
    "STVUNOutput",
    "TwoStream",
    "build_model",
    "get_config",
    "list_models",
]


def list_models(tiny: bool = False) -> list[str]:
    """Names accepted by :func:`build_model` (two-stream pairs of test-sized modules only with ``tiny``)."""
    pairs = [two_stream_name(s, t) for s in SPATIAL_MODULES for t in TEMPORAL_MODULES
             if tiny or not (s.endswith("-tiny") or t.endswith("-tiny"))]  # fmt: skip
    return [*MODEL_CONFIGS, *pairs]


def build_model(
    name: str = "stvun",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **overrides: object,
) -> STVUN | TwoStream:
    """A randomly initialised STVUN variant by name (see :data:`MODEL_CONFIGS`), on ``device`` in ``dtype``.

    ``overrides`` replace config fields, e.g. ``build_model("stvun-tiny", scale=2)``. A two-stream name
    (``two-stream:espcn+dvf``) builds a :class:`TwoStream`. Load weights with :func:`stvup.model.weights.load_weights`.
    """
    if name == PREFIX:
        raise KeyError(f"name the modules: {PREFIX}:<spatial>+<temporal>, e.g. {two_stream_name('espcn', 'dvf')}")
    pair = parse_two_stream_name(name)
    if pair is not None:
        model = TwoStream(*pair, **overrides)
    else:
        model = STVUN(get_config(name, **overrides))
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model
