"""What ``stvup info`` reports: versions, devices and models, as plain data."""

from __future__ import annotations

import platform

import torch

from stvup import __version__
from stvup.model import MODEL_CONFIGS, STVUN
from stvup.model.twostream import SPATIAL_MODULES, TEMPORAL_MODULES
from stvup.model.weights import FLOW_KEY, GRID_KEY, WEIGHTS_DIR, default_weights_path, read_safetensors_metadata
from stvup.upscaling.acceleration import compile_summary
from stvup.upscaling.hardware import resolve_precision


def available_devices() -> list[dict[str, str]]:
    """CPU plus every visible CUDA device, with a short description and what ``--precision auto`` picks there."""
    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    devices = [{"name": "cpu", "description": cpu, "auto_precision": resolve_precision("auto", torch.device("cpu"))}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            auto = resolve_precision("auto", torch.device(f"cuda:{i}"))
            devices.append({"name": f"cuda:{i}", "description": f"{props.name}, {props.total_memory / 2**30:.0f} GiB",
                            "auto_precision": auto})  # fmt: skip
    return devices


def model_summaries() -> list[dict[str, object]]:
    """Name, spatial scale, parameter count and description of every named variant."""
    out = []
    with torch.device("meta"):  # counts parameters without allocating memory or initialising weights
        for name, cfg in MODEL_CONFIGS.items():
            n = sum(p.numel() for p in STVUN(cfg).parameters())
            out.append({"name": name, "scale": cfg.scale, "parameters": n, "description": cfg.description})
    return out


def two_stream_modules() -> list[dict[str, object]]:
    """The spatial and temporal modules a two-stream network is built from (``two-stream:<spatial>+<temporal>``)."""
    out = []
    with torch.device("meta"):
        for kind, table in (("spatial", SPATIAL_MODULES), ("temporal", TEMPORAL_MODULES)):
            for name, (cls, kwargs, description) in table.items():
                module = cls(**kwargs) if kind == "temporal" else cls(scale=4, **kwargs)
                n = sum(p.numel() for p in module.parameters())
                out.append({"kind": kind, "name": name, "parameters": n, "description": description})
    return out


def available_weights() -> list[dict[str, object]]:
    """Checkpoints shipped in ``weights/``: file, model variant (from metadata), size, and whether it is the default."""
    default = default_weights_path()
    found = []
    if WEIGHTS_DIR.is_dir():
        for path in sorted(WEIGHTS_DIR.iterdir()):
            if path.suffix not in (".safetensors", ".pth", ".pt"):
                continue
            meta = read_safetensors_metadata(path) if path.suffix == ".safetensors" else {}
            found.append(
                {
                    "path": str(path),
                    "model": meta.get("stvup_model", "?"),
                    "grid": meta.get(GRID_KEY, "duf"),
                    "flow": meta.get(FLOW_KEY, "pwc"),
                    "megabytes": round(path.stat().st_size / 2**20, 1),
                    "default": default is not None and path == default,
                }
            )
    return found


def collect_info() -> dict[str, object]:
    """Everything ``stvup info`` prints."""
    import av
    import numpy

    versions = {
        "stvup": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "av": av.__version__,
        "ffmpeg": str(getattr(av, "ffmpeg_version_info", "unknown")),
        "numpy": numpy.__version__,
    }
    return {
        "versions": versions,
        "devices": available_devices(),
        "models": model_summaries(),
        "two_stream_modules": two_stream_modules(),
        "weights": available_weights(),
        "compiling": compile_summary(),
    }


def describe_input(path: str) -> dict[str, object]:
    """What ``stvup info INPUT`` prints: how stvup reads a video or frame folder (size, pixel shape, rate, ...)."""
    from stvup.video import probe
    from stvup.video.filters import plan_deinterlace
    from stvup.video.formats import display_aspect_ratio, ratio_text

    info = probe(path)
    interlacing = plan_deinterlace(path, info)
    sar = info.sample_aspect_ratio
    return {
        "path": info.path,
        "kind": info.kind,
        "codec": info.codec,
        "size": f"{info.width}x{info.height}",
        "sample_aspect_ratio": ratio_text(sar),
        "display_aspect_ratio": ratio_text(display_aspect_ratio(info.width, info.height, sar)),
        "rotation": info.rotation,
        "bit_depth": info.bit_depth,
        "scan": "interlaced: " + interlacing.reason.split("(", 1)[1].split(")")[0] if interlacing else "progressive",
        "rate": str(info.rate),
        "frames": info.frame_count,
        "duration_s": float(info.duration) if info.duration is not None else None,
        "color": info.color,
        "audio_streams": info.audio_streams,
        "subtitle_streams": info.subtitle_streams,
    }
