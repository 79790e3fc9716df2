"""Upscale every video and frame folder in a folder, reusing one loaded model, and list failures.

python examples/batch_folder.py IN_DIR OUT_DIR [--weights W.safetensors]
"""

from __future__ import annotations

import argparse
import sys

import stvup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("in_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--weights", default=None, help="checkpoint; default: the shipped weights")
    parser.add_argument("--time", default="2")
    args = parser.parse_args(argv)

    result = stvup.batch(
        args.in_dir,
        args.out_dir,
        weights=args.weights,
        time=args.time,
        on_start=lambda src, dst: print(f"{src} -> {dst}"),
    )
    for r in result.results:
        print(f"{r.output}: {'skipped (complete)' if r.skipped else f'{r.frames_out} frames'}")
    for message in result.failures.values():
        print(f"failed: {message}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
