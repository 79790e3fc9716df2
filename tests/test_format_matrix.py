"""The format matrix (issue 40, item 2): every kind of file people feed an upscaler, through ``stvup.upscale``.

Each kind is a small generated clip (8 frames, mostly 96x64) with moving content, a brightness that rises from frame
to frame and a hard cut halfway, written by PyAV in the codec, pixel format, container and colour tags of the kind.
Three tests run per kind, each its own test id: the defaults (×4 space, ``time=2``), a run interrupted in its second
segment and resumed, and a ``start``/``duration`` span. They check what a user would notice first: the frame count
(N frames at ×2 time give 2N), the frame size (4×), the bit depth (8-bit stays 8-bit, deeper input stays deep:
Main10 for 10-bit, Main12 above), the colour tags, the pixel shape (sample aspect ratio), progressive output, and
that the picture is the one that went in (colours and range, not only the metadata). An alpha channel (ProRes 4444,
RGBA PNG) is dropped: the output has none, and its colours are the stored ones, not composited on anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import stvup
from stvup.upscaling.job import default_output_path
from stvup.upscaling.journal import JOURNAL, work_folder
from stvup.video import iter_frames, probe
from stvup.video.color import SWS_MATRIX

from .conftest import make_clip, pattern
from .test_formats import PQ, WIDESCREEN_DVD, _levels
from .test_resume import _Stop
from .test_upscale import weights  # noqa: F401 - fixture

FRAMES = 8  # input frames of every clip; the cut is halfway
CUT = FRAMES // 2
TIME = 2

HLG = {"color_trc": 18, "color_primaries": 9, "colorspace": 9, "color_range": 1}  # ARIB STD-B67 in BT.2020
BT709 = {"color_trc": 1, "color_primaries": 1, "colorspace": 1, "color_range": 1}
BT2020 = {"color_trc": 14, "color_primaries": 9, "colorspace": 9, "color_range": 1}  # SDR, 10-bit transfer
NTSC = {"color_trc": 6, "color_primaries": 6, "colorspace": 6, "color_range": 1}  # SMPTE 170M, as on a DVD


@dataclass(frozen=True)
class Kind:
    """One kind of input: how to write it, and what its output must keep.

    ``tags``: the colour tags written on the input, which the output must carry (``kept``: only those keys, where the
    output cannot hold the rest, e.g. an RGB or grey input whose matrix becomes the YUV output's). ``bits``: bits
    per component of the input as decoded. ``folder``: numbered PNG frames (shown at ``rate``) instead of a video
    file."""

    name: str
    suffix: str
    codec: str
    pix_fmt: str
    bits: int
    tags: dict[str, int] = field(default_factory=dict)
    kept: tuple[str, ...] | None = None
    width: int = 96
    height: int = 64
    rate: Fraction = Fraction(24)
    sar: Fraction = Fraction(1)
    options: dict[str, str] = field(default_factory=dict)
    muxer: str | None = None
    interlaced: bool = False
    alpha: bool = False
    folder: bool = False

    @property
    def expected_tags(self) -> dict[str, int]:
        return {k: v for k, v in self.tags.items() if self.kept is None or k in self.kept}

    @property
    def output_bits(self) -> int:
        """What the default encoder writes: 8 bits for 8-bit input, Main10 for 10-bit, Main12 for deeper."""
        return 8 if self.bits <= 8 else 10 if self.bits == 10 else 12


# Fast encoders at a high quality: the pictures that go in are the ones drawn, so that the check of the picture that
# comes out (_picture_error) sees colour and range mistakes rather than coding loss.
X265 = {"x265-params": "log-level=error", "preset": "ultrafast", "crf": "4"}
X264 = {"preset": "ultrafast", "crf": "4"}
AV1 = {  # by encoder: whichever this PyAV has
    "libsvtav1": {"preset": "12", "crf": "8", "svtav1-params": "lp=1"},
    "libaom-av1": {"usage": "realtime", "cpu-used": "8", "crf": "8"},
    "librav1e": {"speed": "10", "qp": "10"},
}
VP9 = {"deadline": "realtime", "cpu-used": "8", "crf": "4", "b": "0"}
INTRA = {"qmin": "1", "qmax": "2"}  # MPEG-2 and MJPEG: the finest quantiser
PRORES_4444 = {"profile": "4444"}
#: A widescreen NTSC DVD, small: 3:2 pixels shown at 16:9, interlaced MPEG-2 in a VOB (an MPEG program stream).
DVD = {"rate": Fraction(30000, 1001), "sar": WIDESCREEN_DVD, "options": INTRA, "muxer": "vob", "interlaced": True}

KINDS = [
    Kind("hevc-main10-pq-mkv", ".mkv", "libx265", "yuv420p10le", 10, PQ, options=X265),
    Kind("hevc-main10-hlg-ts", ".ts", "libx265", "yuv420p10le", 10, HLG, options=X265),
    Kind("hevc-main12-mp4", ".mp4", "libx265", "yuv420p12le", 12, BT709, options=X265),
    Kind("h264-high10-mp4", ".mp4", "libx264", "yuv420p10le", 10, BT709, options=X264),
    Kind("av1-8bit-mp4", ".mp4", "AV1", "yuv420p", 8, BT709),
    Kind("av1-10bit-mkv", ".mkv", "AV1", "yuv420p10le", 10, BT2020),
    Kind("vp9-webm", ".webm", "libvpx-vp9", "yuv420p", 8, BT709, options=VP9),
    # ProRes 4444 decodes to 12 bits (FFmpeg's decoder gives yuva444p12le), so it comes out as Main12.
    Kind("prores4444-alpha-mov", ".mov", "prores_ks", "yuva444p10le", 12, BT709, options=PRORES_4444, alpha=True),
    Kind("mpeg2-dvd-vob", ".vob", "mpeg2video", "yuv420p", 8, NTSC, **DVD),
    Kind("mjpeg-full-range-avi", ".avi", "mjpeg", "yuvj420p", 8, {"color_range": 2}, options=INTRA),
    Kind("h264-444-mp4", ".mp4", "libx264", "yuv444p", 8, BT709, options=X264),
    Kind("ffv1-gray16-mkv", ".mkv", "ffv1", "gray16le", 16, BT709, kept=("color_primaries", "color_trc")),
    Kind("ffv1-rgb48-mkv", ".mkv", "ffv1", "rgb48le", 16, BT709, kept=("color_primaries", "color_trc")),
    Kind("odd-97x61-mkv", ".mkv", "ffv1", "yuv420p", 8, BT709, width=97, height=61),
    Kind("png16-folder", "", "png", "rgb48be", 16, folder=True),
    Kind("png-rgba-folder", "", "png", "rgba", 8, alpha=True, folder=True),
]


# -- the clips --------------------------------------------------------------------------------------------------------


#: Flat colours of the top two fifths, four stripes before the cut and four others after it: saturated enough that a
#: wrong matrix (BT.601 for BT.709) or range (limited for full) moves them by 0.03 or more.
STRIPES = (
    ((0.8, 0.2, 0.2), (0.2, 0.7, 0.25), (0.2, 0.25, 0.8), (0.8, 0.75, 0.2)),
    ((0.2, 0.7, 0.75), (0.7, 0.2, 0.7), (0.85, 0.5, 0.15), (0.15, 0.15, 0.2)),
)


def _scene(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` as float RGB in [0, 1]: a grey square moving 4 pixels a frame over four colour stripes (top
    two fifths), a shallow grey ramp below (0.35 to 0.55 across the width: 8-bit output bands it into about 44
    levels, deep output keeps well over 100 at 4× the width), the whole picture 0.015 brighter each frame, and from
    frame ``CUT`` on another scene (other stripes, a darker ramp, the square moving the other way): a hard cut."""
    ys, xs = np.mgrid[0:height, 0:width]
    u = xs / max(1, width - 1)
    cut = index >= CUT
    image = np.empty((height, width, 3))
    image[:] = np.asarray(STRIPES[cut])[np.minimum(4 * xs // width, 3)]
    band = ys >= round(0.4 * height)
    image[band] = ((0.15 if cut else 0.35) + 0.2 * u[band])[:, None]
    side = max(4, height // 5)
    x0 = (3 + 4 * (index - CUT if cut else index)) % (width - side)
    x0 = width - side - x0 if cut else x0
    y0 = max(1, height // 10)
    image[y0 : y0 + side, x0 : x0 + side] = 0.05 if cut else 0.9
    return np.clip(image + 0.015 * index, 0, 1)


def _reference(kind: Kind, index: int) -> np.ndarray:
    """The picture a player should show for frame ``index`` of ``kind``, as float RGB (grey for a grey input)."""
    image = _scene(index, kind.width, kind.height)
    return np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2) if kind.pix_fmt.startswith("gray") else image


def _source_frame(kind: Kind, index: int) -> av.VideoFrame:
    """Frame ``index`` of ``kind`` in its pixel format, converted with its matrix and range (alpha: a ramp from
    opaque on the left to a quarter on the right, so that it is not a constant a decoder could drop unseen)."""
    image = _reference(kind, index)
    deep = kind.bits > 8
    if kind.pix_fmt.startswith("gray"):
        frame = av.VideoFrame.from_ndarray((image[..., 0] * 65535).round().astype(np.uint16), format="gray16le")
    elif kind.alpha:
        alpha = np.broadcast_to(np.linspace(1, 0.25, kind.width), (kind.height, kind.width))[..., None]
        rgba = np.concatenate([image, alpha], axis=2)
        scale, dtype, fmt = (65535, np.uint16, "rgba64le") if deep else (255, np.uint8, "rgba")
        frame = av.VideoFrame.from_ndarray((rgba * scale).round().astype(dtype), format=fmt)
    else:
        scale, dtype, fmt = (65535, np.uint16, "rgb48le") if deep else (255, np.uint8, "rgb24")
        frame = av.VideoFrame.from_ndarray((image * scale).round().astype(dtype), format=fmt)
    target = av.VideoFormat(kind.pix_fmt)
    if target.is_rgb or kind.pix_fmt.startswith("gray"):
        return frame.reformat(format=kind.pix_fmt)
    matrix = SWS_MATRIX[kind.tags.get("colorspace", 5)]  # BT.601 where untagged (JPEG)
    out = frame.reformat(format=kind.pix_fmt, dst_colorspace=matrix, dst_color_range=kind.tags.get("color_range", 1))
    for key, value in kind.tags.items():
        setattr(out, key, value)
    return out


def _write_folder(kind: Kind, folder: Path) -> Path:
    """Numbered PNG frames of ``kind`` (16-bit RGB or 8-bit RGBA), encoded with PyAV's PNG encoder."""
    folder.mkdir()
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = kind.width, kind.height, kind.pix_fmt
    encoder.time_base = 1 / kind.rate
    for index in range(FRAMES):
        frame = _source_frame(kind, index)
        frame.pts = index
        (packet,) = encoder.encode(frame)
        (folder / f"frame{index + 1}.png").write_bytes(bytes(packet))
    return folder


def _write_clip(kind: Kind, path: Path) -> Path:
    """The clip of ``kind`` at ``path``: its codec, pixel format, colour tags, pixel shape and interlacing."""
    codec, options = kind.codec, kind.options
    if codec == "AV1":
        found = [name for name in AV1 if name in av.codecs_available]
        if not found:
            pytest.skip(f"this PyAV has no AV1 encoder ({', '.join(AV1)}); stvup decodes AV1, but no clip can be made")
        codec, options = found[0], AV1[found[0]]
    with av.open(str(path), "w", format=kind.muxer) as container:
        stream = container.add_stream(codec, rate=kind.rate, options=options)
        stream.width, stream.height, stream.pix_fmt = kind.width, kind.height, kind.pix_fmt
        ctx = stream.codec_context
        for key, value in kind.tags.items():
            setattr(ctx, key, value)
        if kind.sar != 1:
            ctx.sample_aspect_ratio = stream.sample_aspect_ratio = kind.sar
        if kind.interlaced:  # MPEG-2 then codes interlaced pictures: its frames and stream say so
            ctx.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        for index in range(FRAMES):
            frame = _source_frame(kind, index)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Kind], Path]:
    """The clip of a kind, made the first time a test asks for it and shared by that kind's three tests."""
    root = tmp_path_factory.mktemp("matrix")
    made: dict[str, Path] = {}

    def get(kind: Kind) -> Path:
        if kind.name not in made:
            path = root / f"{kind.name}{kind.suffix}"
            made[kind.name] = _write_folder(kind, path) if kind.folder else _write_clip(kind, path)
        return made[kind.name]

    return get


# -- what an output must be -------------------------------------------------------------------------------------------


def _output_name(src: Path, folder: Path) -> Path:
    """``out`` in ``folder``, with the container a default run writes (``clip_stvup_x4.mp4``; MKV and MOV kept)."""
    return folder / f"out{default_output_path(src, 4).suffix}"


def _check_output(kind: Kind, out: Path, frames: int) -> None:
    """The output of ``kind`` has ``frames`` frames at 4× the size, the depth the input asks for, its colour tags
    and pixel shape, and progressive pictures."""
    info = probe(out)
    assert info.frame_count == frames, info
    assert (info.width, info.height) == (4 * kind.width, 4 * kind.height)
    levels, pix_fmt, tags = _levels(out)
    bits = max(c.bits for c in av.VideoFormat(pix_fmt).components)
    assert bits == kind.output_bits, (pix_fmt, kind.bits)
    if kind.bits > 8:  # really deep, not 8-bit pictures in a deep format: the shallow ramp keeps its levels
        assert levels > 100, levels
    assert {k: tags[k] for k in kind.expected_tags} == kind.expected_tags, tags
    assert info.sample_aspect_ratio == kind.sar
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        if kind.sar != 1:  # both copies: the coded stream's (what a decoder reports) and the container's
            assert stream.codec_context.sample_aspect_ratio == kind.sar and stream.sample_aspect_ratio == kind.sar
        assert not any(frame.interlaced_frame for frame in container.decode(stream))


def _picture_error(kind: Kind, out: Path, output_index: int, input_index: int) -> float:
    """How far output frame ``output_index`` is from the picture drawn for input frame ``input_index``: the mean
    absolute difference, in units of the full range, over the flat parts of the picture (no edge within 3 pixels,
    where the ×4 round trip and chroma subsampling blur), with the output decoded as a player would (its tags) and
    averaged over 4x4 blocks back to the input size."""
    with iter_frames(out) as stream:
        image = next(frame.image for frame in stream if frame.index == output_index)
    top = 65535 if image.dtype == np.uint16 else 255
    small = (image / top).reshape(kind.height, 4, kind.width, 4, 3).mean(axis=(1, 3))
    drawn = _reference(kind, input_index)
    window = sliding_window_view(np.pad(drawn, ((3, 3), (3, 3), (0, 0)), mode="edge"), (7, 7), axis=(0, 1))
    flat = (window.max(axis=(-2, -1)) - window.min(axis=(-2, -1))).max(axis=-1) < 0.06
    flat[round(0.4 * kind.height) :] = False  # the stripes: a grey ramp shows no matrix error
    return float(np.abs(small - drawn)[flat].mean())


# -- the tests --------------------------------------------------------------------------------------------------------

IDS = [kind.name for kind in KINDS]


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_defaults_keep_count_size_depth_tags_and_shape(tmp_path, inputs, weights, kind):  # noqa: F811
    """The whole clip with the defaults and ``time=2``: 2N frames, 4× the size, the input's depth, tags and
    pixel shape, the cut found where it is, and the right picture on both sides of it."""
    src = inputs(kind)
    if kind.interlaced:  # the clip is what it claims: interlaced pictures, a DVD's pixel shape
        with av.open(str(src)) as container:
            assert all(frame.interlaced_frame for frame in container.decode(video=0))
    assert probe(src, input_fps=kind.rate).sample_aspect_ratio == kind.sar
    out = _output_name(src, tmp_path)
    result = stvup.upscale(src, out, weights=weights, time=TIME, input_fps=kind.rate)
    assert result.frames_in == FRAMES and result.frames_out == TIME * FRAMES
    assert [frame for frame, _ in result.cuts] == [CUT]
    _check_output(kind, out, TIME * FRAMES)
    # Kept frames (output 2i is input i): the colours as drawn, before and after the cut. Measured on these clips:
    # 0.002 to 0.017 (MPEG-2's 8-bit chroma the most); BT.601 read as BT.709 gives 0.026 or more, limited range read
    # as full 0.044 (a grey clip: 0.029 after the cut).
    for output_index, input_index in ((0, 0), (TIME * (CUT + 1), CUT + 1)):
        error = _picture_error(kind, out, output_index, input_index)
        assert error < 0.021, (output_index, error)


SEGMENT_FRAMES = 4  # output frames per segment: 16 output frames make 4 segments
STOP_AT = 6  # output frames made when the run is stopped: one segment done, the second half written


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_interrupted_run_resumes_complete(tmp_path, inputs, weights, kind):  # noqa: F811
    """Stopped by an error half-way through its second segment, the same call resumes after the first, and the
    joined output is complete: every frame once, in order, with the depth, tags and pixel shape.

    As in ``tests/test_resume.py``, the progress callback raises. It runs as input frames are read, so on an
    8-frame clip the stop must come in the middle of the stream: the stopped run goes without the decoder and
    encoder threads (``overlap=False``, same frames), so that what is written when it stops is known exactly."""
    src = inputs(kind)
    out = _output_name(src, tmp_path)
    rate_out = TIME * kind.rate
    options = {"weights": weights, "time": TIME, "input_fps": kind.rate, "segment_seconds": SEGMENT_FRAMES / rate_out}

    def stop(p: stvup.Progress) -> None:
        if p.frames_out >= STOP_AT:
            raise _Stop

    with pytest.raises(_Stop):
        stvup.upscale(src, out, progress=stop, overlap=False, **options)
    journal = json.loads((work_folder(out) / JOURNAL).read_text())
    assert [s["frames"] for s in journal["segments"]] == [SEGMENT_FRAMES]
    assert not out.exists()

    again = stvup.upscale(src, out, **options)
    assert again.resumed_frames == SEGMENT_FRAMES and again.frames_out == TIME * FRAMES
    assert not work_folder(out).exists()
    _check_output(kind, out, TIME * FRAMES)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        stamps = sorted(p.pts * p.time_base for p in container.demux(stream) if p.size)
    assert [round(t * rate_out) for t in stamps] == list(range(TIME * FRAMES))  # no gap, no repeat at the joins


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_span_of_four_frames(tmp_path, inputs, weights, kind):  # noqa: F811
    """``start``/``duration`` of input frames 2 to 5 (across the cut): 8 output frames, the cut found at input
    frame 4, and the depth, tags and pixel shape as in a whole run."""
    src = inputs(kind)
    out = _output_name(src, tmp_path)
    start, duration = 2 / kind.rate, 4 / kind.rate  # as the CLI passes them: text ("1/12"), exact
    result = stvup.upscale(src, out, weights=weights, time=TIME, input_fps=kind.rate, start=str(start),
                           duration=str(duration))  # fmt: skip
    assert result.frames_out == math.ceil(duration * kind.rate * TIME) == 8
    assert [frame for frame, _ in result.cuts] == [CUT]
    _check_output(kind, out, 8)


def test_matroska_milliseconds_stay_on_the_frame_grid(tmp_path):
    """Matroska stores milliseconds (a 24 fps frame at 7/24 s becomes 292 ms): read back, the frames of a constant
    rate clip are on their exact grid again, so 8 frames at ×2 give 16 (not 17) and every kept frame is a kept
    frame (not a new one at T_in 0.99). A variable-rate clip keeps its own times."""
    with iter_frames(make_clip(tmp_path / "cfr.mkv", frames=FRAMES, audio=None)) as stream:
        assert [frame.time for frame in stream] == [Fraction(i, 24) for i in range(FRAMES)]
    stamps = [0, 42, 83, 150, 192, 233]  # ms: a frame 25 ms late, then the rest from there
    with av.open(str(tmp_path / "vfr.mkv"), "w") as container:
        video = container.add_stream("libx264", rate=24, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        for index, ms in enumerate(stamps):
            frame = av.VideoFrame.from_ndarray(pattern(index), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with iter_frames(tmp_path / "vfr.mkv") as stream:
        assert [frame.time for frame in stream] == [Fraction(ms, 1000) for ms in stamps]
