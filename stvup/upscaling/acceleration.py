"""How a loaded network is made fast on its device: memory layout, cuDNN autotuning and ``torch.compile``.

These change speed, not the pictures (beyond float rounding), so they are settings of the
:class:`~stvup.upscaling.pipeline.Upscaler` rather than of the model:

* **Memory format.** ``auto`` is channels-last on a CPU, where it is what lets oneDNN run the convolutions in bf16
  kernels (measured: about 2× faster decoder than channels-first), and channels-first on CUDA, where
  ``examples/speed_variants.py`` found no steady gain from channels-last (H200, ``stvun`` at 960×540: faster in
  bf16, slower in fp16 and fp32, README "Speed").
* **cuDNN autotuning** is switched on for CUDA: stvup runs the same few shapes (one tile size, batch 1 and the
  window's new frames) thousands of times, so trying the algorithms once per shape pays at once.
* **Compiling** (``compile``): each part of the network (encoder, fusion, decoder, PWC-Net; a two-stream
  network's two modules) goes through ``torch.compile`` with the given mode. Measured on a 2-core Xeon in bf16:
  1.55× (``stvun-small``) and 1.38× (``stvun``) faster per frame, after 3–4 minutes of compiling before the first
  frame (seconds when PyTorch's cache holds the same shapes) and with a C++ compiler installed; so it is off by
  default and worth it for long videos of one size. Every new frame or tile size compiles again. ``max-autotune``
  also tries Triton kernels for the convolutions (on a GPU), without CUDA graphs: a graph replay reuses its output
  memory, and stvup keeps each frame's encoder features for the next six windows.
"""

from __future__ import annotations

import shutil

import torch
from torch import nn

from stvup.errors import UsageError

__all__ = ["COMPILE_MODES", "MEMORY_FORMATS", "accelerate"]

#: ``compile`` settings: off, or a ``torch.compile`` mode.
COMPILE_MODES = ("off", "default", "max-autotune")
#: ``memory_format`` settings and the layout each one means.
MEMORY_FORMATS = {"channels-last": torch.channels_last, "contiguous": torch.contiguous_format}


def accelerate(model: nn.Module, device: torch.device, memory_format: str = "auto", compile: str = "off") -> str:
    """Prepares ``model`` (already on ``device``) in place; returns the memory format chosen (a key of
    :data:`MEMORY_FORMATS`) for the inputs to follow."""
    if memory_format == "auto":
        memory_format = "channels-last" if device.type == "cpu" else "contiguous"
    if memory_format not in MEMORY_FORMATS:
        raise UsageError(f"unknown memory format {memory_format!r}; use auto, {' or '.join(MEMORY_FORMATS)}")
    if compile not in COMPILE_MODES:
        raise UsageError(f"unknown compile mode {compile!r}; use {', '.join(COMPILE_MODES)}")
    model.to(memory_format=MEMORY_FORMATS[memory_format])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if compile != "off":
        if device.type == "cpu" and not any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "c++", "g++")):
            raise UsageError("--compile on a CPU needs a C compiler (gcc or clang) on the PATH")
        mode = "max-autotune-no-cudagraphs" if compile == "max-autotune" else compile
        for part in model.children():
            part.compile(mode=mode, dynamic=False)
    return memory_format
