"""Heads shared by the image models: gradient reversal (identity adversarial training) and linear probing.

- `GradientReversal`: identity in the forward pass, gradient multiplied by -lambda in the backward pass
  (Ganin & Lempitsky 2015). FMAE-IAT (forever208/FMAE-IAT, `models_vit.GradReverse`) puts it between the pooled
  feature and the identity classifier `ID_head`, with lambda = `--grad_reverse` (2 BP4D, 1 BP4D+, 0.5 DISFA).
- `LinearProbe`: MAE's linear probing (facebookresearch/mae `main_linprobe.py`, FMAE-IAT branch
  `BP4D_ID_linear_prob`): the encoder is frozen and a BatchNorm1d without affine parameters (eps 1e-6) normalises
  its pooled feature before a linear classifier whose weight starts from trunc_normal(std=0.01) (MoCo v3).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import trunc_normal_


class _GradReverseFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output * -ctx.lambd, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    """Identity forward; backward multiplies the incoming gradient by -lambd."""
    return _GradReverseFn.apply(x, lambd)


class GradientReversal(nn.Module):
    """Gradient reversal layer; `lambd` is a plain attribute so a schedule may change it during training."""

    def __init__(self, lambd: float = 1.0):
        super().__init__()
        self.lambd = float(lambd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lambd)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}"


class LinearProbe(nn.Module):
    """Frozen encoder + BatchNorm1d(affine=False) + Linear, trained on the encoder's pooled feature.

    The encoder must provide `forward_features(x) -> [B, D]` (the ViTs of this zoo do). It stays in eval mode
    and runs without autograd whatever `train()` is called with, so dropout, drop-path and norms are those of
    inference and no activations are kept for it; only `head` has trainable parameters.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        feature_dim: int | None = None,
        bias: bool = True,
        bn_eps: float = 1e-6,
        init_std: float = 0.01,
    ):
        super().__init__()
        if not hasattr(encoder, "forward_features"):
            raise TypeError(f"{type(encoder).__name__} has no forward_features(x) returning a pooled feature")
        feature_dim = (
            feature_dim or getattr(encoder, "num_features", None) or getattr(encoder, "embed_dim", None)
        )
        if not feature_dim:
            raise ValueError(f"cannot tell the feature size of {type(encoder).__name__}; pass feature_dim")
        self.encoder = encoder
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        # FMAE-IAT's identity probe uses a bias-free classifier (bias=False); MAE's linear probe keeps it.
        self.head = nn.Sequential(
            nn.BatchNorm1d(feature_dim, affine=False, eps=bn_eps),
            nn.Linear(feature_dim, num_classes, bias=bias),
        )
        trunc_normal_(self.head[1].weight, std=init_std)
        if bias:
            nn.init.zeros_(self.head[1].bias)
        self.encoder.eval()

    def train(self, mode: bool = True) -> LinearProbe:
        super().train(mode)
        self.encoder.eval()  # frozen: always inference behaviour
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feat = self.encoder.forward_features(x)
        return self.head(feat)
