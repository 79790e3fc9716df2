"""The two-stream space-time SR network of the second paper (sections 3.1-3.2, Fig. 2, Eq. 4).

One spatial module f_S and one temporal module f_T, each used several times with the same weights:

* stream T→S: ``F_TS(a, b) = f_S(f_T(a, b))`` interpolates the LR frames, then upsamples the new LR frame;
* stream S→T: ``F_ST(a, b) = f_T(f_S(a), f_S(b))`` upsamples both LR frames, then interpolates the HR frames.

Training ties the streams together with the cross-stream consistency loss (:mod:`stvup.training.losses`); at inference
one stream is enough. Kept frames are ``f_S`` of the inputs in both streams.

Modules are chosen by name from :data:`SPATIAL_MODULES` and :data:`TEMPORAL_MODULES`; a network's name is
``two-stream:<spatial>+<temporal>`` (e.g. ``two-stream:espcn+dvf``), which is what checkpoints record.

Times other than 0.5: ``recursive`` applies f_T at t = 0.5 again and again (0.25 is the middle of 0 and 0.5, …),
which uses f_T only as it was trained; it reaches dyadic times (k / 2^n, n ≤ 8) and any other time falls back to
``direct``, which passes t to f_T (DVF then scales its midpoint motion, Super SloMo is built for any t).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import torch
from torch import nn

from .spatial import ESPCNSpatial, VDSRSpatial
from .temporal import DVFTemporal, SloMoTemporal, UNet

PREFIX = "two-stream"
STREAMS = ("ts", "st")
TIME_MODES = ("recursive", "direct")
MAX_DEPTH = 8

# name → (class, keyword arguments, description)
SPATIAL_MODULES: dict[str, tuple[type[nn.Module], dict, str]] = {
    "espcn": (ESPCNSpatial, {"width": 64}, "ESPCN-like: 3 convolutions at LR size, pixel shuffle"),
    "vdsr": (
        VDSRSpatial,
        {"width": 32, "depth": 8},
        "VDSR-like: 8 convolutions of 32 channels at HR size, global residual",
    ),
    "espcn-tiny": (ESPCNSpatial, {"width": 8}, "ESPCN-like, minimal (tests)"),
    "vdsr-tiny": (VDSRSpatial, {"width": 8, "depth": 3}, "VDSR-like, minimal (tests)"),
}
TEMPORAL_MODULES: dict[str, tuple[type[nn.Module], dict, str]] = {
    "dvf": (DVFTemporal, {"widths": (24, 32, 48, 64)}, "DVF-like: voxel flow and mask from one U-Net"),
    "slomo": (
        SloMoTemporal,
        {"flow_widths": (24, 32, 48, 64), "refine_widths": (16, 24, 32, 48)},
        "Super-SloMo-like: bidirectional flows, then refined flows at t and visibility",
    ),
    "dvf-tiny": (DVFTemporal, {"widths": (8, 8)}, "DVF-like, minimal (tests)"),
    "slomo-tiny": (
        SloMoTemporal,
        {"flow_widths": (8, 8), "refine_widths": (8, 8)},
        "Super-SloMo-like, minimal (tests)",
    ),
}


def two_stream_name(spatial: str, temporal: str) -> str:
    return f"{PREFIX}:{spatial}+{temporal}"


def parse_two_stream_name(name: str) -> tuple[str, str] | None:
    """``two-stream:espcn+dvf`` → ``("espcn", "dvf")``; None when ``name`` is not a full two-stream name."""
    if not name.startswith(PREFIX + ":") or "+" not in name:
        return None
    spatial, temporal = name[len(PREFIX) + 1 :].split("+", 1)
    return spatial, temporal


def _dyadic(t: float) -> Fraction | None:
    f = Fraction(t)
    d = f.denominator
    return f if d & (d - 1) == 0 and d <= 2**MAX_DEPTH else None


class TwoStream(nn.Module):
    """f_S and f_T, and the two streams built from them. Frames are ``(b, 3, h, w)`` in [-1, 1]."""

    def __init__(self, spatial: str = "espcn", temporal: str = "dvf", scale: int = 4) -> None:
        super().__init__()
        if spatial not in SPATIAL_MODULES:
            raise KeyError(f"unknown spatial module {spatial!r}; known: {', '.join(SPATIAL_MODULES)}")
        if temporal not in TEMPORAL_MODULES:
            raise KeyError(f"unknown temporal module {temporal!r}; known: {', '.join(TEMPORAL_MODULES)}")
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        s_cls, s_kw, _ = SPATIAL_MODULES[spatial]
        t_cls, t_kw, _ = TEMPORAL_MODULES[temporal]
        self.spatial = s_cls(scale=scale, **s_kw)
        self.temporal = t_cls(**t_kw)
        self.scale = scale
        self.module_names = (spatial, temporal)
        #: LR sizes must be multiples of this (f_T's U-Net pools; HR sizes are then multiples too).
        self.size_multiple = self.temporal.size_multiple

    @property
    def name(self) -> str:
        return two_stream_name(*self.module_names)

    def zero_heads(self) -> None:
        """Zero every output layer: f_S becomes grid bicubic upsampling and f_T frame blending."""
        heads = [self.spatial.head, *(m.head for m in self.temporal.modules() if isinstance(m, UNet))]
        for head in heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def stream_ts(self, a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        """F_T→S: ``f_S(f_T(a, b, t))``, ``(b, 3, h, w)`` LR → ``(b, 3, s·h, s·w)``."""
        return self.spatial(self.temporal(a, b, t))

    def stream_st(self, a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        """F_S→T: ``f_T(f_S(a), f_S(b), t)`` (both f_S calls in one batch)."""
        n = a.shape[0]
        hr = self.spatial(torch.cat((a, b), 0))
        return self.temporal(hr[:n], hr[n:], t)

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams' frame at time ``t`` between LR frames ``a`` and ``b``: ``(F_TS, F_ST)``."""
        return self.stream_ts(a, b, t), self.stream_st(a, b, t)

    def between(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        times: Sequence[float],
        *,
        stream: str = "ts",
        time_mode: str = "recursive",
        hr: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """HR frames at ``times`` (each in (0, 1)) between LR frames ``a`` and ``b`` with one stream.

        ``hr``: ``f_S(a)`` and ``f_S(b)`` when already computed (stream ``st``), so a video pipeline upsamples each
        input frame once.
        """
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; use ts or st")
        if time_mode not in TIME_MODES:
            raise ValueError(f"unknown time mode {time_mode!r}; use recursive or direct")
        if stream == "st":
            ha, hb = hr if hr is not None else (self.spatial(a), self.spatial(b))
            return interpolate_times(self.temporal, ha, hb, times, time_mode)
        mids = interpolate_times(self.temporal, a, b, times, time_mode)
        return [self.spatial(m) for m in mids]


def interpolate_times(
    f_t: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
    a: torch.Tensor,
    b: torch.Tensor,
    times: Sequence[float],
    time_mode: str = "recursive",
) -> list[torch.Tensor]:
    """Frames at ``times`` between ``a`` (t = 0) and ``b`` (t = 1) from an interpolator ``f_t(a, b, t)``.

    Recursive mode bisects towards each dyadic time, reusing every midpoint it has made (×4 time costs three f_T
    calls, not six); other times are passed to ``f_t`` directly.
    """
    known: dict[Fraction, torch.Tensor] = {Fraction(0): a, Fraction(1): b}
    out = []
    for t in times:
        target = _dyadic(t) if time_mode == "recursive" else None
        if target is None:
            out.append(f_t(a, b, float(t)))
            continue
        lo, hi = Fraction(0), Fraction(1)
        while True:
            mid = (lo + hi) / 2
            if mid not in known:
                known[mid] = f_t(known[lo], known[hi], 0.5)
            if mid == target:
                break
            lo, hi = (mid, hi) if target > mid else (lo, mid)
        out.append(known[target])
    return out
