"""Reading, checking and writing STVUN checkpoints.

Accepted inputs: a PyTorch file (``.pth``/``.pt``/``.ckpt``) holding a state dict, possibly wrapped in a dict under
``state_dict``, ``params``, ``params_ema`` or ``model``, with or without ``module.`` prefixes (DataParallel); and
``.safetensors`` files. The safetensors format is small enough to implement here, so no extra dependency is needed.
Loading into a model is always strict: a missing key, an unexpected key or a wrong shape raises
:class:`~stvup.errors.CheckpointError` listing all of them, and no key is ever dropped silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError

__all__ = [
    "convert_checkpoint",
    "load_checkpoint",
    "load_weights",
    "read_safetensors",
    "save_safetensors",
    "sha256_file",
]

#: Wrapper keys under which training frameworks store the state dict, most specific first.
WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model")

_ST_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and ``__metadata__`` of a ``.safetensors`` file (tensors on CPU, in their stored dtype)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise CheckpointError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(_MAX_HEADER, len(data) - 8):
        raise CheckpointError(f"{path}: not a safetensors file (bad header length)")
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError as exc:
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON)") from exc
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n :]
    tensors = {}
    for name, info in header.items():
        try:
            dtype = _ST_DTYPES[info["dtype"]]
            begin, end = info["data_offsets"]
            shape = [int(s) for s in info["shape"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: malformed safetensors entry {name!r}") from exc
        count = 1
        for s in shape:
            count *= s
        if not 0 <= begin <= end <= len(body) or end - begin != count * dtype.itemsize:
            raise CheckpointError(f"{path}: safetensors entry {name!r} has inconsistent offsets (truncated file?)")
        # bytes() copies, so the tensors own their memory and stay writable.
        raw = bytes(body[begin:end])
        tensors[name] = (
            torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape) if count else torch.empty(shape, dtype=dtype)
        )
    return tensors, {str(k): str(v) for k, v in metadata.items()}


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary name next to ``path``; renamed to ``path`` only if the block completes.

    A crash or Ctrl-C mid-write therefore never leaves a truncated file under the real name.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """Writes ``tensors`` as ``.safetensors`` (atomically: temporary name, then rename)."""
    path = Path(path)
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        if t.dtype not in _ST_NAMES:
            raise CheckpointError(f"{path}: cannot store dtype {t.dtype} of {name!r} in safetensors")
        blob = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        end = offset + len(blob)
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, end]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format recommends 8-byte alignment of the data
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in blobs:
            f.write(blob)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Finds the state dict inside a loaded checkpoint object and strips ``module.`` prefixes."""
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            keys = ", ".join(map(str, list(obj)[:8]))
            raise CheckpointError(f"{path}: no state dict found (top-level keys: {keys})")
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: does not contain a state dict")
    state = {}
    for k, v in obj.items():
        key = str(k)
        while key.startswith("module."):
            key = key[len("module.") :]
        if key in state:
            raise CheckpointError(f"{path}: key {key!r} appears twice once 'module.' prefixes are removed")
        state[key] = v
    return state


def load_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (``.safetensors`` or a PyTorch file), unwrapped, on CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        magic = f.read(8)
    if path.suffix != ".safetensors" and not (magic[:2] == b"PK" or magic[:1] == b"\x80"):
        # Neither a zip (PyTorch >= 1.6) nor a legacy pickle: accept it only if it parses as safetensors.
        try:
            return _unwrap(read_safetensors(path)[0], path)
        except CheckpointError:
            raise CheckpointError(f"{path}: not a PyTorch or safetensors checkpoint") from None
    if path.suffix == ".safetensors":
        return _unwrap(read_safetensors(path)[0], path)
    try:
        # weights_only refuses arbitrary pickled code: a checkpoint is data, never a program.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; all mean the same to a user
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot read as a PyTorch checkpoint ({cause})") from exc
    return _unwrap(obj, path)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raises :class:`CheckpointError` listing every missing key, unexpected key and shape mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = [
        f"{len(items)} {label}: {_shorten(items)}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("with wrong shape", shapes))
        if items
    ]
    if problems:
        err = CheckpointError(f"{source} does not match the model: " + "; ".join(problems))
        err.missing, err.unexpected, err.mismatched = missing, unexpected, shapes  # the full lists, for callers
        raise err


def _shorten(items: list[str], most: int = 12) -> str:
    """Comma-separated items, at most ``most`` of them, so that the error stays one readable line."""
    shown = ", ".join(items[:most])
    return shown + (f", ... and {len(items) - most} more" if len(items) > most else "")


def load_weights(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> nn.Module:
    """Loads a checkpoint file (or a state dict) into ``model`` strictly, casting to the model's dtype and device."""
    if isinstance(source, Mapping):
        state, name = dict(source), "state dict"
    else:
        state, name = load_checkpoint(source), os.fspath(source)
    check_state_dict(model, state, name)
    model.load_state_dict(state, strict=True)
    return model


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model_name: str = "stvun",
    dtype: torch.dtype | None = None,
) -> str:
    """Converts a checkpoint (e.g. the authors' ``STVUN.pth``) to ``.safetensors``; returns the output's SHA-256.

    The state dict is first loaded strictly into ``model_name`` so that a wrong or incomplete file is never
    converted. ``dtype`` (e.g. ``torch.float16``) casts floating-point tensors.
    """
    from .model import build_model  # local: building a model is only needed here

    state = load_checkpoint(src)
    model = build_model(model_name)
    check_state_dict(model, state, os.fspath(src))
    out = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state.items()}
    meta = {"format": "pt", "stvup_model": model_name, "source": Path(src).name}
    save_safetensors(out, dst, meta)
    return sha256_file(dst)


#: Where shipped weights live: ``weights/`` next to the package in a source checkout or editable install.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = "default.safetensors"


def default_weights_path() -> Path | None:
    """The shipped default weights, or None when this installation has none."""
    path = WEIGHTS_DIR / DEFAULT_WEIGHTS
    return path if path.is_file() else None


def checkpoint_model_name(path: str | os.PathLike, state: Mapping[str, torch.Tensor]) -> str:
    """The model variant a checkpoint belongs to: its ``stvup_model`` metadata, else the model whose state-dict
    layout it matches exactly (the authors' ``STVUN.pth`` is recognised as ``stvun``)."""
    from .model import build_model, list_models

    known = list_models(tiny=True)
    if Path(path).suffix == ".safetensors":
        name = read_safetensors_metadata(path).get("stvup_model")
        if name in known:
            return name
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    with torch.device("meta"):
        for name in known:
            if {k: tuple(v.shape) for k, v in build_model(name).state_dict().items()} == shapes:
                return name
    raise CheckpointError(f"{path}: matches none of the known models; pass --model (see `stvup info`)")


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Only the ``__metadata__`` of a ``.safetensors`` file (reads the header, not the tensors)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return {}
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER:
            return {}
        try:
            meta = json.loads(f.read(n)).get("__metadata__") or {}
        except ValueError:
            return {}
    return {str(k): str(v) for k, v in meta.items()}
