"""The options ``upscale``, ``batch`` and ``preview`` share, as one table, and the one settings value
(:class:`~stvup.upscaling.options.UpscaleOptions`) they become. Part of the CLI layer (:mod:`stvup.cli.main`);
imports no PyAV, so ``stvup kit`` runs without it."""

from __future__ import annotations

import click

from stvup.upscaling.options import UpscaleOptions
from stvup.upscaling.shots import DEFAULT_THRESHOLD

__all__ = ["PRECISIONS", "build_options", "video_options"]

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def video_options(fn=None, *, only: tuple[str, ...] | None = None):
    """Options shared by ``upscale`` and ``batch`` (the model, time and encoder settings); ``only`` picks some of
    them for another command (``@_video_options(only=("weights", ...))``)."""
    if fn is None:
        return lambda f: video_options(f, only=only)
    options = {
        "space": click.option(
            "--space",
            type=click.Choice(["2", "4"]),
            default=None,
            help="Spatial factor. Default: the model's (×4 for stvun).",
        ),
        "to": click.option(
            "--to",
            default=None,
            metavar="HEIGHT",
            help="Output height instead of --space: 4k, 8k, 1080p, 1440, ... ×2 or ×4, whichever reaches it, then "
            "reduced to exactly that height; the width follows, keeping the pixel shape.",
        ),
        "time": click.option(
            "--time",
            default=None,
            metavar="K",
            help="Frame-rate factor: integer or rational (2, 4, 2.5, 5/2). Default 1 (space only).",
        ),
        "fps": click.option(
            "--fps", default=None, metavar="F", help="Target frame rate instead of --time (60, 60000/1001)."
        ),
        "model": click.option(
            "--model",
            default=None,
            help="Model variant (see `stvup info`); `two-stream` for a two-stream checkpoint. Default: read from "
            "the weights.",
        ),
        "stream": click.option(
            "--stream",
            type=click.Choice(["ts", "st"]),
            default="ts",
            show_default=True,
            help="Two-stream models: ts interpolates LR frames then upsamples, st upsamples then interpolates.",
        ),
        "new-frames": click.option(
            "--new-frames",
            type=click.Choice(["auto", "joint", "warped"]),
            default="auto",
            show_default=True,
            help="How new frames are made: warped (the two upsampled frames around each, moved by the flow) or joint "
            "(STVUN's space-time decoder, as in the paper). auto: warped for weights with a classical flow.",
        ),
        "time-mode": click.option(
            "--time-mode",
            type=click.Choice(["recursive", "direct"]),
            default="recursive",
            show_default=True,
            help="Two-stream models: recursive halving for times k/2^n (as trained), direct f_T(t) for the rest.",
        ),
        "weights": click.option(
            "--weights",
            default=None,
            metavar="PATH|NAME",
            help="Checkpoint (.safetensors or .pth), or the name of shipped weights (paper: the paper's protocol). "
            "Default: the shipped default weights.",
        ),
        "device": click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N."),
        "precision": click.option(
            "--precision",
            type=click.Choice(["auto", *PRECISIONS]),
            default="auto",
            help="Arithmetic precision. auto: bf16 on CPUs with AVX-512 BF16 or AMX and on recent GPUs, else fp32 "
            "(CPU) or fp16 (older GPUs). fp16 needs CUDA.",
        ),
        "tile": click.option(
            "--tile",
            default="auto",
            metavar="auto|off|N",
            help="Split frames into overlapping N×N tiles (input pixels) to bound memory; auto picks N from the frame "
            "size and the free memory (at most 2 GB on a CPU); off keeps frames whole.",
        ),
        "compile": click.option(
            "--compile",
            type=click.Choice(["auto", "off", "default", "max-autotune", "cuda-graphs"]),
            default="auto",
            show_default=True,
            help="Compile the network with torch.compile first (needs a C compiler on a CPU): about 1.3x faster frames "
            "on a CPU after a compile of about 2 minutes per frame size, seconds once cached. auto: on a CPU, when "
            "the job is long enough to repay it (about 1,600 frames of 960x540 the first time, 150 once cached). "
            "cuda-graphs: replay the network's steps as CUDA graphs (GPU only; fewer launches).",
        ),
        "ensemble": click.option(
            "--ensemble",
            type=click.Choice(["1", "2", "4", "8"]),
            default="1",
            show_default=True,
            callback=lambda ctx, param, value: int(value),  # every command gets the count as a number
            help="Self-ensemble: average the network over N flipped and transposed copies of each window. Sharper "
            "(Vid4: see README Quality), N times slower.",
        ),
        "codec": click.option(
            "--codec",
            default=None,
            help="Video encoder: libx264, libx265, ffv1 (lossless), prores_ks, ... Default: libx264, or libx265 "
            "(Main10/12) for input deeper than 8 bits.",
        ),
        "crf": click.option("--crf", type=int, default=None, help="Constant rate factor (quality) of x264/x265."),
        "preset": click.option("--preset", default=None, help="Encoder preset (x264/x265: ultrafast ... veryslow)."),
        "pix-fmt": click.option(
            "--pix-fmt",
            default=None,
            help="Output pixel format. Default: the codec's (yuv420p), or a 10/12/16-bit one for deeper input.",
        ),
        "input-fps": click.option("--input-fps", default="25", help="Frame rate of frame-folder inputs."),
        "scene-threshold": click.option(
            "--scene-threshold",
            type=click.FloatRange(min=0, max=1, min_open=True),
            default=DEFAULT_THRESHOLD,
            help="Scene-cut detection: the share of the colour histogram (0-1) that must change at a hard cut; larger "
            "finds fewer cuts. Each shot is upsampled on its own; nothing is interpolated across a cut.",
        ),
        "no-scene-detect": click.option("--no-scene-detect", is_flag=True, help="Treat the whole input as one shot."),
        "deinterlace": click.option(
            "--deinterlace",
            type=click.Choice(["auto", "on", "off"]),
            default="auto",
            help="auto: deinterlace (bwdif) what the stream flags or idet finds interlaced, and say so; on: always.",
        ),
        "deinterlace-rate": click.option(
            "--deinterlace-rate",
            type=click.Choice(["frame", "field"]),
            default="frame",
            help="Deinterlaced frames: one per frame (same rate) or one per field (twice the rate, smoother).",
        ),
        "start": click.option(
            "--start",
            default=None,
            metavar="TIME",
            help="Upsample from TIME on (seconds, or HH:MM:SS.ms); seeks, and cuts audio and subtitles to match.",
        ),
        "duration": click.option(
            "--duration", default=None, metavar="TIME", help="Upsample only this long a span (as --start)."
        ),
        "no-resume": click.option(
            "--no-resume",
            is_flag=True,
            help="Start over even if an interrupted run of the same job left finished segments beside the output.",
        ),
        "segment-seconds": click.option(
            "--segment-seconds",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Video outputs are written in segments of this length, so that an interrupted run can resume where "
            "it stopped. Default: about 2 minutes of model time each, at most 4 s of video.",
        ),
        "overwrite": click.option("--overwrite", is_flag=True, help="Replace existing outputs."),
        "quiet": click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        "json": click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout."),
    }
    for name, option in reversed(options.items()):
        if only is None or name in only:
            fn = option(fn)
    return fn


def build_options(options: dict) -> UpscaleOptions:
    """The shared video flags as one :class:`~stvup.upscaling.options.UpscaleOptions` value, built once here and
    passed whole to :func:`stvup.upscale` / :func:`stvup.batch` (a bad combination fails as a usage error)."""
    values = dict(options)
    values["space"] = int(values["space"]) if values["space"] else None
    if values.pop("no_scene_detect"):
        values["scene_threshold"] = None
    values["resume"] = not values.pop("no_resume")
    return UpscaleOptions(**values)
