"""The methods that :mod:`stvup.evaluation.protocol` compares: each turns LR frames into the ×time, ×scale sequence.

The classical baselines (bicubic + frame blending, on the plain or the DUF grid; FFmpeg's lanczos and
``minterpolate``), the model as ``stvup upscale`` runs it, and the paper's sequential baselines built from the
model's own parts (V→F and F→V, which share its PWC-Net), plus either stream of a two-stream network.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

from stvup.errors import UsageError
from stvup.model import STVUN
from stvup.upscaling.pipeline import Upscaler

__all__ = ["between", "bicubic_blend", "f_then_v", "ffmpeg_baseline", "interpolate", "interpolate_times", "joint",
           "output_length", "run_method", "two_stream", "v_then_f"]  # fmt: skip


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1


def _to_image(x: torch.Tensor) -> np.ndarray:
    return ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _blend(a: np.ndarray, b: np.ndarray, t: float = 0.5) -> np.ndarray:
    """``(1 − t)·a + t·b``, rounded half up (at t = 1/2 exactly ``(a + b + 1) // 2``)."""
    return np.floor((1 - t) * a.astype(np.float64) + t * b.astype(np.float64) + 0.5).astype(np.uint8)


def output_length(inputs: int, time: int) -> int:
    """Frames of a ×time sequence from the first of ``inputs`` frames to the last: input k at index ``time·k``."""
    return time * (inputs - 1) + 1


def between(time: int) -> list[float]:
    """The ``T_in`` of the new frames between two inputs at a frame-rate factor ``time``: ``1/time … (time−1)/time``."""
    return [j / time for j in range(1, time)]


def bicubic_blend(lr: Sequence[np.ndarray], scale: int, aligned: bool = False, time: int = 2) -> list[np.ndarray]:
    """Bicubic ×scale and, between inputs, frames blended by time (``(1 − t)·a + t·b``; at ×2 the plain mean).

    Plain (``aligned=False``): ``align_corners=False`` resampling, as players and ``imresize`` do. Aligned: HR pixel
    j samples LR position j / scale, the grid the DUF degradation sampled on (edges clamped).
    """
    up = []
    for f in lr:
        x = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float()
        if aligned:
            h, w = x.shape[-2:]
            gy = (torch.arange(h * scale, dtype=torch.float32) / scale) * 2 / max(h - 1, 1) - 1
            gx = (torch.arange(w * scale, dtype=torch.float32) / scale) * 2 / max(w - 1, 1) - 1
            grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None]
            y = F.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=True)
        else:
            y = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        up.append(y[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    return _interleave(up, [[_blend(a, b, t) for t in between(time)] for a, b in zip(up[:-1], up[1:])])


def _interleave(kept: list[np.ndarray], new: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Inputs with the new frames of each gap between them: k₀, n₀…, k₁, n₁…, …, k_last."""
    out = []
    for i, k in enumerate(kept):
        out.append(k)
        if i < len(new):
            out.extend(new[i])
    return out


def ffmpeg_baseline(lr: Sequence[np.ndarray], scale: int, time: int = 2) -> list[np.ndarray]:
    """FFmpeg lanczos ×scale then ``minterpolate`` (motion-compensated, ``mi_mode=mci``) to ``time`` × the frame rate.

    Frames go through pipes as raw RGB, so no lossy intermediate file; the motion search runs in 4:4:4 so that the
    baseline does not lose chroma to the pipeline either.
    """
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise UsageError(f"FFmpeg binary not available ({exc})") from None
    h, w = lr[0].shape[:2]
    vf = f"scale={w * scale}:{h * scale}:flags=lanczos,format=yuv444p,minterpolate=fps={time}:mi_mode=mci"
    cmd = [exe, "-v", "error", "-nostdin", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", "1",
           "-i", "-", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
    # minterpolate holds back its last input; one repeated frame at the end flushes it, so exactly time·(N - 1) + 1
    # frames (input k at output time·k) come out before the repeat's own.
    stream = [*lr, lr[-1]]
    done = subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in stream), capture_output=True)
    if done.returncode != 0:
        raise UsageError("ffmpeg failed: " + (done.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1])
    size = h * scale * w * scale * 3
    n, want = len(done.stdout) // size, output_length(len(lr), time)
    if n < want:
        raise UsageError(f"ffmpeg returned {n} frames, {want} expected")
    frames = np.frombuffer(done.stdout[: n * size], np.uint8).reshape(n, h * scale, w * scale, 3)
    return list(frames[:want])


def _stream(upscaler: Upscaler, lr: Sequence[np.ndarray], factor: int) -> list[np.ndarray]:
    frames = ((f, Fraction(i)) for i, f in enumerate(lr))
    return [o.image for o in upscaler.stream(frames, Fraction(1), Fraction(factor))]


def joint(upscaler: Upscaler, lr: Sequence[np.ndarray], time: int = 2) -> list[np.ndarray]:
    """The model's own ×time output, through the streaming pipeline."""
    return _stream(upscaler, lr, time)[: output_length(len(lr), time)]


def two_stream(upscaler: Upscaler, lr: Sequence[np.ndarray], stream: str, time: int = 2) -> list[np.ndarray]:
    """A two-stream network's ×time output through one stream (``ts`` or ``st``)."""
    one = copy.copy(upscaler)
    one.stream_name = stream
    return joint(one, lr, time)


def interpolate(model: STVUN, a: np.ndarray, b: np.ndarray, t: float = 0.5, *, lr_flows: bool) -> np.ndarray:
    """Frame interpolation from the model's parts: its flows (PWC-Net's or the classical one's), Eq. 4, then Eq. 6
    on the two frames' pixels (combined as the model's ``time_blend`` says).

    ``lr_flows``: the frames are LR inputs, so use the model's own flow path (as in training); otherwise they are
    HR frames and PWC-Net runs on them directly, its output upsampled to their size.
    """
    return interpolate_times(model, a, b, [t], lr_flows=lr_flows)[0]


@torch.no_grad()
def interpolate_times(
    model: STVUN, a: np.ndarray, b: np.ndarray, times: Sequence[float], *, lr_flows: bool
) -> list[np.ndarray]:
    """:func:`interpolate` at each of ``times``, from one pair of flows."""
    param = next(model.parameters())
    x3, x4 = _to_tensor(a, param.device).to(param.dtype), _to_tensor(b, param.device).to(param.dtype)
    h, w = x3.shape[-2:]
    m = model.size_multiple if lr_flows else 64
    ph, pw = -h % m, -w % m
    x3p, x4p = (F.pad(x, (0, pw, 0, ph), mode="replicate") for x in (x3, x4))
    if lr_flows:
        f34, f43 = model.estimate_flows(x3p, x4p)
    elif model.classical_flow is not None:
        # The same estimator on the HR frames themselves: they need no upsampling to show it sub-pixel motion.
        f34, f43 = dataclasses.replace(model.classical_flow, upsample=1)(x3p, x4p)
    else:
        flows = model.pwcnet(torch.cat((x3p, x4p)), torch.cat((x4p, x3p)))
        flows = F.interpolate(flows, size=x3p.shape[-2:], mode="bilinear", align_corners=False)
        flows = flows * model.config.flow_scale
        f34, f43 = flows[:1], flows[1:]
    return [_to_image(model.warp_between(x3p, x4p, (f34, f43), t)[..., :h, :w]) for t in times]


def v_then_f(upscaler: Upscaler, lr: Sequence[np.ndarray], time: int = 2) -> list[np.ndarray]:
    """V→F: spatial path on every input, then interpolation of the HR frames."""
    hr = _stream(upscaler, lr, 1)[: len(lr)]
    model, ts = upscaler.model, between(time)
    return _interleave(hr, [interpolate_times(model, a, b, ts, lr_flows=False) for a, b in zip(hr[:-1], hr[1:])])


def f_then_v(upscaler: Upscaler, lr: Sequence[np.ndarray], time: int = 2) -> list[np.ndarray]:
    """F→V: interpolation of the LR frames, then the spatial path over the ×time sequence."""
    model, ts = upscaler.model, between(time)
    dense = _interleave(list(lr), [interpolate_times(model, a, b, ts, lr_flows=True) for a, b in zip(lr[:-1], lr[1:])])
    return _stream(upscaler, dense, 1)[: len(dense)]


def run_method(
    method: str, lr: list[np.ndarray], scale: int, upscaler: Upscaler | None, time: int = 2
) -> list[np.ndarray]:
    """The ×time output of ``method`` (a name of :data:`stvup.evaluation.protocol.METHODS` but ``avg``) for LR frames:
    :func:`output_length` frames."""
    if method in ("bicubic", "bicubic-aligned"):
        return bicubic_blend(lr, scale, aligned=method == "bicubic-aligned", time=time)
    if method == "ffmpeg":
        return ffmpeg_baseline(lr, scale, time)
    assert upscaler is not None
    if method in ("ts", "st"):
        return two_stream(upscaler, lr, method, time)
    return {"stvup": joint, "v-f": v_then_f, "f-v": f_then_v}[method](upscaler, lr, time)
