"""``--to``: an output size as people name it (``4k``, ``1080p``, ``1440``), turned into a spatial factor and an
exact frame size.

People think of the size they want, not of a factor: "make this 720p clip 4K". The network works at ×2 or ×4, so
:func:`plan_target` picks the smaller factor that reaches the height asked for (×2 costs about a quarter of ×4 per
input frame) and the output is reduced to exactly that height, with the width scaled by the same amount so that the
pixel shape (and with it the picture's shape) stays the input's. The width is rounded to an even number, which 4:2:0
video needs.
"""

from __future__ import annotations

import re

from stvup.errors import UsageError

__all__ = ["NAMED_HEIGHTS", "UHD", "parse_target", "plan_target"]

#: Heights of the names people use.
NAMED_HEIGHTS = {"hd": 720, "fhd": 1080, "qhd": 1440, "uhd": 2160, "4k": 2160, "8k": 4320}
#: The output beyond which a ×4 run is worth a hint that ``--to 4k`` exists (3840×2160 pixels).
UHD = 3840 * 2160


def parse_target(value: str | int) -> int:
    """The output height ``value`` asks for: a number of rows (``2160``, ``2160p``) or a name (``4k``, ``8k``,
    ``hd``, ``fhd``, ``qhd``, ``uhd``); anything else is a :class:`~stvup.errors.UsageError`."""
    text = str(value).strip().lower()
    if text in NAMED_HEIGHTS:
        return NAMED_HEIGHTS[text]
    match = re.fullmatch(r"(\d+)p?", text)
    if match is None or int(match.group(1)) < 2:
        names = ", ".join(NAMED_HEIGHTS)
        raise UsageError(f"--to must be an output height such as 2160 or 1080p, or one of {names}; got {value!r}")
    return int(match.group(1))


def plan_target(width: int, height: int, target: int) -> tuple[int, tuple[int, int]]:
    """For ``width × height`` input frames and an output ``target`` rows high: the spatial factor to run (2 or 4) and
    the exact output size ``(w, h)``, the width scaled as the height is and rounded to an even number."""
    if target <= height:
        raise UsageError(f"--to {target}: the input is already {height} rows high; stvup makes frames larger")
    if target > 4 * height:
        raise UsageError(f"--to {target}: more than ×4 of the input's {height} rows (at most {4 * height})")
    space = 2 if target <= 2 * height else 4
    out_w = max(2, round(width * target / height / 2) * 2)
    return space, (out_w, target)
