"""Time the network alone for each precision, memory layout, compile mode and correlation: ms per frame, peak memory.

python examples/speed_variants.py --device cuda --model stvun --size 960x540 --out variants.json

Made for a session that is lent a GPU (README, "A GPU session"; examples/gpu_session.sh runs it): it needs PyTorch and
stvup only, not PyAV, so it runs on the GPU machine as that machine comes. The frames are synthetic and the weights
random: speed does not depend on either. Each variant warms up first (compiling, cuDNN's autotuning), then streams
``--frames`` input frames at ``--time``; the timing includes moving frames to the device and the results back, as in a
real run. Results are written after every variant, so a run cut short by ``--budget`` (seconds) still reports what it
did.
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction

import numpy as np
import torch

from stvup.model import build_model
from stvup.upscaling.pipeline import Upscaler


def clip(width: int, height: int, count: int) -> list[tuple[np.ndarray, Fraction]]:
    """A textured pattern moving two pixels per frame (motion for PWC-Net, detail for the decoder)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height + 2 * count, width + 2 * count, 3), dtype=np.uint8)
    return [(np.ascontiguousarray(base[k : k + height, 2 * k : 2 * k + width]), Fraction(k, 25)) for k in range(count)]


def measure(model: str, device: str, precision: str, layout: str, compile: str, size: tuple[int, int], frames: int,
            time_factor: int, correlation: str = "loop") -> dict[str, object]:  # fmt: skip
    """One variant: warm-up seconds (compiling or capturing included), then ms per output frame and peak memory."""
    torch.manual_seed(0)
    up = Upscaler(build_model(model), device=device, precision=precision, tile="off", memory_format=layout,
                  compile=compile)  # fmt: skip
    up.model.pwcnet.correlation_mode = correlation  # the compiled or graphed twin shares the module
    s = up.space
    frames_in = clip(size[0] // s, size[1] // s, frames)
    rate_in, rate_out = Fraction(25), Fraction(25 * time_factor)
    began = time.perf_counter()
    for _ in up.stream(frames_in[: min(frames, 4)], rate_in, rate_out):
        pass
    warmup = time.perf_counter() - began
    if up.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(up.device)
    began = time.perf_counter()
    count = sum(1 for _ in up.stream(frames_in, rate_in, rate_out))  # each frame comes back to the CPU: synchronised
    seconds = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated(up.device) / 2**20 if up.device.type == "cuda" else None
    return {"model": model, "device": str(up.device), "precision": up.precision, "memory_format": layout,
            "compile": compile, "correlation": correlation, "size": f"{size[0]}x{size[1]}", "frames_out": count,
            "warmup_s": round(warmup, 2), "ms_per_frame": round(1000 * seconds / count, 2),
            "peak_mb": round(peak) if peak else None}  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="stvun")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="960x540", help="output size WxH")
    parser.add_argument("--frames", type=int, default=12, help="input frames timed per variant")
    parser.add_argument("--time", type=int, default=2, help="frame-rate factor")
    parser.add_argument("--precisions", default="bf16,fp16,fp32")
    parser.add_argument("--layouts", default="contiguous,channels-last")
    parser.add_argument("--compile", default="off,cuda-graphs", help="compile modes, tried with the first precision")
    parser.add_argument("--correlations", default="loop,rows,batched",
                        help="correlations (stvup.model.pwcnet), tried with the first precision and layout in every "
                        "compile mode")  # fmt: skip
    parser.add_argument("--budget", type=float, default=420, help="seconds; no new variant starts after this")
    parser.add_argument("--out", default=None, help="JSON file, rewritten after each variant")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    precisions = args.precisions.split(",")
    layouts, modes, correlations = args.layouts.split(","), args.compile.split(","), args.correlations.split(",")
    variants = [(p, layout, "off", "loop") for p in precisions for layout in layouts]
    variants += [(precisions[0], layout, mode, "loop") for mode in modes if mode != "off" for layout in layouts]
    variants += [(precisions[0], layouts[0], mode, c) for c in correlations if c != "loop" for mode in modes]
    results: list[dict[str, object]] = []
    began = time.perf_counter()
    for precision, layout, mode, corr in variants:
        if time.perf_counter() - began > args.budget:
            results.append({"skipped": [precision, layout, mode, corr], "why": "time budget"})
            continue
        try:
            row = measure(args.model, args.device, precision, layout, mode, size, args.frames, args.time, corr)
        except Exception as exc:  # noqa: BLE001 - a variant that fails is reported, the others still run
            row = {"precision": precision, "memory_format": layout, "compile": mode, "correlation": corr,
                   "error": f"{exc}"[:300]}  # fmt: skip
        results.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "w") as handle:
                json.dump(results, handle, indent=1)
    return results


if __name__ == "__main__":
    main()
