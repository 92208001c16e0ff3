"""Atomic file writes and safe checkpoint loading, shared by every stage."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_checkpoint(obj: dict, path: str | os.PathLike) -> None:
    """torch.save through a temp file + rename, so a crash never leaves half a checkpoint."""
    import torch  # here, not at module level: the data and faces stages use this module without torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _safe_globals() -> list:
    """The only non-tensor classes the released checkpoints of the four seeds hold."""
    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    return [
        argparse.Namespace,
        np.dtype,
        np.ndarray,
        multiarray.scalar,
        multiarray._reconstruct,
        *(type(np.dtype(name)) for name in ("float64", "float32", "float16", "int64", "int32", "bool")),
    ]


class UnsafeCheckpointError(RuntimeError):
    pass


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> Any:
    """Load a checkpoint without running code from it (weights_only=True).

    argparse.Namespace and numpy scalars/arrays are allowed by name because the seeds' releases hold them;
    any other class is refused with an error naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    import torch

    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError with the offending global in the message
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise UnsafeCheckpointError(
                f"{path}: refused to load, it holds objects other than tensors, argparse.Namespace and numpy "
                f"scalars, and loading them would run code from the file. Re-save its state dict with "
                f"torch.save({{'model': model.state_dict()}}, ...) from a trusted environment.\n{err}"
            ) from err
        raise
