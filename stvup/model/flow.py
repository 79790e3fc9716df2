"""Which optical flow STVUN warps with: its own PWC-Net, or a classical estimator (OpenCV's DIS) with no weights.

STVUN needs the flows between input frames 3 and 4 in both directions (``f_3→4``, ``f_4→3``, in LR pixels, Eq. 4).
The paper estimates them with a PWC-Net pre-trained on synthetic flow with known answers; stvup's small networks
never had that step, and their PWC-Net, which sees the LR frames and so has its finest cost volume at 1/16 of the
output, learned little motion (``stvup eval --flow-check`` measures it). Dense Inverse Search (Kroeger et al., ECCV
2016; OpenCV's ``DISOpticalFlow``) is a classical estimator that runs in milliseconds on a CPU core and is accurate
at sub-pixel motion, so networks trained with it do not have to learn motion at all.

A flow is named by a string, stored in a weights file's metadata (``stvup_flow``, next to ``stvup_grid``) and kept
in :class:`~stvup.model.configs.STVUNConfig` ``.flow``, so the loader builds the network with the flow it was trained
with:

* ``pwc``: the network's own PWC-Net (its weights are in the file; the authors' checkpoint and the paper weights).
* ``dis-<preset>-x<k>``: DIS with OpenCV's ``ultrafast``, ``fast`` or ``medium`` preset, run on the LR frames' luma
  upsampled ×k (1, 2 or 4) by bicubic, and its flow averaged back over each k×k block to LR pixels. DIS's finest
  level works at a fraction of its input, and its patches are 8 or 12 pixels wide, so on LR frames of 100–300 pixels
  it sees little; upsampling lets it resolve sub-pixel motion of the LR frames. ×k is relative to the grid the
  network's body works on: a ×2 network that unshuffles its input by 2 (``stvun-small-x2``) runs DIS on its input
  at ×k/2. It runs on the CPU whatever device the network is on (two small images a window).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["CLASSICAL_FLOWS", "ClassicalFlow", "DEFAULT_CLASSICAL", "FLOW_KEY", "check_flow_name", "classical_flow"]

#: The metadata key of a weights file that names its flow (absent: ``pwc``).
FLOW_KEY = "stvup_flow"

_PRESETS = ("ultrafast", "fast", "medium")
CLASSICAL_FLOWS = tuple(f"dis-{p}-x{k}" for p in _PRESETS for k in (1, 2, 4))
#: The classical flow stvup's real-video weights are trained with (chosen by ``stvup eval --flow-check``).
DEFAULT_CLASSICAL = "dis-medium-x4"

_NAME = re.compile(r"^dis-(ultrafast|fast|medium)-x([124])$")


def check_flow_name(name: str) -> str:
    """``name`` if it names a flow (``pwc`` or one of :data:`CLASSICAL_FLOWS`), else a ``ValueError`` listing them."""
    if name == "pwc" or _NAME.match(name):
        return name
    raise ValueError(f"unknown flow {name!r}; known: pwc, {', '.join(CLASSICAL_FLOWS)}")


@dataclass(frozen=True)
class ClassicalFlow:
    """DIS optical flow between two batches of LR frames, both directions, in LR pixels.

    Not a module: it has no weights, never moves to a device, and ``torch.compile`` and CUDA graphs leave it out.
    """

    preset: str = "medium"
    upsample: int = 4

    @property
    def name(self) -> str:
        return f"dis-{self.preset}-x{self.upsample}"

    def __call__(self, x3: torch.Tensor, x4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(f_3→4, f_4→3)``, each ``(b, 2, h, w)`` float32 on ``x3``'s device, for frames ``(b, 3, h, w)`` in
        [-1, 1]. ``f_3→4(p)`` is where pixel ``p`` of frame 3 lies in frame 4 (what :func:`backward_warp` samples)."""
        import cv2  # here: importing the model must not need OpenCV unless a classical flow is used

        b = x3.shape[0]
        grey = self._luma(torch.cat((x3, x4), 0))
        dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{self.preset.upper()}"))
        flows = np.empty((2 * b, *grey.shape[1:], 2), np.float32)
        for i in range(b):
            a, c = grey[i], grey[b + i]
            flows[i] = dis.calc(a, c, None)
            flows[b + i] = dis.calc(c, a, None)
        out = torch.from_numpy(flows).permute(0, 3, 1, 2)
        k = self.upsample
        if k > 1:
            # Back to LR pixels: the mean over each k×k block is the flow at the block's centre, which is where the
            # LR pixel sits on the upsampled grid (bicubic with half-pixel centres, as below).
            out = F.avg_pool2d(out, k) / k
        out = out.to(x3.device)
        return out[:b], out[b:]

    def _luma(self, x: torch.Tensor) -> np.ndarray:
        """BT.601 luma of ``(n, 3, h, w)`` [-1, 1] frames, upsampled ×k by bicubic, as ``(n, k·h, k·w)`` uint8."""
        x = x.detach().float().cpu()
        y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None] * 127.5 + 127.5
        if self.upsample > 1:
            y = F.interpolate(y, scale_factor=self.upsample, mode="bicubic", align_corners=False)
        return np.ascontiguousarray(y[:, 0].round().clamp(0, 255).to(torch.uint8).numpy())


def classical_flow(name: str) -> ClassicalFlow:
    """The :class:`ClassicalFlow` a name of :data:`CLASSICAL_FLOWS` stands for."""
    match = _NAME.match(check_flow_name(name))
    if match is None:
        raise ValueError(f"{name!r} is the network's own flow, not a classical one")
    return ClassicalFlow(match.group(1), int(match.group(2)))
