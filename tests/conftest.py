"""Small generated video clips for the video I/O tests.

Clips are made once per session with PyAV (no ffmpeg binary, no image folders) and are tiny (64x48, 12 frames) so
that tests stay fast. Each frame carries a smooth gradient plus a per-frame brightness step, which lets tests check
both colour conversion and frame order. ``make_clip`` is importable for tests that need a one-off variant.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

#: Real sample videos shared by the project (read only); tests skip when the folder is absent.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

CLIP_W, CLIP_H, CLIP_N = 64, 48, 12
AUDIO_RATE = 48000


@pytest.fixture(autouse=True)
def _private_compile_cache(tmp_path_factory, monkeypatch):
    """Compiling writes to stvup's cache (stvup.upscaling.acceleration); tests share one of their own, never the
    user's ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "stvup-cache"
    monkeypatch.setenv("STVUP_CACHE_DIR", str(cache))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache / "inductor"))


def pattern(index: int, width: int = CLIP_W, height: int = CLIP_H) -> np.ndarray:
    """The RGB picture of frame ``index``: red ramps left to right, green top to bottom, blue steps per frame."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = 30 + xs * 190 // max(1, width - 1)
    image[..., 1] = 30 + ys * 190 // max(1, height - 1)
    image[..., 2] = (20 + index * 17) % 256
    return image


def make_clip(
    path: Path,
    *,
    width: int = CLIP_W,
    height: int = CLIP_H,
    frames: int = CLIP_N,
    rate: Fraction = Fraction(24),
    codec: str = "libx264",
    audio: str | None = "aac",
    subtitles: bool = False,
    rotation: int = 0,
    color: dict[str, int] | None = None,
    gop: int | None = None,
) -> Path:
    """Encode a test clip with PyAV: video (+ optional mono audio tone, SubRip subtitles, rotation, colour tags);
    ``gop``: frames between key frames (the encoder's default otherwise)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate, time_base=1 / rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"preset": "ultrafast"}
        if gop:
            video.codec_context.gop_size = gop
        if rotation:
            video.set_display_rotation(rotation)
        if color:
            for key, value in color.items():
                setattr(video.codec_context, key, value)
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=AUDIO_RATE)
            sound.layout = "mono"
        text = container.add_mux_stream("subrip", time_base=Fraction(1, 1000)) if subtitles else None

        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(index, width, height), format="rgb24")
            if color:
                matrix = {1: "ITU709", 5: "ITU601", 6: "SMPTE170M", 9: "BT2020"}[color["colorspace"]]
                frame = frame.reformat(
                    format="yuv420p", dst_colorspace=matrix, dst_color_range=color.get("color_range", 1)
                )
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode(None))

        if sound is not None:
            samples = int(AUDIO_RATE * frames / rate)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / AUDIO_RATE)).astype(np.float32)
            if audio == "pcm_s16le":
                tone = (tone * 32767).astype(np.int16)
            step = sound.codec_context.frame_size or 1024
            fmt = "s16" if audio == "pcm_s16le" else "fltp"
            for start in range(0, samples, step):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + step], format=fmt, layout="mono")
                chunk.sample_rate = AUDIO_RATE
                chunk.pts = start
                chunk.time_base = Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))

        if text is not None:
            for k in range(2):
                packet = av.Packet(f"caption {k}".encode())
                packet.stream = text
                packet.time_base = Fraction(1, 1000)
                packet.pts = packet.dts = k * 200
                packet.duration = 150
                container.mux(packet)
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated inputs, by name: good clips of several kinds and broken files for the error tests."""
    root = tmp_path_factory.mktemp("clips")
    out = {
        "aac": make_clip(root / "aac.mp4"),
        "ntsc": make_clip(root / "ntsc.mp4", rate=Fraction(24000, 1001)),
        "subs": make_clip(root / "subs.mkv", subtitles=True),
        "pcm": make_clip(root / "pcm.mkv", audio="pcm_s16le"),
        "rotated": make_clip(root / "rotated.mp4", rotation=90, audio=None),
        "bt709": make_clip(
            root / "bt709.mp4",
            audio=None,
            color={"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1},
        ),
        "long": make_clip(root / "long.mkv", width=128, height=96, frames=48, audio=None),
    }

    # Broken or unsuitable inputs.
    text = root / "notes.mp4"
    text.write_text("this is a text file with a video extension\n" * 50)
    out["text"] = text
    audio_only = root / "audio_only.m4a"
    with av.open(str(audio_only), "w", format="mp4") as container:
        sound = container.add_stream("aac", rate=AUDIO_RATE)
        sound.layout = "mono"
        for k in range(8):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate = AUDIO_RATE
            chunk.pts = k * 1024
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    out["audio_only"] = audio_only
    truncated = root / "truncated.mp4"
    truncated.write_bytes(out["aac"].read_bytes()[:3000])
    out["truncated"] = truncated
    tail_cut = root / "tail_cut.mkv"
    data = out["long"].read_bytes()
    tail_cut.write_bytes(data[: len(data) * 6 // 10])
    out["tail_cut"] = tail_cut
    empty_dir = root / "empty_folder"
    empty_dir.mkdir()
    out["empty_dir"] = empty_dir
    return out
