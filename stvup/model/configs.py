"""The table of named STVUN variants.

``stvun`` is the paper's network (30,882,276 parameters, the authors' checkpoint format). ``stvun-x2`` changes only
the decoder's residual head for ×2 space. The small variants trade width and depth for CPU speed and run PWC-Net
on the LR frames instead of the ×4 upsampled ones; ``stvun-tiny`` exists for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .flow import check_flow_name

#: How Eqs. 5 and 6 combine the two warped frames (see :class:`STVUNConfig`).
TIME_BLENDS = ("mean", "linear")


@dataclass(frozen=True)
class STVUNConfig:
    """Hyper-parameters of one STVUN variant.

    ``scale``: spatial factor (2 or 4). ``unshuffle``: the input is first folded into ``unshuffle``² times the
    channels at 1/``unshuffle`` of its size (pixel unshuffle, lossless), and the encoder, EFST and decoder run there,
    their residual head giving ``scale·unshuffle`` times that size: a ×2 network with ``unshuffle=2`` does the work
    of a ×4 network per output pixel, a quarter of what ``stvun-x2``'s form (the body at the input's size) costs, and
    shares every tensor but the stem with the ×4 network (Real-ESRGAN's x2plus is built the same way).
    ``channels``/``blocks``: encoder width and number of dense blocks (also the number of decoder stages).
    ``flow_upsample``: PWC-Net runs on the LR frames bilinearly upsampled by this factor (1, 2 or 4; the paper uses
    4, which makes PWC-Net's 1/4-size output exactly LR size). ``pwc_*``: PWC-Net widths.
    ``flow_scale``: PWC-Net's output times this is the flow in pixels of its input. The authors' STVUN uses 4 (their
    output is LR pixels at ×4 input), which their weights need; PWC-Net's own pyramid warps with 20, and variants
    trained here use 20 so that the final flow and the pyramid's coarse-to-fine warps agree. ``flow``: which optical
    flow the network warps with (:mod:`stvup.model.flow`): ``"pwc"``, its own PWC-Net (the ``pwc_*`` fields), or a
    classical estimator such as ``"dis-medium-x2"``, which has no weights (the network then has no PWC-Net and its
    state dict no ``pwcnet.*`` keys); weights files name theirs in ``stvup_flow``. ``time_blend``: how
    Eqs. 5 and 6 combine the two warped frames at ``T_in = t``: ``"mean"`` averages them, as the paper does (its
    network was trained at every ``t`` that way); ``"linear"`` weights them ``1 − t`` and ``t``, so that a frame at
    ``t = 1/4`` leans on frame 3 where the flow is wrong. Both are the same at ``t = 1/2``, the only time the small
    variants' weights were trained at, where the mean costs them up to 1 dB at ``t = 1/4`` (README, "Quality").
    """

    name: str
    scale: int = 4
    unshuffle: int = 1
    channels: int = 64
    blocks: int = 4
    frames: int = 7
    flow_upsample: int = 4
    pwc_pyramid: tuple[int, ...] = (16, 32, 64, 96, 128, 196)
    pwc_estimator: tuple[int, ...] = (128, 128, 96, 64, 32)
    pwc_context: tuple[int, ...] = (128, 128, 128, 96, 64, 32)
    pwc_max_displacement: int = 4
    flow_scale: float = 4.0
    flow: str = "pwc"
    time_blend: str = "mean"
    description: str = ""

    def __post_init__(self) -> None:
        if self.scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {self.scale}")
        if self.unshuffle not in (1, 2) or (self.unshuffle == 2 and self.scale != 2):
            raise ValueError(f"unshuffle must be 1, or 2 for a ×2 network, got {self.unshuffle} at ×{self.scale}")
        if self.flow_upsample not in (1, 2, 4):
            raise ValueError(f"flow_upsample must be 1, 2 or 4, got {self.flow_upsample}")
        if self.frames != 7:
            raise ValueError("STVUN takes exactly 7 input frames")
        if self.blocks < 1 or self.channels < 1:
            raise ValueError("channels and blocks must be positive")
        check_flow_name(self.flow)
        if self.time_blend not in TIME_BLENDS:
            raise ValueError(f"time_blend must be one of {', '.join(TIME_BLENDS)}, got {self.time_blend!r}")


_SMALL = STVUNConfig(
    "stvun-small",
    channels=32,
    blocks=3,
    flow_upsample=1,
    pwc_pyramid=(16, 24, 32, 48, 64, 96),
    pwc_estimator=(64, 64, 48, 32, 16),
    pwc_context=(64, 64, 64, 48, 32, 16),
    time_blend="linear",
    description="Narrower, shallower STVUN with PWC-Net on LR frames, for CPU training and inference.",
)

MODEL_CONFIGS: dict[str, STVUNConfig] = {
    cfg.name: cfg
    for cfg in (
        STVUNConfig("stvun", description="The paper's STVUN, ×4 space; loads the authors' STVUN.pth."),
        STVUNConfig("stvun-x2", scale=2, description="STVUN with a ×2 residual head (paper's FISR comparison)."),
        _SMALL,
        dataclasses.replace(
            _SMALL,
            name="stvun-small-x2",
            scale=2,
            unshuffle=2,
            description="stvun-small for ×2 space at the cost of ×4 per output pixel: the input unshuffled by 2, the "
            "×4 body and head (every tensor but the stem shared with stvun-small).",
        ),
        dataclasses.replace(
            _SMALL,
            name="stvun-small-f2",
            flow_upsample=2,
            description="stvun-small with PWC-Net on ×2 upsampled LR frames: flow at half LR size, not a quarter.",
        ),
        STVUNConfig(
            "stvun-tiny",
            channels=8,
            blocks=2,
            flow_upsample=1,
            pwc_pyramid=(4, 4, 8, 8, 8, 8),
            pwc_estimator=(8, 8, 8, 8, 8),
            pwc_context=(8, 8, 8, 8, 8, 8),
            pwc_max_displacement=2,
            time_blend="linear",
            description="Minimal STVUN for tests: every code path of the full network in 0.3 M parameters.",
        ),
    )
}
MODEL_CONFIGS["stvun-tiny-x2"] = dataclasses.replace(
    MODEL_CONFIGS["stvun-tiny"], name="stvun-tiny-x2", scale=2, unshuffle=2,
    description="stvun-tiny as a ×2 network that unshuffles its input (as stvun-small-x2), for tests.",
)  # fmt: skip


def get_config(name: str, **overrides: object) -> STVUNConfig:
    """The named config, optionally with fields replaced (e.g. ``get_config("stvun-tiny", scale=2)``)."""
    if name not in MODEL_CONFIGS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODEL_CONFIGS)}")
    cfg = MODEL_CONFIGS[name]
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
