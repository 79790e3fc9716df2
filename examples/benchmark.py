"""Time STVUN per output frame (decode, model, encode) against FFmpeg lanczos + minterpolate.

python examples/benchmark.py --size 960x540 --precision bf16 [--weights W.safetensors]
"""

from __future__ import annotations

import argparse
import json

from stvup.evaluation.bench import benchmark, parse_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="960x540")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--model", default=None)
    parser.add_argument("--weights", default=None)
    args = parser.parse_args(argv)
    report = benchmark(
        size=parse_size(args.size),
        frames=args.frames,
        precision=args.precision,
        model=args.model,
        weights=args.weights,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
