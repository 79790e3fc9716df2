"""The flow check: how well each optical flow stvup can use finds motion whose answer is known.

Scores on real video say that new frames are wrong where motion is large, not why. This check isolates the flow.
From real frames (validation footage: never Vid4, never training clips) it makes pairs of HR frames whose motion
is set, so the true flow of every pixel is known:

* ``shift``: the whole frame moves by a given vector (a camera pan), from sub-pixel to 24 output pixels;
* ``zoom-rotate``: the frame zooms and turns about its centre (a camera zoom or roll);
* ``objects``: one to three pieces cut from other frames move over a background that moves too, covering and
  uncovering it (occlusions), as in FlyingChairs.

Every pair is made with both frames resampled from the source (never one pristine and one resampled), then degraded
as real video is: an antialiased bicubic ×scale reduction on the block-centre grid, 8 bits, and H.264 (yuv420p,
x264 ``medium``) at each CRF. Each flow then estimates ``f_A→B`` and ``f_B→A`` on the LR frames, and the check
reports the **end-point error in output pixels** per motion size (pixels binned by the length of their true
motion), against zero flow. The truth at an LR pixel is the mean true flow of its scale×scale HR block; pixels
whose match leaves the frame are left out.

It also reports how well each flow **interpolates an LR frame from its neighbours** on real motion (frames i and
i + 2 of each clip give frame i + 1, Eqs. 4 and 6 at T_in = 1/2; PSNR on Y against the clean reduction of frame
i + 1), which is what the network's new frames are built on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from stvup.data.degrade import compress_clip, quantize, reduce
from stvup.upscaling.warped import warp_outputs

__all__ = [
    "BINS",
    "KINDS",
    "FlowCheckReport",
    "FlowPair",
    "flow_check",
    "make_pairs",
]

#: Motion sizes, output pixels: the edges of the bins pixels are sorted into by the length of their true motion.
BINS = (0.0, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0)
#: The kinds of motion a pair can have.
KINDS = ("shift", "zoom-rotate", "objects")
#: Motion lengths drawn for a pair (output pixels), spread so that every bin gets pixels.
SIZES = (0.5, 1.5, 3.0, 6.0, 10.0, 14.0, 20.0, 24.0)

#: A flow under test: ``(x_a, x_b)`` LR frames ``(b, 3, h, w)`` in [-1, 1] → ``(f_a→b, f_b→a)`` in LR pixels.
FlowFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class FlowPair:
    """Two HR frames ``a``, ``b`` (uint8 ``(h, w, 3)``) and their true flows ``ab``, ``ba`` (float32 ``(h, w, 2)``,
    output pixels, x then y: pixel p of ``a`` is at ``p + ab(p)`` in ``b``). ``known_a`` / ``known_b`` (bool
    ``(h, w)``) mark the pixels painted from inside their source picture; outside it the picture is mirrored, which
    no flow describes. :meth:`middle` renders the true frames between the two."""

    kind: str
    size: float
    a: np.ndarray
    b: np.ndarray
    ab: np.ndarray
    ba: np.ndarray
    known_a: np.ndarray
    known_b: np.ndarray
    layers: list = field(default_factory=list, repr=False)

    def middle(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The true frame at ``T_in = t``, where it is known and where it is occluded (:func:`middle_frame`)."""
        return middle_frame(self.layers, self.a.shape[:2], t)


# -- making pairs --------------------------------------------------------------------------------------------------


def _affine(center: np.ndarray, angle: float, zoom: float, shift: np.ndarray) -> np.ndarray:
    """3×3 map from frame pixels to source pixels: turn by ``angle`` and zoom by ``zoom`` about ``center``, then move
    by ``shift`` (source pixels)."""
    c, s = math.cos(angle) * zoom, math.sin(angle) * zoom
    m = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    m[:2, 2] = center + shift - m[:2, :2] @ center
    return m


@dataclass
class _Motion:
    """A layer's motion from frame A (``s = −1``) through the middle (``s = 0``) to frame B (``s = 1``): at ``s``, a
    turn by ``s·angle`` and a zoom by ``zoom^s`` about ``center``, then a move by ``base + s·shift``."""

    center: np.ndarray
    angle: float
    zoom: float
    base: np.ndarray
    shift: np.ndarray

    def at(self, s: float) -> np.ndarray:
        """The 3×3 map from the pixels of the frame at ``s`` to the source's (:func:`_affine`)."""
        zoom = self.zoom if s == 1 else 1 / self.zoom if s == -1 else self.zoom**s  # the ends exactly as written
        return _affine(self.center, s * self.angle, zoom, self.base + s * self.shift)


@dataclass
class _Layer:
    """A picture (``source``, with an alpha ``mask`` in its own pixels, None for the background) and its motion."""

    source: np.ndarray
    mask: np.ndarray | None
    motion: _Motion

    @property
    def to_a(self) -> np.ndarray:
        return self.motion.at(-1)

    @property
    def to_b(self) -> np.ndarray:
        return self.motion.at(1)


def _render(layers: Sequence[_Layer], size: tuple[int, int], which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``which`` (``a`` or ``b``), its true flow to the other frame, and where that is known: layers painted
    back to front, each pixel's flow that of the topmost layer covering it."""
    here, there = (-1.0, 1.0) if which == "a" else (1.0, -1.0)
    return _render_at(layers, size, here, there)[:3]


def _render_at(
    layers: Sequence[_Layer], size: tuple[int, int], here: float, there: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The frame at motion time ``here`` (−1 is A, 1 is B; :class:`_Motion`), its true flow to the frame at
    ``there``, where that is known, and which layer is on top at each pixel (``(h, w)`` int, 0 the background)."""
    import cv2

    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    points = np.stack((xs.ravel(), ys.ravel(), np.ones(h * w)))
    image = np.zeros((h, w, 3), np.float32)
    flow = np.zeros((h, w, 2), np.float32)
    known = np.zeros((h, w), bool)
    top_layer = np.zeros((h, w), np.int64)
    for index, layer in enumerate(layers):
        to_here, to_there = layer.motion.at(here), layer.motion.at(there)
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        picture = cv2.warpAffine(layer.source, to_here[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT101)
        at = (to_here @ points)[:2].T.reshape(h, w, 2)
        sh, sw = layer.source.shape[:2]
        inside = (at[..., 0] >= 1) & (at[..., 0] <= sw - 2) & (at[..., 1] >= 1) & (at[..., 1] <= sh - 2)
        moved = (np.linalg.inv(to_there) @ to_here @ points)[:2].T.reshape(h, w, 2) - np.stack((xs, ys), -1)
        if layer.mask is None:
            image[:], flow[:], known[:] = picture, moved, inside
            continue
        alpha = cv2.warpAffine(layer.mask, to_here[:2], (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        alpha = alpha[..., None]
        image = image * (1 - alpha) + picture.astype(np.float32) * alpha
        top = alpha[..., 0] > 0.5
        flow = np.where(top[..., None], moved, flow).astype(np.float32)
        known = np.where(top, inside, known)
        top_layer[top] = index
    return np.clip(image, 0, 255).round().astype(np.uint8), flow, known, top_layer


def middle_frame(
    layers: Sequence[_Layer], size: tuple[int, int], t: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true frame at ``T_in = t`` between a pair's frames A (t = 0) and B (t = 1), where its content is known, and
    where it is **occluded**: hidden in A or in B (covered by another layer there, or outside the frame), so that one
    of the two frames cannot show it and a blend of both brings in the wrong content. Each layer moves on its own
    path (:class:`_Motion`), so the truth between the frames is exact, not an interpolation."""
    h, w = size
    s = 2 * t - 1
    image, _, known, top = _render_at(layers, size, s, s)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    points = np.stack((xs.ravel(), ys.ravel(), np.ones(h * w)))
    visible = np.ones((h, w), bool)
    for end in (-1.0, 1.0):
        _, _, _, top_end = _render_at(layers, size, end, end)
        for index, layer in enumerate(layers):
            mine = top == index
            if not mine.any():
                continue
            at = (np.linalg.inv(layer.motion.at(end)) @ layer.motion.at(s) @ points)[:2].T.reshape(h, w, 2)
            cx, cy = np.rint(at[..., 0]).astype(np.int64), np.rint(at[..., 1]).astype(np.int64)
            inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
            seen = inside & (top_end[cy.clip(0, h - 1), cx.clip(0, w - 1)] == index)
            visible &= ~mine | seen
    return image, known, known & ~visible


def _piece_mask(rng: np.random.Generator, shape: tuple[int, int], center: np.ndarray, radius: float) -> np.ndarray:
    """A soft-edged random blob (an ellipse with a wobbly rim) around ``center``, in a picture of ``shape``."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.arctan2(ys - center[1], xs - center[0])
    rim = radius * (1 + 0.25 * np.sin(rng.integers(2, 5) * angle + rng.uniform(0, 6.3)))
    aspect = rng.uniform(0.6, 1.0)
    dist = np.hypot(xs - center[0], (ys - center[1]) / aspect)
    return np.clip(rim - dist + 0.5, 0, 1).astype(np.float32)


def _direction(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    return np.array([math.cos(angle), math.sin(angle)])


def make_pair(
    rng: np.random.Generator, images: Sequence[np.ndarray], kind: str, size: float, crop: tuple[int, int]
) -> FlowPair:
    """One pair of ``crop`` HR pixels (h, w) of motion ``kind`` whose typical motion is ``size`` output pixels,
    made from ``images`` (uint8 ``(h, w, 3)``, at least as large as ``crop``)."""
    h, w = crop
    background = images[rng.integers(len(images))]
    bh, bw = background.shape[:2]
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    # The crop's centre in the source, with room for the motion on both sides where the source allows it.
    room = np.array([bw - w, bh - h]) / 2
    origin = np.array([(bw - 1) / 2, (bh - 1) / 2]) + rng.uniform(-1, 1, 2) * np.maximum(room - size, 0) - centre
    if kind == "shift":
        d = _direction(rng) * size / 2
        layers = [_Layer(background, None, _Motion(centre, 0, 1, origin, d))]
    elif kind == "zoom-rotate":
        # The mean distance from the centre is about a third of the frame's diagonal; split the motion between a zoom
        # and a turn at random, half of it each way from the middle frame.
        reach = math.hypot(h, w) / 3
        share = rng.uniform(0, 1)
        zoom = (1 + share * size / reach) ** 0.5 if rng.uniform() < 0.5 else (1 - share * size / reach / 2) ** 0.5
        angle = (1 - share) * size / reach / 2 * rng.choice((-1, 1))
        d = _direction(rng) * rng.uniform(0, size / 4)
        layers = [_Layer(background, None, _Motion(centre, angle, zoom, origin, d))]
    elif kind == "objects":
        d = _direction(rng) * rng.uniform(0, size / 2) / 2
        layers = [_Layer(background, None, _Motion(centre, 0, 1, origin, d))]
        for _ in range(rng.integers(1, 4)):
            source = images[rng.integers(len(images))]
            sh, sw = source.shape[:2]
            radius = rng.uniform(0.12, 0.3) * min(h, w)
            at = np.array([rng.uniform(radius, sw - radius), rng.uniform(radius, sh - radius)])
            mask = _piece_mask(rng, (sh, sw), at, radius)
            where = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])  # piece centre in the frame
            d = _direction(rng) * size / 2
            turn, zoom = rng.uniform(-0.05, 0.05), rng.uniform(0.97, 1.03)
            layers.append(_Layer(source, mask, _Motion(where, turn, zoom, at - where, -d)))
    else:
        raise ValueError(f"unknown motion kind {kind!r}; known: {', '.join(KINDS)}")
    a, ab, known_a = _render(layers, crop, "a")
    b, ba, known_b = _render(layers, crop, "b")
    return FlowPair(kind, size, a, b, ab, ba, known_a, known_b, layers)


def make_pairs(images: Sequence[np.ndarray], count: int, crop: tuple[int, int], seed: int = 0) -> list[FlowPair]:
    """``count`` pairs from ``images`` (seeded: the same every run). Kinds and :data:`SIZES` are taken in turn, the
    sizes in an order that spreads any first few pairs over small and large motion; every 24 pairs hold each
    combination once."""
    rng = np.random.default_rng(seed)
    spread = [SIZES[j] for j in (7, 2, 4, 0, 5, 1, 6, 3)]
    return [make_pair(rng, images, KINDS[i % len(KINDS)], spread[i % len(spread)], crop) for i in range(count)]


# -- degrading and scoring -----------------------------------------------------------------------------------------


def degrade_pair(a: np.ndarray, b: np.ndarray, scale: int, crf: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The LR frames of an HR pair as real video has them: ``(1, 3, h/s, w/s)`` in [-1, 1]."""
    hr = torch.from_numpy(np.stack((a, b))).permute(0, 3, 1, 2).float() / 255
    lr = quantize(reduce(hr, scale, "bicubic"))
    if crf is not None:
        lr = compress_clip(lr, crf, preset="medium")
    lr = lr * 2 - 1
    return lr[:1], lr[1:]


def block_truth(
    flow: np.ndarray, scale: int, margin: float = 0.0, known: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The true flow at LR pixels (mean over each scale×scale block, output pixels, ``(h/s, w/s, 2)``) and where it
    counts: every pixel of the block is ``known`` (default: all) and has its match inside the frame, ``margin``
    pixels from the edge."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    inside = (tx >= margin) & (tx <= w - 1 - margin) & (ty >= margin) & (ty <= h - 1 - margin)
    if known is not None:
        inside &= known
    blocks = flow.reshape(h // scale, scale, w // scale, scale, 2)
    truth = blocks.mean(axis=(1, 3))
    valid = inside.reshape(h // scale, scale, w // scale, scale).all(axis=(1, 3))
    return truth, valid


@dataclass
class FlowCheckReport:
    """End-point errors per flow, CRF and motion bin, and LR interpolation PSNR per flow and CRF.

    ``epe[flow][crf][bin]`` (bin names like ``"2-4"``) and ``epe_kind[flow][crf][kind]`` are mean end-point errors
    in output pixels; ``pixels[bin]`` counts the LR pixels behind each bin; ``interp[flow][crf]`` is the mean Y PSNR
    (dB) of LR frames interpolated from their neighbours; ``seconds[flow]`` is the flow's time per LR pair (both
    directions)."""

    flows: list[str]
    crfs: list[int | None]
    epe: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    epe_kind: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    pixels: dict[str, int] = field(default_factory=dict)
    interp: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)

    def worst_ratio(self, flow: str, crf: int | None, low: float = 2.0, high: float = 24.0) -> float:
        """The largest ratio of ``flow``'s end-point error to zero flow's over the bins between ``low`` and ``high``
        output pixels: at most 0.5 means the flow halves the error of assuming no motion at every such size."""
        key = _crf_key(crf)
        bins = [b for b in _bin_names() if low <= _bin_edges(b)[0] and _bin_edges(b)[1] <= high]
        ratios = [self.epe[flow][key][b] / self.epe["zero"][key][b] for b in bins
                  if b in self.epe[flow][key] and self.epe["zero"][key].get(b)]  # fmt: skip
        return max(ratios) if ratios else float("nan")

    def to_dict(self) -> dict:
        return {"flows": self.flows, "crfs": self.crfs, "epe": self.epe, "epe_by_kind": self.epe_kind,
                "pixels": self.pixels, "interpolation_psnr_y": self.interp, "seconds_per_pair": self.seconds,
                "settings": self.settings}  # fmt: skip

    def to_markdown(self) -> str:
        """Per CRF: a table of end-point errors by motion size and kind, with LR interpolation PSNR and time."""
        bins = [b for b in _bin_names() if self.pixels.get(b)]
        out = [f"Flow check: {self.settings.get('pairs')} pairs of {self.settings.get('crop')} HR pixels from "
               f"{self.settings.get('images')} frames, ×{self.settings.get('scale')}; end-point error in output "
               "pixels by true motion (output pixels); 'interp' is the Y PSNR of LR frames interpolated from their "
               f"neighbours ({self.settings.get('triplets')} real triplets); 'worst/zero' is the largest ratio to "
               "zero flow's error from 2 to 24 px; time per LR pair, both directions."]  # fmt: skip
        for crf in self.crfs:
            key = _crf_key(crf)
            out += ["", f"**{'8-bit RGB' if crf is None else f'H.264 CRF {crf}'}**", "",
                    "| flow | " + " | ".join(f"{b} px" for b in bins) + " | " + " | ".join(KINDS)
                    + " | worst/zero | interp dB | ms |",
                    "|---" * (len(bins) + len(KINDS) + 4) + "|"]  # fmt: skip
            for flow in self.flows:
                cells = [f"{self.epe[flow][key].get(b, float('nan')):.2f}" for b in bins]
                cells += [f"{self.epe_kind[flow][key].get(k, float('nan')):.2f}" for k in KINDS]
                cells.append("–" if flow == "zero" else f"{self.worst_ratio(flow, crf):.2f}")
                cells.append(f"{self.interp.get(flow, {}).get(key, float('nan')):.2f}")
                cells.append(f"{self.seconds.get(flow, 0) * 1000:.0f}")
                out.append(f"| {flow} | " + " | ".join(cells) + " |")
        out += ["", "LR pixels per bin: " + ", ".join(f"{b}: {self.pixels[b]}" for b in bins)]
        return "\n".join(out) + "\n"


def _bin_names() -> list[str]:
    return [f"{lo:g}-{hi:g}" for lo, hi in zip(BINS[:-1], BINS[1:])]


def _bin_edges(name: str) -> tuple[float, float]:
    lo, hi = name.split("-")
    return float(lo), float(hi)


def _crf_key(crf: int | None) -> str:
    return "none" if crf is None else str(crf)


def _zero(x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.zeros((x_a.shape[0], 2, *x_a.shape[-2:]))
    return z, z


def _padded(fn: FlowFn, multiple: int) -> FlowFn:
    """``fn`` on frames padded (edge replication) to a multiple of ``multiple``, as the upscaler pads them."""

    def run(x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x_a.shape[-2:]
        pad = (0, -w % multiple, 0, -h % multiple)
        if any(pad):
            x_a, x_b = (torch.nn.functional.pad(x, pad, mode="replicate") for x in (x_a, x_b))
        f, g = fn(x_a, x_b)
        return f[..., :h, :w].float().cpu(), g[..., :h, :w].float().cpu()

    return run


@torch.no_grad()
def flow_check(
    images: Sequence[np.ndarray],
    triplets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    flows: Mapping[str, FlowFn],
    *,
    crfs: Sequence[int | None] = (0, 23, 32),
    pairs: int = 48,
    crop: tuple[int, int] = (192, 384),
    scale: int = 4,
    multiple: int = 16,
    seed: int = 0,
) -> FlowCheckReport:
    """Scores ``flows`` (name → :data:`FlowFn`; ``zero`` is added) on ``pairs`` synthetic pairs made from ``images``
    and on the real ``triplets`` (HR frames i, i + 1, i + 2), at each CRF (None: 8-bit RGB, no codec)."""
    import time

    fns: dict[str, FlowFn] = {"zero": _zero, **flows}
    names = list(fns)
    report = FlowCheckReport(names, list(crfs), settings={
        "pairs": pairs, "crop": f"{crop[1]}x{crop[0]}", "images": len(images), "scale": scale,
        "triplets": len(triplets), "seed": seed, "reduction": "bicubic, block-centre", "codec": "x264 medium yuv420p",
    })  # fmt: skip
    made = make_pairs(images, pairs, crop, seed)
    truths = []
    for p in made:
        truths.append([block_truth(p.ab, scale, known=p.known_a), block_truth(p.ba, scale, known=p.known_b)])
    bin_names = _bin_names()
    timing: dict[str, list[float]] = {n: [] for n in names}
    for crf in crfs:
        key = _crf_key(crf)
        errors = {n: {b: [] for b in bin_names} for n in names}
        kinds = {n: {k: [] for k in KINDS} for n in names}
        counts = {b: 0 for b in bin_names}
        for p, truth in zip(made, truths):
            x_a, x_b = degrade_pair(p.a, p.b, scale, crf)
            for n in names:
                start = time.perf_counter()
                estimates = _padded(fns[n], multiple)(x_a, x_b)
                timing[n].append(time.perf_counter() - start)
                for est, (gt, valid) in zip(estimates, truth):
                    e = est[0].permute(1, 2, 0).numpy() * scale
                    epe = np.hypot(*(e - gt).transpose(2, 0, 1))[valid]
                    length = np.hypot(gt[..., 0], gt[..., 1])[valid]
                    kinds[n][p.kind].extend(epe.tolist())
                    for b in bin_names:
                        lo, hi = _bin_edges(b)
                        inside = (length >= lo) & (length < hi)
                        errors[n][b].extend(epe[inside].tolist())
                        if n == "zero":
                            counts[b] += int(inside.sum())
        for n in names:
            report.epe.setdefault(n, {})[key] = {b: float(np.mean(v)) for b, v in errors[n].items() if v}
            report.epe_kind.setdefault(n, {})[key] = {k: float(np.mean(v)) for k, v in kinds[n].items() if v}
        report.pixels = {b: c // 2 for b, c in counts.items()}  # two directions per pair
        for n in names:
            report.interp.setdefault(n, {})[key] = _interpolation_psnr(fns[n], triplets, scale, crf, multiple)
    report.seconds = {n: float(np.median(v)) for n, v in timing.items() if v}
    return report


def _interpolation_psnr(
    fn: FlowFn, triplets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], scale: int, crf: int | None,
    multiple: int,
) -> float:  # fmt: skip
    """Mean Y PSNR of the middle LR frame of each triplet, made from the outer two with ``fn``'s flows (Eqs. 4, 6)."""
    from stvup.evaluation.metrics import psnr

    if not triplets:
        return float("nan")
    scores = []
    for first, middle, last in triplets:
        x_a, x_b = degrade_pair(first, last, scale, crf)
        made = warp_outputs(x_a.float(), x_b.float(), _padded(fn, multiple)(x_a, x_b), 0.5, "mean")
        image = ((made[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).numpy()
        hr = torch.from_numpy(middle).permute(2, 0, 1).float()[None] / 255
        truth = (quantize(reduce(hr, scale, "bicubic"))[0].permute(1, 2, 0) * 255).numpy()
        scores.append(psnr(image, truth, crop=2, y=True))
    return float(np.mean(scores))


# -- from clips and weights ----------------------------------------------------------------------------------------


def clip_material(
    frames_per_clip: Sequence[Sequence[np.ndarray]], scale: int = 4
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]], tuple[int, int]]:
    """What the check is made of, from HR clips: every third frame of each clip as a picture to move, each run of
    three consecutive frames (stepping by two) as a real triplet, and the pair size: the largest multiple of
    ``2·scale`` within 85 % of the smallest clip, at most 192×384."""
    images = [f for frames in frames_per_clip for f in frames[::3]]
    triplets = [(fr[i], fr[i + 1], fr[i + 2]) for fr in frames_per_clip for i in range(0, len(fr) - 2, 2)]
    if not images:
        raise ValueError("the flow check needs at least one frame")
    h = min(f.shape[0] for f in images)
    w = min(f.shape[1] for f in images)
    step = 2 * scale
    crop = (min(192, int(h * 0.85) // step * step), min(384, int(w * 0.85) // step * step))
    if min(crop) < 4 * step:
        raise ValueError(f"frames of {w}x{h} are too small for the flow check")
    return images, triplets, crop


def model_flow(weights: str | None) -> tuple[str, FlowFn]:
    """The flow of a weights file (a path or a shipped name; None: the shipped default), labelled with its flow's
    name and the file: its PWC-Net, or the classical flow its metadata names."""
    from pathlib import Path

    from stvup.upscaling.loader import load_upscaler

    upscaler = load_upscaler(weights, device="cpu", precision="fp32", compile="off", tile="off")
    model = upscaler.model.eval()
    source = Path(weights).name if weights else "default"
    return f"{model.config.flow} ({source})", model.estimate_flows


def run_flow_check(
    clips: Sequence[str],
    *,
    weights: str | None = None,
    flows: Sequence[str] | None = None,
    crfs: Sequence[int | None] = (0, 23, 32),
    pairs: int = 96,
    max_frames: int | None = None,
    seed: int = 0,
) -> FlowCheckReport:
    """:func:`flow_check` on HR ``clips`` (validation footage) for every flow stvup can use: each shipped weights
    file's, ``weights``' (a path or shipped name) if given, and the classical ``flows`` (default: all of
    :data:`~stvup.model.flow.CLASSICAL_FLOWS`)."""
    from stvup.evaluation.protocol import read_clip
    from stvup.model.flow import CLASSICAL_FLOWS, classical_flow
    from stvup.model.weights import WEIGHTS_DIR

    material = clip_material([read_clip(c, max_frames) for c in clips])
    chosen: dict[str, FlowFn] = {}
    files = sorted(str(p) for p in WEIGHTS_DIR.glob("*.safetensors")) if WEIGHTS_DIR.is_dir() else []
    for source in [*files, *([weights] if weights else [])]:
        label, fn = model_flow(source)
        chosen.setdefault(label, fn)
    for name in CLASSICAL_FLOWS if flows is None else flows:
        try:
            chosen.setdefault(name, classical_flow(name))
        except ValueError as exc:
            from stvup.errors import UsageError

            raise UsageError(str(exc)) from None
    return flow_check(*material[:2], chosen, crfs=crfs, pairs=pairs, crop=material[2], seed=seed)
