"""The library calls behind ``stvup upscale`` and ``stvup batch``, in one place.

``upscale()`` reads a video (or a folder of numbered frames), upsamples it in space and time with STVUN, and writes
the result with the input's audio, subtitles, colour metadata and rotation (:mod:`stvup.upscaling.job`); ``batch()``
does that for every video and frame folder in a folder (:mod:`stvup.batching.folder`); ``load_upscaler()`` loads a
network once for many calls (:mod:`stvup.upscaling.loader`). Progress is reported through callbacks; nothing here
prints.
"""

from __future__ import annotations

from .batching.folder import batch
from .batching.inputs import BatchResult, find_inputs
from .upscaling.job import Progress, UpscaleResult, default_output_path, upscale
from .upscaling.loader import load_upscaler

__all__ = ["BatchResult", "Progress", "UpscaleResult", "batch", "default_output_path", "find_inputs", "load_upscaler",
           "upscale"]  # fmt: skip
