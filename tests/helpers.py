"""Deterministic weights and inputs for model tests, independent of module registration order; and waits on events
(a run paused at a chosen point, a guard against hangs) for tests about order rather than speed."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def seeded_state(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict whose every tensor depends only on its key, shape and ``seed`` (He-like scale)."""
    state = {}
    for key, ref in model.state_dict().items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()) ^ seed)
        t = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        if ref.dim() > 1:
            transposed = "deconv" in key or "upfeat" in key  # ConvTranspose2d weights are (in, out, k, k)
            fan_in = ref.shape[0 if transposed else 1] * ref[0, 0].numel()
            t = t * (2.0 / fan_in) ** 0.5
        else:
            t = t * 0.01
        state[key] = t.to(ref.dtype)
    return state


def seeded_frames(n: int = 7, b: int = 1, h: int = 32, w: int = 48, seed: int = 1) -> list[torch.Tensor]:
    """Seven smooth, moving test frames in [-1, 1], ``(b, 3, h, w)`` each."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(b, 3, 1, 1, generator=g) * 6.28
    ys = torch.linspace(0, 3.14, h).view(1, 1, h, 1)
    xs = torch.linspace(0, 6.28, w).view(1, 1, 1, w)
    frames = []
    for i in range(n):
        img = torch.sin(xs * 1.5 + ys + phase + 0.3 * i) * torch.cos(ys * 2 - 0.2 * i)
        noise = torch.rand(b, 3, h, w, generator=g) * 0.1
        frames.append((img * 0.9 + noise - 0.05).clamp(-1, 1))
    return frames


# -- waiting on events, not on the clock -----------------------------------------------------------------------------

#: Seconds after which a wait that should end at once is taken for a hang: a guard, never a measure of speed.
HANG_GUARD = 120.0


def finishes_within(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` run in a daemon thread: what it returns, or what it raises; the test fails if it has not
    returned after ``seconds``. For tests whose subject is that something stops: a stop that never comes fails the test
    instead of hanging the suite."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="test-hang-guard", daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)} still running after {seconds} s: it hangs"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# A ``python -m stvup`` that pauses at a chosen point of its run: after the N-th call of one function returns, it
# writes a line to a pipe the test reads and sleeps until a signal ends it. A test that must signal or kill a run
# part-way through waits for that line (an event) instead of guessing from the clock when the run is part-way.
_PAUSING_STVUP = """
import functools, importlib, os, sys, time
target, after, fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
module, _, qualname = target.partition(":")
owner = importlib.import_module(module)
*parents, name = qualname.split(".")
for parent in parents:
    owner = getattr(owner, parent)
original = getattr(owner, name)
calls = [0]

@functools.wraps(original)
def gate(*args, **kwargs):
    result = original(*args, **kwargs)
    calls[0] += 1
    if calls[0] == after:
        os.write(fd, b"paused\\n")
        while True:
            time.sleep(3600)  # the signal handler raises here (or SIGKILL ends the process)
    return result

setattr(owner, name, gate)
from stvup.cli.main import main
sys.argv = ["stvup", *sys.argv[4:]]
main()
"""


@dataclass
class PausingRun:
    """A ``python -m stvup`` run started by :func:`start_pausing`; ``pipe`` is where it says that it paused."""

    proc: subprocess.Popen
    pipe: int

    def wait_paused(self, seconds: float = HANG_GUARD) -> None:
        """Returns once the run has paused at its gate; fails if it ended first or hangs before it."""
        try:
            ready, _, _ = select.select([self.pipe], [], [], seconds)
            line = os.read(self.pipe, 64) if ready else b""
        finally:
            os.close(self.pipe)
        if line != b"paused\n":
            if self.proc.poll() is None:
                self.proc.kill()
            _, err = self.proc.communicate(timeout=seconds)
            raise AssertionError(f"the run did not reach its pause (exit {self.proc.returncode}): {err[-2000:]}")


def start_pausing(args: list[str], gate: str, after: int) -> PausingRun:
    """Starts ``python -m stvup ARGS`` (stdout and stderr piped, as text) that pauses for good after its ``after``-th
    call of ``gate`` (``"module:Qualified.name"``, looked up when called) returns. The function runs in whichever
    thread calls it, and the pause holds that thread: pick one of the main thread's for a signal's cleanup to run."""
    read, write = os.pipe()
    cmd = [sys.executable, "-c", _PAUSING_STVUP, gate, str(after), str(write), *map(str, args)]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(write,))
    finally:
        os.close(write)
    return PausingRun(proc, read)
