"""Pre-training STVUN's PWC-Net without flow labels (stage 0 of :func:`stvup.training.loop.train`).

The paper starts from a PWC-Net pre-trained on synthetic flow data; stvup has no such data and no such weights, and
a PWC-Net trained from scratch inside stage 2 barely moves (its only signal is L_M through frame blending). So
before stage 2 the flow network learns motion from the training footage itself, the way unsupervised flow methods
do (UnFlow, ARFlow): the flow from frame 3 to frame 4 must warp frame 4 onto frame 3 (an SSIM + L1 photometric
loss), pixels that fail a forward-backward check or leave the frame are treated as occluded and left out, and an
edge-aware smoothness term fills them in. The occlusion check starts only once the flow means something (a flow
that is still noise fails it almost everywhere, and a loss over the few pixels left teaches nothing). PWC-Net sees
exactly what it sees later: pairs of degraded LR frames one input apart.

L_M (Eq. 7, the warped LR intermediate frame against the true one) is computed alongside as a monitor only: the
loss uses frames 3 and 4 alone, so the pre-training needs no middle frame and no label of any kind.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stvup.data.sampler import Batch
from stvup.model import STVUN
from stvup.model.pwcnet import backward_warp
from stvup.model.stvun import intermediate_flows
from stvup.training.losses import l1, occlusion_mask, photometric_loss, smoothness_loss

__all__ = ["LEVEL_WEIGHTS", "flow_step", "inside_mask"]

#: Loss weights of PWC-Net's coarser levels, finest first (levels 3, 4, 5, 6; the final flow weighs 1).
LEVEL_WEIGHTS = (0.5, 0.25, 0.125, 0.0625)
#: Levels whose grid is smaller than this many pixels a side are too coarse to compare frames on.
MIN_LEVEL_SIZE = 4


def inside_mask(flow: torch.Tensor) -> torch.Tensor:
    """``(b, 1, h, w)``: 1 where ``p + flow(p)`` lies inside the frame (a target outside it cannot be compared)."""
    _, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
    x, y = xs + flow[:, 0].float(), ys + flow[:, 1].float()
    return ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).unsqueeze(1).float()


def _photo_both(x3, x4, f34, f43, occlusion: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Photometric loss of both directions at one scale, and the two visibility masks."""
    m3, m4 = inside_mask(f34), inside_mask(f43)
    if occlusion:
        m3 = m3 * occlusion_mask(f34, backward_warp(f43, f34))
        m4 = m4 * occlusion_mask(f43, backward_warp(f34, f43))
    loss = photometric_loss(backward_warp(x4, f34), x3, m3) + photometric_loss(backward_warp(x3, f43), x4, m4)
    return loss, m3, m4


def flow_step(
    model: STVUN, batch: Batch, autocast: torch.dtype | None, smooth_weight: float = 0.5, occlusion: bool = True
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Unsupervised flow loss of one batch of LR pairs (``batch.lr`` ``(2, b, 3, h, w)`` in [0, 1]) and its terms.

    Both directions count: photo(warp(X_4, f_3→4), X_3) over the pixels of X_3 that pass the checks (the target
    inside the frame and, with ``occlusion``, the forward-backward check), and the same the other way, plus
    ``smooth_weight`` times the edge-aware smoothness of both flows. The coarser pyramid levels are trained the same
    way on frames resized to their grids, at weights halving per level (:data:`LEVEL_WEIGHTS`): a coarse level
    sees a large motion as a small one, where the photometric gradient still points the right way, and the finer
    levels then only refine its warp. Terms: ``l_photo`` (all levels), ``l_smooth``, ``occluded`` (share of
    final-level pixels left out) and the monitor ``l_m`` at T_in = 0.5.
    """
    x3, x4 = batch.lr[0], batch.lr[1]
    with torch.autocast(x3.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        (f34, f43), coarse = model.estimate_flow_pyramid(x3 * 2 - 1, x4 * 2 - 1)
    f34, f43 = f34.float(), f43.float()
    l_photo, m3, m4 = _photo_both(x3, x4, f34, f43, occlusion)
    for (c34, c43), weight in zip(coarse[::-1], LEVEL_WEIGHTS):
        if min(c34.shape[-2:]) < MIN_LEVEL_SIZE:
            break
        size = c34.shape[-2:]
        y3, y4 = (F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True) for x in (x3, x4))
        l_photo = l_photo + weight * _photo_both(y3, y4, c34.float(), c43.float(), occlusion)[0]
    l_smooth = smoothness_loss(f34, x3) + smoothness_loss(f43, x4)
    loss = l_photo + smooth_weight * l_smooth
    with torch.no_grad():
        ft3, ft4 = intermediate_flows(f34, f43, 0.5)
        mid = (backward_warp(x3, ft3) + backward_warp(x4, ft4)) / 2
        l_m = l1(mid, batch.lr_between[0]) if batch.lr_between.shape[0] else mid.new_zeros(())
        occluded = 1 - (m3.mean() + m4.mean()) / 2
    return loss, {"loss": loss, "l_photo": l_photo, "l_smooth": l_smooth, "l_m": l_m, "occluded": occluded}
