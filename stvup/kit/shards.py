"""Splitting a weights file into checksummed shards and joining them again.

Files come back from the GPU machine only up to 16 MB each (8 at most), so a weights file travels as
``NAME.partNN`` pieces plus ``NAME.shards.json``, which records the size and SHA-256 of every piece and of the
whole. Joining checks all of them and writes the result atomically: a missing, damaged or foreign piece is a one-line
error naming it, and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from stvup.errors import CheckpointError
from stvup.model.weights import atomic_target, sha256_file

__all__ = ["SHARD_BYTES", "join_shards", "write_shards"]

#: Piece size: under the tool's 16 MB per file, with room to spare.
SHARD_BYTES = 15 * 1024 * 1024
MANIFEST_SUFFIX = ".shards.json"


def write_shards(path: str | os.PathLike, out_dir: str | os.PathLike, shard_bytes: int = SHARD_BYTES,
                 info: dict | None = None) -> Path:  # fmt: skip
    """Splits ``path`` into ``out_dir/NAME.partNN`` pieces of at most ``shard_bytes``; returns the manifest's path.

    ``info``: extra facts recorded in the manifest (the run's step, its losses).
    """
    path, out = Path(path), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = path.read_bytes()
    parts = []
    for k, begin in enumerate(range(0, max(len(data), 1), shard_bytes)):
        piece = data[begin : begin + shard_bytes]
        name = f"{path.name}.part{k:02d}"
        with atomic_target(out / name) as tmp:
            tmp.write_bytes(piece)
        parts.append({"name": name, "bytes": len(piece), "sha256": hashlib.sha256(piece).hexdigest()})
    manifest = {
        "name": path.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "parts": parts,
        **({"info": info} if info else {}),
    }
    target = out / f"{path.name}{MANIFEST_SUFFIX}"
    with atomic_target(target) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return target


def _manifest(shard_dir: Path) -> tuple[Path, dict]:
    found = sorted(shard_dir.glob(f"*{MANIFEST_SUFFIX}"))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise CheckpointError(f"{shard_dir}: {what} *{MANIFEST_SUFFIX} manifest(s) there; expected exactly one")
    try:
        manifest = json.loads(found[0].read_text())
        parts = [(str(p["name"]), int(p["bytes"]), str(p["sha256"])) for p in manifest["parts"]]
        manifest["parts"] = parts
        int(manifest["bytes"]), str(manifest["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{found[0]}: not a shard manifest ({exc})") from None
    return found[0], manifest


def join_shards(shard_dir: str | os.PathLike, out_path: str | os.PathLike) -> str:
    """Joins the pieces listed in ``shard_dir``'s manifest into ``out_path``; returns its SHA-256 (checked)."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        raise CheckpointError(f"{shard_dir}: no such folder of shards")
    _, manifest = _manifest(shard_dir)
    pieces = []
    for name, size, digest in manifest["parts"]:
        piece_path = shard_dir / Path(name).name  # never outside the folder, whatever the manifest says
        if not piece_path.is_file():
            raise CheckpointError(f"{piece_path}: shard missing")
        piece = piece_path.read_bytes()
        if len(piece) != size or hashlib.sha256(piece).hexdigest() != digest:
            raise CheckpointError(f"{piece_path}: shard damaged (size or SHA-256 differs from the manifest)")
        pieces.append(piece)
    data = b"".join(pieces)
    if len(data) != manifest["bytes"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise CheckpointError(f"{shard_dir}: joined shards do not match the manifest's size and SHA-256")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(out_path) as tmp:
        tmp.write_bytes(data)
    return sha256_file(out_path)
