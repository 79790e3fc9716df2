"""The shipped default weights: present, documented, loadable, and better than bicubic on real footage."""

from __future__ import annotations

import re

import numpy as np
import pytest

from stvup.eval_methods import bicubic_blend, joint
from stvup.evaluation import degrade_frames, read_clip, score_frames
from stvup.loader import load_upscaler
from stvup.weights import WEIGHTS_DIR, default_weights_path, read_safetensors_metadata, sha256_file

from .conftest import DATA

DEFAULT = WEIGHTS_DIR / "default.safetensors"


def test_default_weights_are_shipped_and_documented():
    assert default_weights_path() == DEFAULT and DEFAULT.is_file()
    card = (WEIGHTS_DIR / "README.md").read_text()
    digests = re.findall(r"\b[0-9a-f]{64}\b", card)
    assert sha256_file(DEFAULT) in digests, "weights/README.md must state the shipped file's sha256"
    assert read_safetensors_metadata(DEFAULT)["stvup_model"] == "stvun-small"


@pytest.mark.skipif(not (DATA / "vid4" / "GT" / "walk").is_dir(), reason="shared data not present")
def test_default_weights_beat_bicubic_on_a_vid4_crop():
    # A 192×160 crop of five frames of Vid4 "walk": small enough for a unit test, real enough to catch a broken
    # checkpoint or a regression in the pipeline (the full evaluation is `stvup eval`, see README).
    frames = [f[200:360, 300:492] for f in read_clip(DATA / "vid4" / "GT" / "walk", max_frames=5)]
    lr = degrade_frames(frames[0::2], 4)
    up = load_upscaler(device="cpu")
    ours = score_frames(joint(up, lr), frames, crop=4)
    base = score_frames(bicubic_blend(lr, 4), frames, crop=4)
    for part in ("kept", "new"):
        assert ours[part]["psnr_y"] > base[part]["psnr_y"] + 1.0, (part, ours[part], base[part])
    assert np.isfinite(ours["all"]["ssim_rgb"])
