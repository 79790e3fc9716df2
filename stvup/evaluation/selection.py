"""The selection set: a fixed set of seven-frame windows on which training cycles are judged before they ship.

A training cycle ends by scoring its weights here, against the shipped weights; it ships only if it wins
(:meth:`SelectionReport.verdict`). The windows are

* the eight Vimeo validation septuplets of ``../shared/data`` (``vimeo_septuplet/sequences/00001/0001`` … ``0008``,
  448×256, all seven frames), and
* four windows from each of five clips of the training footage (``../shared/training-footage``) that training never
  sees (:data:`stvup.data.sources.HELD_OUT`): three DAVIS clips at 854×480, a handheld 1080p street market and a 720p
  street. Each window is seven frames two apart (every other frame kept, as the real protocol does) and a fixed
  384×384 crop, spread over the clip's length.

Each window is degraded as the real protocol degrades video (antialiased bicubic ×4 on the block-centre grid, H.264
yuv420p with x264's ``medium`` preset at each CRF, :class:`~stvup.evaluation.protocol.Protocol`), and only its kept
frame is scored: the network's upsampled centre frame (Eq. 8), against bicubic's, Y PSNR with a border of ``scale``
pixels left out. The kept frame is what the space half makes and what warped new frames are made from. Everything
runs in fp32, so scores compare across machines and sessions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stvup.errors import InputError, UsageError
from stvup.evaluation.metrics import psnr
from stvup.evaluation.protocol import Protocol, read_clip

__all__ = [
    "HELD_OUT_CLIPS",
    "SELECTION_CRFS",
    "SelectionReport",
    "SelectionWindow",
    "kept_frame",
    "run_selection",
    "score_selection",
    "selection_windows",
]

VIMEO = "vimeo_septuplet/sequences/00001"
"""The Vimeo validation septuplets, under the data folder (``../shared/data``)."""
HELD_OUT_CLIPS = (
    "sequences/davis480/dance-twirl",
    "sequences/davis480/car-roundabout",
    "sequences/davis480/kite-surf",
    "sequences/aot-street/1007_YCTBBdbKSSg",
    "clips/mmyolo__demo.mp4",
)
"""The held-out clips, under the training-footage folder (what ``gather.sh`` lays out)."""
WINDOWS_PER_CLIP = 4
STRIDE = 2  # source frames between inputs: every other frame kept, as the real protocol keeps them
CROP = 384  # HR pixels of a window's side (96 LR pixels at ×4)
FRAMES = 7
SELECTION_CRFS = (0, 23, 32)
BICUBIC = "bicubic"


@dataclass
class SelectionWindow:
    """One window: ``frames`` the seven HR inputs ``(h, w, 3)`` uint8, the centre (index 3) is the target."""

    group: str
    name: str
    frames: list[np.ndarray]


def selection_windows(footage: str | os.PathLike, data: str | os.PathLike) -> list[SelectionWindow]:
    """The selection set's windows, read from the training footage and the data folder; always the same ones.

    Raises :class:`~stvup.errors.InputError` naming what is missing when a clip is not where it should be.
    """
    windows: list[SelectionWindow] = []
    vimeo = Path(data) / VIMEO
    for k in range(1, 9):
        folder = vimeo / f"{k:04d}"
        if not folder.is_dir():
            raise InputError(str(folder), "is missing: the selection set needs the 8 Vimeo validation septuplets")
        windows.append(SelectionWindow("vimeo", f"vimeo/{k:04d}", read_clip(folder)[:FRAMES]))
    for c, rel in enumerate(HELD_OUT_CLIPS):
        path = Path(footage) / rel
        if not path.exists():
            raise InputError(str(path), "is missing: lay out the training footage with gather.sh first")
        frames = read_clip(path)
        span = (FRAMES - 1) * STRIDE + 1
        h, w = frames[0].shape[:2]
        if len(frames) < span or min(h, w) < CROP:
            raise InputError(str(path), f"is too short or too small for {span} frames of {CROP} pixels")
        starts = np.linspace(0, len(frames) - span, WINDOWS_PER_CLIP).round().astype(int)
        rng = np.random.default_rng([52, c])  # fixed crops: the same windows in every session
        for k, start in enumerate(starts):
            y, x = int(rng.integers(0, h - CROP + 1)), int(rng.integers(0, w - CROP + 1))
            picked = [f[y : y + CROP, x : x + CROP] for f in frames[start : start + span : STRIDE]]
            windows.append(SelectionWindow(Path(rel).name, f"{Path(rel).name}/{k}", picked))
    return windows


def kept_frame(model: torch.nn.Module, lr: Sequence[np.ndarray]) -> np.ndarray:
    """The network's upsampled centre frame (Eq. 8) of seven LR frames ``(h, w, 3)`` uint8, as uint8, in fp32."""
    x = [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float() / 127.5 - 1 for f in lr]
    with torch.no_grad():
        feats = [model.encode(f) for f in x]
        out, _ = model.upsample_center(x[3], feats[3], model.fuse(feats))
    return ((out[0].float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    return y[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


@dataclass
class SelectionReport:
    """Y PSNR of every window's kept frame: ``scores[method][crf][window name]``; ``groups`` maps a window to its
    clip (``vimeo`` for the septuplets); ``reference``: the method the others are compared with, if any."""

    crfs: tuple[int, ...]
    groups: dict[str, str] = field(default_factory=dict)
    reference: str | None = None
    scores: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)

    def mean(self, method: str, crf: int, group: str | None = None) -> float:
        """Mean over the windows (of one ``group``, or all of them)."""
        values = [v for name, v in self.scores[method][crf].items() if group is None or self.groups[name] == group]
        return float(np.mean(values))

    @property
    def group_names(self) -> list[str]:
        return list(dict.fromkeys(self.groups.values()))

    def verdict(self, candidate: str, reference: str, gain: float = 0.05, tolerance: float = 0.05) -> tuple[bool, str]:
        """Whether ``candidate`` ships instead of ``reference``: its mean beats the reference's by at least ``gain``
        dB at CRF 0 and at CRF 23, and it loses by no more than ``tolerance`` dB on any clip's mean at any CRF (nor
        on the mean at any CRF). Returns the decision and one line that says why."""
        lines = []
        wins = True
        for crf in (c for c in (0, 23) if c in self.crfs):
            d = self.mean(candidate, crf) - self.mean(reference, crf)
            if d < gain:
                wins = False
                lines.append(f"CRF {crf} mean {d:+.3f} dB < +{gain}")
        worst, where = math.inf, ""
        for crf in self.crfs:
            for group in [None, *self.group_names]:
                d = self.mean(candidate, crf, group) - self.mean(reference, crf, group)
                if d < worst:
                    worst, where = d, f"{group or 'mean'} at CRF {crf}"
        if worst < -tolerance:
            wins = False
            lines.append(f"loses {worst:+.3f} dB on {where}")
        return wins, ("ships: " if wins else "does not ship: ") + ("; ".join(lines) or f"worst {worst:+.3f} on {where}")

    def to_markdown(self, reference: str | None = None) -> str:
        """Means per CRF and per clip for every method; with ``reference`` (default: the report's), each method's
        difference from it."""
        reference = reference or self.reference
        methods = list(self.scores)
        head = "| method | " + " | ".join(f"CRF {c}" for c in self.crfs) + " |"
        rows = [head, "|" + "---|" * (len(self.crfs) + 1)]
        for m in methods:
            cells = []
            for c in self.crfs:
                cell = f"{self.mean(m, c):.3f}"
                if reference and m != reference:
                    cell += f" ({self.mean(m, c) - self.mean(reference, c):+.3f})"
                cells.append(cell)
            rows.append(f"| {m} | " + " | ".join(cells) + " |")
        rows += ["", "| clip | " + " | ".join(f"{m}, CRF {c}" for c in self.crfs for m in methods) + " |",
                 "|" + "---|" * (len(self.crfs) * len(methods) + 1)]  # fmt: skip
        for g in self.group_names:
            rows.append(
                f"| {g} | " + " | ".join(f"{self.mean(m, c, g):.2f}" for c in self.crfs for m in methods) + " |"
            )
        return "\n".join(rows)

    def to_dict(self) -> dict:
        return {"crfs": list(self.crfs), "groups": self.groups, "reference": self.reference,
                "scores": {m: {str(c): v for c, v in by.items()} for m, by in self.scores.items()}}  # fmt: skip


def score_selection(
    windows: Sequence[SelectionWindow],
    models: Mapping[str, torch.nn.Module],
    crfs: Sequence[int] = SELECTION_CRFS,
    scale: int = 4,
    on_window: Callable[[int, int], None] | None = None,
) -> SelectionReport:
    """Kept-frame Y PSNR of each of ``models`` (STVUN networks, run in fp32 on the CPU) and of bicubic on every
    window at each CRF. ``on_window(done, total)`` reports progress."""
    report = SelectionReport(tuple(crfs))
    nets = {name: model.float().eval() for name, model in models.items()}
    for m in [*nets, BICUBIC]:
        report.scores[m] = {c: {} for c in crfs}
    total = len(windows) * len(crfs)
    for i, window in enumerate(windows):
        report.groups[window.name] = window.group
        truth = window.frames[FRAMES // 2]
        for j, crf in enumerate(crfs):
            lr = Protocol("real", "bicubic", crf).degrade(window.frames, scale)
            report.scores[BICUBIC][crf][window.name] = psnr(_bicubic(lr[3], scale), truth, scale, y=True)
            for name, net in nets.items():
                report.scores[name][crf][window.name] = psnr(kept_frame(net, lr), truth, scale, y=True)
            if on_window is not None:
                on_window(i * len(crfs) + j + 1, total)
    return report


def split_roots(roots: Sequence[str | os.PathLike]) -> tuple[Path, Path]:
    """``(footage, data)`` from two folders given in any order: the data folder is the one that holds the Vimeo
    septuplets (:data:`VIMEO`)."""
    paths = [Path(r) for r in roots]
    data = [p for p in paths if (p / VIMEO).is_dir()]
    if len(paths) != 2 or len(data) != 1:
        raise UsageError("the selection set reads two folders: the training footage (laid out by gather.sh) and the "
                         f"data folder that holds {VIMEO} (../shared/data)")  # fmt: skip
    return next(p for p in paths if p != data[0]), data[0]


def run_selection(
    roots: Sequence[str | os.PathLike],
    weights: str | os.PathLike | None = None,
    against: str | os.PathLike | None = "default",
    crfs: Sequence[int] = SELECTION_CRFS,
    on_window: Callable[[int, int], None] | None = None,
) -> tuple[SelectionReport, tuple[bool, str] | None]:
    """Scores ``weights`` (a file, checkpoint or shipped name) and the weights it would replace (``against``, the
    shipped default unless told; None for none) on the selection set read from ``roots`` (the training footage and
    the data folder, :func:`split_roots`). Returns the report and, when both are given, the verdict
    (:meth:`SelectionReport.verdict`): whether ``weights`` would ship instead of ``against``."""
    from stvup.upscaling.loader import load_upscaler

    footage, data = split_roots(roots)
    named = {str(w): w for w in (weights, against) if w is not None}
    if not named:
        named = {"default": "default"}
    models = {name: load_upscaler(w, device="cpu", precision="fp32", compile="off").model for name, w in named.items()}
    report = score_selection(selection_windows(footage, data), models, crfs, on_window=on_window)
    report.reference = None if against is None else str(against)
    verdict = None
    if weights is not None and against is not None and str(weights) != str(against):
        verdict = report.verdict(str(weights), str(against))
    return report, verdict
