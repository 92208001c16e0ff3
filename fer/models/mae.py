"""Image masked autoencoder for pretraining (MAE-SFER, FMAE-IAT), as facebookresearch/mae `models_mae.py`.

An asymmetric encoder-decoder ViT: the encoder sees only the kept patches (per-sample random masking by argsort
of uniform noise: the smallest noise values are kept), a light decoder gets mask tokens for the rest and predicts
the pixels of every patch; the loss is the mean squared error on the masked patches only, against per-patch
normalised pixels when `norm_pix_loss` (what FMAE-IAT pretrains with). Both position embeddings are fixed 2D
sin-cos tables stored as non-trainable parameters, so they are in the state dict as in the reference's
checkpoints. Key names are the reference's (see /work/shared/notes/reference-state-dicts.md).
"""

from __future__ import annotations

import logging
from functools import partial

import torch
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from ._registry import register_model
from .pos_embed import get_2d_sincos_pos_embed
from .vit import run_blocks, set_fused_attn

log = logging.getLogger(__name__)

__all__ = ["MaskedAutoencoderViT", "checkpoint_filter_fn"]


class MaskedAutoencoderViT(nn.Module):
    """MAE with a ViT encoder; `forward(imgs, mask_ratio)` -> (loss, pred [N, L, p*p*C], mask [N, L], 1 = masked)."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_layer: type[nn.Module] | None = None,
        norm_pix_loss: bool = False,
        fused_attn: bool = True,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.norm_pix_loss = norm_pix_loss

        # encoder
        self.patch_embed = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim
        )
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.Sequential(
            *[
                Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
                for _ in range(depth)
            ]
        )
        self.norm = norm_layer(embed_dim)

        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, decoder_embed_dim), requires_grad=False
        )
        self.decoder_blocks = nn.Sequential(
            *[
                Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
                for _ in range(decoder_depth)
            ]
        )
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, self.patch_embed.patch_size[0] ** 2 * in_chans)

        self._init_weights()
        set_fused_attn(self, fused_attn)
        self.grad_checkpointing = bool(grad_checkpointing)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing of encoder and decoder blocks (timm's method name; also an argument)."""
        self.grad_checkpointing = bool(enable)

    @torch.no_grad()
    def _init_weights(self) -> None:
        # The reference's initialisation: sin-cos tables, xavier_uniform for Linear and for the patch projection
        # seen as a Linear, normal(0.02) for the class and mask tokens.
        grid = self.patch_embed.grid_size
        self.pos_embed.copy_(
            get_2d_sincos_pos_embed(self.pos_embed.shape[-1], grid, cls_token=True).unsqueeze(0)
        )
        self.decoder_pos_embed.copy_(
            get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], grid, cls_token=True).unsqueeze(0)
        )
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "mask_token", "decoder_pos_embed"}

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, L, p*p*C], each patch flattened as (row, column, channel)."""
        p = self.patch_embed.patch_size[0]
        n, c, h, w = imgs.shape
        if h % p or w % p or c != self.in_chans:
            raise ValueError(
                f"patchify needs [N, {self.in_chans}, H, W] with H, W multiples of {p}, got {list(imgs.shape)}"
            )
        x = imgs.reshape(n, c, h // p, p, w // p, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(n, (h // p) * (w // p), p * p * c)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """[N, L, p*p*C] -> [N, C, H, W]; `grid` (patch rows, columns) defaults to the model's patch grid."""
        p, c = self.patch_embed.patch_size[0], self.in_chans
        gh, gw = grid or self.patch_embed.grid_size
        if gh * gw != x.shape[1] or x.shape[2] != p * p * c:
            raise ValueError(
                f"unpatchify: {list(x.shape)} does not fit a {gh}x{gw} grid of {p}x{p}x{c} patches"
            )
        x = x.reshape(x.shape[0], gh, gw, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, gh * p, gw * p)

    @staticmethod
    def random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        """Keep the int(L * (1 - mask_ratio)) tokens with the smallest noise, per sample.

        Returns (kept tokens [N, L_keep, D], mask [N, L] with 1 = removed, ids_restore [N, L]). `noise` [N, L]
        defaults to torch.rand drawn here, as the reference does (same seed, same mask).
        """
        n, length, dim = x.shape
        len_keep = int(length * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(n, length, device=x.device)
        elif noise.shape != (n, length):
            raise ValueError(f"noise must be [{n}, {length}], got {list(noise.shape)}")
        ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_kept = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).expand(-1, -1, dim))
        mask = torch.ones(n, length, device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_kept, mask, ids_restore

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        x = self.patch_embed(imgs)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = self.norm(run_blocks(self.blocks, x, self.grad_checkpointing))
        return x, mask, ids_restore

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(x)
        n, length = ids_restore.shape
        mask_tokens = self.mask_token.to(x.dtype).expand(n, length + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # without the class token
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # unshuffle
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        x = self.decoder_norm(run_blocks(self.decoder_blocks, x, self.grad_checkpointing))
        return self.decoder_pred(x)[:, 1:, :]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over masked patches of the per-patch MSE; computed in float32 also under autocast."""
        target = self.patchify(imgs).float()
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred.float() - target) ** 2).mean(dim=-1)  # [N, L]
        mask = mask.float()
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None):
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        if int(self.patch_embed.num_patches * (1 - mask_ratio)) >= self.patch_embed.num_patches:
            raise ValueError(
                f"mask_ratio={mask_ratio} masks no patch of {self.patch_embed.num_patches}: no loss"
            )
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map an MAE pretraining checkpoint (ours, facebookresearch/mae, FMAE-IAT `mae_pretraining`) onto the MAE.

    Strips a `module.` prefix. The two position tables are fixed functions of the patch grid, so when the grid
    differs the model's own table for its grid is used instead of the checkpoint's.
    """
    own = model.state_dict()
    out = {k.removeprefix("module."): v for k, v in state_dict.items()}
    for key in ("pos_embed", "decoder_pos_embed"):
        theirs, mine = out.get(key), own.get(key)
        if theirs is None or mine is None or theirs.shape == mine.shape:
            continue
        if theirs.ndim == 3 and theirs.shape[-1] == mine.shape[-1]:  # same width, other grid
            log.info(
                "%s: checkpoint %s, using the sin-cos table %s", key, list(theirs.shape), list(mine.shape)
            )
            out[key] = mine.clone()
    return out


def _create(defaults: dict, kwargs: dict) -> MaskedAutoencoderViT:
    # Decoder defaults are the reference's dec512d8b; any argument may be overridden (demo sizes, decoder).
    base = dict(decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0)
    return MaskedAutoencoderViT(**{**base, **defaults, **kwargs})


@register_model
def mae_vit_tiny_patch16(**kwargs) -> MaskedAutoencoderViT:
    """MAE ViT-Ti/16, decoder 512-d x 8 (MAE-SFER's `mae_vit_tiny_patch16`)."""
    return _create(dict(patch_size=16, embed_dim=192, depth=12, num_heads=3), kwargs)


@register_model
def mae_vit_small_patch16(**kwargs) -> MaskedAutoencoderViT:
    """MAE ViT-S/16, decoder 512-d x 8 (FMAE-IAT `mae_vit_small_patch16_dec512d8b`)."""
    return _create(dict(patch_size=16, embed_dim=384, depth=12, num_heads=6), kwargs)


@register_model
def mae_vit_base_patch16(**kwargs) -> MaskedAutoencoderViT:
    """MAE ViT-B/16, decoder 512-d x 8 (facebookresearch/mae `mae_vit_base_patch16_dec512d8b`)."""
    return _create(dict(patch_size=16, embed_dim=768, depth=12, num_heads=12), kwargs)


@register_model
def mae_vit_large_patch16(**kwargs) -> MaskedAutoencoderViT:
    """MAE ViT-L/16, decoder 512-d x 8 (facebookresearch/mae `mae_vit_large_patch16_dec512d8b`)."""
    return _create(dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16), kwargs)
