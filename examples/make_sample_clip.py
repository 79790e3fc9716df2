"""Write a short synthetic sample clip (moving texture + a 440 Hz tone) for the other examples.

python examples/make_sample_clip.py sample.mp4 --size 160x96 --frames 24
"""

from __future__ import annotations

import argparse
from fractions import Fraction

import av
import numpy as np

from stvup.evaluation.bench import parse_size, synthetic_frames


def make_sample_clip(path: str, width: int = 160, height: int = 96, frames: int = 24, fps: int = 24) -> None:
    """Encode ``frames`` frames of a panning texture with a mono AAC tone of the same duration."""
    rate = Fraction(fps)
    with av.open(path, "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i, image in enumerate(synthetic_frames(width, height, frames)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode(None))  # flush the encoder's delayed frames
        samples = int(48000 * frames / fps)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="sample.mp4")
    parser.add_argument("--size", default="160x96")
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args(argv)
    make_sample_clip(args.output, *parse_size(args.size), frames=args.frames)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
