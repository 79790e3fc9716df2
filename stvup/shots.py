"""Hard scene cuts, found on the low-resolution frames as they stream.

A window that fuses frames of two shots makes a ghost of both, and a new frame interpolated across a cut is a
double exposure. So the pipeline treats each shot as a clip of its own (:meth:`stvup.pipeline.Upscaler.stream`), and
this module says where shots begin; training splits its footage into shots with it too (:mod:`stvup.data.sources`).

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
FLOOR = 8.0  # 8-bit levels: a smaller mean pixel difference is never a cut
JUMP = 2.0  # times the recent median pixel difference
HISTORY = 24  # pixel differences that make up "recent"
GRID = 64  # about this many sampled pixels along the shorter side
BINS = 16


def _coarse(image: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` uint8 → a subsampled grid of about ``GRID`` pixels on the shorter side (cheap, noise-robust)."""
    step = max(1, min(image.shape[:2]) // GRID)
    return image[::step, ::step]


def _histogram(grid: np.ndarray) -> np.ndarray:
    """Per-channel histograms of ``BINS`` levels, each normalised to sum 1, concatenated."""
    levels = grid.reshape(-1, 3) // (256 // BINS)
    counts = np.stack([np.bincount(levels[:, c], minlength=BINS) for c in range(3)])
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
        current = (grid.astype(np.float32), _histogram(grid))
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
