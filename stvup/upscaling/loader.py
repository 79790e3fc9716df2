"""From a weights file to a ready :class:`~stvup.upscaling.pipeline.Upscaler`: the one place that decides which network
a file holds, builds it, loads it strictly and wraps it, for ``upscale``, ``batch``, ``bench``, ``eval`` and the Ray
workers alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from stvup.errors import UsageError
from stvup.model import build_model
from stvup.model.twostream import PREFIX, parse_two_stream_name
from stvup.model.weights import (
    WEIGHTS_DIR,
    checkpoint_model_name,
    default_weights_path,
    flow_override,
    load_checkpoint,
    load_weights,
    resolve_weights,
    weights_flow,
    weights_grid,
)

from .pipeline import Upscaler

__all__ = ["load_upscaler", "x2_sibling"]


def load_upscaler(
    weights: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    space: int | None = None,
    tile: int | str | None = "auto",
    stream: str = "ts",
    time_mode: str = "recursive",
    compile: str = "auto",
    memory_format: str = "auto",
    ensemble: int = 1,
    new_frames: str = "auto",
) -> Upscaler:
    """Builds the model for ``weights`` (default: the shipped weights; a shipped name such as ``"paper"`` or a
    path; for ``space=2`` their ×2 network if one sits beside them, :func:`x2_sibling`), loads them strictly and wraps
    them, on the pixel grid their metadata names (:func:`weights_grid`), with
    the flow it names (:func:`weights_flow`).

    ``model`` names the variant when it cannot be read from the file; ``"two-stream"`` asks for a two-stream
    checkpoint whose modules are read from the file. ``stream`` / ``time_mode``: how a two-stream network makes
    new frames (:class:`~stvup.upscaling.pipeline.Upscaler`); ``compile`` and ``memory_format`` only change speed
    (:mod:`stvup.upscaling.acceleration`); ``ensemble`` (1, 2, 4, 8) averages that many mirrored runs
    (:mod:`stvup.upscaling.ensemble`). ``new_frames``: how new frames are made (:mod:`stvup.upscaling.warped`;
    ``auto``: warped for weights with a classical flow). There is no random-weight fallback: with no weights and no
    shipped default, this raises a :class:`~stvup.errors.UsageError` that says what to pass.
    """
    if weights is None:
        weights = default_weights_path()
        if weights is None:
            raise UsageError(
                "no weights: this installation ships no default weights; pass --weights PATH "
                "(a .safetensors or .pth checkpoint, e.g. the authors' STVUN.pth)"
            )
    weights = resolve_weights(weights)
    if space == 2:
        weights = x2_sibling(weights) or weights
    state = load_checkpoint(weights)
    name = model if model not in (None, PREFIX) else checkpoint_model_name(weights, state)
    if model == PREFIX and parse_two_stream_name(name) is None:
        raise UsageError(f"{weights}: is a {name} checkpoint, not a two-stream one")
    try:
        net = build_model(name, **flow_override(weights_flow(weights)))
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    load_weights(net, state)
    upscaler = Upscaler(net, device=device, precision=precision, space=space, tile=tile, stream=stream,
                        time_mode=time_mode, compile=compile, memory_format=memory_format, ensemble=ensemble,
                        grid=weights_grid(weights), new_frames=new_frames)  # fmt: skip
    upscaler.weights_path = weights
    if upscaler.space < net.scale:
        upscaler.notes.append(f"--space {upscaler.space}: {weights.name} has no ×{upscaler.space} network, so it ran "
                              f"×{net.scale} and reduced the frames (about {(net.scale // upscaler.space) ** 2}x the "
                              "work)")  # fmt: skip
    return upscaler


def x2_sibling(weights: Path) -> Path | None:
    """The ×2 network that goes with ×4 ``weights``: ``NAME-x2.safetensors`` next to ``NAME.safetensors`` (the
    shipped ``default-x2.safetensors`` serves ``--space 2`` of the default weights), or None."""
    sibling = weights.with_name(f"{weights.stem}-x2.safetensors")
    return sibling if sibling.is_file() and sibling != weights else None


def protocol_weights(protocol: str) -> str | None:
    """The shipped weights an evaluation protocol scores by default: ``paper`` weights (trained on the paper's
    degradation and grid, so the paper's numbers stay reproducible) for ``paper`` when shipped, else the default."""
    if protocol == "paper" and (WEIGHTS_DIR / "paper.safetensors").is_file():
        return str(WEIGHTS_DIR / "paper.safetensors")
    return None
