"""Make the README's picture: real footage, reduced ×4 as real low-resolution video is made, then bicubic | stvup.

python examples/readme_picture.py HR_CLIP docs/preview.png --at 1.0 --crop 320x240+160+120 --crf 23

The full-resolution clip is reduced by antialiased bicubic and delivered as H.264 at ``--crf`` (the real
protocol's input, :func:`stvup.evaluation.protocol.write_real_input`) into a temporary file, and ``stvup preview`` shows
the kept frame at ``--at`` and the new frame halfway to the next one, bicubic beside stvup, cropped to ``--crop``
(output pixels). The shipped picture's source and licence are given in the README.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import stvup
from stvup.evaluation.protocol import write_real_input


def make_picture(source: str, output: str, at: float, crop: str | None, crf: int, weights: str | None = None) -> str:
    """Writes ``output`` (a PNG) and returns its path; the LR clip lives only in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="stvup-picture-") as tmp:
        lr = Path(tmp) / "input.mp4"
        write_real_input(source, lr, crf=crf, max_frames=None)
        result = stvup.preview(lr, output, at=at, crop=crop, overwrite=True, weights=weights, precision="fp32")
    return result.output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="full-resolution video (its size divisible by 8 after cropping)")
    parser.add_argument("output", help="PNG to write")
    parser.add_argument("--at", type=float, default=1.0, help="seconds into the clip")
    parser.add_argument("--crop", default=None, help="WxH+X+Y in output pixels")
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality of the low-resolution delivery")
    parser.add_argument("--weights", default=None, help="weights file or shipped name (default: the default)")
    args = parser.parse_args(argv)
    print(make_picture(args.source, args.output, args.at, args.crop, args.crf, args.weights))


if __name__ == "__main__":
    main()
