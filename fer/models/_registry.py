"""Model registry: every variant is a small factory function registered by name (timm style)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch.nn as nn

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name; the name is what configs and recipes use."""
    name = fn.__name__
    if name in _model_entrypoints:
        raise ValueError(f"model {name!r} registered twice ({fn.__module__})")
    _model_entrypoints[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_model_entrypoints)


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    if name not in _model_entrypoints:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _model_entrypoints[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; the name is kept on the module so checkpoints can record it."""
    model = model_entrypoint(name)(**kwargs)
    model.fer_model_name = name
    return model


def checkpoint_filter_for(model: nn.Module) -> Callable[[dict, nn.Module], dict] | None:
    """The `checkpoint_filter_fn` of the module file that defines this model's factory, if it has one."""
    name = getattr(model, "fer_model_name", None)
    if name is None:
        return None
    module = sys.modules[_model_entrypoints[name].__module__]
    return getattr(module, "checkpoint_filter_fn", None)
