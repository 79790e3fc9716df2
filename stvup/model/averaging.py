"""Weight averaging: the mean of several checkpoints of one training run, as one set of weights.

Late in a run, successive checkpoints scatter around a minimum, and their mean can lie nearer its centre than any one
of them (the idea of stochastic weight averaging, and of timm's checkpoint averaging). How much that is worth depends
on how far they scatter, measured on Vid4 (Y): run K stopped at a learning rate of 1.5e-5, and the mean of its last
six checkpoints gained 0.03 dB on new frames over the last one (kept frames unchanged); run L stopped at 3.1e-6, and
its mean scored the same as its last checkpoint. Averaging only makes sense for checkpoints of the same run after its
last large change; which ones is the caller's choice."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch

from stvup.errors import CheckpointError

__all__ = ["average_state_dicts"]


def average_state_dicts(
    sources: Sequence[str | os.PathLike],
    load: Callable[[str | os.PathLike], Mapping[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """The element-wise mean of the state dicts that ``load`` returns for ``sources``, one loaded at a time.

    Every source must have the first one's keys, shapes and dtypes (else a :class:`CheckpointError` naming the file).
    Floating-point tensors are summed in float64 and returned in their stored dtype; any other tensor (a counter, an
    index) must be equal in every source, since a mean of it means nothing.
    """
    if not sources:
        raise ValueError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    first: dict[str, torch.Tensor] = {}
    for i, src in enumerate(sources):
        state = load(src)
        if i == 0:
            first = dict(state)
            total = {k: v.double() for k, v in first.items() if v.is_floating_point()}
            continue
        if set(state) != set(first):
            odd = sorted(set(state) ^ set(first))
            raise CheckpointError(f"{src}: keys differ from {sources[0]} ({', '.join(odd[:5])})")
        for k, v in state.items():
            ref = first[k]
            if v.shape != ref.shape or v.dtype != ref.dtype:
                raise CheckpointError(
                    f"{src}: {k} is {v.dtype} {tuple(v.shape)}, but {ref.dtype} {tuple(ref.shape)} in {sources[0]}"
                )
            if k in total:
                total[k] += v.double()
            elif not torch.equal(v, ref):
                raise CheckpointError(f"{src}: {k} is not floating point and differs from {sources[0]}; cannot average")
    n = len(sources)
    return {k: (total[k] / n).to(v.dtype) if k in total else v for k, v in first.items()}
