"""Make the README's picture: a new frame of real footage that moves, from real-video input, by each method.

python examples/readme_picture.py HR_CLIP docs/preview.png --frame 189 --crop 360x300+240+40 --crf 23

Fifteen frames of the full-resolution clip around ``--frame`` are reduced ×4 as real low-resolution video is made
(antialiased bicubic on the block-centre grid, H.264 at ``--crf``: the real protocol of ``stvup eval``), and every
other one is kept as input, so that ``--frame`` is a new frame halfway between two inputs. Bicubic + frame blending,
FFmpeg's lanczos + ``minterpolate`` (mi_mode=mci) and stvup each make it; the picture shows the three and the true
frame side by side, cropped to ``--crop`` (output pixels), each panel named. The shipped picture's source and licence
are given in the README.
"""

from __future__ import annotations

import argparse

import numpy as np

from stvup.evaluation.methods import run_method
from stvup.evaluation.protocol import Protocol, read_clip
from stvup.upscaling.loader import load_upscaler

CONTEXT = 7  # frames each side of the new one: eight inputs, so stvup's windows see real neighbours
PANELS = (("bicubic", "bicubic + blend"), ("ffmpeg", "FFmpeg minterpolate"), ("stvup", "stvup"))


def make_picture(source: str, output: str, frame: int, crop: str | None, crf: int, weights: str | None = None) -> str:
    """Writes ``output`` (a PNG) and returns its path."""
    import cv2

    if frame < CONTEXT:
        raise SystemExit(f"--frame must be at least {CONTEXT} (the frames before it are the context)")
    hr = read_clip(source, frame + CONTEXT + 1)[frame - CONTEXT :]
    if len(hr) < 2 * CONTEXT + 1:
        raise SystemExit(f"{source}: has no {CONTEXT} frames after frame {frame}")
    hr = [f[: f.shape[0] // 8 * 8, : f.shape[1] // 8 * 8] for f in hr]
    lr = Protocol("real", "bicubic", crf).degrade(hr[0::2], 4)
    upscaler = load_upscaler(weights, precision="fp32")
    shown = [(label, run_method(method, lr, 4, upscaler, 2)[CONTEXT]) for method, label in PANELS]
    shown.append(("truth", hr[CONTEXT]))
    x, y, w, h = 0, 0, hr[0].shape[1], hr[0].shape[0]
    if crop:
        size, x, y = crop.replace("+", " ").split()
        (w, h), x, y = map(int, size.split("x")), int(x), int(y)
    panels = []
    for label, image in shown:
        panel = np.ascontiguousarray(image[y : y + h, x : x + w, ::-1])  # OpenCV draws and writes BGR
        cv2.rectangle(panel, (0, 0), (w, 24), (0, 0, 0), -1)
        cv2.putText(panel, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(panel)
    gap = np.full((h, 4, 3), 255, np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    if not cv2.imwrite(output, row):
        raise SystemExit(f"{output}: cannot be written")
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="full-resolution video")
    parser.add_argument("output", help="PNG to write")
    parser.add_argument("--frame", type=int, default=CONTEXT, help="the new frame to show (a frame number of SOURCE)")
    parser.add_argument("--crop", default=None, help="WxH+X+Y in output pixels")
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality of the low-resolution delivery")
    parser.add_argument("--weights", default=None, help="weights file or shipped name (default: the default)")
    args = parser.parse_args(argv)
    print(make_picture(args.source, args.output, args.frame, args.crop, args.crf, args.weights))


if __name__ == "__main__":
    main()
