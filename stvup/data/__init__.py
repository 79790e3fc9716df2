"""Training data: degradations, decoded sources and the sample sampler (paper section 3.3)."""

from stvup.data.degrade import Degradation, bicubic_downsample, compress_clip, duf_downsample, gaussian_kernel, quantize
from stvup.data.sampler import Batch, Sampler, auto_stride
from stvup.data.sources import Clip, find_sources, load_clip, load_clips

__all__ = [
    "Batch",
    "Clip",
    "Degradation",
    "Sampler",
    "auto_stride",
    "bicubic_downsample",
    "compress_clip",
    "duf_downsample",
    "find_sources",
    "gaussian_kernel",
    "load_clip",
    "load_clips",
    "quantize",
]
