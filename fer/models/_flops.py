"""FLOPs of one forward pass, counted by torch's FlopCounterMode, on the meta device where the model allows it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["flops_per_sample"]


def _count(model: nn.Module, x: torch.Tensor, tensors: dict | None, forward_kwargs: dict) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if tensors is None:
            model(x, **forward_kwargs)
        else:
            functional_call(model, tensors, (x,), forward_kwargs)
    return float(counter.get_total_flops())


def flops_per_sample(model: nn.Module, input_shape: Sequence[int], **forward_kwargs) -> float:
    """Floating point operations (multiply and add counted separately) of `model` on one input.

    `input_shape` is one sample's shape without the batch dimension, e.g. (3, 16, 160, 160) for a clip. The
    parameters and buffers are swapped for meta tensors of the same shapes for the counted call, so nothing is
    computed and the model is left untouched. A model that keeps tensors outside its parameters and buffers
    cannot run on meta; it is then counted with one real zero input on its own device. Matrix products,
    convolutions and attention are counted; elementwise ops, norms and softmax are not (FlopCounterMode's
    rules). Papers quoting "GFLOPs" from fvcore count multiply-accumulates: half of this number.
    """
    was_training = model.training
    model.eval()
    try:
        if any(t.is_meta for t in model.parameters()):
            return _count(model, torch.empty(1, *input_shape, device="meta"), None, forward_kwargs)
        tensors = {n: torch.empty_like(t, device="meta") for n, t in model.named_parameters()}
        tensors.update({n: torch.empty_like(t, device="meta") for n, t in model.named_buffers()})
        try:
            return _count(model, torch.empty(1, *input_shape, device="meta"), tensors, forward_kwargs)
        except (RuntimeError, NotImplementedError):
            device = next(model.parameters()).device
            return _count(model, torch.zeros(1, *input_shape, device=device), None, forward_kwargs)
    finally:
        model.train(was_training)
