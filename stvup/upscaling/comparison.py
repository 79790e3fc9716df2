"""``stvup preview``: one picture that shows what an upscale will give, in seconds rather than hours.

Side by side at output size: bicubic (and, for the new frame, bicubic frames blended) next to stvup, for the kept
frame at ``at`` and the new frame halfway to the next input frame, each under a label. Only the seven frames that
window needs are decoded (the input is seeked, :mod:`stvup.video.trim`), and one window runs through the network.
``crop`` (``WxH+X+Y`` in output pixels) zooms in on a region. Labels are drawn with a small built-in bitmap font,
so that no font file or imaging library is needed.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F

from stvup.errors import OutputError, UsageError
from stvup.errors import describe as _describe
from stvup.video.color import eight_bit
from stvup.video.partial import default_mode

from .options import UpscaleOptions

__all__ = ["PreviewResult", "parse_crop", "preview"]

# 5×7 glyphs, one string of 35 cells per character ("#" = ink), for the labels.
_GLYPHS = {  # fmt: skip
    "A": " ### #   ##   #######   ##   ##   #",
    "B": "#### #   ##   ##### #   ##   ##### ",
    "C": " ### #   ##    #    #    #   # ### ",
    "D": "#### #   ##   ##   ##   ##   ##### ",
    "E": "######    #    #### #    #    #####",
    "F": "######    #    #### #    #    #    ",
    "G": " ### #   ##    # ####   ##   # ### ",
    "H": "#   ##   ##   #######   ##   ##   #",
    "I": " ###   #    #    #    #    #   ### ",
    "J": "  ###   #    #    # #  # #  #  ##  ",
    "K": "#   ##  # # #  ##   # #  #  # #   #",
    "L": "#    #    #    #    #    #    #####",
    "M": "#   ### ### # ## # ##   ##   ##   #",
    "N": "#   ###  ## # ##  ###   ##   ##   #",
    "O": " ### #   ##   ##   ##   ##   # ### ",
    "P": "#### #   ##   ##### #    #    #    ",
    "Q": " ### #   ##   ##   ## # ##  #  ## #",
    "R": "#### #   ##   ##### # #  #  # #   #",
    "S": " #####    #     ###     #    ##### ",
    "T": "#####  #    #    #    #    #    #  ",
    "U": "#   ##   ##   ##   ##   ##   # ### ",
    "V": "#   ##   ##   ##   ##   # # #   #  ",
    "W": "#   ##   ##   ## # ## # ## # # # # ",
    "X": "#   ##   # # #   #   # # #   ##   #",
    "Y": "#   ##   # # #   #    #    #    #  ",
    "Z": "#####    #   #   #   #   #    #####",
    "0": " ### #   ##  ### # ###  ##   # ### ",
    "1": "  #   ##    #    #    #    #   ### ",
    "2": " ### #   #    #   #   #   #   #####",
    "3": "#####   #   #     #     ##   # ### ",
    "4": "   #   ##  # # #  # #####   #    # ",
    "5": "######    ####     #    ##   # ### ",
    "6": "  ##  #   #    #### #   ##   # ### ",
    "7": "#####    #   #   #   #    #    #   ",
    "8": " ### #   ##   # ### #   ##   # ### ",
    "9": " ### #   ##   # ####    #   #  ##  ",
    " ": "                                   ",
    ".": "                          ##   ##  ",
    ":": "      ##   ##        ##   ##       ",
    "=": "          #####     #####          ",
    "-": "               #####               ",
    "+": "       #    #  #####  #    #       ",
    "/": "    #    #   #   #   #   #    #    ",
    "(": "   #   #   #    #    #     #     # ",
    ")": " #     #     #    #    #   #   #   ",
    "×": "     #   # # #   #   # # #   #     ",
}
_SCALE = 2  # pixels per font cell
_BAR = 7 * _SCALE + 8  # label bar height
_GAP = 4  # pixels between panels


@dataclass
class PreviewResult:
    """What ``preview`` wrote: the PNG, its size, and the input time of the kept frame shown."""

    output: str
    size: tuple[int, int]
    kept_time: float
    panel: tuple[int, int]


def parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    """``"320x180+100+50"`` → ``(w, h, x, y)`` in output pixels."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)x(\d+)\+(\d+)\+(\d+)\s*", text)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise UsageError(f"--crop must look like WxH+X+Y (e.g. 320x180+100+50), not {text!r}")
    return int(match[1]), int(match[2]), int(match[3]), int(match[4])


def _label(text: str, width: int) -> np.ndarray:
    """A dark bar ``width`` wide with ``text`` in light capitals: half size if it does not fit, clipped if it still
    does not."""
    bar = np.full((_BAR, width, 3), 24, np.uint8)
    scale = _SCALE if 6 + 6 * _SCALE * len(text) <= width else 1
    x = 6
    for char in text.upper():
        glyph = _GLYPHS.get(char, _GLYPHS[" "])
        cells = np.array([c == "#" for c in glyph], bool).reshape(7, 5)
        ink = np.kron(cells, np.ones((scale, scale), bool))
        w = min(ink.shape[1], width - x)
        if w <= 0:
            break
        region = bar[4 : 4 + ink.shape[0], x : x + w]
        region[ink[:, :w]] = 235
        x += 6 * scale
    return bar


def _bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(h, w, 3)`` → bicubic to ``size`` (h, w), as float in [0, 255]."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    return y[0].permute(1, 2, 0).clamp(0, 255).numpy()


def _write_png(path: Path, image: np.ndarray) -> None:
    """Encode with PyAV's PNG encoder into a temporary sibling, then rename: never a half-written picture."""
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = image.shape[1], image.shape[0], "rgb24"
    encoder.time_base = Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    frame.pts = 0
    data = b"".join(bytes(p) for p in encoder.encode(frame) + encoder.encode(None))
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-{os.getpid()}-", dir=path.parent)
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.chmod(tmp, default_mode(0o666))  # mkstemp makes owner-only files
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(path, f"cannot write the picture ({_describe(exc)})") from None


def preview(
    input: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: UpscaleOptions | None = None,
    *,
    at: str | float = 0,
    crop: str | None = None,
    upscaler: object | None = None,
    **settings: Any,
) -> PreviewResult:
    """Writes ``output`` (default ``<input>_preview.png``): bicubic | stvup for the kept frame at ``at`` (seconds or
    HH:MM:SS.ms) and for the new frame halfway to the next input frame, at output size or cropped to ``crop``.
    ``options`` and keyword ``settings`` are :func:`stvup.upscale`'s (the network, ``space``, ``input_fps``,
    ``overwrite``, ``ensemble``, ...; :class:`~stvup.upscaling.options.UpscaleOptions`)."""
    from stvup.video import probe
    from stvup.video.trim import Span, iter_span, parse_time

    from .loader import load_upscaler
    from .shots import DEFAULT_THRESHOLD

    in_path = os.fspath(input)
    window = parse_crop(crop)
    start = parse_time(at, "--at")
    src = Path(in_path.rstrip("/\\"))
    default = src.with_name(f"{src.stem if src.is_file() else src.name}_preview.png")
    out = Path(output) if output is not None else default
    if out.suffix.lower() != ".png":
        raise OutputError(out, "the preview is a PNG picture: give a name ending in .png")
    options = UpscaleOptions.build(options, **settings)
    if out.exists() and not options.overwrite:
        raise OutputError(out, "exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise OutputError(out, f"folder {out.parent} does not exist")
    info = probe(in_path, input_fps=options.folder_fps)
    span = Span(start, 1 / info.rate)
    span.check(info, "--at")
    if upscaler is None:
        upscaler = load_upscaler(**options.model_settings())
    s = upscaler.space
    size = (info.height * s, info.width * s)
    if window is not None:
        w, h, x, y = window
        if x + w > size[1] or y + h > size[0]:
            raise UsageError(f"--crop {crop} reaches outside the {size[1]}x{size[0]} output")

    inputs: dict[Fraction, np.ndarray] = {}  # the LR frames at span time 0 (kept) and the next one

    def frames():
        with iter_span(in_path, info, span) as stream:
            for f in stream:
                if f.time >= 0 and len(inputs) < 2:
                    inputs[f.time] = f.image
                yield f.image, f.time

    outs = list(upscaler.stream(frames(), info.rate, 2 * info.rate, scene_threshold=DEFAULT_THRESHOLD, stop=2))
    lr = [eight_bit(inputs[t]) for t in sorted(inputs)]
    kept_bicubic = _bicubic(lr[0], size)
    new_bicubic = (kept_bicubic + _bicubic(lr[-1], size)) / 2  # the last frame has no next: its own copy
    panels = [
        (kept_bicubic, f"bicubic  kept {float(span.start):.2f} s"),
        (eight_bit(outs[0].image), f"stvup ×{s}  kept"),
        (new_bicubic, "bicubic+blend  new t=0.5"),
        (eight_bit(outs[1].image), f"stvup ×{s}  new t=0.5"),
    ]
    tiles = []
    for image, text in panels:
        picture = np.asarray(image).round().astype(np.uint8)
        if window is not None:
            w, h, x, y = window
            picture = picture[y : y + h, x : x + w]
        tiles.append(np.concatenate([_label(text, picture.shape[1]), picture]))
    th, tw = tiles[0].shape[:2]
    canvas = np.full((2 * th + _GAP, 2 * tw + _GAP, 3), 255, np.uint8)
    for k, tile_image in enumerate(tiles):
        r, c = divmod(k, 2)
        canvas[r * (th + _GAP) : r * (th + _GAP) + th, c * (tw + _GAP) : c * (tw + _GAP) + tw] = tile_image
    _write_png(out, canvas)
    return PreviewResult(os.fspath(out), (canvas.shape[1], canvas.shape[0]), float(span.start), (tw, th - _BAR))
