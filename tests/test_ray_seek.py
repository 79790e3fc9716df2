"""`stvup batch --ray` parts that seek (issue 55): a video in 4 parts decodes about its frames once in all; skipped
when the optional Ray extra is not installed."""

from __future__ import annotations

import pytest

import stvup
from stvup.video import iter_frames

from .conftest import make_clip
from .test_upscale import weights  # noqa: F401 - fixture

ray = pytest.importorskip("ray", reason="the optional Ray extra is not installed (pip install 'stvup[ray]')")

OPTIONS = {"time": 2, "codec": "ffv1", "precision": "fp32", "segment_seconds": 1.0}


@pytest.fixture(scope="module")
def four_workers():
    # Four actors of one logical CPU each, whatever the machine has: the parts are what is tested, not the speed.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_parts_seek_so_a_batch_decodes_each_frame_about_once(tmp_path, weights, four_workers):  # noqa: F811
    """Each part after the first seeks to the key frame before its margin, so the batch decodes about the clip's
    frames once in all (1,720 of 1,600 here) instead of 2.5 times them. That a part that seeks makes a whole run's
    frames is tested without Ray (test_seek.py), and that parts join into one process's video in test_ray.py."""
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mkv", width=16, height=16, frames=1600, gop=12, audio=None)
    spread = stvup.batch(folder, tmp_path / "ray", weights=weights, ray="auto", workers=4, **OPTIONS)
    (r,) = spread.results
    assert "made in 4 parts on the Ray cluster" in r.notes
    assert r.input_frames == 1600 and r.frames_in == 1600 and r.frames_out == 3200
    assert 1600 < r.frames_decoded <= 1.1 * 1600, r.frames_decoded
    times = [f.time for f in iter_frames(tmp_path / "ray" / "clip.mkv")]
    assert len(times) == 3200 and times == sorted(set(times))
