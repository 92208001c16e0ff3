"""APViT: ViT with attentive pooling on IR-50 features (Xue et al., TAC 2022; youqingxiaozhua/APViT).

Mirrors what `configs/apvit/RAF.py` builds in the reference mmcls code (`PoolingVitClassifier` with an `IRSE`
extractor, `PoolingViT` from `mmcls/models/vit/vit_siam_merge.py`, `PoolingBlock` from
`mmcls/models/backbones/modules/vit_pooling.py` and a `LinearClsHead`), with the same state-dict keys
(`extractor.*`, `vit.*`, `head.fc.*`), so released mmcls checkpoints load as they are.

The two attentive pooling steps have no parameters:
- APP (attentive patch pooling): the 1x1-projected stage-3 feature map is scored per position by the L1 norm over
  channels ('SUM_ABS_1'); the top `keep_num` patch tokens (160 of 196 at 112 px) are kept in their original order.
- ATP (attentive token pooling): in blocks with keep_rate < 1 (the last four of eight, 0.9 each), patch tokens are
  ranked by the pre-softmax attention logits of the cls query, summed over heads ('SUM'); int(N * keep_rate)
  are kept after the attention residual, before the MLP.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_

from ._registry import register_model
from .irse import IRSE, remap_evolve_keys

log = logging.getLogger(__name__)

# RAF-DB config: 160 of the 196 stage-3 patches survive APP; other grids keep the same fraction.
_APP_KEEP_FRACTION = 160 / 196


def _gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def attentive_patch_pooling(tokens: torch.Tensor, scores: torch.Tensor, keep_num: int) -> torch.Tensor:
    """Keep the `keep_num` tokens [B, N, C] with the highest scores [B, N], in their original order."""
    if keep_num >= tokens.shape[1]:
        return tokens
    index = scores.topk(keep_num, dim=1).indices.sort(dim=1).values
    return _gather_tokens(tokens, index)


def attentive_token_pooling(x: torch.Tensor, cls_scores: torch.Tensor, keep_rate: float) -> torch.Tensor:
    """Keep the cls token and the top int(N * keep_rate) of the N patch tokens by their cls score.

    x: [B, 1 + N, C]; cls_scores: [B, 1 + N] (the cls token's own score is ignored). The count follows the
    reference `top_pool` (max(int(N * keep_rate), 1), no pooling when that keeps everything).
    """
    num_patches = x.shape[1] - 1
    keep = max(int(num_patches * keep_rate), 1)
    if keep >= num_patches:
        return x
    index = cls_scores[:, 1:].topk(keep, dim=1).indices.sort(dim=1).values + 1
    index = torch.cat([index.new_zeros(index.shape[0], 1), index], dim=1)
    return _gather_tokens(x, index)


class Attention(nn.Module):
    """Multi-head self-attention through SDPA; optionally also the cls query's logits for ATP."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, cls_scores: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        scores = None
        if cls_scores:
            # only the cls row is needed: [B, heads, 1, N] -> summed over heads, before the softmax
            scores = ((q[:, :, :1] * self.scale) @ k.transpose(-2, -1)).sum(dim=1).squeeze(1)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, N, C)))
        return x, scores


class PoolingBlock(nn.Module):
    """Pre-norm transformer block with ATP between the attention and the MLP residuals."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        keep_rate: float = 1.0,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        self.keep_rate = keep_rate
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.keep_rate < 1.0
        y, scores = self.attn(self.norm1(x), cls_scores=pool)
        x = x + self.drop_path(y)
        if pool:
            x = attentive_token_pooling(x, scores, self.keep_rate)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PoolingViT(nn.Module):
    """ViT over a CNN feature map: 1x1 projection, APP, cls token, pooling blocks, final norm -> cls feature."""

    def __init__(
        self,
        in_chans: int = 256,
        num_patches: int = 196,
        embed_dim: int = 768,
        depth: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 3.0,
        qkv_bias: bool = False,
        keep_num: int = 160,
        keep_rates: Sequence[float] | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        keep_rates = list(keep_rates) if keep_rates is not None else [1.0] * depth
        if len(keep_rates) != depth:
            raise ValueError(f"keep_rates has {len(keep_rates)} entries for {depth} blocks")
        self.num_patches = num_patches
        self.keep_num = keep_num
        self.num_features = self.embed_dim = embed_dim
        self.projs = nn.ModuleList([nn.Conv2d(in_chans, embed_dim, 1)])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.patch_pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim))
        self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear stochastic depth rule
        self.blocks = nn.ModuleList(
            PoolingBlock(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                keep_rates[i],
                drop_rate,
                attn_drop_rate,
                dpr[i],
                norm_eps,
            )
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        # reference init: truncated-normal cls token / patch positions, cls position zero, default 1x1 conv
        trunc_normal_(self.patch_pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        self.blocks.apply(_init_vit_weights)
        self.norm.apply(_init_vit_weights)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        x = self.projs[0](feature_map)
        B, _, H, W = x.shape
        if self.num_patches != H * W:
            raise ValueError(
                f"PoolingViT got a {H}x{W} feature map but was built for {self.num_patches} patches; "
                f"build the model with the img_size of the input"
            )
        scores = x.abs().sum(dim=1).flatten(1)  # APP score per patch ('SUM_ABS_1')
        x = x.flatten(2).transpose(1, 2) + self.patch_pos_embed
        x = attentive_patch_pooling(x, scores, self.keep_num)
        cls = (self.cls_token + self.cls_pos_embed).expand(B, -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def _init_vit_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class LinearHead(nn.Module):
    """mmcls `LinearClsHead`: one linear layer under `head.fc`, zero-initialised as the reference does."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class APViT(nn.Module):
    """IR trunk (stages 1-3) -> PoolingViT -> linear head; forward(x) -> logits."""

    def __init__(
        self,
        num_classes: int = 7,
        img_size: int = 112,
        stage_units: Sequence[int] = (3, 4, 14),
        stage_channels: Sequence[int] = (64, 128, 256),
        stem_channels: int = 64,
        use_se: bool = False,
        embed_dim: int = 768,
        depth: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 3.0,
        qkv_bias: bool = False,
        keep_num: int | None = None,
        keep_rates: Sequence[float] | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.extractor = IRSE(stage_units, stage_channels, stem_channels, use_se=use_se)
        if img_size % self.extractor.reduction:
            raise ValueError(f"img_size {img_size} must be a multiple of {self.extractor.reduction}")
        num_patches = (img_size // self.extractor.reduction) ** 2
        if keep_num is None:
            keep_num = round(num_patches * _APP_KEEP_FRACTION)
        if keep_rates is None:  # RAF-DB config: no ATP in the first half, 0.9 in each block of the second
            keep_rates = [1.0] * (depth // 2) + [0.9] * (depth - depth // 2)
        self.num_classes = num_classes
        self.img_size = img_size
        self.vit = PoolingViT(
            stage_channels[-1],
            num_patches,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            qkv_bias,
            keep_num,
            keep_rates,
            drop_rate,
            attn_drop_rate,
            drop_path_rate,
        )
        self.head = LinearHead(embed_dim, num_classes)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        # the RAF-DB config sets decay_mult=0 for these
        return {"vit.cls_token", "vit.patch_pos_embed", "vit.cls_pos_embed"}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(self.extractor(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model
def apvit_raf(num_classes: int = 7, img_size: int = 112, **kwargs) -> APViT:
    """APViT as configs/apvit/RAF.py: IR-50 stages 1-3 + 8-block PoolingViT (dim 768, 8 heads); 65.21 M params."""
    return APViT(num_classes=num_classes, img_size=img_size, **kwargs)


@register_model
def apvit_tiny(num_classes: int = 7, img_size: int = 64, **kwargs) -> APViT:
    """A small APViT for demos and tests: one-two IR units per stage, 2 blocks of dim 96."""
    args = dict(
        stage_units=(1, 1, 2),
        stage_channels=(16, 32, 64),
        stem_channels=16,
        embed_dim=96,
        depth=2,
        num_heads=4,
    )
    return APViT(num_classes=num_classes, img_size=img_size, **dict(args, **kwargs))


def _resize_patch_pos_embed(pos: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Bilinear resize of a square [1, N, C] grid, as the reference `resize_pos_embed_v2` does."""
    old, new = math.isqrt(pos.shape[1]), math.isqrt(num_patches)
    if old * old != pos.shape[1] or new * new != num_patches:
        raise ValueError(f"cannot resize position embeddings of {pos.shape[1]} patches to {num_patches}")
    grid = pos.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(new, new), mode="bilinear")
    return grid.permute(0, 2, 3, 1).reshape(1, new * new, -1).to(pos.dtype)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: APViT) -> dict[str, torch.Tensor]:
    """Map the files APViT uses onto this model's keys.

    - mmcls APViT checkpoints ({'state_dict': ...}, unwrapped by the loader): keys are already
      `extractor.*` / `vit.*` / `head.fc.*` (the classifier's attribute names; no `backbone.` prefix).
    - face.evoLVe IR-50 backbones (`input_layer.*`, flat `body.N.*`): nested into `extractor.body.S.U.*`.
    - timm ViT checkpoints (vit_small_p16_224: `pos_embed`, `blocks.*`, ...): into `vit.*`, splitting
      `pos_embed` into `cls_pos_embed` + `patch_pos_embed` and dropping the patch embedding and head.
    The patch position grid is resized to the model's, and a classifier head of another size is dropped.
    """
    if "input_layer.0.weight" in state_dict:
        out = {
            f"extractor.{k}": v for k, v in remap_evolve_keys(state_dict, model.extractor.stage_units).items()
        }
    elif "pos_embed" in state_dict and "blocks.0.attn.qkv.weight" in state_dict:
        pos = state_dict["pos_embed"]
        out = {"vit.cls_pos_embed": pos[:, :1], "vit.patch_pos_embed": pos[:, 1:]}
        for k, v in state_dict.items():
            if k.startswith(("blocks.", "norm.")) or k == "cls_token":
                out[f"vit.{k}"] = v
    else:
        out = dict(state_dict)

    own = model.state_dict()
    pos = out.get("vit.patch_pos_embed")
    if pos is not None and pos.shape[1] != own["vit.patch_pos_embed"].shape[1]:
        log.info("resizing vit.patch_pos_embed from %d to %d patches", pos.shape[1], model.vit.num_patches)
        out["vit.patch_pos_embed"] = _resize_patch_pos_embed(pos, model.vit.num_patches)
    for key in ("head.fc.weight", "head.fc.bias"):
        if key in out and out[key].shape != own[key].shape:
            log.info(
                "dropping %s %s: the model has %d classes", key, tuple(out[key].shape), model.num_classes
            )
            del out[key]
    return out
