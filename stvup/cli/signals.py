"""Termination signals handled like Ctrl-C, so that a scheduler's or container's stop leaves nothing partial.

SIGTERM (``kill``, schedulers, ``docker stop``) and SIGHUP (a closed terminal) would otherwise end the process at
once, skipping the cleanup that every writer does when an exception passes through it. Inside
:func:`stop_on_signals` they raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread instead, which
unwinds exactly like Ctrl-C: threads stop, temporaries are removed. Only the command line installs the handlers;
the library never touches signal handling.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "stop_on_signals"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when a termination signal arrives; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(signums: tuple[str, ...] = ("SIGTERM", "SIGHUP")) -> Iterator[None]:
    """Within the block, the named signals raise :class:`Terminated`; previous handlers come back afterwards.

    Only the first signal raises: the cleanup it starts (e.g. training's final checkpoint) must not be cut short by
    a repeat, and repeats are common (a process group's stop reaches each process, supervisors send again). Ctrl-C
    is not among them, so a second Ctrl-C still forces an immediate stop.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous: dict[int, object] = {}

    def _raise(signum: int, _frame: object) -> None:
        for number in previous:
            signal.signal(number, signal.SIG_IGN)
        raise Terminated(signum)

    for name in signums:
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, _raise)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
