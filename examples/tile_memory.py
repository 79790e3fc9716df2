"""Peak memory and time of one window at a few input sizes: the numbers behind ``--tile auto`` (stvup.upscaling.tiling).

python examples/tile_memory.py stvun-small bf16 128     # one model, precision and input side per process

Each run is its own process, because the peak resident size (``ru_maxrss``) only ever grows. Random weights: the
speed and the memory of a network do not depend on its weights.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from fractions import Fraction

import numpy as np
import torch

from stvup.model import build_model
from stvup.upscaling.pipeline import Upscaler


def measure(model: str, precision: str, side: int, frames: int = 4) -> dict[str, float]:
    """MB resident after loading, at the peak of streaming ``frames`` frames of ``side``² at ×2 time, and s/frame."""
    up = Upscaler(build_model(model), device="cpu", precision=precision, tile="off")
    rng = np.random.default_rng(0)
    clip = [(rng.integers(0, 255, (side, side, 3), dtype=np.uint8), Fraction(i, 25)) for i in range(frames)]
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    count = sum(1 for _ in up.stream(clip, Fraction(25), Fraction(50)))
    seconds = (time.perf_counter() - start) / count
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"loaded_mb": round(loaded), "peak_mb": round(peak), "s_per_frame": round(seconds, 3)}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="stvun-small")
    parser.add_argument("precision", nargs="?", default="bf16")
    parser.add_argument("side", nargs="?", type=int, default=64, help="input frame side in pixels")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"model": args.model, "precision": args.precision, "side": args.side,
              **measure(args.model, args.precision, args.side, args.frames)}  # fmt: skip
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
