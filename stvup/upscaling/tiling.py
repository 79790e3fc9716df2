"""``--tile auto``: how large a piece of the frame the network sees at once.

Two costs pull in opposite directions. Large activations fall out of the CPU's caches (and out of memory: a 4K
output of the full STVUN in fp32 needs over 10 GB in one piece), so the time per pixel grows with the piece: on
this project's CPU, a 480×270 input (1080p output) took 1.17× the time per pixel of a 240×135 one (540p output).
But tiles overlap (16 input pixels, blended, :mod:`stvup.upscaling.pipeline`), and the overlap is computed twice. Tiles
of at most 256 input pixels, balanced so that they overlap as little as the frame allows (540 rows: three of 192,
not 256 + 256 + 256 aligned to the end), balance the two: a 4K output took 1.09× the time per pixel of a 540p one
and peaked at 1.6 GB (`stvup bench`, README "Tiles and memory"), against 1.71× and 2.0 GB with square tiles of 368.
So ``auto`` keeps frames up to about one tile whole and cuts larger ones into such tiles — smaller when the
memory budget says so: at most 2 GB on a CPU (or half of what is free, if less) and 80 % of a GPU's free memory.

Peak memory is estimated as a fixed part plus a part per input pixel of the piece, measured for each named model
and precision with ``examples/tile_memory.py`` (README, "Tiles and memory"). If the estimate is wrong
and memory runs out anyway, :class:`~stvup.upscaling.pipeline.Upscaler` halves the tile and runs the window again:
frames are never dropped.
"""

from __future__ import annotations

import os

import torch

from stvup.errors import UsageError

__all__ = [
    "SWEET",
    "TileCanvas",
    "balanced_tile",
    "band_bytes",
    "choose_tile",
    "estimate_bytes",
    "frames_bytes",
    "is_out_of_memory",
    "memory_budget",
    "parse_tile",
    "queue_depth",
    "ramp_weight",
    "tile_boxes",
    "tile_spans",
    "to_float",
]

SWEET = 256  # the largest tile side (input pixels): with balanced tiles, the fastest per pixel, overlap included
WHOLE = 72_000  # input pixels up to which frames stay whole (about one tile; a 540p output's input is 32,400)
CPU_CAP = 2 << 30  # bytes: the most a CPU run should take
OVERLAP = 16
Box = tuple[int, int, int, int]  # (y0, y1, x0, x1): rows and columns of a tile in the input frame

# Peak bytes above the loaded model while one window runs: (fixed, per input pixel of the piece), measured on CPU
# with 4-frame streams at 64², 128² and 256² input (fixed: the model's buffers, output accumulators not included).
_COST = {
    ("stvun", "fp32"): (60 << 20, 25_700),
    ("stvun", "bf16"): (40 << 20, 22_600),
    ("stvun-small", "fp32"): (30 << 20, 9_900),
    ("stvun-small", "bf16"): (20 << 20, 5_800),
}


# Model seconds per output pixel of eager frames, measured with `stvup bench` at 960x540 output (×2 time):
# stvun-small on a 2-core Xeon with AMX (0.340 s a frame in bf16, 1.107 in fp32) and the full stvun on an H200
# (24.4 ms in bf16, 21.8 in fp32). The full network on a CPU and the small one on a GPU are scaled by the parameter
# count (×4.45), an estimate. For choosing how much work a resumable segment holds and whether compiling pays
# (stvup.upscaling.acceleration), never reported as a speed.
_SECONDS_PER_PIXEL = {
    ("stvun-small", "cpu", "fp32"): 2.14e-6,
    ("stvun-small", "cpu", "bf16"): 6.6e-7,
    ("stvun", "cpu", "fp32"): 2.14e-6 * 4.45,
    ("stvun", "cpu", "bf16"): 6.6e-7 * 4.45,
    ("stvun", "cuda", "fp32"): 4.2e-8,
    ("stvun", "cuda", "bf16"): 4.7e-8,
    ("stvun-small", "cuda", "fp32"): 4.2e-8 / 4.45,
    ("stvun-small", "cuda", "bf16"): 4.7e-8 / 4.45,
}


def _family(model: str) -> str:
    """``stvun-small`` for the small, tiny and two-stream networks, else ``stvun`` (unknown ones priced as it)."""
    small = model.startswith(("stvun-small", "stvun-tiny", "two-stream"))
    return "stvun-small" if small else "stvun"


def estimate_frame_seconds(model: str, precision: str, device: str, output_pixels: int, ensemble: int = 1) -> float:
    """Rough model seconds per output frame of ``output_pixels`` (``device``: ``cpu`` or ``cuda``; any other is
    priced as a CPU): what a lost segment costs, from the table above; ``ensemble`` copies cost that many times."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    per_pixel = _SECONDS_PER_PIXEL[(_family(model), kind, "fp32" if precision == "fp32" else "bf16")]
    return per_pixel * output_pixels * max(1, ensemble)


def estimate_bytes(model: str, precision: str, pixels: int, unshuffle: int = 1) -> int:
    """Peak bytes the network takes for one window of a piece of ``pixels`` input pixels (activations, not the
    frames around it). A network that unshuffles its input by u works on 1/u² of the pixels. Unknown variants are
    priced as the full STVUN."""
    fixed, per_pixel = _COST[(_family(model), "fp32" if precision == "fp32" else "bf16")]
    return fixed + per_pixel * pixels // unshuffle**2


#: Output frames that may wait for the video encoder while the next window runs (stvup.upscaling.overlap's queue),
#: and the bytes such frames may take at most: an 8K frame is 100 MB, so its queue is shorter (:func:`queue_depth`).
QUEUED, QUEUE_BYTES = 4, 200 << 20


def queue_depth(output_pixels: int) -> int:
    """How many 8-bit output frames of ``output_pixels`` the queue to the encoder holds: :data:`QUEUED`, fewer
    where they would take more than :data:`QUEUE_BYTES` (two at 8K), at least one."""
    return max(1, min(QUEUED, QUEUE_BYTES // max(1, 3 * output_pixels)))


def frames_bytes(output_pixels: int, count: int, tiled: bool) -> int:
    """What a window's finished output frames take, whatever the tile: ``count`` frames of ``output_pixels``, held
    as 16-bit integers when tiled (:class:`TileCanvas`) or as floats when whole, plus the frames queued for the
    encoder and the one it encodes (8-bit)."""
    return output_pixels * (count * 3 * (2 if tiled else 4) + (queue_depth(output_pixels) + 1) * 3)


def band_bytes(tile: int, width: int, scale: int, count: int) -> int:
    """The float accumulators of one row of tiles across the frame (:class:`TileCanvas`): ``count`` frames and the
    blend weights, ``tile`` input rows by ``width`` input columns, at ``scale``."""
    return tile * scale * width * scale * (count * 3 + 1) * 4


def memory_budget(device: torch.device) -> int:
    """Bytes a run may use: 80 % of a GPU's free memory; on a CPU, 2 GB or half the available memory if less."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.8)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        available = 2 * CPU_CAP
    return min(CPU_CAP, available // 2)


def choose_tile(
    height: int,
    width: int,
    model: str,
    precision: str,
    budget: int,
    scale: int,
    multiple: int = 16,
    *,
    count: int = 2,
    unshuffle: int = 1,
) -> int | None:
    """The tile side (input pixels) for ``height × width`` input frames, ``count`` output frames a window; None keeps
    frames whole.

    What does not shrink with the tile is counted first: the finished output frames (:func:`frames_bytes`). The
    tile then gets what is left for its activations (:func:`estimate_bytes`) and the row of accumulators it blends
    into (:func:`band_bytes`), shrinking in steps of ``2·multiple`` but never below ``4·multiple`` (64 input pixels
    for STVUN): smaller tiles are mostly overlap, and a budget they would still exceed is met, if at all, by
    halving the tile on running out (:class:`~stvup.upscaling.pipeline.Upscaler`)."""
    out_pixels = height * width * scale * scale
    whole = height * width
    # A network that unshuffles its input works on 1/u of each side: its tiles and whole frames are counted on the
    # grid it works on, where the overlap costs what it costs the ×4 network.
    if (
        whole <= WHOLE * unshuffle**2
        and estimate_bytes(model, precision, whole, unshuffle) + frames_bytes(out_pixels, count, False) <= budget
    ):
        return None
    left = budget - frames_bytes(out_pixels, count, True)
    floor = 4 * multiple
    tile = min(SWEET * unshuffle, -(-max(height, width) // multiple) * multiple)
    while tile > floor and estimate_bytes(model, precision, tile * tile, unshuffle) + band_bytes(
        tile, width, scale, count
    ) > left:  # fmt: skip
        tile -= 2 * multiple
    return max(tile, floor)


def parse_tile(value: int | str | None) -> int | str | None:
    """``--tile``: ``auto``, ``off`` (whole frames) or a size in input pixels."""
    if value is None or value == "auto" or isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "off"):
        return None if text == "off" else "auto"
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--tile must be auto, off or a size in pixels, not {value!r}") from None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch running out of memory (CUDA, or the CPU allocator)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def balanced_tile(size: int, tile: int, overlap: int, multiple: int) -> int:
    """The tile length, at most ``tile``, that covers ``size`` with as few tiles as ``tile`` needs but overlapping as
    little as possible: 540 in tiles of at most 368 takes two tiles of 288, not 368 and 368 (1.36× the work)."""
    if tile >= size:
        return size
    count = -(-(size - overlap) // (tile - overlap))
    length = -(-(size - overlap) // count) + overlap
    return min(tile, -(-length // multiple) * multiple)


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/end of overlapping tiles covering ``[0, size)``; the last tile is aligned to the end."""
    if tile >= size:
        return [(0, size)]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return [(s, s + tile) for s in starts]


def ramp_weight(length: int, ramp: int, lead: bool, trail: bool) -> torch.Tensor:
    """1-D blending weight: linear ramps of ``ramp`` samples at the ends that border another tile."""
    w = torch.ones(length)
    r = min(ramp, length)
    edge = (torch.arange(r, dtype=torch.float32) + 0.5) / r
    if lead:
        w[:r] = torch.minimum(w[:r], edge)
    if trail:
        w[length - r :] = torch.minimum(w[length - r :], edge.flip(0))
    return w


def tile_boxes(height: int, width: int, tile: int | None, overlap: int, multiple: int) -> list[Box]:
    """The ``(y0, y1, x0, x1)`` input boxes that cover a ``height × width`` frame with tiles of at most ``tile``
    pixels a side (balanced: as few as needed, each only as large as that takes); one box without a tile."""
    if tile is None:
        return [(0, height, 0, width)]
    th, tw = (balanced_tile(n, tile, overlap, multiple) for n in (height, width))
    return [(y0, y1, x0, x1) for y0, y1 in tile_spans(height, th, overlap)
            for x0, x1 in tile_spans(width, tw, overlap)]  # fmt: skip


#: Finished tiled frames are stored as 16-bit integers: ``round(clamp(y, -1, 1) · FIXED)``, exact to 1/65534 of the
#: range, finer than a 16-bit video's own steps and a third of the memory of floats.
FIXED = 32767


class TileCanvas:
    """Assembles ``count`` output frames ``(1, 3, s·H, s·W)`` from the outputs of overlapping tiles: each tile's
    output is weighted by linear ramps across the overlaps it shares, so the seams blend away.

    Tiles come in rows, top to bottom (:func:`tile_boxes`). Only the current row of tiles is summed in floats (the
    band); when the next row starts, the rows above it are final and are stored as 16-bit integers (:data:`FIXED`).
    So a frame never exists in floats at full size: an 8K output from 1080p input takes 0.2 GB a frame, not 0.5.
    :meth:`frames` returns the int16 frames; :func:`to_float` reads them back."""

    def __init__(self, count: int, height: int, width: int, scale: int, overlap: int, device: torch.device) -> None:
        self.height, self.width, self.scale, self.ramp = height, width, scale, overlap * scale // 2
        self.count, self.device = count, device
        self.done = [torch.empty(1, 3, height * scale, width * scale, dtype=torch.int16, device=device)
                     for _ in range(count)]  # fmt: skip
        self.band: tuple[int, int] | None = None  # output rows the accumulators cover
        self.sums: list[torch.Tensor] = []
        self.weight = torch.zeros(0)

    def _accumulators(self, rows: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        ws = self.width * self.scale
        sums = [torch.zeros(1, 3, rows, ws, device=self.device) for _ in range(self.count)]
        return sums, torch.zeros(1, 1, rows, ws, device=self.device)

    def _move(self, top: int, bottom: int) -> None:
        """Makes the band cover output rows ``[top, bottom)``, finishing the rows above ``top``."""
        if self.band == (top, bottom):
            return
        sums, weight = self._accumulators(bottom - top)
        if self.band is not None:
            old_top, old_bottom = self.band
            if top < old_top:
                raise ValueError("tiles must come row by row, top to bottom")
            self._finish_rows(old_top, min(top, old_bottom))
            keep = max(0, old_bottom - top)  # rows the new row of tiles overlaps
            if keep:
                for new, old in zip(sums, self.sums):
                    new[:, :, :keep] = old[:, :, top - old_top :]
                weight[:, :, :keep] = self.weight[:, :, top - old_top :]
        self.band, self.sums, self.weight = (top, bottom), sums, weight

    def _finish_rows(self, top: int, bottom: int) -> None:
        assert self.band is not None
        a, b = top - self.band[0], bottom - self.band[0]
        for done, total in zip(self.done, self.sums):
            value = total[:, :, a:b] / self.weight[:, :, a:b]
            done[:, :, top:bottom] = (value.clamp(-1, 1) * FIXED).round().to(torch.int16)

    def add(self, box: Box, outputs: list[torch.Tensor]) -> None:
        """Adds one tile's outputs (in the order of the frames), ``box`` being its input box."""
        (y0, y1, x0, x1), s = box, self.scale
        self._move(y0 * s, y1 * s)
        wy = ramp_weight(y1 - y0, self.ramp, y0 > 0, y1 < self.height).repeat_interleave(s)
        wx = ramp_weight(x1 - x0, self.ramp, x0 > 0, x1 < self.width).repeat_interleave(s)
        wt = (wy[:, None] * wx[None, :]).to(self.device)
        self.weight[:, :, :, x0 * s : x1 * s] += wt
        for total, out in zip(self.sums, outputs):
            total[:, :, :, x0 * s : x1 * s] += out.float() * wt

    def frames(self) -> list[torch.Tensor]:
        """The finished frames, int16 (:data:`FIXED`)."""
        if self.band is not None:
            self._finish_rows(*self.band)
            self.band, self.sums, self.weight = None, [], torch.zeros(0)
        return self.done


def to_float(y: torch.Tensor) -> torch.Tensor:
    """An output frame as floats in [-1, 1]: a :class:`TileCanvas` frame (int16) read back, a float one as it is."""
    return y.float() / FIXED if y.dtype == torch.int16 else y.float()
