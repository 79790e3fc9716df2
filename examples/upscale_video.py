"""Upscale one video ×4 in space and ×2 in time through the library API, with a simple progress line.

python examples/make_sample_clip.py sample.mp4
python examples/upscale_video.py sample.mp4 sample_x4.mp4 [--weights W.safetensors]
"""

from __future__ import annotations

import argparse

import stvup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--weights", default=None, help="checkpoint; default: the shipped weights")
    parser.add_argument("--time", default="2")
    args = parser.parse_args(argv)

    def report(p: stvup.api.Progress) -> None:
        print(f"\r{p.frames_in}/{p.total or '?'} input frames, {p.frames_out} written", end="", flush=True)

    result = stvup.upscale(args.input, args.output, space=4, time=args.time, weights=args.weights, progress=report)
    print(f"\n{result.output}: {result.frames_out} frames at {result.output_rate} fps in {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
