"""Exceptions that carry a one-line, user-facing message.

The CLI turns every :class:`StvupError` into a single ``error: ...`` line and a non-zero exit code, so messages must
name the file (when there is one) and the cause, and must never need a traceback to be understood.
"""

from __future__ import annotations

import os


class StvupError(Exception):
    """Base class of all errors that stvup reports to users as one line."""


class InputError(StvupError):
    """An input file or folder cannot be used (missing, not a video, corrupt, too short, ...)."""

    def __init__(self, path: str | os.PathLike | None, cause: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}" if self.path else cause)


class OutputError(StvupError):
    """An output place cannot be written (exists, unwritable folder, encoder failure, ...)."""

    def __init__(self, path: str | os.PathLike | None, cause: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}" if self.path else cause)


class UsageError(StvupError):
    """An option value is invalid (bad --time, --fps, --tile, unknown model name, ...)."""


class CheckpointError(StvupError):
    """A checkpoint cannot be read or does not match the model (missing/unexpected keys, wrong shapes)."""


def describe(exc: BaseException) -> str:
    """A short human cause from a PyAV/OS exception, without paths or tracebacks, for the messages above."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().rstrip(".")
