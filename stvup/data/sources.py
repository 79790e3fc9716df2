"""Training footage: videos and frame folders decoded once into memory, split at scene cuts, and still photographs.

Samples need 6·stride + 1 consecutive source frames of one shot, so every source is decoded in full (as 8-bit RGB,
which is what it holds anyway) and cut into shots at hard cuts (:mod:`stvup.upscaling.shots`, as when upscaling).
Folders named like a test set (``vid4``) are never used for training: scores on them would mean nothing afterwards.
Neither are the clips the selection set holds out (:data:`HELD_OUT`, :mod:`stvup.evaluation.selection`), so that a
training cycle is always judged on footage it has not seen.

Photographs (:class:`Photo`) are sources too: they have no motion of their own, so the sampler cuts a seven-frame
window out of one along a camera path it draws (:mod:`stvup.data.camera`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np

from stvup.errors import InputError, UsageError
from stvup.upscaling.shots import shot_starts

T = TypeVar("T")

#: Folder names that hold evaluation data; training refuses them.
TEST_SETS = frozenset({"vid4"})

#: Clips and frame folders of the training footage (``../shared/training-footage``) and of Intel's sample videos that
#: the selection set scores (:mod:`stvup.evaluation.selection`): searches skip them, and naming one is an error.
HELD_OUT = frozenset({
    "dance-twirl", "car-roundabout", "kite-surf",  # DAVIS-2016 clips, 854×480
    "1007_YCTBBdbKSSg",  # handheld street market, 1920×1080 (aot-benchmark's demo)
    "mmyolo__demo.mp4",  # street, 1280×720
    "bottle-detection.mp4", "one-by-one-person-detection.mp4",  # Intel's held-out clips (README picture, model card)
})  # fmt: skip

#: Image files read as still photographs.
PHOTO_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})


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


def _check_trainable(path: Path) -> None:
    """Refuse a path given explicitly that is, or lies inside, a test set or a held-out clip."""
    parts = path.resolve().parts
    if TEST_SETS & {part.lower() for part in parts}:
        raise UsageError(f"{path}: is a test set ({', '.join(sorted(TEST_SETS))}); never train on it")
    if HELD_OUT & set(parts):
        raise UsageError(f"{path}: is held out for the selection set (stvup.data.sources.HELD_OUT); never train on it")


def _walk(path: Path) -> Iterable[tuple[Path, list[str]]]:
    """``(folder, sorted file names)`` under ``path``, leaving out test sets, held-out clips and hidden folders."""
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d.lower() not in TEST_SETS and d not in HELD_OUT and not d.startswith("."))
        yield Path(root), sorted(f for f in files if f not in HELD_OUT)


def find_sources(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Videos and frame folders under ``paths`` (searched recursively), skipping test sets and held-out clips.

    A path given explicitly that is, or lies inside, a test set or a held-out clip is an error rather than silently
    skipped.
    """
    from stvup.video import FRAME_EXTENSIONS

    extensions = read_extensions()

    def in_folder(here: Path, files: list[str]) -> list[Path]:
        videos = [here / f for f in files if Path(f).suffix.lower() in extensions]
        frames = not videos and any(Path(f).suffix.lower() in FRAME_EXTENSIONS for f in files)
        return videos + ([here] if frames else [])

    return _search(paths, lambda path: path, in_folder)


def _search(
    paths: Iterable[str | os.PathLike],
    named: Callable[[Path], Path],
    in_folder: Callable[[Path, list[str]], list[Path]],
) -> list[Path]:
    """What ``paths`` hold: a file named is ``named(file)`` (which may refuse it), a folder is searched recursively
    (``in_folder(folder, file names)`` for each, test sets and held-out clips passed over). A path that does not
    exist, or that is or lies inside a test set or a held-out clip, is an error."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(str(path), "does not exist")
        _check_trainable(path)
        if path.is_file():
            found.append(named(path))
            continue
        for here, files in _walk(path):
            found += in_folder(here, files)
    return found


@dataclass
class Photo:
    """One still photograph, ``image`` ``(h, w, 3)`` uint8, from which the sampler cuts moving windows."""

    path: str
    image: np.ndarray


def find_photos(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files under ``paths`` (files, or folders searched recursively), each one photograph; test sets and
    held-out clips are skipped, or refused when named."""

    def named(path: Path) -> Path:
        if path.suffix.lower() not in PHOTO_EXTENSIONS:
            raise InputError(str(path), f"is not a photograph ({', '.join(sorted(PHOTO_EXTENSIONS))})")
        return path

    return _search(
        paths, named, lambda here, files: [here / f for f in files if Path(f).suffix.lower() in PHOTO_EXTENSIONS]
    )


def load_photos(
    paths: Iterable[str | os.PathLike], on_photo: Callable[[str, Photo | None, str | None], None] | None = None
) -> list[Photo]:
    """Every photograph under ``paths`` as 8-bit RGB; files that fail to decode are reported through ``on_photo``
    and skipped."""
    from stvup.video.color import eight_bit
    from stvup.video.frames import read_image

    def load(path: Path) -> Photo:
        return Photo(str(path), np.ascontiguousarray(eight_bit(read_image(path))))

    return _load_each(find_photos(paths), load, on_photo)


def _load_each(
    paths: list[Path], load: Callable[[Path], T], report: Callable[[str, T | None, str | None], None] | None
) -> list[T]:
    """``load`` of every path; one that fails with an :class:`~stvup.errors.InputError` is reported and skipped."""
    loaded = []
    for path in paths:
        try:
            item = load(path)
        except InputError as exc:
            if report is not None:
                report(str(path), None, str(exc))
            continue
        loaded.append(item)
        if report is not None:
            report(str(path), item, None)
    return loaded


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
    return _load_each(find_sources(paths), lambda path: load_clip(path, max_frames), on_clip)
