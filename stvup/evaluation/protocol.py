"""Quality evaluation with the STVUN paper's protocol (section 4.1) or real video's, side by side with the
alternatives.

Two protocols (:class:`Protocol`) make the LR input from HR ground truth:

* ``paper``: the paper's Gaussian ×scale (:func:`duf_downsample`, LR pixel i on HR pixel scale·i), rounded to 8 bits.
* ``real``: as cameras, phones and transcoders make low-resolution video: an antialiased bicubic (or area) reduction
  on the block-centre grid, then H.264 (yuv420p, x264's ``medium`` preset) at a CRF (0 keeps only the 4:2:0 chroma;
  23 is the common web case; COMISR reports 15, 25 and 35). The baseline that counts here is ``bicubic``, which
  plain players and scalers use and which is on the right grid.

For every clip the even-numbered frames are degraded and fed in; the ×2-time output is compared with every
ground-truth frame from the first to the last input: the even ("kept") frames score the spatial path, the odd
("new") frames the space-time path (T_in = 0.5).
``time = N`` generalises it to ×N time: every N-th frame is input, and the N − 1 frames between two inputs are new
(T_in = j/N), scored together and per time (parts ``t=j/N``), since a network trained at T_in = 1/2 may do well
there and badly at 1/4.
PSNR and SSIM are measured on RGB and on Y (:mod:`stvup.evaluation.metrics`), with ``crop`` border pixels left out, per
frame, then averaged per clip, and the clip means averaged into the table's mean. Each method's **best global shift** is
measured too (:func:`best_shift`): the whole-pixel offset of its output that matches the ground truth best, which
is 0 for an output on the right grid.

Methods (names for ``methods``; they live in :mod:`stvup.evaluation.methods`):

* ``stvup``: the model through :class:`~stvup.upscaling.pipeline.Upscaler`, exactly as ``stvup upscale`` runs it
  (new frames warped or from the joint decoder, as the upscaler's ``new_frames`` says).
* ``bicubic``: bicubic ×scale of each input; new frames are the average of their two neighbours (frame blending).
* ``bicubic-aligned``: the same, but sampling the LR frame where the DUF degradation took each LR pixel from (LR
  pixel i sits on HR pixel scale·i, not on the centre of an HR block): the fairest classical baseline, since plain
  bicubic is also penalised for a (scale − 1)/2-pixel shift it cannot know about.
* ``ffmpeg``: FFmpeg's lanczos scaling and motion-compensated ``minterpolate``, via imageio-ffmpeg's binary.
* ``ts``, ``st`` and ``avg`` (two-stream models): each stream of the second paper's network, and the mean of
  their scores (its Table 1 reports both streams and their average).
* ``v-f`` and ``f-v``: the paper's sequential baselines built from the same model's parts. V→F upsamples every
  input with the spatial path, then interpolates the HR frames with the model's flow estimated on them (PWC-Net, or
  the classical flow; Eqs. 4 and 6 on pixels); F→V interpolates the LR frames first (Eq. 6) and then upsamples the
  doubled sequence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stvup.data.degrade import compress_clip, duf_downsample, quantize, reduce
from stvup.errors import InputError, OutputError, UsageError
from stvup.evaluation.methods import output_length, run_method
from stvup.evaluation.metrics import psnr, ssim, to_y
from stvup.model import TwoStream
from stvup.model.weights import atomic_target
from stvup.upscaling.pipeline import Upscaler
from stvup.video import FRAME_EXTENSIONS, iter_frames

METHODS = ("stvup", "bicubic", "bicubic-aligned", "ffmpeg", "v-f", "f-v", "ts", "st", "avg")
DEFAULT_METHODS = ("stvup", "bicubic", "bicubic-aligned", "ffmpeg", "v-f", "f-v")
TWO_STREAM_METHODS = ("ts", "st", "avg", "bicubic", "bicubic-aligned", "ffmpeg")
LABELS = {
    "stvup": "stvup (as stvup upscale runs it)",
    "bicubic": "bicubic + frame blending",
    "bicubic-aligned": "bicubic on the DUF grid + frame blending",
    "ffmpeg": "FFmpeg lanczos + minterpolate",
    "v-f": "V→F (STVUN spatial, then interpolation with the model's flow on the HR frames)",
    "f-v": "F→V (interpolation with the model's flow, then STVUN spatial)",
    "ts": "two-stream F_T→S",
    "st": "two-stream F_S→T",
    "avg": "two-stream, mean of both streams",
}
MODEL_METHODS = frozenset({"stvup", "v-f", "f-v", "ts", "st", "avg"})
STVUN_ONLY = frozenset({"v-f", "f-v"})
TWO_STREAM_ONLY = frozenset({"ts", "st", "avg"})
METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
#: The part of a clip's scores that rates the output as a sequence: ``tpsnr_y`` (:func:`temporal_psnr`) and
#: ``pulse_y``, kept minus new frames' Y PSNR (a video whose every other frame is softer pulses).
TEMPORAL = "temporal"
TEMPORAL_METRICS = ("tpsnr_y", "pulse_y")
PAPER_METHODS = DEFAULT_METHODS
REAL_METHODS = ("stvup", "bicubic", "ffmpeg")
REAL_CRFS = (0, 23, 32)
SHIFT_RANGE = 3  # output pixels searched each way by best_shift


@dataclass(frozen=True)
class Protocol:
    """How LR input is made from ground truth: ``paper`` (DUF Gaussian) or ``real`` (``reduction`` ``bicubic`` or
    ``area``, antialiased on the block-centre grid, then H.264 yuv420p at ``crf``; ``crf=None`` keeps 8-bit RGB)."""

    name: str = "paper"
    reduction: str = "bicubic"
    crf: int | None = 0

    def __post_init__(self) -> None:
        if self.name not in ("paper", "real"):
            raise UsageError(f"unknown protocol {self.name!r}; use paper or real")
        if self.reduction not in ("bicubic", "area"):
            raise UsageError(f"unknown reduction {self.reduction!r}; use bicubic or area")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise UsageError(f"a CRF lies within 0..51, got {self.crf}")

    @property
    def label(self) -> str:
        if self.name == "paper":
            return "paper (gaussian 13x13 sigma=0.4*scale, subsample: DUF)"
        codec = "8-bit RGB" if self.crf is None else f"H.264 yuv420p CRF {self.crf}"
        return f"real ({self.reduction} antialiased, block-centre grid; {codec})"

    @property
    def default_methods(self) -> tuple[str, ...]:
        return PAPER_METHODS if self.name == "paper" else REAL_METHODS

    def degrade(self, frames: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
        """LR input of HR ``frames`` (uint8 ``(h, w, 3)``, multiples of ``scale``), uint8 ``(h/s, w/s, 3)``."""
        if self.name == "paper":
            return degrade_frames(frames, scale)
        hr = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
        lr = quantize(reduce(hr, scale, self.reduction))
        if self.crf is not None:
            # The clip is encoded as one stream, as a transcoder would: I, P and B frames, x264's default preset.
            lr = compress_clip(lr, self.crf, preset="medium")
        return list((lr * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())


def write_real_input(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    scale: int = 4,
    reduction: str = "bicubic",
    crf: int = 23,
    max_frames: int | None = None,
) -> tuple[int, int, int]:
    """Write ``output``, a low-resolution H.264 (yuv420p) video made from ``source`` the way the real protocol makes
    its input: each frame reduced ×``scale`` (antialiased ``reduction`` on the block-centre grid; sizes cropped to a
    multiple of ``2·scale``) and encoded at ``crf`` with x264's ``medium`` preset, audio left out. What a phone or a
    web transcoder would deliver, for trying stvup on footage whose full-resolution original is known. Returns the
    frame count and the LR width and height."""
    from stvup.video import probe
    from stvup.video.writer import VideoWriter

    info = probe(source)
    h, w = info.height - info.height % (2 * scale), info.width - info.width % (2 * scale)
    count = 0
    with VideoWriter(output, width=w // scale, height=h // scale, rate=info.rate, codec="libx264", crf=crf,
                     preset="medium", pix_fmt="yuv420p", copy_audio=False, copy_subtitles=False) as writer:  # fmt: skip
        for image in read_clip(source, max_frames):
            hr = torch.from_numpy(np.ascontiguousarray(image[:h, :w])).permute(2, 0, 1).float()[None] / 255
            lr = (quantize(reduce(hr, scale, reduction)) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
            writer.write(np.ascontiguousarray(lr))
            count += 1
    return count, w // scale, h // scale


@dataclass
class EvalProgress:
    clip: str
    method: str
    clip_index: int
    clips: int


@dataclass
class EvalReport:
    """Scores per method and clip: ``scores[method][clip][part][metric]``, part in kept / new / all."""

    methods: list[str]
    clips: list[str]
    scores: dict[str, dict[str, dict[str, dict[str, float]]]]
    protocol: dict[str, object] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    shifts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def mean(self, method: str, part: str, metric: str) -> float:
        values = [self.scores[method][c][part][metric] for c in self.clips if c in self.scores.get(method, {})]
        return float(np.mean(values)) if values else float("nan")

    def parts(self) -> list[str]:
        """kept, new, all, and at ×N time (N > 2) each ``t=j/N``."""
        return ["kept", "new", "all", *time_parts(int(self.protocol.get("time") or 2))]

    def to_dict(self) -> dict:
        means = {m: {p: {k: self.mean(m, p, k) for k in METRICS} for p in self.parts()}
                 for m in self.methods if m in self.scores}  # fmt: skip
        for m, parts in means.items():
            parts[TEMPORAL] = {k: self.mean(m, TEMPORAL, k) for k in TEMPORAL_METRICS}
        return {"protocol": self.protocol, "methods": self.methods, "clips": self.clips, "mean": means,
                "per_clip": self.scores, "best_shift": self.shifts, "errors": self.errors}  # fmt: skip

    def to_markdown(self) -> str:
        """Two tables: the means (Y and RGB; kept, new, all frames) and the Y scores of every clip."""
        lines = [
            "| method | kept Y | new Y | all Y | kept RGB | new RGB | all RGB |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in self.methods:
            if m not in self.scores:
                continue
            cells = [f"{self.mean(m, p, 'psnr_' + s):.2f} / {self.mean(m, p, 'ssim_' + s):.4f}"
                     for s in ("y", "rgb") for p in ("kept", "new", "all")]  # fmt: skip
            lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
        lines += ["", "| method | clip | kept Y | new Y | all Y |", "|---|---|---|---|---|"]
        for m in self.methods:
            for c in self.clips:
                s = self.scores.get(m, {}).get(c)
                if s is None:
                    continue
                cells = [f"{s[p]['psnr_y']:.2f} / {s[p]['ssim_y']:.4f}" for p in ("kept", "new", "all")]
                lines.append(f"| {m} | {c} | " + " | ".join(cells) + " |")
        time = int(self.protocol.get("time") or 2)
        phases = time_parts(time)
        if phases:
            lines += ["", "| method | " + " | ".join(f"{p} Y" for p in phases) + " |", "|---" * (len(phases) + 1) + "|"]
            for m in self.methods:
                if m in self.scores:
                    cells = [f"{self.mean(m, p, 'psnr_y'):.2f} / {self.mean(m, p, 'ssim_y'):.4f}" for p in phases]
                    lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
        lines += ["", "| method | tPSNR Y (higher: less flicker) | pulse: kept − new Y |", "|---|---|---|"]
        for m in self.methods:
            if m in self.scores:
                tp, pulse = (self.mean(m, TEMPORAL, k) for k in TEMPORAL_METRICS)
                lines.append(f"| {LABELS.get(m, m)} | {tp:.2f} | {pulse:+.2f} |")
        if self.shifts:
            lines += ["", "| method | best global shift (dy, dx), output pixels, per clip |", "|---|---|"]
            for m in self.methods:
                if self.shifts.get(m):
                    cells = ", ".join(f"{c} ({dy}, {dx})" for c, (dy, dx) in self.shifts[m].items())
                    lines.append(f"| {m} | {cells} |")
        for m, why in self.errors.items():
            lines.append(f"\n{m} failed: {why}")
        if time == 2:
            frames = "×2 time; kept = even frames (inputs), new = odd frames (T_in = 0.5)"
        else:
            frames = f"×{time} time; kept = frames 0, {time}, {2 * time}, … (inputs), new = the rest (T_in = j/{time})"
        crop, scale = self.protocol.get("crop"), self.protocol.get("scale")
        note = f"PSNR (dB) / SSIM, borders of {crop} px cropped; ×{scale} space, {frames}."
        if self.protocol.get("degradation"):
            note += f" Input: {self.protocol['degradation']}."
        if (self.protocol.get("ensemble") or 1) > 1:
            note += f" The model's passes averaged over {self.protocol['ensemble']} mirrored copies (--ensemble)."
        return note + "\n\n" + "\n".join(lines) + "\n"


# -- clips ---------------------------------------------------------------------------------------------------------


def find_clips(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Clips named by ``paths``: a video, a frame folder, or a folder of those (e.g. ``vid4/GT``)."""
    from stvup.data.sources import read_extensions

    extensions = read_extensions()
    clips: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(str(path), "does not exist")
        if path.is_file() or _has_frames(path):
            clips.append(path)
            continue
        inside = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
        found = [p for p in inside if (p.is_file() and p.suffix.lower() in extensions)
                 or (p.is_dir() and _has_frames(p))]  # fmt: skip
        if not found:
            raise InputError(str(path), "holds no video or frame folder")
        clips.extend(found)
    return clips


def _has_frames(folder: Path) -> bool:
    return any(p.suffix.lower() in FRAME_EXTENSIONS for p in folder.iterdir())


def read_clip(path: str | os.PathLike, max_frames: int | None = None) -> list[np.ndarray]:
    """All frames of a video or frame folder as uint8 ``(h, w, 3)`` arrays (deep sources scaled to 8 bits)."""
    from stvup.video.color import eight_bit

    frames = []
    with iter_frames(path) as stream:
        for f in stream:
            frames.append(eight_bit(f.image))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return frames


def degrade_frames(frames: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
    """The paper's LR input: DUF-downsampled frames, rounded to 8 bits (frames are cropped to a multiple of scale)."""
    out = []
    for f in frames:
        h, w = f.shape[0] - f.shape[0] % scale, f.shape[1] - f.shape[1] % scale
        x = torch.from_numpy(np.ascontiguousarray(f[:h, :w])).permute(2, 0, 1).float()
        out.append(duf_downsample(x, scale).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    return out


# -- scoring -------------------------------------------------------------------------------------------------------


def time_parts(time: int) -> list[str]:
    """Names of the per-time parts at ×``time``: ``t=1/N`` … ``t=(N−1)/N``; none at ×2, where "new" is that time."""
    return [f"t={j}/{time}" for j in range(1, time)] if time > 2 else []


def score_frames(
    outputs: Sequence[np.ndarray], truth: Sequence[np.ndarray], crop: int, time: int = 2
) -> dict[str, dict[str, float]]:
    """Per-part means of every metric; ``outputs[i]`` is compared with ``truth[i]`` (kept: i a multiple of
    ``time``, new: the others; at ``time`` > 2 also each time ``t=j/time`` on its own)."""
    if len(outputs) < len(truth):
        raise ValueError(f"method produced {len(outputs)} frames, {len(truth)} needed")
    per_frame = []
    for out, gt in zip(outputs, truth):
        per_frame.append({
            "psnr_y": psnr(out, gt, crop, y=True), "ssim_y": ssim(out, gt, crop, y=True),
            "psnr_rgb": psnr(out, gt, crop), "ssim_rgb": ssim(out, gt, crop),
        })  # fmt: skip
    parts = {"kept": per_frame[0::time], "new": [f for i, f in enumerate(per_frame) if i % time], "all": per_frame}
    parts.update({name: per_frame[j::time] for j, name in enumerate(time_parts(time), start=1)})
    scores = {p: {k: float(np.mean([f[k] for f in fs])) for k in METRICS} for p, fs in parts.items() if fs}
    if "new" in scores:
        scores[TEMPORAL] = {
            "tpsnr_y": temporal_psnr(outputs[: len(truth)], truth, crop),
            "pulse_y": scores["kept"]["psnr_y"] - scores["new"]["psnr_y"],
        }
    return scores


def temporal_psnr(outputs: Sequence[np.ndarray], truth: Sequence[np.ndarray], crop: int) -> float:
    """tPSNR: the PSNR (dB, Y) of the changes from each frame to the next against the ground truth's changes, over
    the whole clip. Higher means the output changes over time as the truth does: flicker, a frame that jumps, or every
    other frame softer than its neighbours all lower it, however good each frame is on its own."""

    def y(image: np.ndarray) -> np.ndarray:
        luma = to_y(image).numpy()
        return luma[crop:-crop, crop:-crop] if crop else luma

    out, gt = [y(o) for o in outputs], [y(g) for g in truth]
    errors = [float(np.mean(((b - a) - (d - c)) ** 2)) for a, b, c, d in zip(out[:-1], out[1:], gt[:-1], gt[1:])]
    mse = float(np.mean(errors)) if errors else float("nan")
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def best_shift(
    outputs: Sequence[np.ndarray], truth: Sequence[np.ndarray], crop: int, most: int = SHIFT_RANGE, frames: int = 8
) -> tuple[int, int]:
    """The whole-pixel offset ``(dy, dx)`` at which ``outputs`` match ``truth`` best (least mean squared Y error over
    up to ``frames`` evenly spread frames, offsets up to ``most`` pixels each way): ``(0, 0)`` for an output on the
    right grid. Output pixel ``(y + dy, x + dx)`` is compared with ground-truth pixel ``(y, x)``."""
    pick = np.unique(np.linspace(0, min(len(outputs), len(truth)) - 1, frames).round().astype(int))
    margin = max(crop, most)
    errors = np.zeros((2 * most + 1, 2 * most + 1))
    for i in pick:
        out, gt = to_y(outputs[i]).numpy(), to_y(truth[i]).numpy()
        h, w = gt.shape
        ref = gt[margin : h - margin, margin : w - margin]
        for a, dy in enumerate(range(-most, most + 1)):
            for b, dx in enumerate(range(-most, most + 1)):
                moved = out[margin + dy : h - margin + dy, margin + dx : w - margin + dx]
                errors[a, b] += float(np.mean((moved - ref) ** 2))
    a, b = np.unravel_index(int(np.argmin(errors)), errors.shape)
    return int(a) - most, int(b) - most


def evaluate(
    clips: Sequence[str | os.PathLike],
    *,
    methods: Sequence[str] | None = None,
    upscaler: Upscaler | None = None,
    scale: int = 4,
    crop: int | None = None,
    max_frames: int | None = None,
    time: int = 2,
    protocol: Protocol | None = None,
    on_progress: Callable[[EvalProgress], None] | None = None,
) -> EvalReport:
    """Evaluate ``methods`` on ``clips`` (videos or frame folders of HR ground truth) with ``protocol`` (default: the
    paper's; :class:`Protocol` ``("real", crf=23)`` for web video).

    ``upscaler`` runs the model methods (``stvup``, ``v-f``, ``f-v``; ``ts``, ``st``, ``avg`` for a two-stream
    model); ``methods`` defaults to :data:`DEFAULT_METHODS`, or :data:`TWO_STREAM_METHODS` for a two-stream model.
    ``crop`` defaults to ``scale`` pixels. ``time``: the frame-rate factor (2, the paper's: even frames in, odd
    frames new; N: every N-th frame in). A method that fails (e.g. no FFmpeg binary) is reported in ``errors``
    and left out, not fatal.
    """
    protocol = protocol or Protocol()
    if methods is None:
        two = upscaler is not None and isinstance(upscaler.model, TwoStream)
        methods = TWO_STREAM_METHODS if two else protocol.default_methods
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if upscaler is None and MODEL_METHODS & set(methods):
        raise UsageError("the model methods (" + ", ".join(sorted(MODEL_METHODS & set(methods))) + ") need weights")
    if upscaler is not None:
        is_two = isinstance(upscaler.model, TwoStream)
        wrong = sorted((STVUN_ONLY if is_two else TWO_STREAM_ONLY) & set(methods))
        if wrong:
            kind = "an STVUN" if is_two else "a two-stream model"
            raise UsageError(f"method {wrong[0]} needs {kind}; the weights are {'two-stream' if is_two else 'STVUN'}")
    if upscaler is not None and upscaler.space != scale:
        raise UsageError(f"the upscaler makes ×{upscaler.space}; evaluate it with scale {upscaler.space}")
    if isinstance(time, bool) or not isinstance(time, int) or time < 2:
        raise UsageError(f"time must be an integer of at least 2, got {time!r}")
    crop = scale if crop is None else crop
    names = [_clip_name(Path(c)) for c in clips]
    report = EvalReport(list(methods), names, {m: {} for m in methods}, protocol={
        "scale": scale, "time": time, "crop": crop, "degradation": protocol.label, "protocol": protocol.name,
        "reduction": protocol.reduction if protocol.name == "real" else None,
        "crf": protocol.crf if protocol.name == "real" else None,
        "input": "even frames" if time == 2 else f"frames 0, {time}, {2 * time}, …", "y": "BT.601 studio range",
        "max_frames": max_frames,
        "ensemble": len(upscaler.ensemble) if upscaler is not None else None,
    })  # fmt: skip
    for ci, (path, name) in enumerate(zip(clips, names)):
        hr = read_clip(path, max_frames)
        if len(hr) < time + 1:
            raise InputError(str(path), f"has {len(hr)} frames; the protocol at ×{time} time needs at least {time + 1}")
        hr = [f[: f.shape[0] - f.shape[0] % scale, : f.shape[1] - f.shape[1] % scale] for f in hr]
        lr = protocol.degrade(hr[0::time], scale)
        truth = hr[: output_length(len(lr), time)]
        for method in methods:
            if method in report.errors or method == "avg":
                continue
            if on_progress is not None:
                on_progress(EvalProgress(name, method, ci, len(clips)))
            try:
                outputs = run_method(method, lr, scale, upscaler, time)
            except UsageError as exc:
                if method != "ffmpeg":
                    raise
                report.errors[method] = str(exc)
                continue
            report.scores[method][name] = score_frames(outputs, truth, crop, time)
            report.shifts.setdefault(method, {})[name] = best_shift(outputs, truth, crop)
        if "avg" in methods:
            for method in ("ts", "st"):
                if name not in report.scores.get(method, {}):
                    outputs = run_method(method, lr, scale, upscaler, time)
                    report.scores.setdefault(method, {})[name] = score_frames(outputs, truth, crop, time)
            ts, st = report.scores["ts"][name], report.scores["st"][name]
            report.scores["avg"][name] = {p: {k: (ts[p][k] + st[p][k]) / 2 for k in ts[p]} for p in ts}
    report.scores = {m: s for m, s in report.scores.items() if s and (m in methods)}
    report.shifts = {m: s for m, s in report.shifts.items() if m in report.scores}
    return report


def evaluate_protocols(clips: Sequence[str | os.PathLike], protocols: Sequence[Protocol], **kwargs) -> list[EvalReport]:
    """:func:`evaluate` once per protocol (e.g. the real protocol at CRF 0, 23 and 32); ``kwargs`` as there."""
    return [evaluate(clips, protocol=p, **kwargs) for p in protocols]


def gains_markdown(reports: Sequence[EvalReport], method: str = "stvup") -> str:
    """One row per report (protocol): ``method``'s Y PSNR on kept and new frames, its gain over bicubic + frame
    blending on the worst clip and on average, its gain over FFmpeg on average, and its best global shifts."""
    lines = ["| input | kept Y | new Y | vs bicubic, worst clip (kept / new) | vs bicubic, mean | vs FFmpeg, mean "
             "| best shift |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in reports:
        if method not in r.scores:
            continue
        kept, new = (r.mean(method, p, "psnr_y") for p in ("kept", "new"))
        cells = [str(r.protocol.get("degradation")), f"{kept:.2f}", f"{new:.2f}"]
        for base in ("bicubic", "ffmpeg"):
            if base not in r.scores:
                cells += ["–", "–"] if base == "bicubic" else ["–"]
                continue
            common = [c for c in r.clips if c in r.scores[base] and c in r.scores[method]]
            gain = {p: [r.scores[method][c][p]["psnr_y"] - r.scores[base][c][p]["psnr_y"] for c in common]
                    for p in ("kept", "new")}  # fmt: skip
            if base == "bicubic":
                cells.append(f"{min(gain['kept']):+.2f} / {min(gain['new']):+.2f}")
            cells.append(f"{np.mean(gain['kept']):+.2f} / {np.mean(gain['new']):+.2f}")
        shifts = sorted(set(r.shifts.get(method, {}).values()))
        cells.append(", ".join(f"({dy}, {dx})" for dy, dx in shifts) or "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _clip_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def report_texts(report: EvalReport | Sequence[EvalReport]) -> tuple[str, str]:
    """The Markdown and JSON texts of one report or of several (one per protocol)."""
    if not isinstance(report, Sequence):  # one report: an EvalReport, or another with the same two methods
        return report.to_markdown(), json.dumps(report.to_dict(), indent=2)
    parts = [gains_markdown(report)] + [f"### {r.protocol.get('degradation')}\n\n{r.to_markdown()}" for r in report]
    return "\n".join(parts), json.dumps([r.to_dict() for r in report], indent=2)


def prepare_report(*paths: str | os.PathLike | None) -> None:
    """Makes the folders of the report files, or fails with one line naming the file.

    Called before the scores are computed, so that a report that cannot be written fails at once, not after minutes
    of evaluation whose results would be lost.
    """
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        if path.is_dir():
            raise OutputError(path, "is a folder, not a file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(path, f"cannot make its folder ({exc.strerror or exc})") from None
        if not os.access(path.parent, os.W_OK):
            raise OutputError(path, "its folder is not writable")


def write_report(
    report: EvalReport | Sequence[EvalReport],
    markdown: str | os.PathLike | None,
    json_path: str | os.PathLike | None,
) -> None:
    """Write the Markdown and/or JSON report atomically (making their folders first); several reports (one per
    protocol) go into one Markdown file after a summary of the gains, and into one JSON list."""
    prepare_report(markdown, json_path)
    md, data = report_texts(report)
    for path, text in ((markdown, md), (json_path, data)):
        if path is None:
            continue
        try:
            with atomic_target(path) as tmp:
                tmp.write_text(text)
        except OSError as exc:
            raise OutputError(path, f"cannot be written ({exc.strerror or exc})") from None
