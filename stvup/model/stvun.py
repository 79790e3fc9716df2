"""The assembled Space-Time Video Upsampling Network (paper section 3, Fig. 2).

Seven LR frames in; the HR centre frame (Eq. 8) and one HR frame per requested time ``T_in`` between frames 3 and
4 out (Eqs. 4-6 and 10). The pieces are exposed as methods (``encode``, ``fuse``, ``estimate_flows``,
``upsample_center``, ``upsample_between``) so that a video pipeline can encode each frame once and reuse its
features in every window that contains it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .configs import STVUNConfig
from .decoder import Decoder
from .efst import EFST
from .encoder import Encoder
from .flow import classical_flow
from .pwcnet import PWCNet, backward_warp, layout_of

CENTER = 3  # index of the centre frame among the seven inputs; frames CENTER and CENTER + 1 bound T_in


@dataclass
class STVUNOutput:
    """Everything one forward pass produces.

    ``frames``: ``(1 + len(times), b, 3, s*h, s*w)`` in [-1, 1] (not clamped), index 0 the centre frame.
    ``lr_between``: ``(len(times), b, 3, h, w)``, the warped LR intermediate frames X̂_T of Eq. 6 (for L_M).
    ``flows``: the LR flows ``(f_3→4, f_4→3)``, each ``(b, 2, h, w)``.
    """

    frames: torch.Tensor
    lr_between: torch.Tensor
    flows: tuple[torch.Tensor, torch.Tensor]


def intermediate_flows(f34: torch.Tensor, f43: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4: flows from time ``t`` to frames 3 and 4 (quadratic blend of the two directions, after Super SloMo)."""
    ft3 = -(1 - t) * t * f34 + t * t * f43
    ft4 = (1 - t) * (1 - t) * f34 - t * (1 - t) * f43
    return ft3, ft4


def blend_pair(wa: torch.Tensor, wb: torch.Tensor, t: float | torch.Tensor, mode: str) -> torch.Tensor:
    """Eqs. 5 and 6: frames (or features) warped to ``T_in = t`` from frames 3 and 4, combined.

    ``mode`` ``"mean"`` averages them (the paper); ``"linear"`` weights them ``1 − t`` and ``t``. ``t`` may be a
    tensor that broadcasts against the batch (``(n, 1, 1, 1)`` for a time-major batch of times). Scaling by 1/2 is
    exact in floating point, so at ``t = 1/2`` both modes give the same bits.
    """
    if mode == "mean":
        return (wa + wb) / 2
    if isinstance(t, torch.Tensor):
        t = t.to(wa.dtype)  # keep bf16 features bf16
    return wa * (1 - t) + wb * t


def init_conv(m: nn.Module) -> None:
    """He-normal (fan-in) weights and zero biases for a convolution (the authors' initialisation); others untouched."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(m.weight, mode="fan_in")
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class STVUN(nn.Module):
    """STVUN for any config of :mod:`stvup.model.configs`; state-dict keys match the authors' checkpoint."""

    def __init__(self, config: STVUNConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = config.scale
        self.unshuffle = config.unshuffle
        self.encoder = Encoder(config.channels, config.blocks, 3 * config.unshuffle**2)
        self.efst = EFST(config.frames, config.channels)
        self.decoder = Decoder(config.channels, config.blocks, config.scale * config.unshuffle)
        #: LR height and width must be multiples of this (EFST pools twice; PWC-Net on ×4 frames needs 64 / 4), at
        #: the size the body runs at.
        self.size_multiple = 16 * config.unshuffle
        # The flow the network warps with (stvup.model.flow): its own PWC-Net, or a classical estimator with no weights.
        self.pwcnet: PWCNet | None = None
        self.classical_flow = None
        if config.flow == "pwc":
            self.pwcnet = PWCNet(config.pwc_pyramid, config.pwc_estimator, config.pwc_context,
                                 config.pwc_max_displacement)  # fmt: skip
        else:
            # ×k is relative to the grid the body works on: a network that unshuffles its input by u gets frames u
            # times finer already (dis-medium-x2 on a ×2 network's 1080p input runs DIS at 1080p, not 4K).
            flow = classical_flow(config.flow)
            self.classical_flow = dataclasses.replace(flow, upsample=max(1, flow.upsample // config.unshuffle))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal (fan-in) weights and zero biases, as in the authors' code."""
        self.apply(init_conv)

    # -- parts -----------------------------------------------------------------------------------------------------

    def upsample(self, x: torch.Tensor, factor: int | None = None) -> torch.Tensor:
        """Bilinear upsampling ``u(·)`` with ``align_corners=False``, by ``scale`` unless told otherwise."""
        return F.interpolate(x, scale_factor=factor or self.scale, mode="bilinear", align_corners=False)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features ``e_t^i`` of LR frames ``(b, 3, h, w)``: a list of ``blocks`` tensors, deepest first (at
        ``(h/u, w/u)`` for a network that unshuffles its input by u)."""
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        return self.encoder(x)

    def _body_flow(self, flow: torch.Tensor) -> torch.Tensor:
        """An LR-pixel flow on the grid the features live on: the mean over each u×u block, in the body's pixels."""
        u = self.unshuffle
        return flow if u == 1 else F.avg_pool2d(flow.float(), u) / u

    def _shuffle(self, residual: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(residual, self.scale * self.unshuffle)

    def fuse(self, feats: Sequence[list[torch.Tensor]]) -> list[torch.Tensor]:
        """EFST over the seven frames' features: fused ``Ẽ^i`` per level."""
        return self.efst(list(feats))

    def estimate_flows(self, x3: torch.Tensor, x4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LR-pixel flows ``(f_3→4, f_4→3)``, each ``(b, 2, h, w)``, in both directions: from PWC-Net, or from the
        classical estimator the config names (float32, no gradient)."""
        if self.classical_flow is not None:
            return self.classical_flow(x3, x4)
        return self.estimate_flow_pyramid(x3, x4)[0]

    def estimate_flow_pyramid(
        self, x3: torch.Tensor, x4: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """:meth:`estimate_flows`, plus PWC-Net's coarser flows (levels 6 to 3) for multi-scale training.

        Each coarse pair is in the pixels of its own level's grid (1/2^l of PWC-Net's input), so that it warps
        frames resized to that grid, as PWC-Net's pyramid warps its features. Only for a network with a PWC-Net.
        """
        if self.pwcnet is None:
            raise ValueError(f"this network's flow is {self.config.flow}, which has no pyramid to train")
        fu = self.config.flow_upsample
        a, b = (self.upsample(x3, fu), self.upsample(x4, fu)) if fu > 1 else (x3, x4)
        n = x3.shape[0]
        flows, coarse = self.pwcnet(torch.cat((a, b), 0), torch.cat((b, a), 0), pyramid=True)
        gain = self.config.flow_scale / fu  # output units → input pixels → LR pixels
        if fu != 4:
            # PWC-Net answers at 1/4 of its input; bring the flow to LR size.
            flows = F.interpolate(flows, size=x3.shape[-2:], mode="bilinear", align_corners=False)
        if gain != 1:
            flows = flows * gain
        levels = [(c[:n] * (20.0 / 2**lv), c[n:] * (20.0 / 2**lv)) for c, lv in zip(coarse, range(6, 2, -1))]
        return (flows[:n], flows[n:]), levels

    def upsample_center(
        self, x3: torch.Tensor, feats3: list[torch.Tensor], fused: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Eq. 8: ``Ŷ_3 = u(X_3) + R_3``; also returns the decoded features ``D^i`` for the space-time path."""
        decoded, residual = self.decoder(feats3, fused)
        return self.upsample(x3) + self._shuffle(residual), decoded

    def warp_between(
        self, a: torch.Tensor, b: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor], t: float
    ) -> torch.Tensor:
        """Eqs. 4 and 6 on any pair of images ``(n, c, h, w)`` whose grid the flows ``(f_a→b, f_b→a)`` are in.

        The interpolation that the space-time path applies to LR frames, for other images: V→F's HR frames, or the
        consistency loss's HR outputs. It combines the two warps the way this variant does (``time_blend``).
        """
        fta, ftb = intermediate_flows(*flows, t)
        return blend_pair(backward_warp(a, fta), backward_warp(b, ftb), t, self.config.time_blend)

    def upsample_between(
        self,
        x3: torch.Tensor,
        x4: torch.Tensor,
        feats3: list[torch.Tensor],
        feats4: list[torch.Tensor],
        decoded: list[torch.Tensor],
        flows: tuple[torch.Tensor, torch.Tensor],
        t: float | Sequence[float],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eqs. 4, 5, 6 and 10 for ``T_in = t``: returns ``(Ŷ_T, X̂_T)``.

        ``t`` may be a list of times: they then go through the decoder as one batch (a wider batch keeps a GPU
        busy where one time at a time would not), and the results are stacked time-major: ``(len(t)·b, …)``, rows
        ``k·b … (k+1)·b − 1`` for ``t[k]``.
        """
        ts = [float(t)] if isinstance(t, (int, float)) else [float(v) for v in t]
        n = len(ts)
        pairs = [intermediate_flows(*flows, v) for v in ts]
        ft3 = torch.cat([p[0] for p in pairs]) if n > 1 else pairs[0][0]
        ft4 = torch.cat([p[1] for p in pairs]) if n > 1 else pairs[0][1]

        def rep(x: torch.Tensor) -> torch.Tensor:  # repeat() answers channels-first; keep the layout (see warp)
            return x.repeat(n, 1, 1, 1).contiguous(memory_format=layout_of(x)) if n > 1 else x

        # Eq. 5 on every encoder level, Eq. 6 on the LR frames.
        mode = self.config.time_blend
        # Filled on the device, not copied from a list: a host-to-device copy cannot be captured in a CUDA graph.
        b = x3.shape[0]
        w = torch.cat([x3.new_full((b, 1, 1, 1), v) for v in ts]) if mode == "linear" else 0.5
        gt3, gt4 = self._body_flow(ft3), self._body_flow(ft4)
        mid = [blend_pair(backward_warp(rep(a), gt3), backward_warp(rep(b), gt4), w, mode)
               for a, b in zip(feats3, feats4)]  # fmt: skip
        lr_mid = blend_pair(backward_warp(rep(x3), ft3), backward_warp(rep(x4), ft4), w, mode)
        _, residual = self.decoder(mid, [rep(d) for d in decoded])
        return self.upsample(lr_mid) + self._shuffle(residual), lr_mid

    # -- whole network ---------------------------------------------------------------------------------------------

    def run(
        self,
        frames: Sequence[torch.Tensor],
        times: Sequence[float],
        features: Sequence[list[torch.Tensor] | None] | None = None,
    ) -> STVUNOutput:
        """Full pass with every intermediate result; ``features`` may hold precomputed ``encode`` outputs."""
        if len(frames) != self.config.frames:
            raise ValueError(f"STVUN takes {self.config.frames} frames, got {len(frames)}")
        h, w = frames[0].shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f"frame size {h}x{w} is not a multiple of {m}; pad the frames first")
        feats = list(features) if features is not None else [None] * len(frames)
        missing = [i for i, f in enumerate(feats) if f is None]
        if missing:
            # Encode all missing frames in one batched call.
            n = frames[0].shape[0]
            enc = self.encode(torch.cat([frames[i] for i in missing], 0))
            for j, i in enumerate(missing):
                feats[i] = [e[j * n : (j + 1) * n] for e in enc]
        x3, x4 = frames[CENTER], frames[CENTER + 1]
        center, decoded = self.upsample_center(x3, feats[CENTER], self.fuse(feats))
        outs = [center]
        flows = self.estimate_flows(x3, x4) if len(times) else (x3.new_zeros(0), x3.new_zeros(0))
        lr_between = x3.new_zeros((0, *x3.shape))
        if len(times):
            # All times through the decoder in one batch; unstack into (len(times), b, …).
            out, lr_mid = self.upsample_between(x3, x4, feats[CENTER], feats[CENTER + 1], decoded, flows, times)
            outs.extend(out.unflatten(0, (len(times), -1)).unbind(0))
            lr_between = lr_mid.unflatten(0, (len(times), -1))
        return STVUNOutput(torch.stack(outs), lr_between, flows)

    def forward(self, frames: Sequence[torch.Tensor], times: Sequence[float]) -> torch.Tensor:
        """``frames``: seven ``(b, 3, h, w)`` tensors in [-1, 1]; returns ``(1 + len(times), b, 3, s*h, s*w)``."""
        return self.run(frames, times).frames
