"""Fixed 2D sin-cos position embeddings and resampling of position embeddings to a new patch grid.

The sin-cos table follows facebookresearch/mae `util/pos_embed.py` (itself from MoCo v3): the first half of the
channels encodes the column (x) coordinate, the second half the row (y) coordinate, each as [sin | cos] over
frequencies 1 / 10000^(2i/D'); tokens are in row-major order and an optional all-zero row is prepended for the
class token. Resampling follows the same file's `interpolate_pos_embed` (DeiT): prefix tokens are kept, the grid
part is resized with bicubic interpolation (align_corners=False).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _to_grid(grid_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(grid_size, int):
        return grid_size, grid_size
    h, w = grid_size
    return int(h), int(w)


def get_1d_sincos_pos_embed(embed_dim: int, pos: torch.Tensor) -> torch.Tensor:
    """[M] positions -> [M, embed_dim] table, sin in the first half of the channels and cos in the second."""
    if embed_dim % 2:
        raise ValueError(f"sin-cos position embedding needs an even dimension, got {embed_dim}")
    # float64 as the reference's numpy code computes it; the caller casts to float32.
    omega = torch.arange(embed_dim // 2, dtype=torch.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([out.sin(), out.cos()], dim=1)


def get_2d_sincos_pos_embed(
    embed_dim: int, grid_size: int | tuple[int, int], cls_token: bool = False
) -> torch.Tensor:
    """Fixed 2D sin-cos table, [H*W (+1), embed_dim] float32; with `cls_token` the first row is zeros."""
    if embed_dim % 4:
        raise ValueError(f"2D sin-cos position embedding needs a dimension divisible by 4, got {embed_dim}")
    gh, gw = _to_grid(grid_size)
    rows, cols = torch.meshgrid(
        torch.arange(gh, dtype=torch.float32), torch.arange(gw, dtype=torch.float32), indexing="ij"
    )
    # The reference encodes the column coordinate in the first half of the channels ("w goes first").
    emb = torch.cat(
        [get_1d_sincos_pos_embed(embed_dim // 2, cols), get_1d_sincos_pos_embed(embed_dim // 2, rows)], dim=1
    )
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=emb.dtype), emb], dim=0)
    return emb.float()


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: int | tuple[int, int],
    num_prefix_tokens: int = 1,
    old_grid: int | tuple[int, int] | None = None,
) -> torch.Tensor:
    """Resize a [1, N_prefix + H*W, D] position embedding to `new_grid` (bicubic); prefix tokens are kept.

    `old_grid` defaults to the square grid implied by the token count, as the reference assumes.
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"expected a pos_embed of shape [1, N, D], got {list(pos_embed.shape)}")
    num_grid = pos_embed.shape[1] - num_prefix_tokens
    if old_grid is None:
        side = round(num_grid**0.5)
        if side * side != num_grid:
            raise ValueError(
                f"pos_embed has {num_grid} grid tokens after {num_prefix_tokens} prefix tokens, which is not a "
                f"square grid; pass old_grid=(h, w)"
            )
        old_grid = (side, side)
    old_h, old_w = _to_grid(old_grid)
    new_h, new_w = _to_grid(new_grid)
    if old_h * old_w != num_grid:
        raise ValueError(f"old_grid {old_h}x{old_w} does not match the {num_grid} grid tokens of pos_embed")
    if (old_h, old_w) == (new_h, new_w):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = pos_embed.shape[-1]
    grid = grid.reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2)
    orig_dtype = grid.dtype
    # bicubic is not implemented for half types on every device: resize in float32.
    grid = F.interpolate(grid.float(), size=(new_h, new_w), mode="bicubic", align_corners=False)
    grid = grid.to(orig_dtype).permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim)
    return torch.cat([prefix, grid], dim=1)
