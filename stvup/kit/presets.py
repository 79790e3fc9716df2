"""The runs a GPU session can start without writing settings: ``stvup kit pack --preset NAME``.

Each preset is a set of :class:`~stvup.training.runs.TrainConfig` fields (what ``.kit/train.json`` holds), plain
values only, so that this module imports nothing and ``stvup kit --help`` stays fast. ``tests/test_kit.py`` builds
every preset's network and loads its ``init`` strictly: a preset that would stop at a GPU session's first step
(as the old default did once the shipped weights lost their PWC-Net) fails a CPU test instead.
"""

from __future__ import annotations

__all__ = ["PRESETS", "REAL_VIDEO_SETTINGS"]

#: The real-video degradation (:data:`stvup.data.degrade.REAL_VIDEO`) as training settings: the shipped default's
#: inputs. Its compression runs through PyAV, so ``examples/gpu_session.sh`` installs the carried wheel first.
REAL_VIDEO_SETTINGS = {
    "kernel": "real",
    "noise": 4.0,
    "crf": [15, 35],
    "degrade_probability": 0.8,
    "blur": 0.25,
    "mpeg2": 0.15,
    "chroma": True,
}

PRESETS: dict[str, dict] = {
    # The shipped default's own run, continued: stvun-small with the DIS flow (no PWC-Net to train or freeze),
    # stage 2 on ×2 and ×4 time at the paper's batch and 64-pixel LR patches. The weights that come back are the
    # moving average (0.998: about the last 500 of a session's ~2,000 steps).
    "default": {
        "model": "stvun-small",
        "init": "weights/default.safetensors",
        "flow": "dis-medium-x2",
        "pretrain_steps": 0,
        "steps": 30000,
        "batch_size": 32,
        "patch2": 64,
        "lr2": 5e-5,
        "lr_halve_every": 10000,
        "stride": [2, 4],
        "max_times": 1,
        "ema_decay": 0.998,
        "checkpoint_every": 500,
        "log_every": 50,
        **REAL_VIDEO_SETTINGS,
    },
    # The ×2 network for the default (weights/default-x2.safetensors, issue 47): stvun-small-x2 from the default
    # with its stem widened, stage 1 only. The default's new frames are warped from its kept ones, so the ×2
    # network's whole job is its kept frames (L_S), and stage 1 skips the time path: on CPU it trained 5 times as
    # many 96-pixel samples a second as stage 2 did (run X2b, weights/README.md). 96-pixel LR patches give the body
    # (which works at half the input's size) 48 pixels, the default's stage-2 patch.
    "x2": {
        "model": "stvun-small-x2",
        "init": "weights/default.safetensors",
        "flow": "dis-medium-x2",
        "pretrain_steps": 30000,
        "steps": 0,
        "batch_size": 32,
        "patch": 96,
        "lr": 2e-4,
        "lr_halve_every": 6000,
        "ema_decay": 0.999,
        "checkpoint_every": 500,
        "log_every": 50,
        **REAL_VIDEO_SETTINGS,
    },
}
