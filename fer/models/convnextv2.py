"""ConvNeXt V2 finetuning models (timm) and FCMAE pretraining (dense masked), as MAE-SFER uses them.

The finetune networks are timm's `convnextv2_*` (same computation as facebookresearch/ConvNeXt-V2
`models/convnextv2.py`; timm's `checkpoint_filter_fn` maps the official keys). FCMAE follows
facebookresearch/ConvNeXt-V2 `models/fcmae.py`, whose encoder is a MinkowskiEngine sparse ConvNeXt V2
(`models/convnextv2_sparse.py`). MinkowskiEngine cannot be installed here, so the encoder runs densely with the
masked positions zeroed after the stem, after each downsampling and after each block, and GRN statistics taken
over the visible positions only. A sparse convolution computes an active site from active neighbours only; with
the 32 px mask aligned to the coarsest stage every stride-2 window is wholly visible or wholly masked, so the
visible outputs equal the sparse ones.
"""

from __future__ import annotations

import logging
import math

import timm
import torch
import torch.nn as nn
from timm.layers import GlobalResponseNormMlp, trunc_normal_
from timm.models import convnext as timm_convnext

from ._loading import CheckpointMismatchError
from ._registry import register_model

log = logging.getLogger(__name__)

_DECODER_PARTS = ("proj.", "pred.", "decoder.", "mask_token")


def _create_convnextv2(variant: str, num_classes: int, drop_path_rate: float, img_size: int | None, **kwargs):
    # ConvNeXt is fully convolutional: img_size is accepted for a uniform factory interface, only checked.
    # The reference main_finetune.py builds with head_init_scale=0.001 (its default), i.e. a std 2e-5 head,
    # the same init it re-applies to the head after loading a pretrained encoder.
    kwargs.setdefault("head_init_scale", 0.001)
    if img_size is not None and img_size % 32:
        raise ValueError(
            f"{variant}: img_size {img_size} must be a multiple of 32 (the network's total stride)"
        )
    return timm.create_model(
        variant, pretrained=False, num_classes=num_classes, drop_path_rate=drop_path_rate, **kwargs
    )


@register_model
def convnextv2_base(num_classes: int = 7, drop_path_rate: float = 0.0, img_size: int | None = None, **kwargs):
    """ConvNeXt V2-Base (depths 3-3-27-3, dims 128-1024), MAE-SFER's convolutional finetune model."""
    return _create_convnextv2("convnextv2_base", num_classes, drop_path_rate, img_size, **kwargs)


@register_model
def convnextv2_atto(num_classes: int = 7, drop_path_rate: float = 0.0, img_size: int | None = None, **kwargs):
    """ConvNeXt V2-Atto (depths 2-2-6-2, dims 40-320), for demos; depths / dims may be overridden."""
    return _create_convnextv2("convnextv2_atto", num_classes, drop_path_rate, img_size, **kwargs)


def _keep_at(keep: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The [N, 1, h, w] keep mask (1 = visible) repeated to x's resolution (nearest, as `upsample_mask`)."""
    scale = x.shape[-1] // keep.shape[-1]
    return keep.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3).to(x.dtype)


def _masked_grn(grn: nn.Module, x: torch.Tensor, keep: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """GRN whose L2 statistic spans the visible positions of the whole batch.

    MinkowskiGRN takes torch.norm over all points of the sparse tensor (every sample of the batch together);
    the masked positions are zero here so they do not contribute.
    """
    x = x * keep
    dims = (0, 1, 2) if channels_last else (0, 2, 3)
    # the sum runs over many positions: at least float32 under autocast; vector_norm (not pow-sum-sqrt) because
    # its gradient at an all-zero channel is 0, where sqrt's is NaN
    gx = torch.linalg.vector_norm(x.to(torch.promote_types(x.dtype, torch.float32)), dim=dims, keepdim=True)
    nx = (gx / (gx.mean(dim=-1 if channels_last else 1, keepdim=True) + grn.eps)).to(x.dtype)
    shape = grn.wb_shape
    return x + torch.addcmul(grn.bias.view(shape), grn.weight.view(shape), x * nx)


def _masked_block(block: nn.Module, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """timm ConvNeXtBlock.forward with the sparse reference's masking (input must be zero where masked)."""
    shortcut = x
    x = block.conv_dw(x)
    mlp = block.mlp
    if block.use_conv_mlp:
        x = mlp.drop1(mlp.act(mlp.fc1(block.norm(x))))
        x = mlp.drop2(mlp.fc2(_masked_grn(mlp.grn, x, keep, channels_last=False)))
    else:
        x = mlp.drop1(mlp.act(mlp.fc1(block.norm(x.permute(0, 2, 3, 1)))))
        x = _masked_grn(mlp.grn, x, keep.permute(0, 2, 3, 1), channels_last=True)
        x = mlp.drop2(mlp.fc2(x)).permute(0, 3, 1, 2)
    if block.gamma is not None:
        x = x.mul(block.gamma.reshape(1, -1, 1, 1))
    return (block.drop_path(x) + block.shortcut(shortcut)) * keep


class FCMAE(nn.Module):
    """Fully convolutional masked autoencoder: masked ConvNeXt V2 encoder, 1x1 proj, mask tokens,
    ConvNeXt V2 decoder blocks, 1x1 pixel prediction; loss on the masked 32 px patches.

    forward(imgs, mask_ratio=0.6) -> (loss, pred [N, L, p*p*3], mask [N, L] with 1 = masked), like the image MAE
    (the reference returns pred as [N, p*p*3, h, w]; the values are the same).
    """

    def __init__(
        self,
        encoder: nn.Module,
        img_size: int = 224,
        patch_size: int = 32,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 1,
        mask_ratio: float = 0.6,
        norm_pix_loss: bool = True,
        in_chans: int = 3,
    ):
        super().__init__()
        reduction = encoder.feature_info[-1]["reduction"]
        if patch_size != reduction:
            raise ValueError(f"patch_size {patch_size} must equal the encoder's total stride {reduction}")
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        blocks = [b for s in encoder.stages for b in s.blocks]
        if not all(isinstance(b.mlp, GlobalResponseNormMlp) for b in blocks) or not isinstance(
            encoder.norm_pre, nn.Identity
        ):
            raise ValueError("FCMAE needs a timm ConvNeXt V2 encoder (GRN MLPs, no pre-head norm)")
        encoder.head = nn.Identity()  # FCMAE has no classifier; unused parameters would upset DDP
        self.encoder = encoder
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.proj = nn.Conv2d(encoder.num_features, decoder_embed_dim, 1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_embed_dim, 1, 1))
        self.decoder = nn.Sequential(
            *[
                timm_convnext.ConvNeXtBlock(decoder_embed_dim, use_grn=True, ls_init_value=None)
                for _ in range(decoder_depth)
            ]
        )
        self.pred = nn.Conv2d(decoder_embed_dim, patch_size**2 * in_chans, 1)
        self._init_like_reference()

    def _init_like_reference(self) -> None:
        """Initialise as the reference FCMAE._init_weights ends up doing, role by role.

        Its `trunc_normal_` calls without std (timm default std=1) hit the dense convs (stem, proj, pred,
        decoder depthwise) and the sparse depthwise / pointwise layers; the sparse downsampling convs get
        std .02; the decoder's nn.Linear layers keep PyTorch's default init; norms 1/0 and GRN 0/0.
        """
        enc = self.encoder

        def trunc(layer: nn.Module, std: float) -> None:
            trunc_normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)

        trunc(enc.stem[0], 1.0)
        for stage in enc.stages:
            if not isinstance(stage.downsample, nn.Identity):
                trunc(stage.downsample[1], 0.02)
            for block in stage.blocks:
                trunc(block.conv_dw, 1.0)
                trunc(block.mlp.fc1, 1.0)
                trunc(block.mlp.fc2, 1.0)
        for block in self.decoder:
            trunc(block.conv_dw, 1.0)
            for fc in (block.mlp.fc1, block.mlp.fc2):
                fc.reset_parameters()
        trunc(self.proj, 1.0)
        trunc(self.pred, 1.0)
        nn.init.normal_(self.mask_token, std=0.02)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, L, p*p*C], patch pixels in (row, col, channel) order as the reference."""
        p = self.patch_size
        n, c, h, w = imgs.shape
        x = imgs.reshape(n, c, h // p, p, w // p, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        p, c = self.patch_size, self.in_chans
        h = math.isqrt(x.shape[1])
        x = x.reshape(x.shape[0], h, h, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, h * p)

    def random_mask(self, imgs: torch.Tensor, mask_ratio: float) -> torch.Tensor:
        """[N, L] with exactly L - int(L * (1 - mask_ratio)) ones (masked) per sample, uniformly placed."""
        n, L = imgs.shape[0], (imgs.shape[2] // self.patch_size) * (imgs.shape[3] // self.patch_size)
        len_keep = int(L * (1 - mask_ratio))
        ids_restore = torch.argsort(torch.argsort(torch.randn(n, L, device=imgs.device), dim=1), dim=1)
        mask = torch.ones(n, L, device=imgs.device)
        mask[:, :len_keep] = 0
        return torch.gather(mask, 1, ids_restore)

    def forward_encoder(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encoder features [N, C, h, w], zero at masked positions (what the sparse encoder's .dense() gives)."""
        h, w = imgs.shape[2] // self.patch_size, imgs.shape[3] // self.patch_size
        keep = (1 - mask).reshape(-1, 1, h, w)
        x = self.encoder.stem(imgs)
        x = x * _keep_at(keep, x)
        for stage in self.encoder.stages:
            x = stage.downsample(x)
            k = _keep_at(keep, x)
            x = x * k
            for block in stage.blocks:
                x = _masked_block(block, x, k)
        return x

    def forward_decoder(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        m = mask.reshape(-1, 1, x.shape[2], x.shape[3]).to(x.dtype)
        x = x * (1 - m) + self.mask_token.to(x.dtype) * m
        pred = self.pred(self.decoder(x))
        return pred.flatten(2).transpose(1, 2)  # [N, L, p*p*C]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = (pred - target).pow(2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.6, mask: torch.Tensor | None = None):
        if imgs.shape[2] % self.patch_size or imgs.shape[3] % self.patch_size:
            raise ValueError(f"FCMAE input {tuple(imgs.shape[2:])} is not a multiple of {self.patch_size} px")
        if mask is None:
            mask = self.random_mask(imgs, mask_ratio)
        x = self.forward_encoder(imgs, mask)
        pred = self.forward_decoder(x, mask)
        return self.forward_loss(imgs, pred, mask), pred, mask


def _create_fcmae(
    variant: str, img_size: int, drop_path_rate: float, depths=None, dims=None, **kwargs
) -> FCMAE:
    enc_args = {k: v for k, v in (("depths", depths), ("dims", dims)) if v is not None}
    encoder = timm.create_model(
        variant, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate, **enc_args
    )
    return FCMAE(encoder, img_size=img_size, **kwargs)


@register_model
def fcmae_convnextv2_base(img_size: int = 224, drop_path_rate: float = 0.0, **kwargs) -> FCMAE:
    """FCMAE pretraining of ConvNeXt V2-Base (decoder 1 block of dim 512, mask ratio 0.6, norm_pix_loss)."""
    return _create_fcmae("convnextv2_base", img_size, drop_path_rate, **kwargs)


@register_model
def fcmae_convnextv2_atto(img_size: int = 224, drop_path_rate: float = 0.0, **kwargs) -> FCMAE:
    """FCMAE with a ConvNeXt V2-Atto encoder, for demos; depths / dims / decoder_embed_dim may be overridden."""
    return _create_fcmae("convnextv2_atto", img_size, drop_path_rate, **kwargs)


def remap_sparse_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official FCMAE (MinkowskiEngine) tensors -> the dense official layout, per the reference's
    `utils.remap_checkpoint_keys`: `kernel` [k*k, in, out] -> conv `weight` [out, in, k, k] (depthwise [k*k, C] ->
    [C, 1, k, k]), the `ln` / `linear` wrappers dropped, [1, C] biases flattened. The `encoder.` prefix stays.
    """
    out = {}
    for key, v in state_dict.items():
        if key.endswith(".kernel"):
            key = key[: -len("kernel")] + "weight"
            if v.ndim == 3:
                kv, cin, cout = v.shape
                ks = math.isqrt(kv)
                v = v.permute(2, 1, 0).reshape(cout, cin, ks, ks).transpose(3, 2)
            else:
                kv, dim = v.shape
                ks = math.isqrt(kv)
                v = v.permute(1, 0).reshape(dim, 1, ks, ks).transpose(3, 2)
        else:
            parts = key.split(".")
            if len(parts) > 2 and parts[-2] in ("ln", "linear"):
                key = ".".join(parts[:-2] + parts[-1:])
            if key.endswith("bias") and v.ndim != 1:
                v = v.reshape(-1)
        out[key] = v.contiguous()
    return out


def _to_timm(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Official dense names -> timm names with timm's own filter; a layer the model lacks is a clear error."""
    try:
        return timm_convnext.checkpoint_filter_fn(state_dict, model)
    except KeyError as err:
        raise CheckpointMismatchError(
            f"checkpoint layer {err} does not exist in {type(model).__name__}: it was written for a "
            f"deeper ConvNeXt V2; check the model's depths / dims"
        ) from None


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Official ConvNeXt-V2 finetune files, official FCMAE (sparse) files, our FCMAE checkpoints and timm files,
    into either a finetune model (timm ConvNeXt) or an FCMAE."""
    if any(k.endswith(".kernel") for k in state_dict):
        state_dict = remap_sparse_keys(state_dict)
    if isinstance(model, FCMAE):
        if "encoder.downsample_layers.0.0.weight" in state_dict:  # official FCMAE
            return _to_timm(state_dict, model)
        return dict(state_dict)

    if any(k.startswith("encoder.") for k in state_dict):  # a pretraining checkpoint (official or ours)
        state_dict = {
            k.removeprefix("encoder."): v for k, v in state_dict.items() if not k.startswith(_DECODER_PARTS)
        }
    if "downsample_layers.0.0.weight" in state_dict:
        state_dict = _to_timm(state_dict, model)
    out = dict(state_dict)
    own = model.state_dict()
    for key in ("head.fc.weight", "head.fc.bias"):
        if key in out and key in own and out[key].shape != own[key].shape:
            log.info(
                "dropping %s %s: the model has %d classes", key, tuple(out[key].shape), own[key].shape[0]
            )
            del out[key]
    return out
