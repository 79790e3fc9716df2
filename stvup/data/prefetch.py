"""Drawing the next training steps' batches in background threads while the current step trains.

A batch is cut, augmented and degraded on the CPU (:class:`~stvup.data.sampler.Sampler`): 0.48 s for 32 samples of 64 LR
pixels on one core of this project's CPU (0.26 s on two; 57 % of it the blur), against about 0.25 s for a whole training
step of ``stvun-small`` at that size on an H200 (README, "Training on a GPU"), so on a GPU the step is likely to wait
for its data (not yet measured there). Every draw depends only on ``(seed, step)``, so drawing ahead changes no batch: a
run with prefetching trains on exactly the batches of one without (tested). Threads, not processes, because the work is
PyTorch and NumPy array operations that release the GIL, and the decoded footage is then shared rather than copied. On a
CPU it stays off: the cores that would draw are the ones that train.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import torch

__all__ = ["Prefetch", "prefetch_workers"]

T = TypeVar("T")


def prefetch_workers(device: torch.device) -> int:
    """Background threads worth drawing batches in on ``device``: two on a GPU, none on a CPU."""
    return 2 if device.type == "cuda" else 0


class Prefetch(Generic[T]):
    """``get(step)`` returns ``draw(step)``; with ``workers`` > 0 the draws of the next ``workers`` steps (below
    ``end``) are already under way in that many threads. A failed draw raises in ``get``, as a direct call would.
    Use it as a context manager: leaving it cancels the draws not yet started and waits for the running ones."""

    def __init__(self, draw: Callable[[int], T], workers: int = 0, end: int | None = None) -> None:
        self._draw, self._ahead, self._end = draw, max(0, workers), end
        self._pool = ThreadPoolExecutor(self._ahead, thread_name_prefix="stvup-batches") if self._ahead else None
        self._pending: dict[int, Future[T]] = {}

    def get(self, step: int) -> T:
        if self._pool is None:
            return self._draw(step)
        future = self._pending.pop(step, None) or self._pool.submit(self._draw, step)
        for ahead in range(step + 1, step + 1 + self._ahead):
            if (self._end is None or ahead < self._end) and ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._draw, ahead)
        return future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
