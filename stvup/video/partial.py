"""Names of the hidden temporary outputs, and the cleanup of those a killed run left behind.

A writer works on ``.NAME.partial-PID-XXXX.ext`` (a folder output: ``.NAME.partial-PID-XXXX``) beside the output
and renames it only when complete, so Ctrl-C, SIGTERM or an error never leave a half-written file under the real
name; the writer removes its temporary itself. A run killed outright (SIGKILL, power loss) cannot, so the next run
of the same output removes every such sibling whose process ``PID`` no longer exists. Those of a run still going
(another process writing the same output) are left alone.

:class:`AtomicOutput` gives writers that behaviour as a context manager; :func:`make_temp_file` creates the
temporary sibling of a file output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from stvup.errors import OutputError
from stvup.errors import describe as _describe

__all__ = ["AtomicOutput", "default_mode", "make_temp_file", "parent_folder", "partial_prefix", "remove_stale_partials"]


def _stem(path: Path, folder: bool) -> str:
    return path.name if folder else path.stem


def partial_prefix(path: str | os.PathLike, folder: bool = False) -> str:
    """Prefix of this process's temporary sibling for ``path`` (``tempfile`` adds a random part)."""
    return f".{_stem(Path(path), folder)}.partial-{os.getpid()}-"


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def remove_stale_partials(path: str | os.PathLike, folder: bool = False) -> list[Path]:
    """Removes the temporary siblings of ``path`` left by processes that are gone; returns what was removed."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    prefix = f".{_stem(target, folder)}.partial-"
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix) :].split("-", 1)[0].split(".", 1)[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        try:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        except OSError:
            continue  # not ours to remove after all (permissions): leave it
        removed.append(entry)
    return removed


class AtomicOutput:
    """Context-manager behaviour shared by the writers: ``close()`` on success, ``abort()`` on any exception
    (KeyboardInterrupt included) and when a writer is dropped unclosed, so no partial output survives."""

    _closed = True

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204 - returns the concrete writer
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self.abort()
            except Exception:  # noqa: BLE001 - never raise from a finalizer
                pass


def parent_folder(path: str) -> str:
    """The folder ``path`` goes into, which must exist (an output never creates folders above it)."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is not a folder" if os.path.exists(parent) else "does not exist"
        raise OutputError(path, f"output folder {parent} {what}")
    return parent


def make_temp_file(path: str) -> str:
    """Create the hidden temporary sibling of ``path`` (proving the folder is writable) and return its name."""
    parent = parent_folder(path)
    base = Path(path)
    try:
        remove_stale_partials(base)
        handle, tmp = tempfile.mkstemp(prefix=partial_prefix(base), suffix=base.suffix, dir=parent)
    except OSError as exc:
        raise OutputError(path, f"cannot write here ({_describe(exc)})") from None
    os.close(handle)
    os.chmod(tmp, default_mode(0o666))  # mkstemp makes owner-only files; outputs get the usual permissions
    return tmp


def default_mode(base: int) -> int:
    """``base`` less the process umask: the mode a plain ``open``/``mkdir`` would have given."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask
