"""The geometric self-ensemble (``--ensemble N``): a window run on flipped and transposed copies, outputs averaged.

stvup's training shows the network its footage in all eight orientations (:mod:`stvup.data.sampler` flips and
rotates each sample), yet it makes slightly different errors on a mirrored picture; averaging its outputs over the
eight symmetries of the square (identity, the two flips, the half turn, and each of them transposed), each mapped
back, cancels part of those errors. Super-resolution papers have reported this since EDSR (their "+" rows); for
stvup's shipped weights it is measured in README "Quality". It costs about N times the network's time, so it is a
choice for footage that must look its best, not the default.

Flips are corrected for the network's sampling grid (see :class:`Symmetry`). Every output of a window, the kept
frame and each new frame at its ``T_in``, is averaged over the same copies: the flow is estimated on the mirrored
frames too, so motion is mirrored with them. Time is not reversed: the window's centre pair (frames 3 and 4) has
no mirror image within the same window (that would be the next window, read backwards).

``N`` picks the first N of the eight in this order: 2 adds the horizontal flip, 4 the vertical flip and the half
turn, 8 the four transposed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stvup.errors import UsageError

__all__ = ["ENSEMBLE_SIZES", "Symmetry", "ensemble_transforms"]

ENSEMBLE_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Symmetry:
    """One symmetry of the square on ``(b, c, h, w)`` tensors: flip the listed axes, then transpose if asked.

    A flip is exact only on the block-centre grid of real video, where LR pixel ``i`` sits on the centre of its
    ``scale``-pixel block. A network trained on the paper's DUF grid places LR pixel ``i`` on output pixel
    ``scale · i`` (:func:`stvup.data.degrade.duf_downsample`), so a flipped picture comes back ``scale − 1``
    output pixels off. :meth:`forward` therefore extends each flipped axis by ``pad`` replicated pixels at its end,
    and :meth:`inverse` cuts the output from the start of the extension, ``scale − 1`` pixels further in on the DUF
    grid; transposing keeps either grid and needs neither. Without this correction two copies of DUF-grid weights
    scored 1.25 dB below one on Vid4's ``city``.
    """

    flip: tuple[int, ...] = ()  # tensor dims: 2 is rows (vertical flip), 3 is columns (horizontal flip)
    transpose: bool = False

    def forward(self, x: torch.Tensor, pad: int) -> torch.Tensor:
        """The picture as the network sees it; ``pad`` (≥ 1, a multiple of the network's size multiple) pixels
        are added to each flipped axis."""
        if self.flip:
            right, bottom = (pad if 3 in self.flip else 0), (pad if 2 in self.flip else 0)
            x = F.pad(x, (0, right, 0, bottom), mode="replicate").flip(self.flip)
        return x.transpose(2, 3) if self.transpose else x

    def inverse(self, y: torch.Tensor, pad: int, scale: int, grid: str = "duf") -> torch.Tensor:
        """An output of the moved picture (``scale`` times its size) moved back onto the original's ``grid``
        (``duf`` or ``block-centre``, the grid the weights were trained for)."""
        if self.transpose:
            y = y.transpose(2, 3)
        if not self.flip:
            return y
        y = y.flip(self.flip)
        for dim in self.flip:
            y = y.narrow(dim, scale - 1 if grid == "duf" else 0, y.shape[dim] - scale * pad)
        return y


_ALL = tuple(Symmetry(flip, transpose) for transpose in (False, True) for flip in ((), (3,), (2,), (2, 3)))


def ensemble_transforms(size: int) -> tuple[Symmetry, ...]:
    """The first ``size`` (1, 2, 4 or 8) symmetries; 1 is the plain run."""
    if size not in ENSEMBLE_SIZES:
        raise UsageError(f"--ensemble must be one of {', '.join(map(str, ENSEMBLE_SIZES))}, got {size}")
    return _ALL[:size]
