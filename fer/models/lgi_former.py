"""LGI-Former: MAE-DFER's local-global interaction block (sunlicai/MAE-DFER `modeling_finetune.py`, `LGBlock`).

The token grid is cut into spatio-temporal regions (2x5x10 tokens for a 16x160x160 clip: 8 regions of the 8x10x10
grid). Each region gets one learnable representative token (`lg_region_tokens`). Every block runs three attention
stages with the reference's key names:
  first_attn   local: self-attention inside each region over [region token, its local tokens];
  second_attn  global: self-attention among the region tokens of a clip;
  third_attn   interaction: every local token attends to all region tokens (cross-attention);
then one MLP on all tokens. Global space-time attention is never computed, hence the lower cost than ViT.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from timm.layers import DropPath, Mlp

from .video_layers import CrossAttention

__all__ = ["LGIBlock", "region_major_order", "run_lgi_blocks", "validate_region_size"]


def validate_region_size(grid_size: Sequence[int], region_size: Sequence[int]) -> tuple[int, int, int]:
    """Check that `region_size` (t, h, w in tokens) tiles the token grid; return it as a tuple."""
    region_size = tuple(int(r) for r in region_size)
    grid_size = tuple(grid_size)
    if len(region_size) != 3 or any(r <= 0 for r in region_size):
        raise ValueError(f"lg_region_size must be three positive ints (t, h, w), got {region_size}")
    if any(g % r for g, r in zip(grid_size, region_size)):
        hints = [[d for d in range(1, g + 1) if g % d == 0] for g in grid_size]
        raise ValueError(
            f"lg_region_size {region_size} does not divide the token grid {grid_size} (frames/tubelet, H/patch, "
            f"W/patch); choose each entry among the divisors t in {hints[0]}, h in {hints[1]}, w in {hints[2]}"
        )
    return region_size


def region_major_order(grid_size: Sequence[int], region_size: Sequence[int]) -> torch.Tensor:
    """Raster token indices listed region by region ([N] long).

    Regions are ordered (nt, nh, nw) and tokens inside a region (t, h, w), the layout of the reference's
    `rearrange(x, 'b (nt t nh h nw w) c -> b (nt nh nw) (t h w) c')`.
    """
    t, h, w = validate_region_size(grid_size, region_size)
    gt, gh, gw = grid_size
    index = torch.arange(gt * gh * gw).reshape(gt // t, t, gh // h, h, gw // w, w)
    return index.permute(0, 2, 4, 1, 3, 5).reshape(-1)


class LGIBlock(nn.Module):
    """One LGI-Former block on region-grouped tokens [B*R, 1 + S, C] (token 0 of each row is the region token).

    `first_attn_type` / `third_attn_type` are the reference's variants: 'self' attends over region token and
    local tokens together, 'cross' lets one side query the other (adds `*_attn_norm1` for the context).
    MAE-DFER uses first='self', third='cross'.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        first_attn_type: str = "self",
        third_attn_type: str = "cross",
        fused_attn: bool = True,
    ):
        super().__init__()
        for name, value in (("lg_first_attn_type", first_attn_type), ("lg_third_attn_type", third_attn_type)):
            if value not in ("self", "cross"):
                raise ValueError(f"{name} must be 'self' or 'cross', got {value!r}")
        self.first_attn_type = first_attn_type
        self.third_attn_type = third_attn_type

        def attention() -> CrossAttention:
            return CrossAttention(dim, num_heads, qkv_bias, attn_drop, drop, fused_attn)

        self.first_attn_norm0 = norm_layer(dim)
        if first_attn_type == "cross":
            self.first_attn_norm1 = norm_layer(dim)
        self.first_attn = attention()
        self.second_attn_norm0 = norm_layer(dim)
        self.second_attn = attention()
        self.third_attn_norm0 = norm_layer(dim)
        if third_attn_type == "cross":
            self.third_attn_norm1 = norm_layer(dim)
        self.third_attn = attention()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=(0.0, drop))

    def forward(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        bn, s, c = x.shape
        n = bn // batch  # regions per clip
        # 1. local: inside each region
        if self.first_attn_type == "self":
            x = x + self.drop_path(self.first_attn(self.first_attn_norm0(x)))
        else:
            region = x[:, :1] + self.drop_path(
                self.first_attn(self.first_attn_norm0(x[:, :1]), self.first_attn_norm1(x[:, 1:]))
            )
            x = torch.cat((region, x[:, 1:]), dim=1)
        # 2. global: among the region tokens of one clip (drop path per clip, as the reference)
        region = x[:, 0].reshape(batch, n, c)
        region = region + self.drop_path(self.second_attn(self.second_attn_norm0(region)))
        # 3. local-global interaction
        if self.third_attn_type == "cross":
            local = x[:, 1:].reshape(batch, n * (s - 1), c)
            local = local + self.drop_path(
                self.third_attn(self.third_attn_norm0(local), self.third_attn_norm1(region))
            )
            x = torch.cat((region.reshape(bn, 1, c), local.reshape(bn, s - 1, c)), dim=1)
        else:
            x = torch.cat((region.reshape(bn, 1, c), x[:, 1:]), dim=1)
            x = x + self.drop_path(self.third_attn(self.third_attn_norm0(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def run_lgi_blocks(blocks: nn.ModuleList, region_tokens: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Prepend one region token per region and run the blocks: [B, R, S, C] -> [B, R, 1 + S, C]."""
    b, r, s, c = x.shape
    tokens = region_tokens.to(x.dtype)[None, :, None, :].expand(b, r, 1, c)
    x = torch.cat((tokens, x), dim=2).reshape(b * r, 1 + s, c)
    for blk in blocks:
        x = blk(x, b)
    return x.reshape(b, r, 1 + s, c)
