"""Decoding, the model and encoding overlapped: each in its own thread, joined by bounded queues.

Run one after another, a GPU waits while the CPU decodes and encodes (and a CPU's encoder waits on the model). Here
the decoder runs ahead in one thread, the encoder drains behind in another, and the model works in the calling
thread; queues of ``depth`` frames bound the memory. PyAV and PyTorch release the GIL in their heavy calls, so the
three stages really run at once.

Stopping is the hard part, and it is the same for every cause: an error in any stage, or Ctrl-C (which Python
delivers to the calling thread), sets a stop flag, both worker threads finish their current frame and exit, and
the first error is raised in the calling thread. Nothing waits forever: every queue operation polls the flag.
Frames and their order are exactly those of the sequential loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .pipeline import OutputFrame, Upscaler

__all__ = ["StageTimes", "run_overlapped"]

_POLL = 0.05  # seconds between checks of the stop flag while a queue is full or empty
_END = object()


@dataclass
class StageTimes:
    """Seconds of one run: ``wall`` from start to the last frame written, and each stage's busy time."""

    wall: float = 0.0
    busy: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "model": 0.0, "encode": 0.0})


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _timed(frames: Iterable[tuple[np.ndarray, Fraction]], times: StageTimes) -> Iterator[tuple[np.ndarray, Fraction]]:
    """``frames``, adding the time each one took to produce to the decode stage's busy time."""
    it = iter(frames)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            times.busy["decode"] += time.perf_counter() - t0
        yield item


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Puts ``item`` unless the run is stopping; False if it stopped first."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> object:
    """The next item, or ``_END`` once the run is stopping."""
    while True:
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            if stop.is_set():
                return _END


def run_overlapped(
    upscaler: Upscaler,
    frames: Iterable[tuple[np.ndarray, Fraction]],
    input_rate: Fraction,
    output_rate: Fraction,
    write: Callable[[np.ndarray], None],
    *,
    on_frame: Callable[[int], None] | None = None,
    on_output: Callable[[OutputFrame], None] | None = None,
    depth: int = 4,
    **stream_options: object,
) -> tuple[int, StageTimes]:
    """Upsamples ``frames`` and passes each output image to ``write``, the three stages overlapped.

    ``frames`` is iterated in a decoder thread and ``write`` called in an encoder thread (only there, in order),
    so neither may be used by the caller meanwhile. ``on_frame(i)`` (input frame i consumed) and ``on_output``
    run in the calling thread. Returns the number of output frames and the stage times. ``depth`` 0 runs the
    stages one after another in the calling thread (the reference the overlapped run must equal).
    ``stream_options`` go to :meth:`~stvup.upscaling.pipeline.Upscaler.stream` (``scene_threshold``, ``on_cut``; the
    callback runs in the calling thread).
    """
    times = StageTimes()
    began = time.perf_counter()
    if depth <= 0:
        frames = _timed(frames, times)
        return _sequential(upscaler.stream(frames, input_rate, output_rate, on_frame, **stream_options), write,
                           on_output, times, began)  # fmt: skip
    stop = threading.Event()
    inbox: queue.Queue = queue.Queue(maxsize=depth)
    outbox: queue.Queue = queue.Queue(maxsize=depth)
    failures: list[BaseException] = []

    def decoder() -> None:
        try:
            for item in _timed(frames, times):
                if stop.is_set() or not _put(inbox, item, stop):
                    return
            _put(inbox, _END, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which re-raises it
            _put(inbox, _Failure(exc), stop) or failures.append(exc)

    def encoder() -> None:
        try:
            while True:
                item = _get(outbox, stop)
                if item is _END:
                    return
                t0 = time.perf_counter()
                write(item)
                times.busy["encode"] += time.perf_counter() - t0
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            failures.append(exc)
            stop.set()

    waited = [0.0]  # calling thread's seconds blocked on the decoder or the encoder: not model time

    def inputs() -> Iterator[tuple[np.ndarray, Fraction]]:
        while True:
            t0 = time.perf_counter()
            item = _get(inbox, stop)
            waited[0] += time.perf_counter() - t0
            if item is _END:
                if failures:
                    raise failures[0]
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    workers = [threading.Thread(target=decoder, name="stvup-decode", daemon=True),
               threading.Thread(target=encoder, name="stvup-encode", daemon=True)]  # fmt: skip
    for w in workers:
        w.start()
    count = 0
    model_start = time.perf_counter()
    try:
        for out in upscaler.stream(inputs(), input_rate, output_rate, on_frame, **stream_options):
            if on_output is not None:
                on_output(out)
            t0 = time.perf_counter()
            if not _put(outbox, out.image, stop):
                break
            waited[0] += time.perf_counter() - t0
            count += 1
        model_end = time.perf_counter()
        # Let the encoder drain; it stops at the end marker (or at an error, which sets the flag).
        _put(outbox, _END, stop)
        workers[1].join()
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()  # the decoder may still be reading ahead; it exits at its next queue operation
        for w in workers:
            w.join()
    if failures:
        raise failures[0]
    times.wall = time.perf_counter() - began
    # The calling thread's time, less what it spent waiting for the decoder (inside the stream) or the encoder.
    times.busy["model"] = max(0.0, model_end - model_start - waited[0])
    return count, times


def _sequential(outputs, write, on_output, times, began):
    """The stages one after another in the calling thread (``depth`` 0)."""
    count = 0
    t_model = time.perf_counter()
    for out in outputs:
        if on_output is not None:
            on_output(out)
        t0 = time.perf_counter()
        write(out.image)
        times.busy["encode"] += time.perf_counter() - t0
        count += 1
    total = time.perf_counter() - t_model
    times.busy["model"] = total - times.busy["decode"] - times.busy["encode"]
    times.wall = time.perf_counter() - began
    return count, times
