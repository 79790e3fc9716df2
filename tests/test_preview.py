"""`stvup preview` (issue 15, item 6): one PNG, bicubic next to stvup, kept and new frame, at output size."""

from __future__ import annotations

import json
import re

import av
import numpy as np
import pytest
from click.testing import CliRunner

import stvup
from stvup.cli.main import cli
from stvup.errors import InputError, OutputError, UsageError
from stvup.upscaling.comparison import _BAR, _GAP, parse_crop

from .conftest import make_clip
from .test_upscale import weights  # noqa: F401 - fixture


def _read_png(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("preview") / "clip.mp4", width=48, height=32, frames=24)


def test_preview_panels_at_output_size(tmp_path, clip, weights):  # noqa: F811
    out = tmp_path / "cmp.png"
    res = CliRunner().invoke(cli, ["preview", str(clip), "--at", "0.5", "-o", str(out), "--weights", str(weights),
                                   "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["panel"] == [192, 128] and report["kept_time"] == 0.5
    picture = _read_png(out)
    assert picture.shape == (2 * (128 + _BAR) + _GAP, 2 * 192 + _GAP, 3)
    # Four panels under four labels; the stvup panels are not the bicubic ones, and the kept and new frames differ.
    panel = [
        picture[r * (128 + _BAR + _GAP) + _BAR :][:128, c * (192 + _GAP) :][:, :192] for r in (0, 1) for c in (0, 1)
    ]
    assert all(p.shape == (128, 192, 3) for p in panel)
    assert not np.array_equal(panel[0], panel[1]) and not np.array_equal(panel[1], panel[3])
    labels = picture[:_BAR, :192]
    assert (labels > 200).any() and (labels < 40).any()  # light text on a dark bar
    again = CliRunner().invoke(cli, ["preview", str(clip), "-o", str(out), "--weights", str(weights)])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_preview_crop_zooms_in(tmp_path, clip, weights):  # noqa: F811
    full = stvup.preview(clip, tmp_path / "full.png", at=0.75, weights=weights, precision="fp32")
    crop = stvup.preview(clip, tmp_path / "crop.png", at=0.75, weights=weights, precision="fp32", crop="64x32+96+40")
    assert crop.panel == (64, 32) and full.panel == (192, 128)
    big, small = _read_png(tmp_path / "full.png"), _read_png(tmp_path / "crop.png")
    # The crop's stvup panel is that region of the full picture's stvup panel, pixel for pixel.
    assert np.array_equal(
        small[_BAR : _BAR + 32, 64 + _GAP :][:, :64], big[_BAR + 40 : _BAR + 72, 192 + _GAP + 96 :][:, :64]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"crop": "64x32"}, UsageError, "--crop must look like WxH+X+Y"),
        ({"crop": "64x32+180+0"}, UsageError, "reaches outside the 192x128 output"),
        ({"at": "9"}, InputError, "--at 9 s is past its end"),
        ({"output": "cmp.jpg"}, OutputError, "ending in .png"),
    ],
)
def test_preview_errors(tmp_path, clip, weights, kwargs, error, message):  # noqa: F811
    kwargs = dict(kwargs)
    output = tmp_path / kwargs.pop("output", "cmp.png")
    with pytest.raises(error, match=re.escape(message)):
        stvup.preview(clip, output, weights=weights, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_parse_crop():
    assert parse_crop("320x180+100+50") == (320, 180, 100, 50) and parse_crop(None) is None
