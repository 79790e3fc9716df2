"""Names of the hidden temporary outputs, and the cleanup of those a killed run left behind.

A writer works on ``.NAME.partial-PID-XXXX.ext`` (a folder output: ``.NAME.partial-PID-XXXX``) beside the output
and renames it only when complete, so Ctrl-C, SIGTERM or an error never leave a half-written file under the real
name; the writer removes its temporary itself. A run killed outright (SIGKILL, power loss) cannot, so the next run
of the same output removes every such sibling whose process ``PID`` no longer exists. Those of a run still going
(another process writing the same output) are left alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["partial_prefix", "remove_stale_partials"]


def _stem(path: Path, folder: bool) -> str:
    return path.name if folder else path.stem


def partial_prefix(path: str | os.PathLike, folder: bool = False) -> str:
    """Prefix of this process's temporary sibling for ``path`` (``tempfile`` adds a random part)."""
    return f".{_stem(Path(path), folder)}.partial-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
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
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        try:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        except OSError:
            continue  # not ours to remove after all (permissions): leave it
        removed.append(entry)
    return removed
