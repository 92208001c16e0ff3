"""Building blocks of the video transformers (VideoMAE and MAE-DFER).

Formats follow MCG-NJU/VideoMAE and sunlicai/MAE-DFER `modeling_finetune.py` / `masking_generator.py`: a Conv3d
tubelet embedding, a fixed sinusoid position table kept outside the state dict, attention whose projection has no
bias but separate `q_bias` / `v_bias` parameters (the key bias is zero), and tube masks shared by all frame pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp

__all__ = [
    "Attention",
    "Block",
    "CrossAttention",
    "PatchEmbed",
    "TubeMaskingGenerator",
    "sinusoid_table",
    "tube_mask",
]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class PatchEmbed(nn.Module):
    """Video to tubelet tokens: [B, C, T, H, W] -> [B, N, D] with N = T/tubelet * H/patch * W/patch.

    Tokens are ordered time-major then row-major (t, h, w), the order every index in this package refers to.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        num_frames: int = 16,
        tubelet_size: int = 2,
    ):
        super().__init__()
        img_size = _pair(img_size)
        if img_size[0] % patch_size or img_size[1] % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"input {num_frames}x{img_size[0]}x{img_size[1]} is not divisible into tubelets of "
                f"{tubelet_size}x{patch_size}x{patch_size}; choose img_size a multiple of {patch_size} and "
                f"all_frames a multiple of {tubelet_size}"
            )
        self.img_size = img_size
        self.num_frames = num_frames
        self.patch_size = (patch_size, patch_size)
        self.tubelet_size = tubelet_size
        self.grid_size = (num_frames // tubelet_size, img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_patches = math.prod(self.grid_size)
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, t, h, w = x.shape
        if (t, h, w) != (self.num_frames, *self.img_size):
            raise ValueError(
                f"input clip is {t}x{h}x{w} (frames x height x width) but the model was built for "
                f"{self.num_frames}x{self.img_size[0]}x{self.img_size[1]}; build it with matching "
                f"all_frames / img_size or resize the clip"
            )
        return self.proj(x).flatten(2).transpose(1, 2)


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """The fixed 1-D sinusoid table of VideoMAE / MAE-DFER, [1, n_position, dim] float32.

    Angles are computed in float64 as the reference does with numpy, so the float32 values are identical; sin in
    even channels, cos in odd ones (interleaved, unlike MAE's concatenated 2-D sin-cos).
    """
    position = torch.arange(n_position, dtype=torch.float64)[:, None]
    exponent = 2 * torch.div(torch.arange(dim), 2, rounding_mode="floor").to(torch.float64) / dim
    angles = position / torch.pow(torch.tensor(10000.0, dtype=torch.float64), exponent)
    table = torch.empty(n_position, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.to(torch.float32)[None]


class _AttentionBase(nn.Module):
    """Shared head split / attention math; `fused_attn=False` is the explicit softmax of the seeds."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float, fused_attn
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused_attn = fused_attn
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.fused_attn:
            p = self.attn_drop.p if self.training else 0.0
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            x = self.attn_drop(attn.softmax(dim=-1)) @ v
        x = x.transpose(1, 2).flatten(2)
        return self.proj_drop(self.proj(x))


class Attention(_AttentionBase):
    """Self-attention with one `qkv` projection (VideoMAE keys: qkv.weight, q_bias, v_bias, proj)."""

    def __init__(self, dim, num_heads=8, qkv_bias=False, attn_drop=0.0, proj_drop=0.0, fused_attn=True):
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop, fused_attn)
        self.qkv = nn.Linear(dim, dim * 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        q, k, v = F.linear(x, self.qkv.weight, bias).chunk(3, dim=-1)
        return self._attend(self._heads(q), self._heads(k), self._heads(v))


class CrossAttention(_AttentionBase):
    """Queries from `x`, keys/values from `context` (or `x`): MAE-DFER's `GeneralAttention` (keys q, kv)."""

    def __init__(self, dim, num_heads=8, qkv_bias=False, attn_drop=0.0, proj_drop=0.0, fused_attn=True):
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop, fused_attn)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, dim * 2, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        kv_bias = None
        if self.v_bias is not None:
            kv_bias = torch.cat((torch.zeros_like(self.v_bias), self.v_bias))
        q = F.linear(x, self.q.weight, self.q_bias)
        k, v = F.linear(x if context is None else context, self.kv.weight, kv_bias).chunk(2, dim=-1)
        return self._attend(self._heads(q), self._heads(k), self._heads(v))


class Block(nn.Module):
    """Pre-norm transformer block (global space-time attention in VideoMAE, the decoder of both MAEs)."""

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
        fused_attn: bool = True,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop, fused_attn)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        # The seeds' Mlp drops only after fc2, hence (0, drop).
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=(0.0, drop))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def tube_mask(
    batch: int,
    grid_size: Sequence[int],
    mask_ratio: float = 0.9,
    window: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Tube masks [batch, T*H*W] bool (True = masked), the same spatial mask in every temporal slice.

    `window=None` is VideoMAE's tube masking: int(mask_ratio * H*W) patches masked per slice. With
    `window=(h, w)` every h x w spatial window gets int(mask_ratio * h*w) masked patches: MAE-DFER's
    `part_window` masking, which LGI-Former pretraining needs because each local region must keep the same
    number of visible tokens.
    """
    t, h, w = grid_size
    wh, ww = (h, w) if window is None else window
    if h % wh or w % ww:
        raise ValueError(f"mask window {wh}x{ww} does not divide the {h}x{w} token grid")
    cells = wh * ww
    n_masked = int(mask_ratio * cells)
    n_windows = (h // wh) * (w // ww)
    noise = torch.rand(batch, n_windows, cells, generator=generator, device=device)
    rank = noise.argsort(dim=-1).argsort(dim=-1)
    masked = rank < n_masked  # [B, windows, cells]
    # windows (nh, nw) x cells (wh, ww) -> raster (nh, wh, nw, ww)
    masked = masked.reshape(batch, h // wh, w // ww, wh, ww).permute(0, 1, 3, 2, 4).reshape(batch, 1, h * w)
    return masked.expand(batch, t, h * w).reshape(batch, t * h * w)


class TubeMaskingGenerator:
    """Per-sample mask for data loaders: `gen() -> BoolTensor[N]` (MAE-DFER `masking_generator.py`).

    `grid_size` is the token grid (T/tubelet, H/patch, W/patch); pass `window=lg_region_size[1:]` for
    LGI-Former pretraining (MAE-DFER `--mask_type part_window --part_win_size 2 5 10`).
    """

    def __init__(
        self, grid_size: Sequence[int], mask_ratio: float = 0.9, window: Sequence[int] | None = None
    ):
        self.grid_size = tuple(grid_size)
        self.mask_ratio = mask_ratio
        self.window = None if window is None else tuple(window)
        tube_mask(1, self.grid_size, mask_ratio, self.window)  # validate once, here

    def __call__(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return tube_mask(1, self.grid_size, self.mask_ratio, self.window, generator=generator)[0]

    def __repr__(self) -> str:
        return f"TubeMaskingGenerator(grid={self.grid_size}, ratio={self.mask_ratio}, window={self.window})"
