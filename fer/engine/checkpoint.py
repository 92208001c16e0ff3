"""Training checkpoints: everything needed to continue a run bit for bit, and stopping cleanly on a signal.

A checkpoint is a dict (the seeds' `{"model": ..., "optimizer": ..., "epoch": ..., "scaler": ...}` plus what an
exact resume needs): model, optimizer, scaler, ema, epoch (the epoch in progress), step (optimizer steps done in
total), step_in_epoch, rng (torch, cuda, numpy, python), config (the resolved cfg). Written atomically with
fer.io.save_checkpoint, read only with fer.io.load_checkpoint (weights_only), so RNG states are stored as tensors
and plain lists rather than pickled objects.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer.io import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

LAST = "checkpoint-last.pth"
FINAL = "checkpoint-final.pth"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


# -- RNG states ----------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The process's random states in weights_only-loadable types (tensors, lists, ints, strings)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((np_state["kind"], keys, np_state["pos"], np_state["has_gauss"], np_state["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
        else:
            log.warning(
                "checkpoint holds CUDA RNG states of %d devices, %d visible: CUDA RNG not restored",
                len(cuda_states),
                torch.cuda.device_count(),
            )


# -- save / find / load ---------------------------------------------------------------------------------------
def training_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler | None,
    epoch: int,
    step: int,
    step_in_epoch: int,
    config: dict,
    ema: torch.nn.Module | None = None,
) -> dict[str, Any]:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": int(epoch),
        "step": int(step),
        "step_in_epoch": int(step_in_epoch),
        "rng": rng_state(),
        "config": config,
    }
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


def save(state: dict[str, Any], output_dir: str | os.PathLike, name: str = LAST) -> Path:
    path = Path(output_dir) / name
    save_checkpoint(state, path)
    log.info("saved %s (epoch %d, step %d)", path, state["epoch"], state["step"])
    return path


def find_last(output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint a resumed run continues from: the final one if training finished, else the last one."""
    for name in (FINAL, LAST):
        path = Path(output_dir) / name
        if path.is_file():
            return path
    return None


# Keys that change what is trained; a resumed run must agree with its checkpoint on all of them.
_RESUME_KEYS = (
    "kind", "model", "model_kwargs", "batch_size", "global_batch_size", "accum_iter", "opt", "blr", "lr", "min_lr",
    "weight_decay", "layer_decay", "epochs", "warmup_epochs", "input_size", "mask_ratio", "num_frames", "data",
)  # fmt: skip


def check_resumable(saved: dict, cfg: dict, path: Path) -> None:
    differ = [k for k in _RESUME_KEYS if k in saved and k in cfg and saved[k] != cfg[k]]
    if differ:
        detail = "; ".join(f"{k}: {saved[k]!r} -> {cfg[k]!r}" for k in differ)
        raise ValueError(
            f"{path}: cannot resume, the config changed since this checkpoint was written ({detail}). "
            f"Delete {path.parent} (or set resume: false) to start over, or restore the old values."
        )


def load_training_state(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    return load_checkpoint(path, map_location=device)


def restore(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    ema: torch.nn.Module | None = None,
) -> None:
    """Load model / optimizer / scaler / EMA from a training state (RNG is restored separately, see loops)."""
    model.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and scaler.is_enabled() and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])


# -- stopping on a signal --------------------------------------------------------------------------------------
class Preempted(SystemExit):
    """Raised after the checkpoint was saved on SIGTERM / SIGUSR1; exits non-zero so a launcher requeues."""

    def __init__(self, signum: int, path: Path | None):
        super().__init__(128 + signum)
        self.signum = signum
        self.path = path

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}; resume from {self.path}"


class StopFlag:
    """Context manager: SIGTERM / SIGUSR1 set `.signum` instead of killing the process; old handlers restored.

    The training loop checks the flag at each optimizer step, saves, and raises `Preempted`. Handlers can only
    be installed from the main thread; elsewhere the flag never rises and the signals keep their handlers.
    """

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS):
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            log.warning(
                "received %s: saving a checkpoint at the next step, then exiting", signal.Signals(signum).name
            )
        self.signum = signum

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        else:
            log.info("not in the main thread: SIGTERM/SIGUSR1 will not trigger a checkpoint")
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
