"""Drawing the next steps' batches ahead (stvup.data.prefetch): the same batches, in threads, cleanly stopped."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from stvup.data.prefetch import Prefetch, prefetch_workers
from stvup.model.weights import read_safetensors
from stvup.training.loop import train

from .test_train import _config, _texture_clip


def test_draws_ahead_in_threads_and_returns_each_step_s_own_draw():
    calls: list[tuple[int, str]] = []

    def draw(step: int) -> int:
        calls.append((step, threading.current_thread().name))
        return step * 10

    with Prefetch(draw, workers=2, end=5) as batches:
        assert [batches.get(step) for step in range(5)] == [0, 10, 20, 30, 40]
    assert sorted(step for step, _ in calls) == [0, 1, 2, 3, 4]  # each step drawn once, none at or past the end
    assert all(name.startswith("stvup-batches") for _, name in calls)
    direct: list[int] = []
    with Prefetch(lambda step: direct.append(step) or step, workers=0) as batches:
        assert batches.get(3) == 3 and direct == [3]  # no threads: drawn when asked, nothing ahead


def test_a_failed_draw_raises_when_its_step_is_asked_for_and_closing_cancels_the_rest():
    started: list[int] = []

    def draw(step: int) -> int:
        started.append(step)
        if step == 1:
            raise ValueError("clip unreadable")
        time.sleep(0.05)
        return step

    batches = Prefetch(draw, workers=1, end=100)
    assert batches.get(0) == 0  # step 1 is under way meanwhile, and fails there
    with pytest.raises(ValueError, match="clip unreadable"):
        batches.get(1)
    batches.close()
    assert max(started) <= 3  # the one thread drew at most a step or two ahead, and nothing after closing
    assert prefetch_workers(torch.device("cpu")) == 0 and prefetch_workers(torch.device("cuda")) == 2


def test_a_run_with_prefetching_trains_on_the_same_batches(tmp_path):
    clip = _texture_clip(n=40, h=160, w=160)
    results = []
    for workers in (0, 2):
        torch.manual_seed(0)
        # Stage 1 on 16-pixel patches, stage 2 on 32: what is drawn ahead follows the stage of its own step.
        results.append(train(_config(tmp_path / str(workers), patch2=32), clips=[clip], prefetch=workers))
    a, _ = read_safetensors(results[0].weights)
    b, _ = read_safetensors(results[1].weights)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert results[0].final_losses == results[1].final_losses
