"""Finetuning ViTs of MAE-SFER, FMAE-IAT and MAE (image models), with the reference codebases' key names.

Follows facebookresearch/mae `models_vit.py` (a timm VisionTransformer whose `forward_features` returns either the
mean of the patch tokens through `fc_norm` (global_pool) or the class token through `norm`), FMAE-IAT's
`models_vit.py` on its AU branches (identity classifier `ID_head` behind a gradient reversal layer, present only
when `grad_reverse != 0`) and MSA-LMC/MAE-SFER `models/vit.py` (`vit_*_fixedpe_patch16_224`: class-token ViTs
with a frozen sin-cos `pos_embed`). State dict keys are those of /work/shared/notes/reference-state-dicts.md:
cls_token, pos_embed, patch_embed.proj, blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2},
fc_norm (global_pool) or norm, head, ID_head.

Attention is timm's `Attention`, which calls F.scaled_dot_product_attention; `fused_attn=False` ("seed mode")
switches every block to the explicit softmax(QK^T / sqrt(d)) V of the seeds' timm 0.3/0.4.
"""

from __future__ import annotations

import logging
from functools import partial

import torch
import torch.nn as nn
from timm.layers import PatchEmbed, trunc_normal_
from timm.models.vision_transformer import Block
from torch.utils.checkpoint import checkpoint

from ._registry import register_model
from .heads import GradientReversal
from .pos_embed import get_2d_sincos_pos_embed, resample_pos_embed

log = logging.getLogger(__name__)

__all__ = ["VisionTransformer", "checkpoint_filter_fn", "run_blocks", "set_fused_attn"]


def set_fused_attn(model: nn.Module, enabled: bool) -> int:
    """Switch every timm attention module in `model` between SDPA (True) and explicit softmax(QK^T)V (False).

    Returns how many modules were switched, so a caller can tell a model without such attention.
    """
    count = 0
    for module in model.modules():
        if hasattr(module, "fused_attn") and hasattr(module, "qkv"):
            module.fused_attn = bool(enabled)
            count += 1
    return count


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, grad_checkpointing: bool = False) -> torch.Tensor:
    """Run `blocks` on x; with `grad_checkpointing` (and autograd on) each block's activations are recomputed in
    the backward pass instead of stored: memory for ViT-L and large batches at the cost of one more forward.
    Non-reentrant checkpointing restores the RNG state, so drop path draws the same masks when recomputing."""
    if not (grad_checkpointing and torch.is_grad_enabled()):
        return blocks(x)
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False)
    return x


class VisionTransformer(nn.Module):
    """ViT classifier; `forward(x)` -> logits, or (logits, id_logits) when the identity head exists."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: bool = True,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: type[nn.Module] | None = None,
        fixed_pos_embed: bool = False,
        num_subjects: int = 0,
        grad_reverse: float = 0.0,
        fused_attn: bool = True,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        if grad_reverse != 0 and num_subjects <= 0:
            raise ValueError(
                f"grad_reverse={grad_reverse} adds an identity head, which needs num_subjects > 0 "
                f"(the number of training subjects); pass num_subjects or set grad_reverse=0"
            )
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.num_classes = num_classes
        self.global_pool = bool(global_pool)
        self.num_features = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1

        self.patch_embed = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim
        )
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # MAE-SFER freezes a sin-cos table (requires_grad=False); MAE / FMAE-IAT finetune a learned one.
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, embed_dim), requires_grad=not fixed_pos_embed
        )
        self.fixed_pos_embed = fixed_pos_embed
        self.pos_drop = nn.Dropout(drop_rate)

        # stochastic depth rising linearly to drop_path_rate (plain floats: also builds on the meta device)
        dpr = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim=embed_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    proj_drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[i],
                    norm_layer=norm_layer,
                )
                for i in range(depth)
            ]
        )
        # The reference deletes `norm` when pooling and only then adds `fc_norm`: exactly one of them has weights.
        self.norm = nn.Identity() if self.global_pool else norm_layer(embed_dim)
        self.fc_norm = norm_layer(embed_dim) if self.global_pool else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        self.grad_reverse = float(grad_reverse)
        if self.grad_reverse != 0:
            self.id_reverse = GradientReversal(self.grad_reverse)
            self.ID_head = nn.Linear(embed_dim, num_subjects)  # FMAE-IAT's name, kept for its checkpoints
        else:
            self.id_reverse = None
            self.ID_head = None

        self._init_weights()
        set_fused_attn(self, fused_attn)
        self.grad_checkpointing = bool(grad_checkpointing)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing of the blocks (timm's method name); also the `grad_checkpointing` argument."""
        self.grad_checkpointing = bool(enable)

    @torch.no_grad()
    def _init_weights(self) -> None:
        # timm 0.3's ViT init (what the seeds' models start from), except the head: trunc_normal(std=2e-5) as
        # main_finetune.py re-initialises it after loading the pretrained encoder.
        if self.fixed_pos_embed:
            grid = self.patch_embed.grid_size
            self.pos_embed.copy_(get_2d_sincos_pos_embed(self.embed_dim, grid, cls_token=True).unsqueeze(0))
        else:
            trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        for name, m in self.named_modules():
            if name.startswith("ID_head"):
                continue  # FMAE-IAT adds ID_head after the timm init: PyTorch's default Linear init
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=2e-5 if name == "head" else 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, 1 + L, D] tokens after the last block (before the final norm)."""
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        return run_blocks(self.blocks, x, self.grad_checkpointing)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature [B, D] the heads see (mean patch token + fc_norm, or normed class token)."""
        x = self.forward_tokens(x)
        if self.global_pool:
            return self.fc_norm(x[:, self.num_prefix_tokens :].mean(dim=1))
        return self.norm(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        feat = self.forward_features(x)
        logits = self.head(feat)
        if self.ID_head is None:
            return logits
        return logits, self.ID_head(self.id_reverse(feat))


# Keys only MAE pretraining checkpoints hold (the decoder and its mask token).
_PRETRAIN_ONLY_PREFIXES = ("decoder_", "mask_token")
# Heads that are re-initialised when the class / subject count differs (as main_finetune.py does).
_HEAD_KEYS = ("head.weight", "head.bias", "ID_head.weight", "ID_head.bias")


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a seed's or our checkpoint onto a ViT of this module.

    Accepts MAE pretraining checkpoints (facebookresearch/mae, FMAE-IAT `mae_pretraining`, MAE-SFER: the decoder
    and mask token are dropped), MAE / FMAE-IAT finetuned checkpoints (with `ID_head`), MAE-SFER's fixed-PE ViTs
    and timm 0.3/0.4 ViT state dicts (their names for these modules are ours), with or without a `module.`
    (DDP) prefix. `pos_embed` is resized (bicubic, as MAE's `interpolate_pos_embed`) when the patch grid differs;
    `head` / `ID_head` are dropped when their shape differs from the model's, so they stay at their init and
    `load_pretrained` reports them missing. Everything else is left as is: a checkpoint of another architecture
    keeps its mismatching shapes and `load_pretrained` refuses it.
    """
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.startswith(_PRETRAIN_ONLY_PREFIXES):
            continue
        out[key] = value

    pos = out.get("pos_embed")
    if pos is not None and "pos_embed" in own and pos.shape != own["pos_embed"].shape:
        same_dim = pos.ndim == 3 and pos.shape[-1] == own["pos_embed"].shape[-1]
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
        n_prefix = getattr(model, "num_prefix_tokens", 1)
        num_grid = pos.shape[1] - n_prefix if same_dim else 0
        if same_dim and grid is not None and round(num_grid**0.5) ** 2 == num_grid:
            out["pos_embed"] = resample_pos_embed(pos, tuple(grid), num_prefix_tokens=n_prefix)
            log.info("pos_embed resampled from %s to %s", list(pos.shape), list(out["pos_embed"].shape))

    for key in _HEAD_KEYS:
        if key in out and key in own and out[key].shape != own[key].shape:
            log.info("dropping %s %s: the model's is %s", key, list(out[key].shape), list(own[key].shape))
            del out[key]
    return out


def _create(defaults: dict, kwargs: dict) -> VisionTransformer:
    # Overrides win over the variant's defaults, so the demo can shrink any variant (img_size=64, small dims).
    return VisionTransformer(**{**defaults, **kwargs})


@register_model
def vit_tiny_patch16(**kwargs) -> VisionTransformer:
    """ViT-Ti/16 (MAE-SFER's ViT-Tiny)."""
    return _create(dict(patch_size=16, embed_dim=192, depth=12, num_heads=3), kwargs)


@register_model
def vit_small_patch16(**kwargs) -> VisionTransformer:
    """ViT-S/16 (FMAE-IAT's and MAE-SFER's ViT-Small)."""
    return _create(dict(patch_size=16, embed_dim=384, depth=12, num_heads=6), kwargs)


@register_model
def vit_base_patch16(**kwargs) -> VisionTransformer:
    """ViT-B/16 (facebookresearch/mae `models_vit.vit_base_patch16`)."""
    return _create(dict(patch_size=16, embed_dim=768, depth=12, num_heads=12), kwargs)


@register_model
def vit_large_patch16(**kwargs) -> VisionTransformer:
    """ViT-L/16 (facebookresearch/mae `models_vit.vit_large_patch16`, FMAE-IAT's AU model)."""
    return _create(dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16), kwargs)


# MSA-LMC/MAE-SFER models/vit.py: timm class-token ViTs (norm + head on the class token) with a frozen sin-cos
# pos_embed. The reference leaves that table at zeros until a checkpoint fills it; it is initialised to the
# sin-cos table here so the model is also meaningful before loading.
_FIXEDPE = dict(fixed_pos_embed=True, global_pool=False, img_size=224)


@register_model
def vit_tiny_fixedpe_patch16_224(**kwargs) -> VisionTransformer:
    return _create(dict(_FIXEDPE, patch_size=16, embed_dim=192, depth=12, num_heads=3), kwargs)


@register_model
def vit_small_fixedpe_patch16_224(**kwargs) -> VisionTransformer:
    """Builds patch_size=32 despite its name: that is what the reference's factory declares."""
    return _create(dict(_FIXEDPE, patch_size=32, embed_dim=384, depth=12, num_heads=6), kwargs)


@register_model
def vit_base_fixedpe_patch16_224(**kwargs) -> VisionTransformer:
    return _create(dict(_FIXEDPE, patch_size=16, embed_dim=768, depth=12, num_heads=12), kwargs)
