"""``stvup bench``: wall time per output frame of the overlapped pipeline, each stage's busy time, and a baseline.

The input is a synthetic clip made here (a moving, textured pattern) at ``size / space``, so the benchmark needs
no data. The baseline is FFmpeg's lanczos scaling plus motion-compensated ``minterpolate``, run through the FFmpeg
binary that imageio-ffmpeg ships. Without weights the network runs with random weights: its speed does not depend
on their values, and the report says so.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from stvup.errors import StvupError, UsageError
from stvup.model import build_model
from stvup.model.weights import default_weights_path, read_safetensors_metadata
from stvup.upscaling.overlap import run_overlapped
from stvup.upscaling.pipeline import Upscaler
from stvup.upscaling.tiling import queue_depth
from stvup.upscaling.timing import parse_time_factor
from stvup.video import VideoWriter, iter_frames

__all__ = ["benchmark", "parse_size", "synthetic_frames"]


def parse_size(text: str) -> tuple[int, int]:
    """``"960x540"`` → ``(960, 540)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 960x540, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise UsageError(f"--size must be positive, not {text!r}")
    return w, h


def synthetic_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB frames of a textured pattern that pans and rotates slowly: detail and motion to work on."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height + 64, width + 64, 3)) * 60
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(count):
        a = 0.02 * i
        u = xs * math.cos(a) - ys * math.sin(a) + 3 * i
        v = xs * math.sin(a) + ys * math.cos(a) + 2 * i
        base = 100 + 60 * np.sin(u / 9.0)[..., None] * np.cos(v / 13.0)[..., None] * np.array([1.0, 0.7, 0.4])
        img = base + noise[2 * i % 64 : 2 * i % 64 + height, i % 64 : i % 64 + width]
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def benchmark(
    *,
    size: tuple[int, int] = (960, 540),
    frames: int = 6,
    time_factor: str | int | Fraction = 2,
    weights: str | None = None,
    model: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    tile: int | str | None = "auto",
    baseline: bool = True,
    compile: str = "auto",
    memory_format: str = "auto",
    ensemble: int = 1,
    warmup: bool | None = None,
    job_frames: int = 2000,
    space: int | None = None,
) -> dict[str, object]:
    """Runs the benchmark and returns its report (seconds per output frame per stage, fps, settings).

    ``warmup`` (default: on for CUDA and when compiling) runs the clip through the model once before timing, so
    that compiling, cuDNN's autotuning and CUDA's start-up are left out; the report gives that time as
    ``warmup_s``, and what of it the warm-up's frames do not explain as ``compile_s``. ``compile="auto"`` decides
    as a job of ``job_frames`` output frames would (:meth:`~stvup.upscaling.pipeline.Upscaler.plan_compile`), and
    ``amortised_s_per_frame`` is what such a job's frames cost with the compile spread over them: what a user of
    a fresh machine gets (run it with an empty ``STVUP_CACHE_DIR`` to be one). ``space``: 2 or 4 (default: the
    model's); ×2 of weights with a ×2 network beside them times that network, as ``upscale --space 2`` runs it."""
    factor = parse_time_factor(time_factor)
    if frames < 2:
        raise UsageError("--frames must be at least 2")
    if job_frames < 1:
        raise UsageError("--job-frames must be at least 1")
    upscaler, weights_label = _bench_upscaler(weights, model, space, device=device, precision=precision, tile=tile,
                                              compile=compile, memory_format=memory_format,
                                              ensemble=ensemble)  # fmt: skip
    s = upscaler.space
    out_w, out_h = size
    if out_w % s or out_h % s:
        raise UsageError(f"--size {out_w}x{out_h} must be divisible by {s} for ×{s} space")
    in_w, in_h = out_w // s, out_h // s
    rate_in = Fraction(25)
    rate_out = rate_in * factor
    first_compile = upscaler.plan_compile(job_frames, in_h, in_w, factor) and upscaler.compiling

    with tempfile.TemporaryDirectory(prefix="stvup-bench-") as tmp:
        src = Path(tmp) / "input.mp4"
        # 4:4:4 accepts odd sizes (960x540 / 4 = 240x135) and keeps the synthetic detail.
        with VideoWriter(src, width=in_w, height=in_h, rate=rate_in, crf=16, pix_fmt="yuv444p") as w:
            images = synthetic_frames(in_w, in_h, frames)
            for img in images:
                w.write(img)

        warmup_s, warm_frames = None, 0
        if warmup if warmup is not None else (upscaler.device.type == "cuda" or upscaler.compiled):
            clip = [(img, Fraction(k) / rate_in) for k, img in enumerate(images)]
            began = time.perf_counter()
            warm_frames = sum(1 for _ in upscaler.stream(clip, rate_in, rate_out))
            warmup_s = time.perf_counter() - began
            if upscaler.device.type == "cuda":
                # cuDNN's autotuning tries algorithms with workspaces as large as the card allows (130 GB of an
                # H200 in fp32, measured): the peak that matters is the timed run's.
                torch.cuda.reset_peak_memory_stats(upscaler.device)
        # The real pipeline: decoder and encoder threads around the model (stvup.upscaling.overlap), so "total" is the
        # wall time per output frame and each stage's figure its busy time; total ≈ model means nothing waits on I/O.
        with iter_frames(src) as stream, VideoWriter(Path(tmp) / "output.mp4", width=out_w, height=out_h,
                                                     rate=rate_out) as w:  # fmt: skip
            n_out, times = run_overlapped(upscaler, ((f.image, f.time) for f in stream), rate_in, rate_out, w.write,
                                          depth=queue_depth(out_w * out_h))  # fmt: skip
        # The warm-up's time beyond its frames' steady cost is the one-off cost (compiling, autotuning) that a long
        # job spreads over its frames.
        one_off = max(warmup_s - warm_frames * times.busy["model"] / n_out, 0.0) if warmup_s is not None else 0.0
        report: dict[str, object] = {
            "model": upscaler.model.config.name,
            "weights": weights_label,
            "device": str(upscaler.device),
            "precision": upscaler.precision,
            "threads": torch.get_num_threads(),
            "input": f"{in_w}x{in_h} @ {rate_in} fps, {frames} frames",
            "output": f"{out_w}x{out_h} @ {rate_out} fps, {n_out} frames",
            "tile": upscaler.tile,
            "memory_format": upscaler.memory_format_name,
            "compile": upscaler.compile,
            "compiled": upscaler.compiled,
            "first_compile": first_compile,
            "ensemble": len(upscaler.ensemble),
            "warmup_s": warmup_s,
            "compile_s": one_off if upscaler.compiled else None,
            "job_frames": job_frames,
            "amortised_s_per_frame": times.wall / n_out + one_off / job_frames,
            "stages_s_per_frame": {
                "decode": times.busy["decode"] / n_out,
                "model": times.busy["model"] / n_out,
                "encode": times.busy["encode"] / n_out,
                "total": times.wall / n_out,
            },
            "wall_over_model": times.wall / max(times.busy["model"], 1e-9),
            "peak_memory_mb": _peak_memory_mb(upscaler.device),
            "fps": n_out / times.wall,
        }
        if baseline:
            report["baseline"] = _ffmpeg_baseline(src, Path(tmp) / "baseline.mp4", out_w, out_h, rate_out)
    return report


def _peak_memory_mb(device: torch.device) -> float:
    """The most memory this process has held: GPU memory on CUDA (since the warm-up), else the resident set (the
    process's whole life, so run ``stvup bench`` in a fresh process to measure one configuration)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ffmpeg_baseline(src: Path, dst: Path, width: int, height: int, rate: Fraction) -> dict[str, object]:
    """FFmpeg lanczos + minterpolate (motion-compensated interpolation) over the same input."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        return {"error": f"FFmpeg binary not available ({exc})"}
    vf = f"scale={width}:{height}:flags=lanczos,minterpolate=fps={rate.numerator}/{rate.denominator}:mi_mode=mci"
    cmd = [exe, "-v", "error", "-nostdin", "-y", "-i", str(src), "-vf", vf, "-c:v", "libx264", "-crf", "18", str(dst)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]}
    try:
        with iter_frames(dst) as stream:  # count what was really written; header counts can be estimates
            n = sum(1 for _ in stream)
    except StvupError:
        n = 0
    return {
        "name": "ffmpeg lanczos + minterpolate",
        "frames": n,
        "s_per_frame": seconds / n if n else None,
        "fps": n / seconds if seconds else None,
    }


def _bench_upscaler(
    weights: str | None, model: str | None, space: int | None, **settings: object
) -> tuple[Upscaler, str]:
    """The network to time and how its weights are described: ``weights``, else the shipped weights when they are
    ``model``'s variant, else ``model`` with random weights (the same speed)."""
    from stvup.upscaling.loader import load_upscaler

    weights_path, why_random = weights, "no weights given or shipped"
    if weights_path is None:
        # The shipped weights time their own variant; another --model is timed with random weights (same speed).
        shipped = default_weights_path()
        shipped_model = read_safetensors_metadata(shipped).get("stvup_model") if shipped is not None else None
        if shipped is not None and model not in (None, shipped_model):
            why_random = f"the shipped weights are {shipped_model}, not {model}"
        else:
            weights_path = shipped
    if weights_path is not None:
        upscaler = load_upscaler(weights_path, model=model, space=space, **settings)
        weights_label = str(upscaler.weights_path or weights_path)
    else:
        torch.manual_seed(0)
        try:
            net = build_model(model or "stvun")
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        upscaler = Upscaler(net, space=space, **settings)
        weights_label = f"random (speed only: {why_random})"
    return upscaler, weights_label
