"""`load_pretrained`: released checkpoints of the four seeds and our own, into any model of the zoo."""

from __future__ import annotations

import logging
import os

import torch
import torch.nn as nn

from fer.io import load_checkpoint

from ._registry import checkpoint_filter_for

log = logging.getLogger(__name__)

# Top-level keys under which the seeds' codebases (and ours) keep the weights, in order of preference.
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module", "model_state")


class CheckpointMismatchError(RuntimeError):
    """The checkpoint was written for another architecture than the model it is loaded into."""


def unwrap_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict):
        for key in _WRAPPER_KEYS:
            if key in checkpoint and isinstance(checkpoint[key], dict):
                return unwrap_state_dict(checkpoint[key])
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return {k.removeprefix("module."): v for k, v in checkpoint.items()}
    raise CheckpointMismatchError("no state dict found (expected a dict of tensors or one under 'model')")


def checkpoint_model_name(checkpoint) -> str | None:
    """The model name our own checkpoints record in their config, None for foreign files."""
    if isinstance(checkpoint, dict):
        config = checkpoint.get("config")
        if isinstance(config, dict):
            return config.get("model")
    return None


def load_pretrained(model: nn.Module, path: str | os.PathLike, min_match: float = 0.5):
    """Load weights from `path` into `model`, converting foreign key layouts with the model family's filter.

    Returns torch's (missing_keys, unexpected_keys). Refuses a checkpoint whose tensors mostly do not fit the
    model (another architecture), naming both, rather than loading a silently wrong network.
    """
    checkpoint = load_checkpoint(path)
    state_dict = unwrap_state_dict(checkpoint)
    target_name = getattr(model, "fer_model_name", type(model).__name__)
    source_name = checkpoint_model_name(checkpoint) or "a foreign checkpoint"
    filter_fn = checkpoint_filter_for(model)
    if filter_fn is not None:
        state_dict = filter_fn(state_dict, model)

    own = model.state_dict()
    fitting = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    wrong_shape = sorted(k for k, v in state_dict.items() if k in own and own[k].shape != v.shape)
    if not own or len(fitting) < min_match * len(own) or wrong_shape:
        detail = f"{len(fitting)}/{len(own)} of the model's tensors found with matching shapes"
        if wrong_shape:
            detail += f"; shape mismatch in {wrong_shape[:5]}"
        raise CheckpointMismatchError(
            f"{path}: checkpoint ({source_name}) does not fit model {target_name!r}: {detail}. "
            f"Check the model name in the config or the --model argument."
        )
    result = model.load_state_dict(fitting, strict=False)
    unexpected = sorted(set(state_dict) - set(fitting))
    if result.missing_keys:
        log.info("%s: missing keys (left at init): %s", path, result.missing_keys)
    if unexpected:
        log.info("%s: unused keys: %s", path, unexpected)
    return result.missing_keys, unexpected
