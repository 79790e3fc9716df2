"""One settings value for an upscale (issue 41, item 2): built once, checked once, passed whole."""

from __future__ import annotations

import dataclasses
import inspect
from fractions import Fraction
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import stvup
from stvup.batching import distributed, folder, workers
from stvup.cli.main import cli
from stvup.errors import UsageError
from stvup.upscaling import job
from stvup.upscaling.options import MODEL_FIELDS, UpscaleOptions

OPTION_NAMES = {f.name for f in dataclasses.fields(UpscaleOptions)}


def test_built_from_keywords_frozen_and_checked():
    options = UpscaleOptions.build(time="5/2", crf=20, weights=None)
    assert options.time_factor == Fraction(5, 2) and options.crf == 20 and options.target_fps is None
    assert UpscaleOptions.build(options, crf=18).crf == 18 and options.crf == 20  # a new value; the old one stays
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.crf = 1  # type: ignore[misc]
    assert set(options.model_settings()) == set(MODEL_FIELDS) <= OPTION_NAMES
    for bad, message in [({"time": 2, "fps": 30}, "either"), ({"scene_threshold": 2}, "scene-threshold"),
                         ({"ensemble": 3}, "ensemble"), ({"space": 3}, "space"), ({"deinterlace": "x"}, "deinterlace"),
                         ({"segment_seconds": 0}, "segment-seconds"), ({"time": "fast"}, "fast")]:  # fmt: skip
        with pytest.raises(UsageError, match=message):
            UpscaleOptions.build(**bad)
    with pytest.raises(UsageError, match="unknown option 'tiem'"):
        UpscaleOptions.build(tiem=2)


def test_batch_and_ray_code_take_the_value_whole():
    """No signature of the batch or Ray code re-lists the upscale options: adding one touches the value and the CLI."""
    for fn in (folder.batch, distributed.batch_on_ray, workers.Worker.run_part, job.upscale):
        listed = OPTION_NAMES & set(inspect.signature(fn).parameters)
        assert not listed, (fn.__qualname__, sorted(listed))


def test_batch_passes_one_value_to_every_job(tmp_path, monkeypatch):
    from .conftest import make_clip

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        make_clip(src / f"{name}.mp4", width=32, height=24, frames=4, audio=None)
    seen = []

    def fake_upscale(path, out, options, *, upscaler=None, progress=None):
        seen.append(options)
        raise UsageError("stop here")

    monkeypatch.setattr(folder, "upscale", fake_upscale)
    monkeypatch.setattr(folder, "load_upscaler", lambda **kw: SimpleNamespace(queued={}, **kw))
    result = stvup.batch(src, tmp_path / "out", time=2, crf=21, ensemble=2)
    assert len(seen) == 2 and seen[0] is seen[1] and (seen[0].crf, seen[0].ensemble) == (21, 2)
    assert len(result.failures) == 2
    with pytest.raises(UsageError, match="either"):
        stvup.batch(src, tmp_path / "out", time=2, fps=30)  # checked once, before any input


def test_cli_builds_the_value_once(tmp_path, monkeypatch):
    import stvup.api as api

    calls = []
    monkeypatch.setattr(api, "upscale", lambda path, out, options, progress=None: calls.append(options))
    monkeypatch.setattr("stvup.cli.main.report", lambda *a, **k: None)
    res = CliRunner().invoke(cli, ["upscale", str(tmp_path / "x.mp4"), "--time", "2", "--no-scene-detect",
                                   "--no-resume", "--space", "2", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (options,) = calls
    assert isinstance(options, UpscaleOptions) and options.scene_threshold is None and options.resume is False
    assert options.space == 2 and options.time == "2"
    res = CliRunner().invoke(cli, ["upscale", str(tmp_path / "x.mp4"), "--time", "2", "--fps", "30"])
    assert res.exit_code != 0 and "either --time or --fps" in res.output and "Traceback" not in res.output
