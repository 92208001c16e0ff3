"""Video transformers of MAE-DFER and VideoMAE: the finetuning classifier and the masked-autoencoder pretraining model.

References: sunlicai/MAE-DFER `modeling_finetune.py` (VisionTransformer), `modeling_pretrain.py`
(PretrainVisionTransformer), `engine_for_pretraining.py` (targets and loss); MCG-NJU/VideoMAE, same files.
State-dict keys and shapes equal the reference models' (see shared notes), so the released checkpoints load.

- `attn_type='joint'`: plain global space-time ViT (VideoMAE).
- `attn_type='local_global'`: LGI-Former (MAE-DFER), see `lgi_former.py`.
- Pretraining target: per-tubelet normalised pixels (VideoMAE); with `use_frame_diff_target` (MAE-DFER's
  `--use_frame_diff_as_target`) the later frames of every tubelet are replaced by their difference to the first
  one, so the decoder predicts appearance (first frame) and motion (frame difference) jointly.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_

from ._registry import register_model
from .lgi_former import LGIBlock, region_major_order, run_lgi_blocks, validate_region_size
from .video_layers import Block, PatchEmbed, sinusoid_table, tube_mask

__all__ = ["PretrainVideoMAE", "VideoEncoder", "VideoTransformer", "checkpoint_filter_fn", "video_mae_target"]

_LN = partial(nn.LayerNorm, eps=1e-6)
_LG_CLASSIFY_TYPES = ("org", "region", "all")


class VideoEncoder(nn.Module):
    """Tubelet embedding + fixed sinusoid positions + joint or LGI-Former blocks (+ final norm if `final_norm`).

    `encode(x, mask)` returns the local tokens (visible ones only when a mask is given), the region tokens
    (LGI-Former) and the raster index of every returned token, since LGI-Former hands tokens back region by region.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: type[nn.Module] = _LN,
        all_frames: int = 16,
        tubelet_size: int = 2,
        attn_type: str = "joint",
        lg_region_size: Sequence[int] = (2, 5, 10),
        lg_first_attn_type: str = "self",
        lg_third_attn_type: str = "cross",
        fused_attn: bool = True,
        final_norm: bool = True,
    ):
        super().__init__()
        if attn_type not in ("joint", "local_global"):
            raise ValueError(f"attn_type must be 'joint' or 'local_global', got {attn_type!r}")
        self.attn_type = attn_type
        self.num_features = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, all_frames, tubelet_size)
        grid = self.patch_embed.grid_size
        # Fixed table, not a parameter: MAE-DFER checkpoints have no pos_embed key.
        self.register_buffer(
            "pos_embed", sinusoid_table(self.patch_embed.num_patches, embed_dim), persistent=False
        )
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        common = dict(mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate)
        common.update(norm_layer=norm_layer, fused_attn=fused_attn)
        if attn_type == "joint":
            self.blocks = nn.ModuleList(
                Block(embed_dim, num_heads, drop_path=dpr[i], **common) for i in range(depth)
            )
        else:
            self.lg_region_size = validate_region_size(grid, lg_region_size)
            self.blocks = nn.ModuleList(
                LGIBlock(
                    embed_dim,
                    num_heads,
                    drop_path=dpr[i],
                    first_attn_type=lg_first_attn_type,
                    third_attn_type=lg_third_attn_type,
                    **common,
                )
                for i in range(depth)
            )
            order = region_major_order(grid, self.lg_region_size)
            self.num_regions = len(order) // (
                self.lg_region_size[0] * self.lg_region_size[1] * self.lg_region_size[2]
            )
            self.lg_region_tokens = nn.Parameter(torch.zeros(self.num_regions, embed_dim))
            self.register_buffer("lg_order", order, persistent=False)
            self.register_buffer("lg_rank", order.argsort(), persistent=False)
        self.norm = norm_layer(embed_dim) if final_norm else nn.Identity()

    def get_num_layers(self) -> int:
        return len(self.blocks)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "lg_region_tokens"}

    def _visible_index(self, mask: torch.Tensor) -> torch.Tensor:
        """Raster indices of the visible tokens [B, n_vis], region by region for LGI-Former."""
        b, n = mask.shape
        if n != self.patch_embed.num_patches:
            raise ValueError(f"mask has {n} tokens per clip, the model has {self.patch_embed.num_patches}")
        n_masked = mask.sum(1)
        if not torch.compiler.is_compiling() and bool((n_masked != n_masked[0]).any()):
            raise ValueError("every clip of a batch must mask the same number of tokens (use tube_mask)")
        n_vis = n - int(n_masked[0])
        rank = self.lg_rank if self.attn_type == "local_global" else torch.arange(n, device=mask.device)
        key = torch.where(mask, rank + n, rank)  # masked tokens sort last
        index = key.argsort(dim=1)[:, :n_vis]
        if self.attn_type == "local_global" and not torch.compiler.is_compiling():
            per_region = (~mask)[:, self.lg_order].reshape(b, self.num_regions, -1).sum(-1)
            if bool((per_region != per_region[:, :1]).any()):
                raise ValueError(
                    f"LGI-Former needs the same number of visible tokens in every region of size "
                    f"{self.lg_region_size}; got {per_region[0].tolist()} per region. Mask with "
                    f"tube_mask(..., window=lg_region_size[1:]) (MAE-DFER's part_window masking)."
                )
        return index

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """[B, C, T, H, W] (+ mask [B, N], True = hidden) -> (local [B, n, D], region [B, R, D] | None, index)."""
        x = self.patch_embed(x)
        x = self.pos_drop(x + self.pos_embed.to(x.dtype))
        b, n, c = x.shape
        if mask is not None:
            index = self._visible_index(mask)
        elif self.attn_type == "local_global":
            index = self.lg_order.expand(b, n)
        else:
            index = None
        if index is not None:
            x = x.gather(1, index[..., None].expand(-1, -1, c))
        if self.attn_type == "joint":
            for blk in self.blocks:
                x = blk(x)
            index = torch.arange(n, device=x.device).expand(b, n) if index is None else index
            return self.norm(x), None, index
        x = run_lgi_blocks(self.blocks, self.lg_region_tokens, x.reshape(b, self.num_regions, -1, c))
        region, local = self.norm(x[:, :, 0]), self.norm(x[:, :, 1:].reshape(b, -1, c))
        return local, region, index

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, mask)[0]


class VideoTransformer(VideoEncoder):
    """Finetuning classifier: encoder, mean pooling, `fc_norm`, `head` (MAE-DFER / VideoMAE VisionTransformer).

    LGI-Former pools the tokens named by `lg_classify_token_type`: 'region' (the region tokens, MAE-DFER's
    finetuning scripts), 'org' (the local tokens, the reference's class default) or 'all'.
    """

    def __init__(
        self,
        num_classes: int = 7,
        lg_classify_token_type: str = "region",
        head_drop_rate: float = 0.0,
        init_scale: float = 0.001,
        **kwargs,
    ):
        super().__init__(final_norm=False, **kwargs)
        if lg_classify_token_type not in _LG_CLASSIFY_TYPES:
            raise ValueError(
                f"lg_classify_token_type must be one of {_LG_CLASSIFY_TYPES}, got {lg_classify_token_type!r}"
            )
        self.lg_classify_token_type = lg_classify_token_type
        self.num_classes = num_classes
        self.fc_norm = kwargs.get("norm_layer", _LN)(self.embed_dim)
        self.head_drop = nn.Dropout(head_drop_rate)
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_finetune)
        if self.attn_type == "local_global":
            trunc_normal_(self.lg_region_tokens, std=0.02)
        if num_classes > 0:  # small head at start (MAE-DFER --init_scale 0.001)
            self.head.weight.data.mul_(init_scale)
            self.head.bias.data.mul_(init_scale)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        local, region, _ = self.encode(x)
        if region is not None and self.lg_classify_token_type != "org":
            local = region if self.lg_classify_token_type == "region" else torch.cat((region, local), dim=1)
        return self.fc_norm(local.mean(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.forward_features(x)))


class VideoMAEDecoder(nn.Module):
    """Decoder blocks + norm + linear head predicting one tubelet's target per masked token."""

    def __init__(
        self, embed_dim, depth, num_heads, num_outputs, mlp_ratio=4.0, qkv_bias=True, norm_layer=_LN,
        drop_path_rate=0.0, fused_attn=True,
    ):  # fmt: skip
        super().__init__()
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                drop_path=dpr[i],
                norm_layer=norm_layer,
                fused_attn=fused_attn,
            )
            for i in range(depth)
        )
        self.norm = norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, num_outputs)

    def forward(self, x: torch.Tensor, num_masked: int) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x[:, -num_masked:]))


def _patchify(videos: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, N, tubelet*patch*patch, C] in token (t, h, w) order (the reference's rearrange)."""
    b, c, t, h, w = videos.shape
    x = videos.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, tubelet * patch * patch, c)


def _unpatchify(tokens: torch.Tensor, grid: Sequence[int], tubelet: int, patch: int) -> torch.Tensor:
    gt, gh, gw = grid
    b, c = tokens.shape[0], tokens.shape[-1]
    x = tokens.reshape(b, gt, gh, gw, tubelet, patch, patch, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, c, gt * tubelet, gh * patch, gw * patch)


def video_mae_target(
    videos: torch.Tensor,
    tubelet: int,
    patch: int,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
    normalize: bool = True,
    frame_diff: bool = False,
) -> torch.Tensor:
    """Reconstruction target [B, N, tubelet*patch*patch*C] of normalised input clips.

    As MAE-DFER `engine_for_pretraining.py`: undo the input normalisation, normalise every tubelet per channel
    (mean, unbiased std + 1e-6), and with `frame_diff` keep the first frame of each tubelet and replace the
    others by their difference to it (frame_diff_group_size = tubelet = 2 in the published runs).
    Layout per token: (frame, row, col, channel), so the first half is appearance and the second motion.
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=videos.device)[None, :, None, None, None]
    std_t = torch.as_tensor(std, dtype=torch.float32, device=videos.device)[None, :, None, None, None]
    x = _patchify(videos.float() * std_t + mean_t, tubelet, patch)
    if normalize:
        x = (x - x.mean(dim=-2, keepdim=True)) / (x.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    if frame_diff:
        b, n, _, c = x.shape
        x = x.reshape(b, n, tubelet, patch * patch, c)
        x = torch.cat((x[:, :, :1], x[:, :, 1:] - x[:, :, :1]), dim=2)
    return x.reshape(x.shape[0], x.shape[1], -1)


class PretrainVideoMAE(nn.Module):
    """Masked autoencoder: encoder on visible tokens, `encoder_to_decoder`, `mask_token`, decoder, pixel loss.

    `forward(videos, mask)` -> (loss, pred [B, N_masked, P], mask); masks are drawn here when `mask` is None.
    `reference_token_order=True` reproduces MAE-DFER exactly: its LGI-Former encoder hands the visible tokens
    back region by region, but the decoder adds the position embeddings of the visible tokens in raster order.
    Wherever the two orders differ (regions spanning two temporal slices, as the published 2x5x10) tokens get
    another token's decoder position; the released decoder was trained that way. False gives every token its
    own position. Joint attention keeps raster order, so the flag changes nothing there.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        encoder_embed_dim: int = 768,
        encoder_depth: int = 12,
        encoder_num_heads: int = 12,
        decoder_embed_dim: int = 384,
        decoder_depth: int = 4,
        decoder_num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_layer: type[nn.Module] = _LN,
        all_frames: int = 16,
        tubelet_size: int = 2,
        attn_type: str = "joint",
        lg_region_size: Sequence[int] = (2, 5, 10),
        lg_first_attn_type: str = "self",
        lg_third_attn_type: str = "cross",
        fused_attn: bool = True,
        mask_ratio: float = 0.9,
        use_frame_diff_target: bool = False,
        normalize_target: bool = True,
        target_diff_weight: float | None = None,
        reference_token_order: bool = True,
        input_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        input_std: Sequence[float] = IMAGENET_DEFAULT_STD,
    ):
        super().__init__()
        if target_diff_weight is not None and not (
            use_frame_diff_target and 0.0 <= target_diff_weight <= 1.0
        ):
            raise ValueError("target_diff_weight needs use_frame_diff_target=True and a value in [0, 1]")
        self.encoder = VideoEncoder(
            img_size, patch_size, in_chans, encoder_embed_dim, encoder_depth, encoder_num_heads, mlp_ratio,
            qkv_bias, drop_path_rate=drop_path_rate, norm_layer=norm_layer, all_frames=all_frames,
            tubelet_size=tubelet_size, attn_type=attn_type, lg_region_size=lg_region_size,
            lg_first_attn_type=lg_first_attn_type, lg_third_attn_type=lg_third_attn_type, fused_attn=fused_attn,
        )  # fmt: skip
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        self.num_outputs = in_chans * tubelet_size * patch_size**2
        self.decoder = VideoMAEDecoder(
            decoder_embed_dim, decoder_depth, decoder_num_heads, self.num_outputs, mlp_ratio, qkv_bias,
            norm_layer, drop_path_rate, fused_attn,
        )  # fmt: skip
        self.encoder_to_decoder = nn.Linear(encoder_embed_dim, decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        num_patches = self.encoder.patch_embed.num_patches
        self.register_buffer("pos_embed", sinusoid_table(num_patches, decoder_embed_dim), persistent=False)
        self.mask_ratio = mask_ratio
        self.use_frame_diff_target = use_frame_diff_target
        self.normalize_target = normalize_target
        self.target_diff_weight = target_diff_weight
        self.reference_token_order = reference_token_order
        self.input_mean, self.input_std = tuple(input_mean), tuple(input_std)
        self.apply(_init_pretrain)
        # The reference's trunc_normal_ here truncates at +-std.
        trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)
        if attn_type == "local_global":
            trunc_normal_(self.encoder.lg_region_tokens, std=0.02, a=-0.02, b=0.02)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        return self.encoder.patch_embed.grid_size

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "mask_token", "encoder.lg_region_tokens"}

    def make_mask(
        self, batch: int, mask_ratio: float | None = None, device=None, generator=None
    ) -> torch.Tensor:
        """Tube masks fitting the encoder: per region window for LGI-Former, per slice for joint attention."""
        window = self.encoder.lg_region_size[1:] if self.encoder.attn_type == "local_global" else None
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        return tube_mask(batch, self.grid_size, ratio, window, generator=generator, device=device)

    def target(self, videos: torch.Tensor) -> torch.Tensor:
        return video_mae_target(
            videos, self.tubelet_size, self.patch_size, self.input_mean, self.input_std,
            self.normalize_target, self.use_frame_diff_target,
        )  # fmt: skip

    def loss(self, pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pred = pred.float()
        if self.target_diff_weight is None:
            return F.mse_loss(pred, labels)
        b, n, _ = pred.shape
        pred, labels = pred.reshape(b, n, self.tubelet_size, -1), labels.reshape(b, n, self.tubelet_size, -1)
        appearance = F.mse_loss(pred[:, :, 0], labels[:, :, 0])
        motion = F.mse_loss(pred[:, :, 1:], labels[:, :, 1:])
        return appearance * (1 - self.target_diff_weight) + motion * self.target_diff_weight

    def forward_decoder(self, videos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x_vis, _, index = self.encoder.encode(videos, mask)
        x_vis = self.encoder_to_decoder(x_vis)
        b, _, c = x_vis.shape
        pos = self.pos_embed.to(x_vis.dtype).expand(b, -1, -1)
        if self.reference_token_order:
            pos_vis = pos[~mask].reshape(b, -1, c)
        else:
            pos_vis = pos.gather(1, index[..., None].expand(-1, -1, c))
        pos_mask = pos[mask].reshape(b, -1, c)
        x = torch.cat((x_vis + pos_vis, self.mask_token.to(x_vis.dtype) + pos_mask), dim=1)
        return self.decoder(x, pos_mask.shape[1])

    def forward(
        self, videos: torch.Tensor, mask: torch.Tensor | None = None, mask_ratio: float | None = None
    ):
        """videos [B, C, T, H, W] normalised; mask [B, N] bool, True = hidden (drawn here when None)."""
        if mask is None:
            mask = self.make_mask(videos.shape[0], mask_ratio, device=videos.device)
        mask = mask.to(device=videos.device, dtype=torch.bool).flatten(1)
        pred = self.forward_decoder(videos, mask)
        with torch.no_grad():
            target = self.target(videos)
            labels = target[mask].reshape(videos.shape[0], -1, target.shape[-1])
        return self.loss(pred, labels), pred, mask

    @torch.no_grad()
    def reconstruct(self, videos: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Clip in [0, 1] pixels: visible tubelets from the input, masked ones from `pred` (for visualisation).

        Frame differences are added back to the first frame of their tubelet, and normalised predictions are
        rescaled with the statistics of the true tubelet, as VideoMAE's `run_videomae_vis.py` does.
        """
        mean = torch.as_tensor(self.input_mean, device=videos.device)[None, :, None, None, None]
        std = torch.as_tensor(self.input_std, device=videos.device)[None, :, None, None, None]
        pixels = _patchify(videos.float() * std + mean, self.tubelet_size, self.patch_size)
        b, n, p, c = pixels.shape
        tokens = self.target(videos).clone()
        tokens[mask] = pred.float().reshape(-1, tokens.shape[-1])
        tokens = tokens.reshape(b, n, p, c)
        if self.use_frame_diff_target:
            tokens = tokens.reshape(b, n, self.tubelet_size, -1, c)
            tokens = torch.cat((tokens[:, :, :1], tokens[:, :, 1:] + tokens[:, :, :1]), dim=2).reshape(
                b, n, p, c
            )
        if self.normalize_target:
            scale = pixels.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6
            tokens = tokens * scale + pixels.mean(dim=-2, keepdim=True)
        return _unpatchify(tokens, self.grid_size, self.tubelet_size, self.patch_size).clamp(0, 1)


def _init_finetune(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _init_pretrain(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """MAE-DFER / VideoMAE checkpoints (pretraining or finetuned, ours or released) -> `model`'s keys.

    Into a classifier: the pretraining encoder (`encoder.` or `backbone.` prefix) is kept and the decoder,
    `mask_token`, `encoder_to_decoder` and the encoder's final norm (the classifier pools into `fc_norm`
    instead) are dropped, as MAE-DFER's `run_class_finetuning.py` does; a head with another class count is
    dropped. `module.` prefixes (DDP) are removed. A stored `pos_embed` is dropped: the table is fixed.
    """
    out = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if isinstance(model, PretrainVideoMAE):
        return {k: v for k, v in out.items() if k not in ("pos_embed", "encoder.pos_embed")}
    if any(k.startswith(("encoder.", "backbone.")) for k in out):
        out = {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith(("encoder.", "backbone."))}
    own = model.state_dict()
    drop = {"pos_embed"}
    drop.update(k for k in out if k.startswith("norm.") and k not in own)
    drop.update(
        k for k in ("head.weight", "head.bias") if k in out and (k not in own or own[k].shape != out[k].shape)
    )
    return {k: v for k, v in out.items() if k not in drop}


def _video_transformer(defaults: dict, kwargs: dict) -> VideoTransformer:
    kwargs.pop("pretrained", None)
    return VideoTransformer(**{**defaults, **kwargs})


def _pretrain(defaults: dict, kwargs: dict) -> PretrainVideoMAE:
    kwargs.pop("pretrained", None)
    # The finetuning size overrides (embed_dim, depth, num_heads) name the encoder here, so one set of demo
    # overrides builds both models of a pretrain -> finetune run.
    for short in ("embed_dim", "depth", "num_heads"):
        if short in kwargs:
            if f"encoder_{short}" in kwargs:
                raise ValueError(f"give either {short} or encoder_{short}, not both")
            kwargs[f"encoder_{short}"] = kwargs.pop(short)
    return PretrainVideoMAE(**{**defaults, **kwargs})


_DIM512 = dict(img_size=160, patch_size=16, embed_dim=512, num_heads=8, mlp_ratio=4.0, qkv_bias=True)
_LGI = dict(attn_type="local_global", lg_region_size=(2, 5, 10))


@register_model
def vit_base_dim512_no_depth_patch16_160(**kwargs) -> VideoTransformer:
    """MAE-DFER finetuning model: LGI-Former, dim 512, depth 16, 8 heads, region 2x5x10, 16x160x160 input."""
    return _video_transformer(dict(_DIM512, depth=16, lg_classify_token_type="region", **_LGI), kwargs)


@register_model
def pretrain_videomae_base_dim512_no_depth_patch16_160(**kwargs) -> PretrainVideoMAE:
    """MAE-DFER pretraining model: LGI-Former encoder (depth 16), 4-block 384-d decoder, appearance+motion target."""
    enc = {f"encoder_{k}": _DIM512[k] for k in ("embed_dim", "num_heads")}
    defaults = dict(img_size=160, patch_size=16, encoder_depth=16, decoder_embed_dim=384, decoder_depth=4)
    defaults.update(enc, decoder_num_heads=6, use_frame_diff_target=True, **_LGI)
    return _pretrain(defaults, kwargs)


@register_model
def vit_base_patch16_160(**kwargs) -> VideoTransformer:
    """VideoMAE ViT-B baseline: global space-time attention, dim 768, depth 12, 12 heads, 16x160x160 input."""
    defaults = dict(img_size=160, patch_size=16, embed_dim=768, depth=12, num_heads=12, attn_type="joint")
    return _video_transformer(defaults, kwargs)


@register_model
def pretrain_videomae_base_patch16_160(**kwargs) -> PretrainVideoMAE:
    """VideoMAE ViT-B pretraining (pixel target only), 4-block 384-d decoder, 16x160x160 input."""
    defaults = dict(
        img_size=160, patch_size=16, encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12
    )
    defaults.update(decoder_embed_dim=384, decoder_depth=4, decoder_num_heads=6, attn_type="joint")
    return _pretrain(defaults, kwargs)
