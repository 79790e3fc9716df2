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

from .helpers import HANG_GUARD, finishes_within
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


def _source(frames, before=None, rest: float = 0.0):
    """``frames`` as a decoder gives them, each after ``rest`` seconds of "decoding"; ``before`` maps a frame number to
    a function called before that frame is given."""
    for k, item in enumerate(frames):
        if before is not None and k in before:
            before[k]()
        time.sleep(rest)
        yield item


def test_each_stage_is_timed_where_it_runs():
    """The source's time counts as decoding and the writer's as encoding, overlapped or one after another; and when
    the model stage waits for the decoder, its busy time leaves the wait out (that is what bench's figures say)."""
    frames, rest, pause = _frames(5), 0.02, 0.5
    window0_done = threading.Event()
    waited_from, waited_to = [], []

    def on_output(out):
        if out.source == 0 and out.t_in > 0:  # window 0's second (last) output: the model needs frame 4 next
            waited_from.append(time.perf_counter())
            window0_done.set()

    def on_frame(i):
        if i == 4:
            waited_to.append(time.perf_counter())

    def late():  # frame 4 comes only after the model has had to wait for it for ``pause`` seconds
        assert window0_done.wait(HANG_GUARD)
        time.sleep(pause)

    runs = {}
    for depth in (4, 0):
        written = []

        def write(image, written=written):
            time.sleep(rest)
            written.append(image)

        up = Upscaler(_tiny(), device="cpu", precision="fp32")
        source = _source(frames, {4: late} if depth else None, rest)
        n, times = run_overlapped(up, source, Fraction(25), Fraction(50), write, depth=depth, on_frame=on_frame,
                                  on_output=on_output)  # fmt: skip
        assert n == len(written) == 10 and times.busy["model"] > 0
        assert times.busy["decode"] >= 5 * rest and times.busy["encode"] >= 10 * rest, (depth, times)
        runs[depth] = (written, times)
    assert all(np.array_equal(x, y) for x, y in zip(runs[4][0], runs[0][0]))
    # Overlapped, the model stage sat idle from window 0's last output to frame 4's arrival: not model time. Counted
    # in, the busy time would be the model stage's whole span, which falls short of the wall time only by the
    # encoder's last few writes (well under 80 % of the pause).
    times = runs[4][1]
    idle = waited_to[0] - waited_from[0]
    assert idle >= pause and times.busy["model"] <= times.wall - 0.8 * idle, (idle, times)


def test_the_three_stages_run_at_once():
    """What only overlapped stages can do, and stages one after another cannot: the model stage waits, before its
    first window, for the decoder to read beyond what that window needs (frames 0-3), and the encoder's first write
    waits for the model to be at its second window. In one thread, one after another, neither wait could end."""
    up = Upscaler(_tiny(), device="cpu", precision="fp32")
    read_ahead, second_window = threading.Event(), threading.Event()
    threads = {}

    def on_frame(i):
        threads.setdefault("model", threading.current_thread().name)
        if i == 3:  # window 0 runs next
            assert read_ahead.wait(HANG_GUARD), "the decoder did not read on while the model stage waited"

    def on_output(out):
        if out.source >= 1:
            second_window.set()

    def write(image):
        threads.setdefault("encode", threading.current_thread().name)
        assert second_window.wait(HANG_GUARD), "the model did not go on while the encoder wrote"

    def mark():
        threads.setdefault("decode", threading.current_thread().name)
        read_ahead.set()

    source = _source(_frames(8), {5: mark})
    n, _ = run_overlapped(up, source, Fraction(25), Fraction(50), write, on_frame=on_frame, on_output=on_output)
    assert n == 16 and len(set(threads.values())) == 3, threads
    assert _workers() == []


def test_a_decoding_error_stops_every_stage(weights, tmp_path):  # noqa: F811
    """A frame folder whose sixth picture is damaged: one error naming it, no threads left, nothing written."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (image, _) in enumerate(_frames(8, h=32, w=48)):
        av.VideoFrame.from_ndarray(image, format="rgb24").save(str(folder / f"{i:03d}.png"))
    (folder / "005.png").write_bytes(b"not a png at all")
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match="005.png"):  # a stage that does not stop would hang: the guard fails it
        finishes_within(HANG_GUARD, stvup.upscale, folder, out, time=2, weights=weights, device="cpu")
    assert _workers() == []
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
