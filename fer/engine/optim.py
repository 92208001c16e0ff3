"""Learning rate, parameter groups (weight decay, layer-wise lr decay), schedule and optimizer.

Follows facebookresearch/mae: `lr = blr * effective_batch / 256` (main_*.py), `util/lr_decay.py`
(`param_groups_lrd`, `get_layer_id_for_vit`: BEiT's layer-wise decay) and `util/lr_sched.py` (linear warmup, then
a half-cycle cosine to min_lr, set per iteration). Layer ids also cover MAE-DFER's LGI-Former / VideoMAE encoders
(`blocks.N`, `encoder.blocks.N`, region tokens at the top as its optim_factory does), APViT (`vit.blocks.N`) and
ConvNeXt V2 (ConvNeXt-V2 `optim_factory.py`: 'single' and 'group' layer decay types, in both its own and timm's
parameter names).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn as nn

# Prefixes that wrap an encoder's own parameter names (DDP, torch.compile, video MAE encoder, APViT).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "encoder.", "vit.", "backbone.")
# Parameters of the input end of a ViT (layer 0).
_EMBED_NAMES = ("cls_token", "mask_token", "pos_embed", "dist_token", "reg_token")
_EMBED_PREFIXES = ("patch_embed", "pos_embed", "extractor.")
# Never weight-decayed: tokens, position embeddings, ConvNeXt V2 GRN gamma/beta (besides every 1-D tensor).
_NO_DECAY_KEYWORDS = ("token", "pos_embed")
_NO_DECAY_SUFFIXES = (".bias", ".gamma", ".beta")


def effective_batch_size(batch_size: int, accum_iter: int, world_size: int) -> int:
    return batch_size * accum_iter * world_size


def scaled_lr(blr: float, effective_batch: int) -> float:
    """MAE's linear scaling rule: absolute lr = base lr * effective batch / 256."""
    return blr * effective_batch / 256


def strip_wrappers(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def convnext_depths(names: list[str]) -> list[int]:
    """Blocks per stage, read off parameter names (`stages.S.B.` or timm's `stages.S.blocks.B.`)."""
    depth: dict[int, int] = {}
    for name in names:
        m = re.match(r"stages\.(\d+)\.(?:blocks\.)?(\d+)\.", strip_wrappers(name))
        if m:
            stage, block = int(m.group(1)), int(m.group(2))
            depth[stage] = max(depth.get(stage, 0), block + 1)
    return [depth.get(s, 0) for s in range(max(depth) + 1)] if depth else []


def num_layers_for(model: nn.Module, layer_decay_type: str = "vit") -> int:
    """How many layer ids lie between the embedding (0) and the head (num_layers + 1)."""
    if layer_decay_type == "convnext_group":
        return 12  # ConvNeXt-V2 main_finetune.py: 12 groups for Base and Large
    names = [n for n, _ in model.named_parameters()]
    if layer_decay_type == "convnext_single":
        return sum(convnext_depths(names))
    if hasattr(model, "get_num_layers"):
        return int(model.get_num_layers())
    blocks = [int(m.group(1)) for n in names if (m := re.match(r"blocks\.(\d+)\.", strip_wrappers(n)))]
    return max(blocks) + 1 if blocks else 0


def _convnext_stage_block(name: str) -> tuple[str, int, int] | None:
    """('down', stage, 0) / ('block', stage, block) for ConvNeXt names in either layout, else None."""
    if name.startswith("stem."):
        return "down", 0, 0
    if m := re.match(r"downsample_layers\.(\d+)\.", name):
        return "down", int(m.group(1)), 0
    if m := re.match(r"stages\.(\d+)\.downsample\.", name):
        return "down", int(m.group(1)), 0
    if m := re.match(r"stages\.(\d+)\.(?:blocks\.)?(\d+)\.", name):
        return "block", int(m.group(1)), int(m.group(2))
    return None


def layer_id(
    name: str, num_layers: int, layer_decay_type: str = "vit", depths: list[int] | None = None
) -> int:
    """Layer id of a parameter: 0 for the embedding, N + 1 for block N, num_layers + 1 for norms and heads."""
    name = strip_wrappers(name)
    if layer_decay_type == "vit":
        if name in _EMBED_NAMES or name.startswith(_EMBED_PREFIXES):
            return 0
        if m := re.match(r"blocks\.(\d+)\.", name):
            return int(m.group(1)) + 1
        return num_layers + 1
    found = _convnext_stage_block(name)
    if found is None:
        return num_layers + 1
    kind, stage, block = found
    if layer_decay_type == "convnext_single":
        depths = depths or []
        return sum(depths[:stage]) + (block if kind == "block" else 0) + 1
    if layer_decay_type == "convnext_group":  # ConvNeXt-V2 get_num_layer_for_convnext
        if kind == "down":
            return {0: 0, 1: 2, 2: 3}.get(stage, 12)
        if stage in (0, 1):
            return stage + 1
        return 3 + block // 3 if stage == 2 else 12
    raise ValueError(
        f"layer_decay_type must be vit, convnext_single or convnext_group, got {layer_decay_type!r}"
    )


def is_no_decay(name: str, param: torch.Tensor, skip: set[str]) -> bool:
    bare = strip_wrappers(name)
    return (
        param.ndim <= 1
        or name in skip
        or bare in skip
        or name.endswith(_NO_DECAY_SUFFIXES)
        or any(k in bare.split(".")[-1] for k in _NO_DECAY_KEYWORDS)
    )


def param_groups(
    model: nn.Module, weight_decay: float, layer_decay: float = 1.0, layer_decay_type: str = "vit"
) -> list[dict]:
    """AdamW parameter groups: (layer, decay / no decay), each with its `lr_scale` and `weight_decay`.

    Frozen parameters are left out. `model.no_weight_decay()` names are honoured as in MAE's main_finetune.py.
    """
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    use_layers = layer_decay != 1.0
    num_layers = num_layers_for(model, layer_decay_type) if use_layers else 0
    depths = convnext_depths([n for n, _ in named]) if layer_decay_type == "convnext_single" else None
    scales = [layer_decay ** (num_layers + 1 - i) for i in range(num_layers + 2)]

    groups: dict[str, dict] = {}
    for name, param in named:
        no_decay = is_no_decay(name, param, skip)
        lid = layer_id(name, num_layers, layer_decay_type, depths) if use_layers else 0
        key = f"layer_{lid}_{'no_decay' if no_decay else 'decay'}"
        if key not in groups:
            groups[key] = {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": scales[lid] if use_layers else 1.0,
            }
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return list(groups.values())


def lr_at(epoch: float, lr: float, min_lr: float, warmup_epochs: float, epochs: float) -> float:
    """MAE's schedule at a fractional epoch: linear warmup from 0, then half-cycle cosine down to min_lr."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-12)
    progress = min((epoch - warmup_epochs) / span, 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def build_optimizer(
    model: nn.Module, cfg: dict, lr: float, device: torch.device | str = "cpu"
) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA) or SGD over `param_groups`, as the recipe's `opt` says."""
    groups = param_groups(
        model, cfg["weight_decay"], cfg.get("layer_decay", 1.0), cfg.get("layer_decay_type", "vit")
    )
    for group in groups:
        group.pop("names")
    opt = cfg.get("opt", "adamw")
    if opt == "adamw":
        fused = torch.device(device).type == "cuda"
        return torch.optim.AdamW(
            groups, lr=lr, betas=tuple(cfg.get("opt_betas") or (0.9, 0.999)), fused=fused
        )
    if opt == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.get("momentum", 0.9))
    raise ValueError(f"opt must be 'adamw' or 'sgd', got {opt!r} (recipe key `opt`)")
