"""How well a model's PWC-Net interpolates LR frames: L_M (Eq. 7) and PSNR of X̂_T on held-out clips.

For each clip the even frames are degraded (the paper's protocol) and every odd frame's DUF-downsampled version is
the target of the warped average of its two neighbours at T_in = 0.5, exactly what L_M measures in training. The
row "frame blending" (zero flow) is what a PWC-Net that learned nothing gives.

    python examples/flow_check.py ../shared/data/vid4/GT weights/default.safetensors runs/mine/model.safetensors
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import stvup
from stvup.evaluation.methods import interpolate
from stvup.evaluation.metrics import psnr
from stvup.evaluation.protocol import degrade_frames, find_clips, read_clip


@torch.no_grad()
def main(clip_root: str, weights: list[str], max_frames: int | None = None) -> None:
    clips = [read_clip(p, max_frames) for p in find_clips([clip_root])]
    for name in ["frame blending", *weights]:
        model = None
        if name != "frame blending":
            model = stvup.load_upscaler(name, precision="fp32").model
        l1s, psnrs = [], []
        for hr in clips:
            lr_even = degrade_frames(hr[::2], 4)
            lr_odd = degrade_frames(hr[1::2], 4)
            for a, b, target in zip(lr_even[:-1], lr_even[1:], lr_odd):
                if model is None:
                    mid = ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)
                else:
                    mid = interpolate(model, a, b, 0.5, lr_flows=True)
                l1s.append(np.abs(mid.astype(np.float64) - target).mean() / 255)
                psnrs.append(psnr(mid, target))
        print(f"{name}: L_M {np.mean(l1s):.5f}, LR intermediate PSNR {np.mean(psnrs):.2f} dB ({len(l1s)} frames)")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
