"""Training footage: videos and frame folders decoded once into memory, split at scene cuts.

Samples need 6·stride + 1 consecutive source frames of one shot, so every source is decoded in full (as 8-bit RGB,
which is what it holds anyway) and cut into shots at hard cuts (:mod:`stvup.upscaling.shots`, as when upscaling).
Folders named like a test set (``vid4``) are never used for training: scores on them would mean nothing afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from stvup.errors import InputError, UsageError
from stvup.upscaling.shots import shot_starts

#: Folder names that hold evaluation data; training refuses them.
TEST_SETS = frozenset({"vid4"})

#: Containers read for training beyond those stvup writes.


def read_extensions() -> frozenset[str]:
    """File extensions read as video. Imports the PyAV-based video package only when footage is actually read, so
    training from already decoded clips (the GPU kit, on machines without PyAV) never needs it."""
    from stvup.video import INPUT_EXTENSIONS

    return INPUT_EXTENSIONS


@dataclass
class Clip:
    """One decoded source: ``frames`` ``(n, h, w, 3)`` uint8, its ``rate``, and the frame indices that start shots."""

    path: str
    frames: np.ndarray
    rate: Fraction
    shot_starts: list[int] = field(default_factory=lambda: [0])

    def windows(self, span: int) -> np.ndarray:
        """Start indices of every run of ``span`` consecutive frames inside one shot."""
        bounds = [*self.shot_starts, len(self.frames)]
        starts = [np.arange(a, b - span + 1) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= span]
        return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)


def find_sources(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Videos and frame folders under ``paths`` (searched recursively), skipping test sets.

    A path given explicitly that is, or lies inside, a test set is an error rather than silently skipped.
    """
    from stvup.video import FRAME_EXTENSIONS

    extensions = read_extensions()
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(str(path), "does not exist")
        if TEST_SETS & {part.lower() for part in path.resolve().parts}:
            raise UsageError(f"{path}: is a test set ({', '.join(sorted(TEST_SETS))}); never train on it")
        if path.is_file():
            found.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d.lower() not in TEST_SETS and not d.startswith("."))
            here = Path(root)
            videos = [here / f for f in sorted(files) if Path(f).suffix.lower() in extensions]
            found.extend(videos)
            if not videos and any(Path(f).suffix.lower() in FRAME_EXTENSIONS for f in files):
                found.append(here)
    return found


def load_clip(path: str | os.PathLike, max_frames: int | None = None, folder_fps: Fraction = Fraction(30)) -> Clip:
    """Decode a video or frame folder into memory (at most ``max_frames`` frames)."""
    images = []
    from stvup.video import iter_frames
    from stvup.video.color import eight_bit

    with iter_frames(path, folder_fps) as stream:
        rate = stream.info.rate
        for frame in stream:
            images.append(eight_bit(frame.image))  # training works in 8 bits, whatever the source's depth
            if max_frames is not None and len(images) >= max_frames:
                break
    frames = np.stack(images)
    return Clip(str(path), frames, Fraction(rate), shot_starts(frames))


def load_clips(
    paths: Iterable[str | os.PathLike],
    max_frames: int | None = None,
    on_clip: Callable[[str, Clip | None, str | None], None] | None = None,
) -> list[Clip]:
    """Every usable source under ``paths``; sources that fail to decode are reported through ``on_clip`` and skipped."""
    clips = []
    for path in find_sources(paths):
        try:
            clip = load_clip(path, max_frames)
        except InputError as exc:
            if on_clip is not None:
                on_clip(str(path), None, str(exc))
            continue
        clips.append(clip)
        if on_clip is not None:
            on_clip(str(path), clip, None)
    return clips
