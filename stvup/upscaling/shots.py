"""Hard scene cuts, found on the low-resolution frames as they stream.

A window that fuses frames of two shots makes a ghost of both, and a new frame interpolated across a cut is a
double exposure. So the pipeline treats each shot as a clip of its own
(:meth:`stvup.upscaling.pipeline.Upscaler.stream`), and this module says where shots begin; training splits its footage
into shots with it too (:mod:`stvup.data.sources`).

Two cheap statistics of consecutive frames, on a coarse grid of pixels, must both jump:

- the colour histograms (16 levels per channel) differ by more than ``threshold`` (the share of pixels that would
  have to change colour, 0 to 1). Motion moves pixels but keeps the histogram, which is what tells a fast pan from
  a cut: on the footage in ``../shared/data`` motion stays at or below 0.10 and hard cuts are 0.15 to 0.70;
- the mean absolute pixel difference exceeds twice its recent median (and 8 levels), so that a slow change of light
  or colour, which moves the histogram little by little, is not a cut.

Only the past is looked at, so a cut is known as soon as its first frame is read; the pipeline never waits for more
than the 3 frames of look-ahead its windows need anyway.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "ShotDetector", "shot_starts"]

DEFAULT_THRESHOLD = 0.12  # histogram distance of a cut
FLOOR = 8.0  # in 8-bit levels (3 % of the range) at any depth: a smaller mean pixel difference is never a cut
JUMP = 2.0  # times the recent median pixel difference
HISTORY = 24  # pixel differences that make up "recent"
GRID = 64  # about this many sampled pixels along the shorter side
BINS = 16


def _coarse(image: np.ndarray) -> np.ndarray:
    """``(h, w[, c])`` frame → a subsampled ``(h', w', c)`` grid of about ``GRID`` pixels on the shorter side
    (cheap, noise-robust) in 8-bit units, as float32: 10-, 12- and 16-bit frames (uint16, full range) are scaled
    to 0–255 so that every threshold means the same at any depth; an alpha channel is left out."""
    step = max(1, min(image.shape[:2]) // GRID)
    grid = image[::step, ::step]
    if grid.ndim == 2:
        grid = grid[..., None]
    elif grid.shape[-1] in (2, 4):  # gray + alpha, RGB + alpha: the picture is what cuts, not its transparency
        grid = grid[..., :-1]
    top = float(np.iinfo(grid.dtype).max) if np.issubdtype(grid.dtype, np.integer) else 1.0
    return grid.astype(np.float32) * np.float32(255.0 / top)


def _histogram(grid: np.ndarray) -> np.ndarray:
    """Per-channel histograms of ``BINS`` levels over the full range, each normalised to sum 1, concatenated (always
    ``3 · BINS`` values, so frames of any depth or channel count compare)."""
    channels = grid.shape[-1]
    levels = np.minimum(grid.reshape(-1, channels) * (BINS / 256.0), BINS - 1).astype(np.int64)
    counts = np.stack([np.bincount(levels[:, c % channels], minlength=BINS) for c in range(3)])
    return (counts / levels.shape[0]).ravel()


class ShotDetector:
    """Feed it frames in order; it says for each whether a new shot begins there (the first frame never does).

    ``threshold``: the histogram distance (0 to 1) a cut must exceed; larger finds fewer cuts.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"scene threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._recent: deque[float] = deque(maxlen=HISTORY)
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, image: np.ndarray) -> bool:
        grid = _coarse(image)
        current = (grid, _histogram(grid))
        previous, self._previous = self._previous, current
        if previous is None or previous[0].shape != current[0].shape:
            return False
        diff = float(np.abs(current[0] - previous[0]).mean())
        change = float(np.abs(current[1] - previous[1]).sum()) / 6  # half the L1 distance, averaged over channels
        typical = float(np.median(self._recent)) if self._recent else 0.0
        self._recent.append(diff)  # the median shrugs off the cut's own jump
        return change > self.threshold and diff > max(FLOOR, JUMP * typical)


def shot_starts(frames: np.ndarray | list[np.ndarray], threshold: float = DEFAULT_THRESHOLD) -> list[int]:
    """Indices of the frames that begin shots, 0 first, as :class:`ShotDetector` finds them streaming."""
    detect = ShotDetector(threshold)
    return [0] + [i for i, image in enumerate(frames) if detect(image) and i > 0]
