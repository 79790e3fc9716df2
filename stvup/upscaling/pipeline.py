"""Streaming space-time upsampling of a sequence of frames with STVUN.

Frames arrive one at a time; every input frame is the centre of one 7-frame window (mirrored at both ends of the
clip, so no frame is lost), and every output timestamp falls between one input frame and the next, where it becomes
a ``T_in`` of that window (``T_in = 0`` is the window's spatial output). Each frame is encoded once and its encoder
features are reused by all windows that contain it; only the frames and features of one window (plus the frame
being read) are kept, so memory does not grow with the length of the video.

A two-stream network (:class:`~stvup.model.TwoStream`) runs through the same streaming: it only looks at the
window's frames 3 and 4; its kept frames are ``f_S`` of the inputs (cached like encoder features, so each frame is
upsampled once) and its new frames come from the chosen stream and time mode.

Hard scene cuts (:mod:`stvup.upscaling.shots`) split the stream into shots, and each shot is treated as a clip of its
own: its windows mirror at the shot's first and last frames, and the output times between the last frame of one shot and
the first of the next copy whichever of the two is nearer, so nothing is fused or interpolated across a cut.

Large frames can be split into overlapping tiles (``tile``), the same tiling for all seven frames of a window; the
tiles' outputs are blended with linear ramps across the overlaps, so there are no seams.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stvup.errors import InputError, UsageError
from stvup.model import STVUN, TwoStream
from stvup.model.twostream import STREAMS, TIME_MODES
from stvup.model.weights import GRIDS

from .acceleration import (
    MEMORY_FORMATS,
    accelerate,
    compile_pays,
    compiled_before,
    compiled_twin,
    missing_compiler,
    remember_compiled,
)
from .ensemble import ensemble_transforms
from .graphs import CudaGraphs, graphed_twin
from .hardware import PRECISIONS, resolve_device, resolve_precision
from .shots import DEFAULT_THRESHOLD, HISTORY, ShotDetector
from .tiling import (
    TileCanvas,
    choose_tile,
    estimate_frame_seconds,
    is_out_of_memory,
    memory_budget,
    parse_tile,
    tile_boxes,
    to_float,
)
from .timing import times_in_interval
from .warped import NEW_FRAMES, warp_outputs

__all__ = ["OutputFrame", "Upscaler", "reflect"]

#: Rows read beyond a block of output rows when it is reduced (×2 from ×4): antialiased bicubic at a factor of 2
#: reaches 4 rows each way.
REDUCE_MARGIN = 16

HALF = 3  # frames on each side of the window centre
#: Input frames a stream that starts inside a video must read before the frame that holds its first output, so that
#: what it makes equals a whole run's: shot detection's look-back (its last ``HISTORY`` differences and the frame
#: before them) before the first frame whose cut matters, ``HALF`` frames before the window's centre, one more for
#: warped new frames (the next frame's window), and one to spare. :func:`stvup.video.seek.iter_from` reads so.
EXACT_CONTEXT = HISTORY + 1 + HALF + 1 + 1


@dataclass
class OutputFrame:
    """One upsampled frame: ``index`` j (its time is ``j / rate``), ``image`` (H, W, 3) RGB, uint8 (uint16 from a
    deep source)."""

    index: int
    image: np.ndarray
    source: int  # input frame whose window produced it
    t_in: Fraction  # position between input frames ``source`` and ``source + 1``


def reflect(index: int, n: int) -> int:
    """Mirror ``index`` into ``[0, n)`` without repeating the edge frame (…, 2, 1, 0, 1, 2, …)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    index %= period
    return index if index < n else period - index


class Upscaler:
    """Runs an STVUN (or a two-stream network) over a stream of frames; holds the model, device, precision, tiling.

    ``precision``: ``auto`` (the fast one for the device, :func:`~stvup.upscaling.hardware.resolve_precision`),
    ``fp32``, ``bf16`` or ``fp16``; ``self.precision`` is what was chosen.

    ``space`` may be below the model's scale (×2 from a ×4 model): the network's output is then reduced with
    antialiased bicubic resampling. ``tile`` is the tile size in input pixels (None: whole frames). ``stream``
    (``ts`` or ``st``) and ``time_mode`` (``recursive`` or ``direct``) choose how a two-stream network makes new
    frames (see :mod:`stvup.model.twostream`); STVUN ignores them. ``time_batch``: at most this many new frames of
    a window go through STVUN's decoder as one batch (1: one at a time, the least memory). ``memory_format`` and
    ``compile`` only change speed (:mod:`stvup.upscaling.acceleration`). ``ensemble`` (1, 2, 4 or 8): the geometric
    self-ensemble, each window run on that many flipped or transposed copies and the outputs averaged
    (:mod:`stvup.upscaling.ensemble`): sharper, at that many times the cost. ``grid``: where the weights put LR pixel i
    (``duf``: output pixel scale·i, the paper's; ``block-centre``: the centre of its block, real video's), which
    the ensemble's flips must respect (:func:`stvup.model.weights.weights_grid` reads it from a weights file).
    """

    def __init__(
        self,
        model: STVUN | TwoStream,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        space: int | None = None,
        tile: int | str | None = "auto",
        tile_overlap: int = 16,
        stream: str = "ts",
        time_mode: str = "recursive",
        time_batch: int = 8,
        memory_format: str = "auto",
        compile: str = "auto",
        ensemble: int = 1,
        grid: str = "duf",
        new_frames: str = "auto",
    ) -> None:
        if new_frames not in NEW_FRAMES:
            raise UsageError(f"unknown --new-frames {new_frames!r}; use {', '.join(NEW_FRAMES)}")
        if new_frames == "warped" and not isinstance(model, STVUN):
            raise UsageError("--new-frames warped needs an STVUN network; a two-stream one makes its own")
        if new_frames == "auto":
            classical = isinstance(model, STVUN) and model.classical_flow is not None
            new_frames = "warped" if classical else "joint"
        #: ``joint`` (STVUN's space-time decoder) or ``warped`` (:mod:`stvup.upscaling.warped`).
        self.new_frames = new_frames
        if grid not in GRIDS:
            raise UsageError(f"unknown pixel grid {grid!r}; use {' or '.join(GRIDS)}")
        self.grid = grid
        if stream not in STREAMS:
            raise UsageError(f"unknown stream {stream!r}; use {' or '.join(STREAMS)}")
        if time_mode not in TIME_MODES:
            raise UsageError(f"unknown time mode {time_mode!r}; use {' or '.join(TIME_MODES)}")
        if time_batch < 1:
            raise UsageError(f"time batch must be at least 1, got {time_batch}")
        self.stream_name, self.time_mode, self.time_batch = stream, time_mode, time_batch
        self.ensemble = ensemble_transforms(ensemble)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dtype = PRECISIONS[self.precision]
        if self.device.type == "cpu" and self.dtype == torch.float16:
            raise UsageError("--precision fp16 needs a CUDA device; use bf16 on CPU")
        # Low precision means low-precision weights, not autocast: on CPU, bf16 weights with channels-last
        # activations run the decoder about 2× faster than fp32, where autocast's per-op casts gain far less.
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.memory_format_name = accelerate(self.model, self.device, memory_format, compile)
        self.compile = compile
        # The compiled twin (same weights) runs when asked for, or per job when ``auto`` finds it pays (plan_compile).
        self._twin: torch.nn.Module | None = None
        self.compiled = False  # whether windows now run through the compiled twin
        self._first_compiled: str | None = None  # the ledger key of a shape not yet compiled (acceleration)
        #: Output frames of later jobs per input size ``(h, w)`` that this upscaler will run too (``batch`` says so):
        #: a compile for that size serves them as well.
        self.queued: dict[tuple[int, int], int] = {}
        self._compile_failed = False  # a failed compile is not tried again by later jobs
        if compile == "cuda-graphs":
            if not isinstance(self.model, STVUN):
                raise UsageError("--compile cuda-graphs works with STVUN networks, not two-stream ones")
            self._twin, self.compiled = graphed_twin(self.model, CudaGraphs(self.device)), True
        elif compile not in ("auto", "off"):
            self._twin, self.compiled = compiled_twin(self.model, compile), True
        self.space = space or model.scale
        if self.space not in (2, 4) or model.scale % self.space:
            raise UsageError(f"--space {self.space} is not possible with a ×{model.scale} model")
        m = model.size_multiple
        tile = parse_tile(tile)
        if isinstance(tile, int) and tile < 2 * m:
            raise UsageError(f"--tile must be at least {2 * m} pixels, got {tile}")
        self.auto_tile = tile == "auto"  # decided per frame size by plan_tile (stvup.upscaling.tiling)
        self.tile: int | None = None if tile in (None, "auto") else -(-tile // m) * m
        self._planned: tuple[int, int, int] | None = None
        self.keep_features = True  # encoder features cached across windows (plan_tile decides per frame size)
        self.overlap = -(-tile_overlap // m) * m
        self.notes: list[str] = []  # what the run adapted to (a smaller tile after running out of memory)
        self.weights_path: Path | None = None  # the file the weights came from, when a loader says so
        #: The exact output size ``(h, w)`` a job asked for (``--to``, :mod:`stvup.upscaling.sizes`), None for
        #: ``space`` × the input: frames are reduced to it with antialiased bicubic resampling.
        self.target: tuple[int, int] | None = None

    def plan_tile(self, height: int, width: int, count: int | None = None) -> int | None:
        """With ``tile="auto"``, chooses the tile for ``height × width`` input frames and ``count`` output frames a
        window from the memory budget (:func:`stvup.upscaling.tiling.choose_tile`); returns the tile in use (None:
        whole frames).

        It also decides whether each frame's encoder features are kept for the seven windows that use it
        (:attr:`keep_features`): they are, unless the eight frames' worth (per ensemble copy) would take over a third
        of the budget, as at 1080p input, where they would take 3 GB. Then each window encodes its seven frames
        again: the encoder is about 1 % of STVUN's work per frame (measured: 0.03 s of 6.9 s a window at 240×144),
        so that costs about 6 %, against tiles squeezed to a fraction of their size."""
        if count is None:  # as planned for this size before, else the common ×2 time
            count = self._planned[2] if self._planned is not None and self._planned[:2] == (height, width) else 2
        if self._planned != (height, width, count):
            budget = memory_budget(self.device)
            # Warped new frames keep up to three upsampled frames besides the window's outputs.
            frames = count + 2 if self.new_frames == "warped" else count
            cached = len(self.ensemble) * self._cached_bytes(height, width)
            self.keep_features = cached <= budget // 3
            if self.auto_tile:
                name = getattr(getattr(self.model, "config", None), "name", "two-stream")
                self.tile = choose_tile(height, width, name, self.precision, budget - cached * self.keep_features,
                                        self.model.scale, self.model.size_multiple, count=frames,
                                        unshuffle=getattr(self.model, "unshuffle", 1))  # fmt: skip
            self._planned = (height, width, count)
        return self.tile

    def plan_compile(self, frames: int | None, height: int, width: int, time_factor: Fraction = Fraction(2)) -> bool:
        """Decides, for a job of ``frames`` output frames (None: unknown) from ``height × width`` input frames at
        ``time_factor``, whether its windows run compiled; returns that. With ``compile="auto"`` a CPU compiles when
        :func:`~stvup.upscaling.acceleration.compile_pays` says the job repays it, counting a shape this machine's
        cache already holds as cheap; without a C compiler it stays eager and says why in :attr:`notes`. Other
        settings do as they say. Frames :attr:`queued` behind the job at that size count too. Called by
        :func:`~stvup.upscale` and ``stvup bench`` before their first frame; afterwards :attr:`compiling` says
        whether the first window compiles (a shape this machine has not compiled before)."""
        if self.compile in ("off", "cuda-graphs"):
            return self.compiled
        name = getattr(getattr(self.model, "config", None), "name", type(self.model).__name__)
        key = self._compile_key(name, height, width, time_factor)
        cached = compiled_before(key)
        if self.compile != "auto":
            self._first_compiled = None if cached else key
            return True
        self.compiled = False
        if self.device.type != "cpu" or not frames or self._compile_failed:
            return False
        frames += self.queued.get((height, width), 0)
        work = frames * estimate_frame_seconds(name, self.precision, "cpu", height * width * self.space**2,
                                               len(self.ensemble))  # fmt: skip
        if not compile_pays(work, cached):
            return False
        why = missing_compiler()
        if why:
            note = f"not compiled ({why}): frames run about 1.3x slower than compiled"
            if note not in self.notes:
                self.notes.append(note)
            return False
        if self._twin is None:
            self._twin = compiled_twin(self.model, "default")
        self.compiled = True
        self._first_compiled = None if cached else key
        return True

    def _compile_key(self, name: str, height: int, width: int, time_factor: Fraction) -> str:
        """What a compile is for, as the ledger records it: everything that gives the compiled graphs their shapes
        and kernels (PyTorch, CPU, network, precision, layout, tile shapes, factors, ensemble, mode)."""
        tile = self.plan_tile(height, width, math.ceil(time_factor))
        m = self.model.size_multiple
        shapes = sorted({(y1 - y0, x1 - x0) for y0, y1, x0, x1 in tile_boxes(-(-height // m) * m, -(-width // m) * m,
                                                                            tile, self.overlap, m)})  # fmt: skip
        mode = "max-autotune" if self.compile == "max-autotune" else "default"
        return (f"torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()} {name} {self.precision} "
                f"{self.memory_format_name} x{self.space} t{time_factor} e{len(self.ensemble)} {shapes} "
                f"{mode}")  # fmt: skip

    @property
    def compiling(self) -> bool:
        """Whether the next window compiles first (minutes), which a progress display should say."""
        return self.compiled and self._first_compiled is not None

    def _net(self) -> torch.nn.Module:
        """The network the windows run through: the compiled twin or the eager model."""
        return self._twin if self.compiled and self._twin is not None else self.model

    def _cached_bytes(self, height: int, width: int) -> int:
        """Bytes the feature cache holds for one copy of a window (8 frames): encoder features, or f_S outputs."""
        config = getattr(self.model, "config", None)
        per_pixel = config.channels * config.blocks if config is not None else 3 * self.model.scale**2
        unshuffle = getattr(self.model, "unshuffle", 1)
        return 8 * per_pixel * height * width * self.dtype.itemsize // unshuffle**2

    def fingerprint(self) -> str:
        """A hash of everything here that shapes the output pictures: the weights as they run (values and
        precision), device kind, scale, tiling, how new frames blend (``time_blend``) and two-stream choices; not
        the memory format or compiling, which change float rounding at most, like the thread count. A resumed run
        reuses frames only if it matches (:mod:`stvup.upscaling.journal`). The weights are hashed once; the settings,
        which can change (the tile), at each call."""
        if getattr(self, "_weights_digest", None) is None:
            weights = hashlib.sha256()
            for key, tensor in self.model.state_dict().items():
                weights.update(key.encode())
                weights.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
            self._weights_digest = weights.hexdigest()
        settings = (type(self.model).__name__, self.device.type, self.precision, self.space, self.tile,
                    self.overlap, self.stream_name, self.time_mode)  # fmt: skip
        if self.target is not None:  # earlier journals had no target: their fingerprints stay
            settings += (self.target,)
        if self.new_frames == "warped":
            settings += ("warped",)
        if len(self.ensemble) > 1:  # an ensemble-free run keeps the fingerprint that earlier runs' journals hold
            settings += (len(self.ensemble),) if self.grid == "duf" else (len(self.ensemble), self.grid)
        blend = getattr(getattr(self.model, "config", None), "time_blend", "mean")
        if blend != "mean":  # journals of runs before the setting existed: their new frames off T_in = 1/2 differ
            settings += (blend,)
        return hashlib.sha256(f"{settings!r}{self._weights_digest}".encode()).hexdigest()

    # -- tensors ---------------------------------------------------------------------------------------------------

    def _prepare(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (or uint16, from a deep source) ``(h, w, 3)`` → ``(1, 3, H, W)`` in [-1, 1], padded (edge
        replication) to the model's multiple."""
        if image.dtype == np.uint16:
            x = torch.from_numpy(image.astype(np.float32)).to(self.device).permute(2, 0, 1).unsqueeze(0) / 32767.5 - 1.0
        else:
            x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).unsqueeze(0)
            x = x.float() / 127.5 - 1.0
        m = self.model.size_multiple
        ph, pw = -x.shape[2] % m, -x.shape[3] % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x.to(self.dtype).contiguous(memory_format=MEMORY_FORMATS[self.memory_format_name])

    def _finish(self, y: torch.Tensor, h: int, w: int, deep: bool = False, rows: int = 512) -> np.ndarray:
        """Network output (float, or a tiled frame's int16, :func:`~stvup.upscaling.tiling.to_float`) → cropped,
        optionally reduced ``(space·h, space·w, 3)``, uint8 (uint16 if ``deep``).

        Done ``rows`` output rows at a time, so that an 8K frame is never whole in floats. A reduction (×2 from a
        ×4 network) reads each block with a margin of :data:`REDUCE_MARGIN` rows beyond it, more than the
        antialiased bicubic kernel reaches, so the result is that of the whole frame at once."""
        s = self.model.scale
        f = s // self.space
        top = 65535 if deep else 255
        if self.target is not None and self.target != (h * self.space, w * self.space):
            # --to: one reduction of the whole frame to the size asked for (at most 4K-sized frames in practice).
            y = F.interpolate(to_float(y[:, :, : h * s, : w * s]), size=self.target, mode="bicubic", antialias=True)
            y = ((y.clamp(-1, 1) + 1) * (top / 2)).round().to(torch.int32)
            return y[0].permute(1, 2, 0).cpu().numpy().astype(np.uint16 if deep else np.uint8)
        out = np.empty((h * self.space, w * self.space, 3), np.uint16 if deep else np.uint8)
        step = rows * f
        for r0 in range(0, h * s, step):
            r1 = min(r0 + step, h * s)
            if f == 1:
                part = to_float(y[:, :, r0:r1, : w * s])
            else:
                a, b = max(0, r0 - REDUCE_MARGIN), min(h * s, r1 + REDUCE_MARGIN)
                part = F.interpolate(to_float(y[:, :, a:b, : w * s]), size=((b - a) // f, w * self.space),
                                     mode="bicubic", antialias=True)  # fmt: skip
                part = part[:, :, (r0 - a) // f : (r1 - a) // f]
            part = ((part.clamp(-1, 1) + 1) * (top / 2)).round().to(torch.int32)
            out[r0 // f : r1 // f] = part[0].permute(1, 2, 0).cpu().numpy()
        return out

    # -- one window ------------------------------------------------------------------------------------------------

    def _window(
        self,
        frames: list[torch.Tensor],
        ids: list[int],
        cache: dict[tuple[int, int], list[torch.Tensor]],
        times: list[float],
    ) -> list[torch.Tensor]:
        """:meth:`_window_once`; out of memory, the tile is halved and the window run again (no frame is lost). A
        compile that fails under ``compile="auto"`` leaves the job eager, the window run again."""
        while True:
            try:
                outs = self._window_once(frames, ids, cache, times)
            except Exception as exc:
                if self.compile == "auto" and self.compiled and not is_out_of_memory(exc):
                    # Compiling failed (a broken compiler, an unsupported CPU): this job goes on eager, same frames.
                    self.compiled, self._first_compiled, self._compile_failed = False, None, True
                    first = (str(exc).strip().splitlines() or [""])[0]
                    self.notes.append(f"compiling failed, went on without ({type(exc).__name__}: {first})"[:200])
                    cache.clear()
                    continue
                if not isinstance(exc, RuntimeError):
                    raise
                _, _, hh, ww = frames[HALF].shape
                m = self.model.size_multiple
                smaller = (self.tile or max(hh, ww)) // 2 // m * m
                if not is_out_of_memory(exc) or smaller < 2 * m:
                    raise
                self.tile, self.auto_tile = smaller, False
                self.notes.append(f"ran out of memory: went on with --tile {smaller}")
                cache.clear()  # features were cached per tile of the old tiling
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            if self.compiled and self._first_compiled is not None:
                remember_compiled(self._first_compiled)  # the next job of this shape counts on the cache
                self._first_compiled = None
            return outs

    @torch.inference_mode()
    def _window_once(
        self,
        frames: list[torch.Tensor],
        ids: list[int],
        cache: dict[tuple[int, int], list[torch.Tensor]],
        times: list[float],
    ) -> list[torch.Tensor]:
        """Outputs (``T_in = times``, 0 meaning the centre frame) of one window, full padded size."""
        _, _, hh, ww = frames[HALF].shape
        boxes = tile_boxes(hh, ww, self.tile, self.overlap, self.model.size_multiple)
        if len(boxes) == 1:
            return [r.float() for r in self._ensemble(frames, ids, 0, cache, times)]
        canvas = TileCanvas(len(times), hh, ww, self.model.scale, self.overlap, self.device)
        for k, box in enumerate(boxes):
            y0, y1, x0, x1 = box
            canvas.add(box, self._ensemble([f[:, :, y0:y1, x0:x1] for f in frames], ids, k, cache, times))
        return canvas.frames()

    def _ensemble(
        self, crops: list[torch.Tensor], ids: list[int], k: int, cache: dict, times: list[float]
    ) -> list[torch.Tensor]:
        """One tile's outputs, averaged over the self-ensemble's transforms (each with its own feature cache)."""
        total: list[torch.Tensor] = []
        pad, scale = self.model.size_multiple, self.model.scale
        for g, transform in enumerate(self.ensemble):
            moved = [transform.forward(c, pad) for c in crops]
            key = k if g == 0 else (k, g)  # the identity keeps the plain run's cache keys
            if isinstance(self.model, TwoStream):
                results = self._two_stream(moved[HALF], moved[HALF + 1], ids[HALF : HALF + 2], key, cache, times)
            else:
                results = self._stvun(moved, ids, key, cache, times)
            results = [transform.inverse(r, pad, scale, self.grid) for r in results]
            if len(self.ensemble) == 1:
                return results
            # Sums in fp32: eight bf16 outputs summed in bf16 would round away what averaging gains.
            total = [r.float() for r in results] if g == 0 else [t + r.float() for t, r in zip(total, results)]
        return [t / len(self.ensemble) for t in total]

    def _stvun(
        self, crops: list[torch.Tensor], ids: list[int], k: object, cache: dict, times: list[float]
    ) -> list[torch.Tensor]:
        """STVUN on one tile of a window: encoder features cached per (frame, tile), the centre, then each T_in."""
        net = self._net()
        feats = []
        store = cache if self.keep_features else {}  # without, each window encodes its frames (plan_tile)
        for idx, crop in zip(ids, crops):
            if (idx, k) not in store:
                store[(idx, k)] = net.encode(crop)
            feats.append(store[(idx, k)])
        if self.compiled and len(set(ids)) < len(ids):
            # A window mirrored at a clip's or shot's end holds one frame twice. A compiled EFST guards on which of
            # its inputs are the same tensor, so each mirror pattern (six at each end) would compile again (30 s
            # each, measured); copies keep the one compiled graph.
            feats = [[f.clone() for f in level] if ids.index(idx) != d else level
                     for d, (idx, level) in enumerate(zip(ids, feats))]  # fmt: skip
        x3, x4 = crops[HALF], crops[HALF + 1]
        centre, decoded = net.upsample_center(x3, feats[HALF], net.fuse(feats))
        between = [t for t in times if t > 0]
        made: list[torch.Tensor] = []
        if between:
            flows = net.estimate_flows(x3, x4)
            # The window's new frames go through the decoder together, ``time_batch`` at a time (memory bound).
            for j in range(0, len(between), self.time_batch):
                part = between[j : j + self.time_batch]
                y, _ = net.upsample_between(x3, x4, feats[HALF], feats[HALF + 1], decoded, flows, part)
                made.extend(y.split(x3.shape[0]))
        it = iter(made)
        return [centre if t == 0 else next(it) for t in times]

    def _two_stream(
        self, x3: torch.Tensor, x4: torch.Tensor, ids: list[int], k: object, cache: dict, times: list[float]
    ) -> list[torch.Tensor]:
        """A two-stream network on one tile of a window: f_S of each input cached per (frame, tile)."""
        net = self._net()
        store = cache if self.keep_features else {}

        def hr(idx: int, x: torch.Tensor) -> torch.Tensor:
            if (idx, k) not in store:
                store[(idx, k)] = net.spatial(x)
            return store[(idx, k)]

        h3 = hr(ids[0], x3)
        between = [t for t in times if t > 0]
        pair = (h3, hr(ids[1], x4)) if between and self.stream_name == "st" else None
        made = iter(net.between(x3, x4, between, stream=self.stream_name, time_mode=self.time_mode, hr=pair))
        return [h3 if t == 0 else next(made) for t in times]

    def _warped(
        self,
        i: int,
        following: int,
        times: list[float],
        window: Callable[[int], list[int]],
        buf: dict[int, tuple[torch.Tensor, Fraction]],
        cache: dict,
        kept: dict[int, torch.Tensor],
    ) -> list[torch.Tensor]:
        """Outputs of window ``i`` with warped new frames (:mod:`stvup.upscaling.warped`): the upsampled frame ``i``
        for ``t = 0``, and for each later ``t`` the frame warped from it and from the upsampled frame ``following``
        (``i + 1``, or its mirror at a clip's end) with the network's flow between the two input frames. Each
        upsampled frame is made once, by its own window, and kept for the next."""

        def upsampled(c: int) -> torch.Tensor:
            if c not in kept:
                ids = window(c)
                kept[c] = self._window([buf[j][0] for j in ids], ids, cache, [0.0])[0]
            return kept[c]

        a = upsampled(i)
        if all(t == 0 for t in times):
            return [a for _ in times]
        b = upsampled(following)
        with torch.inference_mode():
            flows = self._net().estimate_flows(buf[i][0], buf[following][0])
        blend = self.model.config.time_blend
        return [a if t == 0 else warp_outputs(a, b, flows, t, blend, scale=self.model.scale) for t in times]

    # -- streams ---------------------------------------------------------------------------------------------------

    def stream(
        self,
        frames: Iterable[tuple[np.ndarray, Fraction]],
        input_rate: Fraction,
        output_rate: Fraction,
        on_frame: Callable[[int], None] | None = None,
        *,
        scene_threshold: float | None = DEFAULT_THRESHOLD,
        on_cut: Callable[[int, Fraction], None] | None = None,
        skip: int = 0,
        stop: int | None = None,
    ) -> Iterator[OutputFrame]:
        """Upsamples ``(image, time)`` pairs (time in seconds from the first frame) into output frames in order.

        Output frame j has time ``j / output_rate``; those between input frames i and i+1 come from window i. After
        the last input frame, its window covers one nominal frame period (``1 / input_rate``), so N frames at an
        integer factor K give N×K frames. ``on_frame(i)`` is called after input frame i has been consumed.

        ``scene_threshold`` (None: no detection) finds hard cuts (:class:`~stvup.upscaling.shots.ShotDetector`); each
        shot is upsampled as a clip of its own, and ``on_cut(i, time)`` is called when input frame i begins a new shot.

        ``skip``: output frames before this one are not made (a resumed run, :mod:`stvup.upscaling.resume`); every frame
        still passes through the scene-cut detector, and the frames that are made equal those of a run from the start.
        ``stop``: the stream ends before output frame ``stop`` (one part of a video split across machines).
        """
        detect = ShotDetector(scene_threshold) if scene_threshold is not None else None
        buf: dict[int, tuple[torch.Tensor, Fraction]] = {}
        cache: dict[tuple[int, int], list[torch.Tensor]] = {}
        kept: dict[int, torch.Tensor] = {}  # warped new frames: the upsampled input frames they are made from
        warped = self.new_frames == "warped"
        # Window i needs frames up to i + 3; warped new frames after frame i also need the upsampled frame i + 1,
        # whose window reaches i + 4.
        ahead = HALF + 1 if warped else HALF
        starts = [0]  # first frames of the shots found so far
        carried: list[int] = []  # output frames after a cut that copy the next shot's first frame
        ended = False  # ``stop`` reached
        size: tuple[int, int] | None = None
        deep = False  # uint16 frames in (a 10- to 16-bit source): uint16 frames out
        n = 0
        done = 0  # next window to process

        def shot(i: int, count: int) -> tuple[int, int]:
            """First frame and end (exclusive) of frame i's shot, as far as known (window i only needs i ± 3)."""
            first = max(s for s in starts if s <= i)
            end = min([s for s in starts if s > i] + [count])
            return first, end

        def run(i: int, total: int | None) -> Iterator[OutputFrame]:
            nonlocal carried, ended
            count = total if total is not None else n
            t0 = buf[i][1]
            t1 = buf[i + 1][1] if i + 1 < count else t0 + 1 / input_rate
            t1 = max(t1, t0 + Fraction(1, 10**6))  # defend against repeated timestamps
            wanted = [(j, Fraction(0)) for j in carried] + times_in_interval(t0, t1, output_rate)
            carried = []
            if i + 1 in starts:
                # The interval spans a cut: each time takes the nearer of frame i and frame i + 1 (whose window
                # runs next), never a blend of the two shots.
                carried = [j for j, t in wanted if t > 0 and 2 * t > 1]
                wanted = [(j, Fraction(0)) for j, t in wanted if not (t > 0 and 2 * t > 1)]
            if stop is not None and any(j >= stop for j, _ in wanted):
                ended = True
                wanted = [(j, t) for j, t in wanted if j < stop]
            wanted = [(j, t) for j, t in wanted if j >= skip]
            if wanted:
                # Window i mirrors at its shot's ends; before the clip's end is known, i + 3 < n (i + 4 for warped
                # new frames), so every frame it needs (and every cut among them) has been read.
                first, end = shot(i, count)

                def window(c: int) -> list[int]:
                    return [first + reflect(c + d - first, end - first) for d in range(-HALF, HALF + 1)]

                ids = window(i)
                times = [float(t) for _, t in wanted]
                if warped:
                    outs = self._warped(i, ids[HALF + 1], times, window, buf, cache, kept)
                else:
                    outs = self._window([buf[j][0] for j in ids], ids, cache, times)
                for (j, t), y in zip(wanted, outs):
                    yield OutputFrame(j, self._finish(y, *size, deep), i, t)
            for key in [key for key in kept if key <= i - 2]:
                del kept[key]
            for key in [key for key in cache if key[0] <= i - HALF]:
                del cache[key]
            for key in [key for key in buf if key <= i - HALF]:
                del buf[key]

        for image, time in frames:
            if size is None:
                size, deep = image.shape[:2], image.dtype == np.uint16
                self.plan_tile(*size, count=math.ceil(output_rate / input_rate))
            elif image.shape[:2] != size:
                got, want = f"{image.shape[1]}x{image.shape[0]}", f"{size[1]}x{size[0]}"
                raise InputError(None, f"frame {n} is {got}, not {want} like frame 0")
            if detect is not None and detect(image):
                starts.append(n)
                if on_cut is not None:
                    on_cut(n, Fraction(time))
            buf[n] = (self._prepare(image), Fraction(time))
            n += 1
            if on_frame is not None:
                on_frame(n - 1)
            # Window i needs frames up to i + 3 (and i + 1 for its end time; i + 4 for warped new frames); before the
            # clip's end is known, mirrored indices are only needed at the start, where they point at frames read.
            while done + ahead < n and not ended:
                yield from run(done, None)
                done += 1
            if ended:
                return
        if n < 2:
            raise InputError(None, f"has {n} frame{'s' * (n != 1)}; at least 2 are needed")
        while done < n and not ended:
            yield from run(done, n)
            done += 1
