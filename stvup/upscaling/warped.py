"""``--new-frames warped``: new frames made from the two upsampled frames around them, moved by the flow.

STVUN's space-time path (the paper's joint decoder) builds a new frame at ``T_in = t`` from LR features warped at LR
resolution. With a flow that knows motion (a classical one, :mod:`stvup.model.flow`), a simpler path does much
better: warp the two *upsampled* frames around ``t`` (the spatial path's outputs, which carry the seven-frame
fusion's detail) with the flow, upsampled to their size, by the paper's own Eqs. 4 and 6. This is the paper's V→F
baseline, run inside the pipeline. Measured on the Vimeo validation septuplets (real protocol, CRF 0, the same
weights): new frames 37.88 dB against 35.44 from the joint decoder and 34.18 from FFmpeg's ``minterpolate``, and the
new frames are no softer than the kept ones, so the video does not pulse (docs/motion.md).

The frames are warped in blocks of rows, each reading only the rows its flow reaches, so that an 8K frame is never
whole in floats; a frame stored as 16-bit integers (:class:`~stvup.upscaling.tiling.TileCanvas`) comes out so too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stvup.model.stvun import blend_pair, intermediate_flows

from .tiling import FIXED, to_float

__all__ = ["BLENDS", "NEW_FRAMES", "upsample_flows", "visibility", "warp_outputs"]

#: How a new frame is made from the two warped frames: ``linear`` (weights ``1 − t`` and ``t``), ``mean``, or
#: ``splat`` (the flows to ``t`` splatted forward, each frame weighted by how much of it lands there,
#: :func:`splatted_flows`; measured in docs/motion.md, not yet the pipeline's).
BLENDS = ("linear", "mean", "splat")
#: Forward-backward consistency: a flow vector and the reverse flow where it lands may differ by this share of their
#: lengths (squared) plus :data:`CONSISTENCY_SLACK` LR pixels² before the pixel counts as seen by one frame only.
CONSISTENCY_SHARE = 0.01
CONSISTENCY_SLACK = 0.25
#: The least weight a warped frame keeps, so that where neither frame shows a pixel the linear blend remains.
VISIBILITY_FLOOR = 1e-3

#: How new frames are made: ``joint`` (STVUN's space-time decoder), ``warped`` (this module), ``auto`` (warped for
#: networks with a classical flow, joint for the rest: the paper's and the authors' weights stay as published).
NEW_FRAMES = ("auto", "joint", "warped")


def _upsample(flow: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(flow.float(), scale_factor=scale, mode="bilinear", align_corners=False) * scale


def upsample_flows(flows: tuple[torch.Tensor, torch.Tensor], scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LR-pixel flows ``(b, 2, h, w)`` on the grid ``scale`` times finer, in its pixels (bilinear, half-pixel
    centres, the same grid the network's outputs are on)."""
    return _upsample(flows[0], scale), _upsample(flows[1], scale)


def _flow_rows(flow: torch.Tensor, scale: int, r0: int, r1: int) -> torch.Tensor:
    """Rows ``[r0, r1)`` of :func:`upsample_flows` of an LR flow, made from the LR rows they need (and one more each
    way, so that the bilinear upsampling sees the same neighbours as on the whole frame)."""
    if scale == 1:
        return flow[:, :, r0:r1].float()
    h = flow.shape[2]
    lo, hi = max(0, r0 // scale - 1), min(h, -(-r1 // scale) + 1)
    up = _upsample(flow[:, :, lo:hi], scale)
    # On a block, bilinear upsampling clamps at the block's own edge; that edge is a whole frame edge or at least
    # one LR row (``scale`` output rows) away from the rows kept, beyond the interpolation's reach.
    return up[:, :, r0 - lo * scale : r1 - lo * scale]


def _backward_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``x`` ``(b, c, h, w)`` sampled at each pixel plus ``flow`` (bilinear, clamped at the border)."""
    _, _, h, w = flow.shape
    ys = torch.arange(h, dtype=torch.float32, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32, device=flow.device).view(1, 1, w)
    gx = (xs + flow[:, 0]).clamp(0, w - 1) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]).clamp(0, h - 1) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(x.float(), torch.stack((gx, gy), dim=3), mode="bilinear", padding_mode="border",
                         align_corners=True)  # fmt: skip


def visibility(flows: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """How well each frame of a pair sees each of its pixels in the other, ``(v_a, v_b)``, ``(b, 1, h, w)`` in (0, 1],
    from the forward-backward consistency of the flows ``(f_a→b, f_b→a)`` (on any grid, in its pixels).

    Where a pixel of A is covered in B, the flow from A points at the cover, whose own flow back does not return: the
    two vectors no longer cancel. The squared mismatch, relative to :data:`CONSISTENCY_SHARE` of their squared
    lengths plus :data:`CONSISTENCY_SLACK`, gives ``v = exp(−mismatch / allowance)`` (after Sundaram et al., 2010)."""

    def seen(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
        forward, back = forward.float(), _backward_warp(backward, forward.float())
        mismatch = (forward + back).pow(2).sum(1, keepdim=True)
        allowance = CONSISTENCY_SHARE * (forward.pow(2) + back.pow(2)).sum(1, keepdim=True) + CONSISTENCY_SLACK
        return torch.exp(-mismatch / allowance)

    return seen(flows[0], flows[1]), seen(flows[1], flows[0])


def splat(values: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (softmax) splatting: every pixel q of ``values`` ``(b, c, h, w)`` is moved to q + ``flow`` (bilinear
    footprint) with the positive ``weight`` ``(b, 1, h, w)``; returns the weighted mean that arrives at each pixel
    (zero where nothing does) and the bilinear coverage there (how much of a source pixel arrived, before
    ``weight``)."""
    b, c, h, w = values.shape
    ys = torch.arange(h, dtype=torch.float32, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32, device=flow.device).view(1, 1, w)
    px, py = xs + flow[:, 0].float(), ys + flow[:, 1].float()
    x0, y0 = px.floor(), py.floor()
    total = torch.zeros(b, c + 2, h * w, dtype=torch.float32, device=flow.device)
    payload = torch.cat((values.float() * weight, weight, torch.ones_like(weight)), 1).flatten(2)
    for dx in (0, 1):
        for dy in (0, 1):
            tx, ty = x0 + dx, y0 + dy
            share = (1 - (px - tx).abs()) * (1 - (py - ty).abs())
            inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
            share = (share * inside).flatten(1)[:, None]
            target = (ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).long().flatten(1)[:, None].expand(-1, c + 2, -1)
            contribution = payload * share
            contribution[:, -1:] = share  # coverage counts the footprint alone
            total.scatter_add_(2, target, contribution)
    total = total.view(b, c + 2, h, w)
    mean = total[:, :c] / total[:, c : c + 1].clamp_min(1e-12)
    return mean, total[:, c + 1 :]


#: Softmax splatting ranks the pixels that land on the same place by their forward-backward mismatch: the one whose
#: flow is consistent (the one in front, usually) wins, ``exp(−SPLAT_SHARPNESS · mismatch / allowance)``.
SPLAT_SHARPNESS = 4.0


def splatted_flows(
    flows: tuple[torch.Tensor, torch.Tensor], t: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flows from ``T_in = t`` to each frame by forward splatting instead of Eq. 4, and where each frame sees the
    new frame: ``(f_t→a, f_t→b, c_a, c_b)`` on the flows' grid. A pixel q of A is at q + t·f_a→b(q) at time t, so
    the flow from there back to A is −t·f_a→b(q); where several land, the consistent one wins (softmax splatting,
    Niklaus and Liu, 2020); where none lands, A cannot show the pixel (``c_a`` near 0: uncovered between A and B),
    and Eq. 4's flow fills in."""
    f_ab, f_ba = (f.float() for f in flows)
    v_a, v_b = visibility(flows)
    eq4_a, eq4_b = intermediate_flows(f_ab, f_ba, t)
    out = []
    for f, v, fill, step in ((f_ab, v_a, eq4_a, t), (f_ba, v_b, eq4_b, 1 - t)):
        moved, coverage = splat(-step * f, step * f, torch.exp(SPLAT_SHARPNESS * (v - 1)))
        seen = coverage.clamp(0, 1)
        out.append((moved * seen + fill * (1 - seen), seen))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def _map_rows(value: torch.Tensor, scale: int, r0: int, r1: int) -> torch.Tensor:
    """Rows ``[r0, r1)`` of an LR map ``(b, c, h, w)`` upsampled ``scale`` times (bilinear, half-pixel centres), made
    from the LR rows they need, as :func:`_flow_rows` makes flows (but not scaled: a map has no length)."""
    return _flow_rows(value, scale, r0, r1) / scale if scale > 1 else value[:, :, r0:r1].float()


def warp_outputs(
    a: torch.Tensor,
    b: torch.Tensor,
    flows: tuple[torch.Tensor, torch.Tensor],
    t: float,
    blend: str = "linear",
    rows: int = 256,
    scale: int = 1,
) -> torch.Tensor:
    """The frame at ``T_in = t`` between upsampled frames ``a`` and ``b`` (``(1, 3, H, W)``, float or
    :data:`~stvup.upscaling.tiling.FIXED` int16), from the flows ``(f_a→b, f_b→a)``: on the frames' grid (output
    pixels), or with ``scale`` > 1 LR flows that many times coarser, upsampled a block of rows at a time as
    :func:`upsample_flows` would (an 8K frame's flows would take 0.5 GB whole). Eq. 4 gives the flows from ``t`` to
    each frame, Eq. 6 blends the two warped frames (``blend``, one of :data:`BLENDS`: ``linear``, weights ``1 − t``
    and ``t``; ``mean``; or ``splat``, where the flows to ``t`` are splatted forward instead of Eq. 4 and each frame
    counts as much as it shows the pixel, :func:`splatted_flows`). Same dtype as ``a``; computed ``rows`` rows at a
    time."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; use {', '.join(BLENDS)}")
    _, _, h, w = a.shape
    out = torch.empty_like(a)
    f_ab, f_ba = flows
    splats = splatted_flows(flows, t) if blend == "splat" else None
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        if splats is None:
            ft_a, ft_b = intermediate_flows(_flow_rows(f_ab, scale, r0, r1), _flow_rows(f_ba, scale, r0, r1), t)
        else:
            ft_a, ft_b = _flow_rows(splats[0], scale, r0, r1), _flow_rows(splats[1], scale, r0, r1)
        warped = [_warp_rows(src, ft, r0, h) for src, ft in ((a, ft_a), (b, ft_b))]
        if splats is not None:
            c_a, c_b = _map_rows(splats[2], scale, r0, r1), _map_rows(splats[3], scale, r0, r1)
            w_a, w_b = (1 - t) * c_a.clamp_min(VISIBILITY_FLOOR), t * c_b.clamp_min(VISIBILITY_FLOOR)
            value = (warped[0] * w_a + warped[1] * w_b) / (w_a + w_b)
        else:
            value = blend_pair(warped[0], warped[1], t, blend)
        if a.dtype == torch.int16:
            out[:, :, r0:r1] = (value.clamp(-1, 1) * FIXED).round().to(torch.int16)
        else:
            out[:, :, r0:r1] = value.to(a.dtype)
    return out


def _warp_rows(src: torch.Tensor, flow: torch.Tensor, top: int, height: int) -> torch.Tensor:
    """Output rows ``[top, top + flow rows)`` of ``src`` (the whole frame, ``height`` rows) warped by ``flow``:
    reads only the source rows the flow reaches (plus one for bilinear sampling), as floats."""
    rows, w = flow.shape[2], flow.shape[3]
    ys = torch.arange(rows, dtype=torch.float32, device=flow.device).view(1, rows, 1) + top
    xs = torch.arange(w, dtype=torch.float32, device=flow.device).view(1, 1, w)
    # Where each output pixel samples, clamped to the frame (the whole-frame warp's border padding).
    sx = (xs + flow[:, 0]).clamp(0, w - 1)
    sy = (ys + flow[:, 1]).clamp(0, height - 1)
    lo = max(0, int(math.floor(float(sy.min()))))
    hi = min(height, int(math.floor(float(sy.max()))) + 2)
    part = to_float(src[:, :, lo:hi])
    span = hi - lo
    gx = sx * (2.0 / max(w - 1, 1)) - 1.0
    gy = (sy - lo) * (2.0 / max(span - 1, 1)) - 1.0 if span > 1 else torch.zeros_like(sy)
    grid = torch.stack((gx, gy), dim=3)
    return F.grid_sample(part, grid, mode="bilinear", padding_mode="border", align_corners=True)
