"""Decoder, model and encoder overlapped in threads: the same output as one after another, and clean stops."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

import stvup
from stvup.errors import InputError
from stvup.upscaling.overlap import run_overlapped
from stvup.upscaling.pipeline import Upscaler
from stvup.video import iter_frames

from .test_upscale import _files, _frames, _tiny, weights  # noqa: F401 - the fixture is used by name


def _workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("stvup-")]


def _decoded(path):
    with iter_frames(path) as stream:
        return [(f.image, f.time) for f in stream]


def test_overlapped_output_equals_the_sequential_one(clips, weights, tmp_path):  # noqa: F811
    a, b = tmp_path / "overlapped.mkv", tmp_path / "sequential.mkv"
    common = dict(time=2, weights=weights, device="cpu", precision="fp32", codec="ffv1")
    ra = stvup.upscale(clips["subs"], a, **common)
    rb = stvup.upscale(clips["subs"], b, overlap=False, **common)
    assert ra.frames_out == rb.frames_out == 2 * ra.frames_in > 0
    fa, fb = _decoded(a), _decoded(b)
    assert [t for _, t in fa] == [t for _, t in fb]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(fa, fb))
    assert _workers() == []


def test_stage_times_add_up():
    written = []
    up = Upscaler(_tiny(), device="cpu", precision="fp32")
    frames = _frames(5)

    def slow_write(image):
        time.sleep(0.01)
        written.append(image)

    n, times = run_overlapped(up, frames, Fraction(25), Fraction(50), slow_write)
    assert n == len(written) == 10
    assert times.busy["encode"] >= 0.1 and times.busy["model"] > 0 and times.wall > 0
    # Overlapped, the wall time is less than the sum of the busy times would be one after another ...
    assert times.wall < sum(times.busy.values()) + 0.05
    # ... and the sequential reference gives the same images in the same order.
    again = []
    n2, seq = run_overlapped(Upscaler(_tiny(), device="cpu", precision="fp32"), frames, Fraction(25), Fraction(50),
                             again.append, depth=0)  # fmt: skip
    assert n2 == 10 and all(np.array_equal(x, y) for x, y in zip(written, again))
    assert seq.wall >= seq.busy["model"]


def test_a_decoding_error_stops_every_stage(weights, tmp_path):  # noqa: F811
    """A frame folder whose sixth picture is damaged: one error naming it, no threads left, nothing written."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (image, _) in enumerate(_frames(8, h=32, w=48)):
        av.VideoFrame.from_ndarray(image, format="rgb24").save(str(folder / f"{i:03d}.png"))
    (folder / "005.png").write_bytes(b"not a png at all")
    out = tmp_path / "out.mp4"
    started = time.perf_counter()
    with pytest.raises(InputError, match="005.png"):
        stvup.upscale(folder, out, time=2, weights=weights, device="cpu")
    assert time.perf_counter() - started < 60 and _workers() == []
    assert _files(tmp_path) == ["frames"]


def test_an_encoding_error_stops_every_stage():
    up = Upscaler(_tiny(), device="cpu", precision="fp32")

    def broken(image):
        if broken.n == 3:
            raise OSError("disk full")
        broken.n += 1

    broken.n = 0
    with pytest.raises(OSError, match="disk full"):
        run_overlapped(up, _frames(12), Fraction(25), Fraction(50), broken)
    assert _workers() == []


def test_ctrl_c_in_the_model_stage_stops_the_threads(clips, weights, tmp_path):  # noqa: F811
    out = tmp_path / "cut.mp4"

    def stop(p):
        if p.frames_in == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stvup.upscale(clips["long"], out, time=2, weights=weights, device="cpu", progress=stop)
    assert _workers() == [] and _files(tmp_path) == []


def test_a_failing_frame_source_is_raised_in_the_caller():
    def frames():
        yield from _frames(4)
        raise InputError("clip.mp4", "corrupt packet")

    with pytest.raises(InputError, match="corrupt packet"):
        run_overlapped(Upscaler(_tiny(), device="cpu"), frames(), Fraction(25), Fraction(50), lambda image: None)
    assert _workers() == []
