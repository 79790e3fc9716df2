"""Parts and resumed runs start where they start (issue 55): they seek to the key frame before their margin, and what
they make equals a whole run's, frame for frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import stvup
from stvup.upscaling.journal import work_folder
from stvup.upscaling.pipeline import EXACT_CONTEXT, Upscaler
from stvup.upscaling.reading import open_frames
from stvup.video import iter_frames, probe
from stvup.video.filters import Deinterlace
from stvup.video.seek import iter_from

from .conftest import DATA
from .test_upscale import _tiny

RATE = Fraction(25)
GOP = 24  # frames between key frames of the clips here: a part's margin spans more than one GOP


def _clip(path: Path, frames: int = 120, cuts: tuple[int, ...] = (), options: dict | None = None,
          variable: bool = False, size: tuple[int, int] = (48, 32)) -> Path:  # fmt: skip
    """A textured clip panning 2 pixels a frame, a new picture at each of ``cuts``, in H.264 with key frames every
    ``GOP`` frames and B-frames (``options`` replace x264's); ``variable``: frames 40 or 80 ms apart (VFR)."""
    w, h = size
    rng = np.random.default_rng(0)
    # Each shot in other colours (a cut changes the colour histogram, motion does not: stvup.upscaling.shots).
    tints = [(0, 0, 0), (120, 30, 100), (40, 120, 10), (100, 100, 120)]
    pictures = [(rng.integers(0, 128, (h, w + 2 * frames, 3)) + tints[k % 4]).astype(np.uint8)
                for k in range(len(cuts) + 1)]  # fmt: skip
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = options or {"preset": "medium", "bf": "3", "g": str(GOP),
                                    "x264-params": f"open-gop=1:keyint={GOP}:min-keyint={GOP}:scenecut=0"}  # fmt: skip
        if variable:
            video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i in range(frames):
            scene = sum(i >= c for c in cuts)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pictures[scene][:, 2 * i : 2 * i + w]), "rgb24")
            if variable:
                pts += 80 if i % 7 == 0 else 40
                frame.pts, frame.time_base = pts, Fraction(1, 1000)
            else:
                frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    return path


def _same_tail(path: Path, info, start: Fraction, deinterlace=None) -> tuple[int, int, int]:
    """Checks that reading from ``start`` gives the whole read's frames from some point on (times and pixels), with at
    least the exact margin before the frame at ``start``; returns (frames decoded, frames of the input, margin)."""
    whole = [(f.time, f.image) for f in iter_frames(path, deinterlace=deinterlace)]
    with iter_from(str(path), info, start, EXACT_CONTEXT, deinterlace) as stream:
        part = [(f.time, f.image) for f in stream]
        decoded, note = stream.decoded, stream.seek_note
    assert note is None
    first = next(i for i, (t, _) in enumerate(whole) if t == part[0][0])
    assert len(part) == len(whole) - first
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(whole[first:], part))
    holder = max(i for i, (t, _) in enumerate(whole) if t <= start)
    assert holder - first >= EXACT_CONTEXT
    return decoded, len(whole), holder - first


def test_an_open_gop_clip_with_b_frames_is_read_from_the_key_frame_before_the_margin(tmp_path):
    path = _clip(tmp_path / "open.mp4", frames=150)
    decoded, total, margin = _same_tail(path, probe(path), Fraction(5))
    assert decoded <= total - 125 + EXACT_CONTEXT + GOP + 4  # one GOP and the margin before frame 125, at most
    assert decoded < total * 0.7


def test_variable_frame_rate_counts_the_margin_in_frames_not_seconds(tmp_path):
    path = _clip(tmp_path / "vfr.mkv", frames=150, variable=True)
    decoded, total, margin = _same_tail(path, probe(path), Fraction(5))
    assert decoded < total


@pytest.mark.parametrize("rate", ["field", "frame"])
def test_interlaced_input_deinterlaced_reads_the_same_frames(tmp_path, rate):
    options = {"preset": "medium", "bf": "2", "g": str(GOP), "x264-params": f"tff=1:keyint={GOP}:scenecut=0"}
    path = _clip(tmp_path / "interlaced.mp4", frames=140, options=options)
    deinterlace = Deinterlace(rate)
    decoded, total, _ = _same_tail(path, deinterlace.adjust(probe(path)), Fraction(4), deinterlace)
    assert decoded < total / deinterlace.factor


def test_a_frame_folder_starts_at_its_margin(tmp_path):
    from stvup.upscaling.comparison import _write_png

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(80):
        _write_png(folder / f"{i:04d}.png", rng.integers(0, 255, (16, 24, 3), dtype=np.uint8))
    info = probe(folder, input_fps=RATE)
    decoded, total, margin = _same_tail(folder, info, Fraction(60) / RATE)
    assert margin == EXACT_CONTEXT and decoded == total - (60 - EXACT_CONTEXT)


def test_a_stream_without_presentation_timestamps_is_read_from_the_start_and_says_so():
    path = DATA / "mmaction2" / "test.avi"  # MPEG-4 Part 2 in AVI: DTS only
    if not path.exists():
        pytest.skip("shared data not present")
    info = probe(path)
    whole = [f.time for f in iter_frames(path)]
    with iter_from(str(path), info, Fraction(4), EXACT_CONTEXT) as stream:
        times = [f.time for f in stream]
        assert stream.seek_note == "decoded from the start: its frames have no presentation timestamps to seek by"
    assert times == whole


def _outputs(upscaler: Upscaler, stream, skip: int, cuts: list[int] | None = None) -> list[tuple[int, np.ndarray]]:
    with stream:
        pairs = ((f.image, f.time) for f in stream)
        on_cut = None if cuts is None else lambda i, t: cuts.append(i)
        return [(o.index, o.image) for o in upscaler.stream(pairs, RATE, 2 * RATE, skip=skip, on_cut=on_cut)]


@pytest.fixture(scope="module")
def tiny() -> Upscaler:
    return Upscaler(_tiny(), device="cpu", precision="fp32")


@pytest.mark.parametrize("after", [1, 2, 3])
def test_a_part_that_seeks_makes_the_whole_runs_frames_with_a_cut_just_after_its_start(tmp_path, tiny, after):
    """Output frame 200 at ×2 time lies on input frame 100; a cut 1, 2 or 3 frames later must split the windows
    as in the whole run, which sees the cut with all of shot detection's history."""
    path = _clip(tmp_path / "cut.mp4", frames=130, cuts=(40, 100 + after))
    info = probe(path)
    cuts: list[int] = []
    whole = _outputs(tiny, iter_frames(path), skip=200, cuts=cuts)
    with open_frames(str(path), info, None, RATE, None, 200, 2 * RATE) as stream:
        part = _outputs(tiny, stream, skip=200)
        assert stream.decoded <= 130 - (100 - EXACT_CONTEXT) + GOP  # the margin, and at most one GOP before it
    assert [j for j, _ in part] == [j for j, _ in whole] == list(range(200, 260))
    assert cuts == [40, 100 + after]  # the whole run's shot detection found both cuts
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(whole, part))


def test_a_resumed_run_seeks_and_equals_an_uninterrupted_one(tmp_path, tiny):
    path = _clip(tmp_path / "long.mp4", frames=150, cuts=(90, 140))

    class Stop(Exception):
        pass

    def stop_late(p) -> None:
        if p.frames_out >= 240:  # 90 % of the job
            raise Stop

    settings = dict(time=2, upscaler=tiny, segment_seconds=0.5, codec="ffv1")
    whole = stvup.upscale(path, tmp_path / "whole.mkv", **settings)
    assert whole.frames_decoded == whole.input_frames == 150
    with pytest.raises(Stop):
        stvup.upscale(path, tmp_path / "resumed.mkv", progress=stop_late, **settings)
    again = stvup.upscale(path, tmp_path / "resumed.mkv", **settings)
    assert again.resumed_frames >= 200 and not work_folder(tmp_path / "resumed.mkv").exists()
    assert again.frames_decoded < 150 - 60 and again.input_frames == 150 and again.frames_in == 150
    # The resumed run reports the cuts of what it made; the first run reported the earlier ones.
    assert whole.cuts == [(90, pytest.approx(3.6)), (140, pytest.approx(5.6))]
    assert again.cuts == [(140, pytest.approx(5.6))]
    a = [(f.time, f.image) for f in iter_frames(tmp_path / "whole.mkv")]
    b = [(f.time, f.image) for f in iter_frames(tmp_path / "resumed.mkv")]
    assert len(a) == len(b) == 300
    assert all(x[0] == y[0] and np.array_equal(x[1], y[1]) for x, y in zip(a, b))


def test_the_margin_holds_shot_detections_whole_history(tmp_path, tiny):
    """A change of colour one frame after a part's start, on footage that moved fast until a few frames before it:
    against the recent motion of a whole run it is no cut, against the few still frames a short read would have it
    is one. The part reads the detector's whole history, so it decides as the whole run does."""
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 128, (32, 48 + 8 * 120, 3))
    path = tmp_path / "flash.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 48, 32, "yuv420p"
        video.options = {"preset": "medium", "crf": "10", "g": str(GOP), "x264-params": f"keyint={GOP}:scenecut=0"}
        for i in range(125):
            x = 8 * min(i, 95)  # fast until frame 95, then still
            picture = noise[:, x : x + 48] + ((40, 30, 50) if i >= 101 else (0, 0, 0))  # a new colour at 101
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture.astype(np.uint8)), "rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    cuts: list[int] = []
    whole = _outputs(tiny, iter_frames(path), skip=200, cuts=cuts)
    assert 101 not in cuts
    with open_frames(str(path), probe(path), None, RATE, None, 200, 2 * RATE) as stream:
        part = _outputs(tiny, stream, skip=200)
    assert [j for j, _ in part] == [j for j, _ in whole]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(whole, part))
    # Read from only 6 frames before the part, the same frames would be cut at 101.
    short: list[int] = []
    with iter_from(str(path), probe(path), Fraction(200, 50), 6) as stream:
        _outputs(tiny, stream, skip=200, cuts=short)
    assert len(short) == 1  # frame 101, counted from where that read began
