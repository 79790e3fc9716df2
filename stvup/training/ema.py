"""An exponential moving average (EMA) of the weights while a run trains: the weights it then writes.

Each optimiser step moves the average a fraction ``1 − decay`` of the way towards the new weights, so it follows
the run over about ``1 / (1 − decay)`` steps and smooths the step-to-step noise of small batches; it is the running
counterpart of :mod:`stvup.model.averaging` (the mean of saved checkpoints) and the convention of the field's
restoration trainers (BasicSR's ``params_ema``). The average is PyTorch's own
:class:`torch.optim.swa_utils.AveragedModel`.

A checkpoint keeps both sets: ``model`` (the weights the optimiser continues from) and ``params_ema`` (the average),
with ``ema_updates``. :func:`stvup.model.weights.load_checkpoint` prefers ``params_ema`` in a training checkpoint, so
``stvup convert``, ``--weights`` and ``--init`` given such a file take the average, as ``model.safetensors`` does.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from stvup.errors import CheckpointError
from stvup.model.weights import check_state_dict

__all__ = ["WeightEMA"]


class WeightEMA:
    """The moving average of ``model``'s parameters and buffers, on the model's device, in fp32 like the model.

    ``update`` after every optimiser step; ``state_dict`` is the averaged model's (the model's own keys). Frozen
    parameters stay equal to the model's, since the average of a constant is that constant.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie between 0 and 1, got {decay}")
        self.decay = decay
        self._avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self._avg.requires_grad_(False)

    @property
    def updates(self) -> int:
        """Optimiser steps averaged so far (the first one copies the weights)."""
        return int(self._avg.n_averaged)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self._avg.update_parameters(model)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights under the model's own keys (no ``module.`` prefix, no counter)."""
        return self._avg.module.state_dict()

    def checkpoint_entries(self) -> dict:
        """What a training checkpoint stores of the average: BasicSR's key, which checkpoint loading prefers."""
        return {"params_ema": self.state_dict(), "ema_updates": self.updates}

    def restore(self, checkpoint: Mapping) -> None:
        """Continue the average a training checkpoint saved (:meth:`checkpoint_entries`), strictly."""
        where = checkpoint.get("path", "checkpoint")
        state, updates = checkpoint.get("params_ema"), checkpoint.get("ema_updates")
        if not isinstance(state, Mapping) or not isinstance(updates, int) or updates < 0:
            raise CheckpointError(f"{where}: the run keeps an EMA of its weights, but this checkpoint has none")
        check_state_dict(self._avg.module, state, f"{where} (params_ema)")
        self._avg.module.load_state_dict(state, strict=True)
        self._avg.n_averaged.fill_(updates)
