"""Reading, checking and writing STVUN checkpoints.

Accepted inputs: a PyTorch file (``.pth``/``.pt``/``.ckpt``) holding a state dict, possibly wrapped in a dict under
``state_dict``, ``params``, ``params_ema`` or ``model``, with or without ``module.`` prefixes (DataParallel); and
``.safetensors`` files, read and written by the format's own library (``safetensors``), whose parser is the one
hardened against damaged and hostile files; any failure it reports becomes a one-line :class:`CheckpointError`
naming the file. Loading into a model is always strict: a missing key, an unexpected key or a wrong shape raises
:class:`~stvup.errors.CheckpointError` listing all of them, and no key is ever dropped silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from stvup.errors import CheckpointError, UsageError

from .flow import FLOW_KEY, check_flow_name

__all__ = [
    "DEGRADATION_KEY",
    "FLOW_KEY",
    "GRIDS",
    "GRID_KEY",
    "convert_checkpoint",
    "load_checkpoint",
    "load_weights",
    "read_safetensors",
    "resolve_weights",
    "training_metadata",
    "weights_flow",
    "weights_grid",
    "save_safetensors",
    "sha256_file",
]

#: Wrapper keys under which training frameworks store the state dict, most specific first.
WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model")


def _safetensors_error(path: Path, exc: Exception) -> CheckpointError:
    """One line naming the file and the library's reason (its messages can span lines)."""
    cause = " ".join(str(exc).split()) or type(exc).__name__
    return CheckpointError(f"{path}: not a valid safetensors file ({cause[:200]})")


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and ``__metadata__`` of a ``.safetensors`` file (tensors on CPU, in their stored dtype).

    The ``safetensors`` library checks the header, the dtypes, the offsets (no overlap, no gap, nothing past the
    end) and the length before any tensor is built; every problem it finds is a :class:`CheckpointError`.
    """
    path = Path(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise _safetensors_error(path, exc) from None
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
    # The library refuses tensors that share memory or are not contiguous: give it independent CPU copies.
    data = {str(k): t.detach().to("cpu").contiguous().clone() for k, t in tensors.items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()} or None
    with atomic_target(path) as tmp:
        try:
            save_file(data, tmp, metadata=meta)
        except (SafetensorError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: cannot write as safetensors ({exc})") from None
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # the library writes owner-only files; give the usual permissions


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
    src: str | os.PathLike | Sequence[str | os.PathLike],
    dst: str | os.PathLike,
    model_name: str = "stvun",
    dtype: torch.dtype | None = None,
) -> str:
    """Converts a checkpoint (e.g. the authors' ``STVUN.pth``) to ``.safetensors``; returns the output's SHA-256.

    Several checkpoints (of one run) are averaged into one set of weights (:mod:`stvup.model.averaging`). The state dict
    is first loaded strictly into ``model_name`` so that a wrong or incomplete file is never converted. ``dtype``
    (e.g. ``torch.float16``) casts floating-point tensors.
    """
    from . import build_model  # local: building a model is only needed here
    from .averaging import average_state_dicts

    sources = [src] if isinstance(src, (str, os.PathLike)) else list(src)
    if not sources:
        raise ValueError("convert_checkpoint needs at least one checkpoint")
    carried = [training_metadata(s) for s in sources]
    flows = {c.get(FLOW_KEY, "pwc") for c in carried}
    if len(flows) > 1:
        raise CheckpointError("the checkpoints were trained with different flows; they cannot be averaged")
    model = build_model(model_name, **flow_override(flows.pop()))

    def checked(path: str | os.PathLike) -> dict[str, torch.Tensor]:
        state = load_checkpoint(path)
        check_state_dict(model, state, os.fspath(path))
        return state

    state = checked(sources[0]) if len(sources) == 1 else average_state_dicts(sources, checked)
    out = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state.items()}
    meta = {"format": "pt", "stvup_model": model_name, "source": ", ".join(Path(s).name for s in sources)}
    if any(c.get(GRID_KEY, "duf") != carried[0].get(GRID_KEY, "duf") for c in carried):
        raise CheckpointError("the checkpoints were trained for different pixel grids; they cannot be averaged")
    meta.update(carried[0])
    if len(sources) > 1:
        meta["averaged"] = str(len(sources))
    save_safetensors(out, dst, meta)
    return sha256_file(dst)


#: Where shipped weights live: ``weights/`` next to the package in a source checkout or editable install.
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
DEFAULT_WEIGHTS = "default.safetensors"


#: Metadata keys of stvup's weights files: the pixel grid the weights were trained for, and their degradation.
GRID_KEY, DEGRADATION_KEY = "stvup_grid", "stvup_degradation"
GRIDS = ("duf", "block-centre")


def default_weights_path() -> Path | None:
    """The shipped default weights, or None when this installation has none."""
    path = WEIGHTS_DIR / DEFAULT_WEIGHTS
    return path if path.is_file() else None


def resolve_weights(weights: str | os.PathLike) -> Path:
    """A weights file's path: ``weights`` itself when it exists, else the shipped weights of that name
    (``paper`` → ``weights/paper.safetensors``); a name that is neither raises :class:`UsageError`."""
    path = Path(weights)
    if path.exists():
        return path
    name = str(weights)
    for candidate in (WEIGHTS_DIR / name, WEIGHTS_DIR / f"{name}.safetensors"):
        if "/" not in name and candidate.is_file():
            return candidate
    shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors")) if WEIGHTS_DIR.is_dir() else []
    raise UsageError(f"{name}: no such weights file, nor shipped weights of that name ({', '.join(shipped) or 'none'})")


def weights_grid(path: str | os.PathLike | None) -> str:
    """The pixel grid weights were trained for (:data:`GRIDS`): their ``stvup_grid`` metadata, else ``"duf"``, the
    paper's grid, which the authors' checkpoint and every stvup weights file before the key existed were trained
    on. ``block-centre`` weights put LR pixel i on the centre of its block (real video); ``duf`` ones on HR
    pixel scale·i."""
    if path is None or Path(path).suffix != ".safetensors":
        return "duf"
    grid = read_safetensors_metadata(path).get(GRID_KEY, "duf")
    if grid not in GRIDS:
        raise CheckpointError(f"{path}: unknown pixel grid {grid!r} in its metadata (known: {', '.join(GRIDS)})")
    return grid


def weights_flow(path: str | os.PathLike | None) -> str:
    """The flow a weights file's network warps with (:mod:`stvup.model.flow`): its ``stvup_flow`` metadata, else
    ``"pwc"`` (the network's own PWC-Net, as in the authors' checkpoint and every file before the key existed)."""
    if path is None or Path(path).suffix != ".safetensors":
        return "pwc"
    flow = read_safetensors_metadata(path).get(FLOW_KEY, "pwc")
    try:
        return check_flow_name(flow)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc} (in its metadata)") from None


def flow_override(flow: str) -> dict[str, str]:
    """Keyword arguments for :func:`stvup.model.build_model` that give an STVUN ``flow`` (none for ``pwc``, so that
    two-stream names, which have no flow setting, build as before)."""
    return {} if flow == "pwc" else {"flow": flow}


def training_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The grid, degradation and flow keys of a weights file or training checkpoint, to carry into a converted
    file."""
    p = Path(path)
    config: object = None
    keys = (GRID_KEY, DEGRADATION_KEY, FLOW_KEY)
    if p.suffix == ".safetensors":
        meta = read_safetensors_metadata(p)
        if any(k in meta for k in keys) or "train_config" not in meta:
            return {k: meta[k] for k in keys if k in meta}
        with contextlib.suppress(ValueError):  # a run's weights written before the keys existed: read its settings
            config = json.loads(meta["train_config"])
    elif p.suffix == ".pt":
        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - not a training checkpoint: nothing to carry
            return {}
        config = ckpt.get("config") if isinstance(ckpt, dict) else None
    carried: dict[str, str] = {}
    if isinstance(config, dict) and config.get("kernel"):
        from stvup.data.degrade import GRIDS as KERNEL_GRIDS

        grid = KERNEL_GRIDS.get(config["kernel"])
        carried = {DEGRADATION_KEY: config["kernel"], **({GRID_KEY: grid} if grid else {})}
    if isinstance(config, dict) and config.get("flow", "pwc") != "pwc":
        carried[FLOW_KEY] = config["flow"]
    return carried


def checkpoint_model_name(path: str | os.PathLike, state: Mapping[str, torch.Tensor]) -> str:
    """The model variant a checkpoint belongs to: its ``stvup_model`` metadata, else the model whose state-dict
    layout it matches exactly (the authors' ``STVUN.pth`` is recognised as ``stvun``)."""
    from . import build_model, list_models

    known = list_models(tiny=True)
    if Path(path).suffix == ".safetensors":
        name = read_safetensors_metadata(path).get("stvup_model")
        if name in known:
            return name
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    extra = flow_override(weights_flow(path))
    with torch.device("meta"):
        for name in known:
            if name.startswith("two-stream") and extra:
                continue
            if {k: tuple(v.shape) for k, v in build_model(name, **extra).state_dict().items()} == shapes:
                return name
    raise CheckpointError(f"{path}: matches none of the known models; pass --model (see `stvup info`)")


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Only the ``__metadata__`` of a ``.safetensors`` file (reads the header, not the tensors); empty if unreadable."""
    try:
        with safe_open(Path(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError):
        return {}
    return {str(k): str(v) for k, v in meta.items()}
