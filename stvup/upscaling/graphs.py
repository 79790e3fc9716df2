"""``--compile cuda-graphs``: STVUN's window steps replayed as CUDA graphs, so a GPU is not bound by launches.

Measured on an H200 (docs/speed.md): the full ``stvun`` at 960×540 output in bf16 takes 24.4 ms a frame, where its
arithmetic needs about 2.2 ms; the GPU waits on the CPU launching about 1,238 small operations a frame. A CUDA
graph records a step's kernels once and launches them all with one call.

Each step the pipeline calls (encode one frame, fuse a window, decode the centre, estimate the flows, decode the new
frames) is captured separately, once per distinct input (tensor shapes, dtypes and strides, and the other arguments
such as the window's times), after two warm-up runs on a side stream (cuDNN's autotuning, the allocator). A call
copies its tensors into the graph's static inputs, replays the graph, and returns *copies* of the static outputs:
a replay overwrites its output memory, and the pipeline keeps each frame's encoder features for the next six
windows. All graphs share one memory pool; they run one after another, so their intermediates may share memory.
At most :data:`MAX_GRAPHS` inputs are captured per step (a fractional frame-rate factor gives windows different
times); others run eagerly.

The capture and replay go through a small backend (:class:`CudaGraphs`), so that the copying and caching logic is
tested on a CPU with :class:`RerunGraphs`, which replays by running the step again into the same output tensors.
Whether the graphs beat eager, and by how much, is measured by ``examples/gpu_session.sh`` whenever a session is
lent a GPU; until then ``auto`` does not choose them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

__all__ = ["MAX_GRAPHS", "STEPS", "CudaGraphs", "GraphedStep", "RerunGraphs", "graphed_twin"]

#: The STVUN methods the pipeline calls per window (:meth:`stvup.upscaling.pipeline.Upscaler._stvun`).
STEPS = ("encode", "fuse", "upsample_center", "estimate_flows", "upsample_between")
MAX_GRAPHS = 16  # captured inputs per step; each holds its static inputs and outputs


class CudaGraphs:
    """Captures with ``torch.cuda.CUDAGraph``; all captures share one memory pool."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pool = torch.cuda.graph_pool_handle()

    def capture(self, run: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
        """Warms ``run`` up twice on a side stream, then records it; returns (replay, its static outputs)."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                run()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            outputs = run()
        return graph.replay, outputs


class RerunGraphs:
    """A CPU stand-in for :class:`CudaGraphs` with a replay's memory behaviour: the outputs are the same tensors each
    time, overwritten by each replay. For tests and dry runs; no faster than eager."""

    def __init__(self) -> None:
        self.captures = 0

    def capture(self, run: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
        self.captures += 1
        outputs = run()
        flat = tree_flatten(outputs)[0]

        def replay() -> None:
            for old, new in zip(flat, tree_flatten(run())[0]):
                old.copy_(new)

        return replay, outputs


class GraphedStep:
    """One step (a callable of tensors, lists and tuples of tensors, and plain values) run through captured graphs,
    one per distinct input."""

    def __init__(self, step: Callable[..., Any], backend: CudaGraphs | RerunGraphs, limit: int = MAX_GRAPHS) -> None:
        self.step, self.backend, self.limit = step, backend, limit
        self.graphs: dict[tuple, tuple[list[torch.Tensor], Callable[[], None], list[torch.Tensor], Any]] = {}

    def __call__(self, *args: Any) -> Any:
        flat, spec = tree_flatten(args)
        key = (spec, tuple((tuple(x.shape), x.dtype, x.stride()) if isinstance(x, torch.Tensor) else x for x in flat))
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= self.limit:
                return self.step(*args)
            static = [x.clone(memory_format=torch.preserve_format) if isinstance(x, torch.Tensor) else x for x in flat]
            replay, outputs = self.backend.capture(lambda: self.step(*tree_unflatten(static, spec)))
            out_flat, out_spec = tree_flatten(outputs)
            entry = self.graphs[key] = ([x for x in static if isinstance(x, torch.Tensor)], replay, out_flat, out_spec)
        inputs, replay, out_flat, out_spec = entry
        for slot, x in zip(inputs, (x for x in flat if isinstance(x, torch.Tensor))):
            slot.copy_(x)
        replay()
        # Copies: the next replay overwrites the static outputs, and encoder features live for seven windows.
        return tree_unflatten([x.clone() if isinstance(x, torch.Tensor) else x for x in out_flat], out_spec)


def graphed_twin(model: nn.Module, backend: CudaGraphs | RerunGraphs) -> nn.Module:
    """A shallow copy of an STVUN whose window steps (:data:`STEPS`) replay captured graphs; same weights."""
    twin = copy.copy(model)
    # A classical flow runs on the CPU between the steps (stvup.model.flow): a graph cannot capture it.
    steps = [s for s in STEPS if s != "estimate_flows" or getattr(model, "pwcnet", None) is not None]
    for name in steps:
        object.__setattr__(twin, name, GraphedStep(getattr(model, name), backend))
    return twin
