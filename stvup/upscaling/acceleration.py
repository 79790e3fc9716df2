"""How a loaded network is made fast on its device: memory layout, cuDNN autotuning and ``torch.compile``.

These change speed, not the pictures (beyond float rounding), so they are settings of the
:class:`~stvup.upscaling.pipeline.Upscaler` rather than of the model:

* **Memory format.** ``auto`` is channels-last on a CPU, where it is what lets oneDNN run the convolutions in bf16
  kernels (measured: about 2× faster decoder than channels-first), and channels-first on CUDA, where
  ``examples/speed_variants.py`` found no steady gain from channels-last (H200, ``stvun`` at 960×540: faster in
  bf16, slower in fp16 and fp32, docs/speed.md).
* **cuDNN autotuning** is switched on for CUDA: stvup runs the same few shapes (one tile size, batch 1 and the
  window's new frames) thousands of times, so trying the algorithms once per shape pays at once.
* **Compiling** (``compile``): each part of the network (encoder, fusion, decoder, PWC-Net; a two-stream
  network's two modules) goes through ``torch.compile``, in a twin of the model that shares its weights, so the
  eager model stays at hand for jobs that would not repay a compile. ``max-autotune`` also tries Triton kernels for
  the convolutions (on a GPU), without CUDA graphs: a graph replay reuses its output memory, and stvup keeps each
  frame's encoder features for the next six windows.

``auto`` (the default) compiles on a CPU when the job is long enough to repay it, decided per job by
:func:`compile_pays` from measurements on a 2-core Xeon with AMX (``stvun-small``, 960×540 output, ×2, bf16,
``stvup bench``):

* compiled frames take about 0.78 of eager's time (0.266 against 0.340 s);
* the first compile of a frame size costs about 95 s; once PyTorch's compile cache holds it, about 6 s. stvup keeps
  that cache in its own folder (:func:`cache_dir`, not ``/tmp``, which a reboot empties) and remembers which
  shapes it compiled there (:func:`compiled_before`), so a machine pays the long compile once per frame size;
* eager frames while compiling do not pay on two cores: compiling in a second thread beside eager frames took 156 s
  instead of 113 and slowed the eager frames 3.8× (measured before the warp kept its layout, with eager at
  0.465 s), so by the time the compile-first run had made 159 frames the threaded one had made 89. The compile
  therefore runs first, and the CLI says so while it does.

With a margin on the compile (:data:`FIRST_COMPILE_S`, :data:`CACHED_COMPILE_S`), a first compile pays after about
550 s of eager work (1,600 frames of 960×540), a cached one after about 45 s. On CUDA, ``auto`` does not compile:
``torch.compile`` of the full network did not finish within 95 s on an H200, and the gain there was never
measured; ``cuda-graphs`` is the GPU's option (:mod:`stvup.upscaling.graphs`). Without a C compiler a CPU cannot
compile: ``auto`` runs eager and says why in one line, an explicit mode is refused.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from stvup.errors import UsageError

__all__ = [
    "COMPILE_MODES",
    "MEMORY_FORMATS",
    "accelerate",
    "cache_dir",
    "compile_pays",
    "compiled_before",
    "compiled_twin",
    "compile_summary",
    "inductor_dir",
    "missing_compiler",
    "remember_compiled",
    "use_persistent_cache",
]

#: ``compile`` settings: ``auto`` (when it pays, :func:`compile_pays`), off, a ``torch.compile`` mode, or CUDA graphs
#: of the window's steps (:mod:`stvup.upscaling.graphs`).
COMPILE_MODES = ("auto", "off", "default", "max-autotune", "cuda-graphs")
#: ``memory_format`` settings and the layout each one means.
MEMORY_FORMATS = {"channels-last": torch.channels_last, "contiguous": torch.contiguous_format}

COMPILED_SHARE = 0.78  # compiled / eager time per frame on a CPU (measured, see above)
FIRST_COMPILE_S = 120.0  # a first compile (measured 95-98 s), with a margin for slower CPUs
CACHED_COMPILE_S = 10.0  # a compile from the warm cache (measured 6.3 s)
_LEDGER = "compiled.json"


def accelerate(model: nn.Module, device: torch.device, memory_format: str = "auto", compile: str = "auto") -> str:
    """Prepares ``model`` (already on ``device``) in place: layout and cuDNN autotuning; checks ``compile``.
    Returns the memory format chosen (a key of :data:`MEMORY_FORMATS`) for the inputs to follow."""
    if memory_format == "auto":
        memory_format = "channels-last" if device.type == "cpu" else "contiguous"
    if memory_format not in MEMORY_FORMATS:
        raise UsageError(f"unknown memory format {memory_format!r}; use auto, {' or '.join(MEMORY_FORMATS)}")
    if compile not in COMPILE_MODES:
        raise UsageError(f"unknown compile mode {compile!r}; use {', '.join(COMPILE_MODES)}")
    if compile == "cuda-graphs" and device.type != "cuda":
        raise UsageError("--compile cuda-graphs needs a CUDA device")
    why = missing_compiler() if compile in ("default", "max-autotune") and device.type == "cpu" else None
    if why:
        raise UsageError(f"--compile on a CPU needs a C compiler: {why}")
    model.to(memory_format=MEMORY_FORMATS[memory_format])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return memory_format


def missing_compiler() -> str | None:
    """Why inductor cannot build CPU kernels here (no C compiler on the PATH), or None."""
    if any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "c++", "g++")):
        return None
    return "no C compiler (gcc or clang) on the PATH"


def compiled_twin(model: nn.Module, compile: str) -> nn.Module:
    """A shallow copy of ``model`` whose parts are ``torch.compile`` wrappers around the same modules (same
    weights, same methods): the network compiled, with the eager one left as it was. Compiles go to stvup's
    persistent cache (:func:`use_persistent_cache`)."""
    use_persistent_cache()
    mode = "max-autotune-no-cudagraphs" if compile == "max-autotune" else "default"
    twin = copy.copy(model)
    twin._modules = {name: torch.compile(part, mode=mode, dynamic=False) for name, part in model._modules.items()}
    return twin


def compile_pays(eager_seconds: float, cached: bool) -> bool:
    """Whether compiling saves time on a job that eager would run in ``eager_seconds`` of model time: the frames'
    saving (1 − :data:`COMPILED_SHARE` of it) against the compile (first or from the cache)."""
    return eager_seconds * (1 - COMPILED_SHARE) > (CACHED_COMPILE_S if cached else FIRST_COMPILE_S)


def cache_dir() -> Path:
    """stvup's compile cache: ``$STVUP_CACHE_DIR``, else ``$XDG_CACHE_HOME/stvup`` (``~/.cache/stvup``)."""
    if os.environ.get("STVUP_CACHE_DIR"):
        return Path(os.environ["STVUP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stvup"


def inductor_dir() -> Path:
    """The compile cache stvup uses: ``TORCHINDUCTOR_CACHE_DIR`` if the user set it, else ``cache_dir()/inductor``.

    Importing ``torch._dynamo`` sets that variable to PyTorch's ``/tmp`` default, so a value equal to that default
    counts as not chosen."""
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen and chosen != _torch_default_cache():
        return Path(chosen)
    return cache_dir() / "inductor"


def _torch_default_cache() -> str | None:
    try:  # a private helper of PyTorch's; without it, any value set counts as the user's
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return default_cache_dir()
    except Exception:  # noqa: BLE001 - moved or renamed in another PyTorch
        return None


def use_persistent_cache() -> Path:
    """Points inductor's cache at :func:`inductor_dir` (PyTorch's own default is under ``/tmp``); returns it."""
    folder = inductor_dir()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return folder


def compile_summary() -> dict[str, object]:
    """For ``stvup info``: the compile cache's folder, how many shapes it holds, and whether a C compiler is here."""
    try:
        shapes = len(json.loads(_ledger().read_text()))
    except (OSError, ValueError):
        shapes = 0
    return {"cache": str(inductor_dir()), "compiled_shapes": shapes, "c_compiler": missing_compiler() is None}


def _ledger() -> Path:
    return inductor_dir() / _LEDGER


def compiled_before(key: str) -> bool:
    """Whether this machine's compile cache already holds the network for ``key`` (:func:`remember_compiled`)."""
    try:
        return key in json.loads(_ledger().read_text())
    except (OSError, ValueError):
        return False


def remember_compiled(key: str) -> None:
    """Records that ``key`` (torch version, network, precision, layout, shape) compiled into the cache. Best effort:
    a read-only cache only means the next job pays the long compile again."""
    path = _ledger()
    try:
        known = json.loads(path.read_text()) if path.exists() else []
        if key not in known:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(sorted(known + [key]), indent=0))
            os.replace(tmp, path)
    except (OSError, ValueError):
        pass
