"""The settings of an upscale, as one value: :class:`UpscaleOptions`.

Every option of ``stvup upscale`` and ``stvup batch`` (and of :func:`stvup.upscale` / :func:`stvup.batch`) lives
here, once: the command line builds one value from its flags, Python callers pass one or keyword arguments, and the
job, the batch, the Ray workers and the resume journal all take the value whole. Adding an option means a field
here (with its check) and a flag in :mod:`stvup.cli.options`, nothing else in between. The value is frozen and
checked when it is made, so a bad option fails before any weights load or any file is touched.

This module imports no video code (the command line imports it on machines without PyAV, such as the GPU kit's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from stvup.errors import UsageError

from .ensemble import ensemble_transforms
from .shots import DEFAULT_THRESHOLD
from .sizes import parse_target, plan_target
from .timing import parse_rate, parse_time_factor
from .warped import NEW_FRAMES

__all__ = ["MODEL_FIELDS", "UpscaleOptions"]

#: The fields that choose and place the network (:func:`stvup.upscaling.loader.load_upscaler`'s arguments).
MODEL_FIELDS = ("weights", "model", "device", "precision", "space", "tile", "stream", "time_mode", "compile",
                "ensemble", "new_frames")  # fmt: skip


@dataclass(frozen=True)
class UpscaleOptions:
    """Everything an upscale is asked to do besides its input and output.

    The network: ``weights`` (a path or shipped name; None: the default), ``model`` (the variant, when the file
    cannot say), ``device``, ``precision``, ``space`` (2 or 4) or ``to`` (an output height, ``"4k"``:
    :mod:`stvup.upscaling.sizes`), ``tile``, ``stream`` / ``time_mode`` (two-stream
    networks), ``compile``, ``ensemble`` (1, 2, 4, 8), ``new_frames`` (auto, joint, warped:
    :mod:`stvup.upscaling.warped`). Time: ``time`` (a factor: 2, 4, 2.5, "5/2") or ``fps`` (a
    target rate), ``input_fps`` (for frame folders). The encoder: ``codec``, ``crf``, ``preset``, ``pix_fmt``. The
    input: ``scene_threshold`` (None: no scene detection), ``start`` / ``duration`` (a span), ``deinterlace``
    (auto, on, off) and ``deinterlace_rate`` (frame, field). The output: ``overwrite``, ``resume``,
    ``segment_seconds`` (None: by work), ``overlap`` (decoder and encoder threads beside the network).
    """

    weights: str | None = None
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    space: int | None = None
    to: str | int | None = None
    tile: int | str | None = "auto"
    stream: str = "ts"
    time_mode: str = "recursive"
    compile: str = "auto"
    ensemble: int = 1
    new_frames: str = "auto"
    time: str | float | Fraction | None = None
    fps: str | float | Fraction | None = None
    input_fps: str | float | Fraction = 25
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    scene_threshold: float | None = DEFAULT_THRESHOLD
    start: str | float | None = None
    duration: str | float | None = None
    deinterlace: str = "auto"
    deinterlace_rate: str = "frame"
    overwrite: bool = False
    resume: bool = True
    segment_seconds: float | None = None
    overlap: bool = True

    def __post_init__(self) -> None:
        if self.weights is not None and not isinstance(self.weights, str):
            object.__setattr__(self, "weights", str(self.weights))  # a path: kept as text, so the value pickles
        if self.time is not None and self.fps is not None:
            raise UsageError("pass either --time or --fps, not both")
        if self.time is not None:
            parse_time_factor(self.time)
        if self.fps is not None:
            parse_rate(self.fps)
        parse_rate(self.input_fps)
        threshold = self.scene_threshold
        if threshold is not None and not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
            raise UsageError(f"--scene-threshold must be a number in (0, 1], got {threshold!r}")
        ensemble_transforms(self.ensemble)  # the sizes the ensemble has, with its own message
        if self.new_frames not in NEW_FRAMES:
            raise UsageError(f"--new-frames must be one of {', '.join(NEW_FRAMES)}, got {self.new_frames!r}")
        if self.space is not None and self.space not in (2, 4):
            raise UsageError(f"--space must be 2 or 4, got {self.space}")
        if self.to is not None:
            if self.space is not None:
                raise UsageError("pass either --space or --to, not both")
            parse_target(self.to)
        if self.segment_seconds is not None and not self.segment_seconds > 0:
            raise UsageError(f"--segment-seconds must be positive, got {self.segment_seconds}")
        for name, allowed in (("deinterlace", ("auto", "on", "off")), ("deinterlace_rate", ("frame", "field"))):
            if getattr(self, name) not in allowed:
                raise UsageError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")

    @classmethod
    def build(cls, options: UpscaleOptions | None = None, **settings: Any) -> UpscaleOptions:
        """``options`` (default: all defaults) with ``settings`` (keyword arguments named as the fields) applied;
        an unknown name is a :class:`~stvup.errors.UsageError` that names it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UsageError(f"unknown option {unknown[0]!r}; the options are {', '.join(sorted(known))}")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **settings) if settings else base

    @property
    def time_factor(self) -> Fraction | None:
        return parse_time_factor(self.time) if self.time is not None else None

    @property
    def target_fps(self) -> Fraction | None:
        return parse_rate(self.fps) if self.fps is not None else None

    @property
    def folder_fps(self) -> Fraction:
        """The rate of a frame-folder input."""
        return parse_rate(self.input_fps)

    def span(self) -> Any:
        """The ``start`` / ``duration`` span (:class:`stvup.video.trim.Span`), or None for the whole input."""
        from stvup.video.trim import Span  # here: video code needs PyAV, this module must not

        return Span.parse(self.start, self.duration)

    def model_settings(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~stvup.upscaling.loader.load_upscaler` these options ask for."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def target(self, width: int, height: int) -> tuple[int | None, tuple[int, int] | None]:
        """For ``width × height`` input frames: the spatial factor to run (None: the network's) and, with ``to``,
        the exact output size ``(w, h)`` (:func:`~stvup.upscaling.sizes.plan_target`)."""
        if self.to is None:
            return self.space, None
        space, size = plan_target(width, height, parse_target(self.to))
        return space, size
