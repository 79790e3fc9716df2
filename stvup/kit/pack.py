"""The kit's data pack: real training footage as small H.264 segments, with a manifest and checksums.

Measured on this project's footage (README, "Training on a GPU"): all 2,500 usable frames of ``../shared/data``
(Vid4 excluded), cropped to at most 512×512, take 21.3 MB as H.264 at CRF 14, 54× less than as raw 8-bit RGB
(1.15 GB), and the re-encoding keeps 40.5 dB RGB PSNR against the source (min 38.0 per segment), far above what the
×4 degradation keeps. PyAV's wheel alone would take 35 of the 64 MiB that travel, so the GPU machine decodes the
segments with OpenCV, which it has; here either decoder works (``decoder="auto"`` prefers OpenCV where installed,
so that a dry run reads the pack exactly as the GPU machine will).

Segments are single shots (footage is split at scene cuts first) of at most ``segment`` frames, cropped to at most
``max_side`` pixels a side at a seeded random place, and taken round-robin over the sources, so that a smaller
budget still samples every source.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from stvup.data.sources import Clip
from stvup.errors import InputError, UsageError

__all__ = ["MANIFEST", "PACK_FOLDER", "TRAIN_SETTINGS", "PackReport", "build_pack", "load_pack"]

PACK_FOLDER = "pack"
MANIFEST = "manifest.json"
TRAIN_SETTINGS = "train.json"
#: Fewest frames a segment may have: one training window at stride 2 (7 inputs, 13 source frames).
MIN_FRAMES = 13


@dataclass
class PackReport:
    """What :func:`build_pack` wrote: ``files`` segments, ``frames`` in all, ``bytes`` on disk, from ``sources``."""

    kit_dir: Path
    files: int
    frames: int
    bytes: int
    sources: int
    frames_available: int
    seconds: float


def _segments(clip: Clip, segment: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each piece of at most ``segment`` frames inside one shot (pieces under MIN_FRAMES go)."""
    bounds = [*clip.shot_starts, len(clip.frames)]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        for start in range(a, b, segment):
            stop = min(start + segment, b)
            if stop - start >= MIN_FRAMES:
                out.append((start, stop))
    return out


def build_pack(
    sources: Sequence[str | os.PathLike],
    kit_dir: str | os.PathLike,
    *,
    budget_mb: float = 40.0,
    crf: int = 14,
    max_side: int = 512,
    segment: int = 48,
    seed: int = 0,
    settings: dict | None = None,
    on_message: Callable[[str], None] | None = None,
) -> PackReport:
    """Writes ``kit_dir/pack/*.mp4``, ``kit_dir/pack/manifest.json`` and ``kit_dir/train.json`` (``settings``).

    ``sources``: training videos and folders (test sets are refused, as by ``stvup train``). The pack grows until
    the next segment would pass ``budget_mb`` megabytes. An existing pack in ``kit_dir`` is replaced only once the
    new one is complete.
    """
    from stvup.data.sources import load_clips
    from stvup.video import VideoWriter

    say = on_message or (lambda _m: None)
    began = time.perf_counter()
    if max_side < 64 or max_side % 4:
        raise UsageError(f"--max-side must be a multiple of 4 and at least 64, got {max_side}")
    if segment < MIN_FRAMES:
        raise UsageError(f"--segment must be at least {MIN_FRAMES} frames, got {segment}")
    clips = load_clips(sources, None, lambda path, clip, err: say(f"skipped {err}") if clip is None else None)
    if not clips:
        raise UsageError("no training video found in " + ", ".join(map(str, sources)))
    kit = Path(kit_dir)
    work = kit / f".{PACK_FOLDER}.partial-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=False)
    rng = np.random.default_rng(seed)
    queues = [[(clip, a, b) for a, b in _segments(clip, segment)] for clip in clips]
    available = sum(b - a for q in queues for _, a, b in q)
    budget = int(budget_mb * 1_000_000)
    files: list[dict] = []
    total = 0
    try:
        full = False
        for round_ in range(max((len(q) for q in queues), default=0)):
            if full:
                break
            for i in rng.permutation(len(queues)):
                if round_ >= len(queues[i]):
                    continue
                clip, a, b = queues[i][round_]
                h, w = clip.frames.shape[1:3]
                ch, cw = min(h, max_side) // 4 * 4, min(w, max_side) // 4 * 4
                # Even offsets keep the source's 4:2:0 chroma sites, so re-encoding does not resample chroma.
                y0, x0 = 2 * int(rng.integers(0, (h - ch) // 2 + 1)), 2 * int(rng.integers(0, (w - cw) // 2 + 1))
                name = f"{len(files):04d}.mp4"
                path = work / name
                with VideoWriter(path, width=cw, height=ch, rate=clip.rate, crf=crf, preset="slow",
                                 pix_fmt="yuv420p") as out:  # fmt: skip
                    for image in clip.frames[a:b, y0 : y0 + ch, x0 : x0 + cw]:
                        out.write(np.ascontiguousarray(image))
                size = path.stat().st_size
                if total + size > budget:
                    path.unlink()
                    full = True
                    break
                total += size
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                rate = Fraction(clip.rate)
                files.append({"name": name, "frames": b - a, "rate": f"{rate.numerator}/{rate.denominator}",
                              "width": cw, "height": ch, "source": Path(clip.path).name, "start": a,
                              "crop": [x0, y0], "bytes": size, "sha256": digest})  # fmt: skip
        if not files:
            raise UsageError(f"not one segment fits in {budget_mb} MB; raise --budget")
        manifest = {"version": 1, "crf": crf, "max_side": max_side, "bytes": total, "files": files,
                    "sources": sorted({Path(c.path).name for c in clips})}  # fmt: skip
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        target = kit / PACK_FOLDER
        if target.exists():
            old = kit / f".{PACK_FOLDER}.old-{os.getpid()}"
            target.rename(old)
            shutil.rmtree(old)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work)
    (kit / TRAIN_SETTINGS).write_text(json.dumps(settings or {}, indent=1))
    frames = sum(f["frames"] for f in files)
    say(f"pack: {len(files)} segments, {frames} frames, {total / 1e6:.1f} MB from {len(clips)} sources")
    return PackReport(kit, len(files), frames, total, len(clips), available, time.perf_counter() - began)


def _decode_opencv(path: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(str(path), "OpenCV cannot open it")
    frames = []
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return frames


def _decode_pyav(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _pick_decoder(decoder: str) -> Callable[[Path], list[np.ndarray]]:
    if decoder not in ("auto", "opencv", "pyav"):
        raise UsageError(f"unknown decoder {decoder!r}; use auto, opencv or pyav")
    if decoder in ("auto", "opencv"):
        try:
            import cv2  # noqa: F401
        except ImportError:
            if decoder == "opencv":
                raise UsageError("OpenCV is not installed (pip install opencv-python-headless)") from None
        else:
            return _decode_opencv
    return _decode_pyav


def load_pack(kit_dir: str | os.PathLike, decoder: str = "auto") -> list[Clip]:
    """The pack's segments as training clips, after checking every file against the manifest.

    ``decoder``: ``opencv``, ``pyav`` or ``auto`` (OpenCV where installed, else PyAV).
    """
    pack = Path(kit_dir) / PACK_FOLDER
    manifest_path = pack / MANIFEST
    if not manifest_path.is_file():
        raise InputError(str(manifest_path), "no data pack there (build one with `stvup kit pack`)")
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["files"]
    except (ValueError, KeyError) as exc:
        raise InputError(str(manifest_path), f"not a pack manifest ({exc})") from None
    decode = _pick_decoder(decoder)
    clips = []
    for entry in entries:
        path = pack / Path(entry["name"]).name
        if not path.is_file():
            raise InputError(str(path), "missing from the pack")
        if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            raise InputError(str(path), "damaged (SHA-256 differs from the manifest)")
        frames = decode(path)
        if len(frames) != entry["frames"]:
            raise InputError(str(path), f"decoded {len(frames)} frames, the manifest says {entry['frames']}")
        clips.append(Clip(str(path), np.stack(frames), Fraction(entry["rate"]), [0]))
    return clips
