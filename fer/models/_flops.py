"""FLOPs of one forward pass, counted by torch's FlopCounterMode on the meta device (no compute, no memory)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["flops_per_sample"]


def flops_per_sample(model: nn.Module, input_shape: Sequence[int], **forward_kwargs) -> float:
    """Floating point operations (multiply and add counted separately) of `model` on one input.

    `input_shape` is one sample's shape without the batch dimension, e.g. (3, 16, 160, 160) for a clip. The
    model's own weights are left untouched: parameters and buffers are swapped for meta tensors of the same
    shapes for the counted call. Matrix products, convolutions and attention are counted; elementwise ops,
    norms and softmax are not (FlopCounterMode's rules), which is how the papers' GFLOPs are usually quoted.
    """
    meta = {name: torch.empty_like(t, device="meta") for name, t in model.named_parameters()}
    meta.update({name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()})
    x = torch.empty(1, *input_shape, device="meta")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            functional_call(model, meta, (x,), forward_kwargs)
    finally:
        model.train(was_training)
    return float(counter.get_total_flops())
