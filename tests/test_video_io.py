"""Tests of stvup.video: probing, decoding, writing (rate, audio, colour, rotation, atomicity) and errors."""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stvup.errors import InputError, OutputError, UsageError
from stvup.video import (
    FrameFolderWriter,
    VideoWriter,
    iter_frames,
    list_frame_files,
    open_writer,
    probe,
)

from .conftest import CLIP_H, CLIP_N, CLIP_W, DATA, make_clip, pattern

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared sample videos not available")


def upscale(image: np.ndarray, factor: int = 2) -> np.ndarray:
    """Nearest-neighbour stand-in for the model."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def write_doubled(source: Path, out: Path, **kwargs) -> VideoWriter:
    """Space x2, time x2 (each frame twice) at twice the source rate, like the real pipeline's output shape."""
    info = probe(source)
    kwargs.setdefault("preset", "ultrafast")
    with VideoWriter(
        out,
        width=info.width * 2,
        height=info.height * 2,
        rate=info.rate * 2,
        source=source,
        color=info.color,
        rotation=info.rotation,
        **kwargs,
    ) as writer:
        for frame in iter_frames(source):
            big = upscale(frame.image)
            writer.write(big)
            writer.write(big)
    return writer


def packets(path: Path, kind: str) -> list:
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [(p.pts, p.duration, p.time_base) for p in container.demux(stream) if p.size]


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if ".partial" in name)


# --------------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------------


def test_probe_fields(clips):
    info = probe(clips["aac"])
    assert info.path == str(clips["aac"])
    assert (info.kind, info.width, info.height) == ("video", CLIP_W, CLIP_H)
    assert info.rate == 24 and isinstance(info.rate, Fraction)
    assert info.frame_count == CLIP_N
    assert info.duration == pytest.approx(CLIP_N / 24, abs=1 / 24)
    assert (info.codec, info.rotation) == ("h264", 0)
    assert (info.has_audio, info.audio_streams, info.subtitle_streams) == (True, 1, 0)
    assert set(info.color) == {"colorspace", "color_range", "color_primaries", "color_trc"}
    # Untagged SD source: decoded with BT.601 limited range, and that is what is reported.
    assert (info.color["colorspace"], info.color["color_range"]) == (6, 1)
    assert probe(clips["subs"]).subtitle_streams == 1


def test_frames_sizes_times_and_pixels(clips):
    frames = list(iter_frames(clips["aac"]))
    assert len(frames) == CLIP_N
    for i, frame in enumerate(frames):
        assert frame.index == i
        assert frame.time == Fraction(i, 24)
        assert frame.image.shape == (CLIP_H, CLIP_W, 3) and frame.image.dtype == np.uint8
        assert frame.image.flags.c_contiguous
        # Colour conversion matches the encoder's (small codec error only), and frames come in order.
        err = np.abs(frame.image.astype(int) - pattern(i)).mean()
        assert err < 4, (i, err)


def test_rational_rate_and_timestamps(clips):
    info = probe(clips["ntsc"])
    assert info.rate == Fraction(24000, 1001)
    times = [f.time for f in iter_frames(clips["ntsc"])]
    assert times == [Fraction(1001 * i, 24000) for i in range(CLIP_N)]


def test_iterator_close_and_context(clips):
    with iter_frames(clips["aac"]) as frames:
        first = next(frames)
        assert first.index == 0
    assert list(frames) == []
    assert frames.info.frame_count == CLIP_N and frames.problems == []


def test_truncated_tail_stops_at_last_good_frame(clips):
    full = len(list(iter_frames(clips["long"])))
    frames = iter_frames(clips["tail_cut"])
    count = sum(1 for _ in frames)
    assert 0 < count < full


def test_concealed_decoding_errors_are_counted(tmp_path):
    """Damaged packets that FFmpeg patches up (error concealment) decode, and are counted and reported."""
    clean = make_clip(tmp_path / "clean.mp4", width=160, height=96, frames=50, audio=None)
    data = bytearray(clean.read_bytes())
    rng = np.random.default_rng(1)
    for i in rng.integers(len(data) // 3, 2 * len(data) // 3, 40):
        data[i] ^= 0xFF
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with iter_frames(clean) as stream:
        assert sum(1 for _ in stream) == 50 and stream.concealed == 0 and stream.problems == []
    with iter_frames(bad) as stream:
        count = sum(1 for _ in stream)
    assert count > 40 and stream.concealed > 0
    assert any(
        f"{stream.concealed} frame(s) were damaged and decoded with concealed errors" in p for p in stream.problems
    )


def test_natural_order_frame_folder(tmp_path):
    folder = tmp_path / "frames with spaces"
    folder.mkdir()
    for number in (10, 2, 1):  # written out of order on purpose
        frame = av.VideoFrame.from_ndarray(pattern(number), format="rgb24")
        frame.save(str(folder / f"Frame {number}.png"))
    (folder / "notes.txt").write_text("ignored")
    assert [p.name for p in list_frame_files(folder)] == ["Frame 1.png", "Frame 2.png", "Frame 10.png"]
    info = probe(folder, input_fps=Fraction(30000, 1001))
    assert (info.kind, info.width, info.height, info.frame_count) == ("frames", CLIP_W, CLIP_H, 3)
    assert info.rate == Fraction(30000, 1001) and info.codec == "png" and not info.has_audio
    frames = list(iter_frames(folder, input_fps=Fraction(30000, 1001)))
    assert [f.time for f in frames] == [Fraction(0), Fraction(1001, 30000), Fraction(2002, 30000)]
    for frame, number in zip(frames, (1, 2, 10)):
        assert np.array_equal(frame.image, pattern(number))  # PNG is lossless


# --------------------------------------------------------------------------------------------------------------------
# Real sample videos
# --------------------------------------------------------------------------------------------------------------------


@needs_data
def test_real_avi_with_wrong_average_rate():
    path = DATA / "crowd_overhead" / "vtest.avi"
    if not path.exists():
        pytest.skip("vtest.avi missing")
    info = probe(path)
    assert info.rate == 25
    assert (info.width, info.height, info.frame_count) == (1280, 720, 341)
    assert info.color["colorspace"] == 1  # tagged BT.709
    with iter_frames(path) as frames:
        times = [next(frames).time for _ in range(12)]
    assert times == [Fraction(i, 25) for i in range(12)]  # AVI B-frames: PTS out of order, DTS used


@needs_data
def test_real_mp4_header_count_differs_from_decoded():
    path = DATA / "cotracker" / "pillow.mp4"
    if not path.exists():
        pytest.skip("pillow.mp4 missing")
    with av.open(str(path)) as container:
        header = container.streams.video[0].frames
    info = probe(path)
    frames = list(iter_frames(path))
    assert header == 149 and len(frames) == 147 and info.frame_count == 147
    assert info.rate == 20 and (info.width, info.height) == (368, 480)
    assert all(b.time > a.time for a, b in zip(frames, frames[1:]))


@needs_data
def test_real_frame_folder_with_spaces_in_order():
    folder = DATA / "vid4" / "GT" / "calendar"
    if not folder.is_dir():
        pytest.skip("vid4 calendar missing")
    names = [p.name for p in list_frame_files(folder)]
    assert names[:3] == ["Frame 001.png", "Frame 002.png", "Frame 003.png"] and len(names) == 41
    info = probe(folder)
    assert (info.kind, info.width, info.height, info.frame_count, info.rate) == ("frames", 720, 576, 41, 25)
    foliage = [p.name for p in list_frame_files(DATA / "vid4" / "GT" / "foliage")]
    assert foliage[8:11] == ["Frame 09.png", "Frame 10.png", "Frame 11.png"]
    with iter_frames(folder) as frames:
        first = next(frames)
    with av.open(str(folder / "Frame 001.png")) as container:
        expected = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.array_equal(first.image, expected)


# --------------------------------------------------------------------------------------------------------------------
# Input errors
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cause",
    [
        ("text", "not a video"),
        ("audio_only", "no video stream"),
        ("truncated", "damaged or truncated"),
        ("empty_dir", "no .png/.jpg/.jpeg frames"),
    ],
)
def test_input_errors(clips, name, cause):
    path = clips[name]
    for call in (probe, iter_frames):
        with pytest.raises(InputError) as info:
            call(path)
        assert str(path) in str(info.value) and cause in str(info.value)
        assert info.value.path == str(path)


def test_missing_input(tmp_path):
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(InputError, match="no such file") as info:
        probe(missing)
    assert str(missing) in str(info.value)


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as info:
        probe(empty)
    assert str(empty) in str(info.value)


# --------------------------------------------------------------------------------------------------------------------
# Writing videos
# --------------------------------------------------------------------------------------------------------------------


def test_written_rate_is_exact_rational(clips, tmp_path):
    out = tmp_path / "up.mp4"
    write_doubled(clips["ntsc"], out)
    info = probe(out)
    assert info.rate == Fraction(48000, 1001)
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == Fraction(48000, 1001)
    frames = list(iter_frames(out))
    assert len(frames) == 2 * CLIP_N
    assert [f.time for f in frames] == [Fraction(1001 * i, 48000) for i in range(2 * CLIP_N)]
    assert frames[0].image.shape == (2 * CLIP_H, 2 * CLIP_W, 3)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov"])
def test_audio_copied_in_sync(clips, tmp_path, ext):
    source = clips["ntsc"]
    out = tmp_path / f"up.{ext}"
    writer = write_doubled(source, out)
    assert writer.skipped_streams == []
    src_audio, out_audio = packets(source, "audio"), packets(out, "audio")
    assert len(out_audio) == len(src_audio)
    with av.open(str(source)) as a, av.open(str(out)) as b:
        assert b.streams.audio[0].codec_context.name == a.streams.audio[0].codec_context.name

    def span(pk):
        return float(pk[-1][0] * pk[-1][2] + pk[-1][1] * pk[-1][2] - pk[0][0] * pk[0][2])

    assert span(out_audio) == pytest.approx(span(src_audio), abs=1001 / 48000)
    # Audio starts where the video starts (both shifted alike if the muxer moves the priming packet).
    video_start = packets(out, "video")
    first_video = min(p[0] * p[2] for p in video_start)
    assert float(out_audio[0][0] * out_audio[0][2] - first_video) == pytest.approx(
        float(src_audio[0][0] * src_audio[0][2]), abs=0.002
    )


def test_subtitles_copied_or_reported(clips, tmp_path):
    mkv = tmp_path / "subs.mkv"
    assert write_doubled(clips["subs"], mkv).skipped_streams == []
    with av.open(str(mkv)) as container:
        assert [s.type for s in container.streams] == ["video", "audio", "subtitle"]
    mp4 = tmp_path / "subs.mp4"
    skipped = write_doubled(clips["subs"], mp4).skipped_streams
    assert len(skipped) == 1 and "subtitle" in skipped[0]
    with av.open(str(mp4)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    none = write_doubled(clips["subs"], tmp_path / "plain.mkv", copy_audio=False, copy_subtitles=False)
    assert none.skipped_streams == [] and probe(tmp_path / "plain.mkv").audio_streams == 0


def test_uncopyable_audio_is_skipped_not_fatal(clips, tmp_path):
    out = tmp_path / "up.webm"  # WebM only holds Opus/Vorbis, the source has PCM
    writer = write_doubled(clips["pcm"], out, codec="libvpx-vp9", preset=None)
    assert len(writer.skipped_streams) == 1 and "pcm_s16le" in writer.skipped_streams[0]
    info = probe(out)
    assert (info.codec, info.audio_streams, info.frame_count) == ("vp9", 0, 2 * CLIP_N)


def test_colour_metadata_carried(clips, tmp_path):
    info = probe(clips["bt709"])
    assert info.color == {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}
    out = tmp_path / "up.mp4"
    write_doubled(clips["bt709"], out, crf=10)
    assert probe(out).color == info.color
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc) == (1, 1, 1, 1)
    # Pixels round-trip through the BT.709 matrix on both sides.
    src = next(iter(iter_frames(clips["bt709"]))).image
    back = next(iter(iter_frames(out))).image[::2, ::2]
    assert np.abs(src.astype(int) - back).mean() < 3


def test_matrix_used_for_conversion(tmp_path):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    lumas = {}
    for colorspace in (1, 6):
        out = tmp_path / f"red{colorspace}.mkv"
        color = {"colorspace": colorspace, "color_range": 1, "color_primaries": 2, "color_trc": 2}
        with VideoWriter(out, width=16, height=16, rate=25, codec="ffv1", pix_fmt="yuv444p", color=color) as w:
            w.write(red)
        with av.open(str(out)) as container:
            frame = next(container.decode(video=0))
        lumas[colorspace] = int(frame.to_ndarray(channel_last=True)[0, 0, 0])
        assert np.abs(next(iter(iter_frames(out))).image.astype(int) - red).max() <= 2
    assert lumas == {1: 63, 6: 81}  # 16 + 219 * Kr for BT.709 / BT.601


def test_ffv1_default_is_lossless_rgb(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (24, 33, 3), dtype=np.uint8)  # odd width is fine for RGB
    out = tmp_path / "lossless.mkv"
    with VideoWriter(out, width=33, height=24, rate=Fraction(25), codec="ffv1") as writer:
        writer.write(image)
    assert writer.pix_fmt == "bgr0"
    assert np.array_equal(next(iter(iter_frames(out))).image, image)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_hevc_short_clips(tmp_path, count):
    # libx265 can hand back an uninitialised DTS for very short clips; the writer must still produce a valid MP4.
    out = tmp_path / "short.mp4"
    with VideoWriter(out, width=64, height=48, rate=24, codec="libx265", preset="ultrafast") as writer:
        for i in range(count):
            writer.write(pattern(i))
    frames = list(iter_frames(out))
    assert len(frames) == count and probe(out).codec == "hevc"
    assert [f.time for f in frames] == [Fraction(i, 24) for i in range(count)]


def test_rotation_carried_as_metadata(clips, tmp_path):
    info = probe(clips["rotated"])
    assert info.rotation == 90 and (info.width, info.height) == (CLIP_W, CLIP_H)
    assert (info.display_width, info.display_height) == (CLIP_H, CLIP_W)
    out = tmp_path / "up.mp4"
    write_doubled(clips["rotated"], out)
    again = probe(out)
    assert again.rotation == 90 and (again.width, again.height) == (2 * CLIP_W, 2 * CLIP_H)


def test_rotation_applied_to_pixels_for_avi(clips, tmp_path):
    out = tmp_path / "up.avi"
    write_doubled(clips["rotated"], out)
    info = probe(out)
    assert info.rotation == 0 and (info.width, info.height) == (2 * CLIP_H, 2 * CLIP_W)
    src = next(iter(iter_frames(clips["rotated"]))).image
    got = next(iter(iter_frames(out))).image[::2, ::2]
    assert np.abs(np.rot90(src).astype(int) - got).mean() < 4  # counter-clockwise, as players would show it


def test_writer_argument_errors(tmp_path):
    with pytest.raises(OutputError, match="yuv420p needs a size divisible by 2x2") as info:
        VideoWriter(tmp_path / "odd.mp4", width=63, height=48, rate=24)
    assert str(tmp_path / "odd.mp4") in str(info.value)
    with pytest.raises(UsageError, match="unknown video encoder"):
        VideoWriter(tmp_path / "x.mp4", width=64, height=48, rate=24, codec="no-such-codec")
    with pytest.raises(UsageError, match="unknown libx264 preset 'warp9'"):
        VideoWriter(tmp_path / "x.mp4", width=64, height=48, rate=24, preset="warp9")
    with pytest.raises(UsageError, match="no crf"):
        VideoWriter(tmp_path / "x.mkv", width=64, height=48, rate=24, codec="ffv1", crf=10)
    with pytest.raises(OutputError, match="cannot hold"):
        VideoWriter(tmp_path / "x.webm", width=64, height=48, rate=24)  # H.264 in WebM
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", width=64, height=48, rate=24).write(np.zeros((48, 64), np.uint8))
    assert leftovers(tmp_path) == []


def test_unwritable_output(tmp_path, monkeypatch):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    for target in (blocker / "out.mp4", tmp_path / "missing" / "out.mp4"):
        with pytest.raises(OutputError) as info:
            VideoWriter(target, width=64, height=48, rate=24)
        assert str(target) in str(info.value)
        with pytest.raises(OutputError):
            open_writer(target.with_suffix(""), width=64, height=48, rate=24)
    # A folder that refuses new files (simulated, since root ignores permission bits).
    with monkeypatch.context() as patch:

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        patch.setattr(tempfile, "mkstemp", refuse)
        patch.setattr(tempfile, "mkdtemp", refuse)
        with pytest.raises(OutputError, match="cannot write here [(]Permission denied[)]") as info:
            VideoWriter(tmp_path / "out.mp4", width=64, height=48, rate=24)
        assert str(tmp_path / "out.mp4") in str(info.value)
        with pytest.raises(OutputError, match="Permission denied"):
            FrameFolderWriter(tmp_path / "frames", width=64, height=48, rate=24)
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="cannot write") as info:
        VideoWriter(locked / "out.mp4", width=64, height=48, rate=24)
    assert str(locked / "out.mp4") in str(info.value)


# --------------------------------------------------------------------------------------------------------------------
# Atomic publishing
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_inside_with_leaves_nothing(tmp_path, error):
    out = tmp_path / "out.mp4"
    with pytest.raises(error):
        with VideoWriter(out, width=64, height=48, rate=24, preset="ultrafast") as writer:
            writer.write(pattern(0))
            assert leftovers(tmp_path)  # work in progress lives under a temporary name
            raise error()
    assert not out.exists() and leftovers(tmp_path) == []


def test_existing_output_replaced_only_on_success(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with VideoWriter(out, width=64, height=48, rate=24, preset="ultrafast") as writer:
            writer.write(pattern(0))
            raise RuntimeError("model crashed")
    assert out.read_bytes() == b"previous result"
    with VideoWriter(out, width=64, height=48, rate=24, preset="ultrafast") as writer:
        writer.write(pattern(0))
        assert out.read_bytes() == b"previous result"  # not yet published
    assert probe(out).frame_count == 1 and leftovers(tmp_path) == []


def test_no_frames_is_an_error(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match="no frames"):
        with VideoWriter(out, width=64, height=48, rate=24):
            pass
    assert not out.exists() and leftovers(tmp_path) == []


def test_abort(tmp_path):
    writer = VideoWriter(tmp_path / "out.mkv", width=64, height=48, rate=24, preset="ultrafast")
    writer.write(pattern(0))
    writer.abort()
    writer.abort()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------------------------------
# Frame folders
# --------------------------------------------------------------------------------------------------------------------


def test_frame_folder_writer(clips, tmp_path):
    out = tmp_path / "frames"
    with FrameFolderWriter(out, width=CLIP_W, height=CLIP_H, rate=24, source=clips["aac"]) as writer:
        for i in range(3):
            writer.write(pattern(i))
        assert not out.exists()
    assert sorted(os.listdir(out)) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    assert leftovers(tmp_path) == []
    assert len(writer.skipped_streams) == 1 and "audio" in writer.skipped_streams[0]
    frames = list(iter_frames(out))
    assert all(np.array_equal(f.image, pattern(i)) for i, f in enumerate(frames))
    with pytest.raises(OutputError, match="already contains"):
        FrameFolderWriter(out, width=CLIP_W, height=CLIP_H, rate=24)


def test_frame_folder_writer_failure_and_rotation(tmp_path):
    out = tmp_path / "frames"
    with pytest.raises(RuntimeError):
        with FrameFolderWriter(out, width=CLIP_W, height=CLIP_H, rate=24) as writer:
            writer.write(pattern(0))
            raise RuntimeError()
    assert os.listdir(tmp_path) == []
    out.mkdir()  # an existing empty folder is filled
    with FrameFolderWriter(out, width=CLIP_W, height=CLIP_H, rate=24, rotation=270) as writer:
        writer.write(pattern(0))
    image = next(iter(iter_frames(out))).image
    assert np.array_equal(image, np.rot90(pattern(0), 3))


def test_open_writer_dispatch(tmp_path):
    existing = tmp_path / "existing.mp4"
    existing.mkdir()
    cases = {
        tmp_path / "a.mp4": VideoWriter,
        tmp_path / "b.MKV": VideoWriter,
        tmp_path / "frames": FrameFolderWriter,
        existing: FrameFolderWriter,
        str(tmp_path / "c.mp4") + os.sep: FrameFolderWriter,
    }
    for path, kind in cases.items():
        writer = open_writer(path, width=64, height=48, rate=Fraction(24))
        assert type(writer) is kind, path
        writer.abort()
    assert sorted(os.listdir(tmp_path)) == ["existing.mp4"]
