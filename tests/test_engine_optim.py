"""Learning rate scaling, weight-decay groups, layer-wise lr decay and the warmup + cosine schedule."""

import math

import pytest
import timm
import torch
from engine_synthetic import TINY_VIT

from fer.engine.optim import (
    build_optimizer,
    effective_batch_size,
    is_no_decay,
    layer_id,
    lr_at,
    param_groups,
    scaled_lr,
    set_lr,
)
from fer.models import create_model


def _groups_by_name(groups):
    return {name: g for g in groups for name in g["names"]}


def test_lr_is_blr_times_effective_batch_over_256():
    # MAE-SFER ViT-B pretraining: 32 x accum 4 x 1 GPU, blr 1.5e-4
    eff = effective_batch_size(32, 4, 1)
    assert eff == 128 and scaled_lr(1.5e-4, eff) == pytest.approx(7.5e-5)
    assert scaled_lr(1e-3, effective_batch_size(32, 1, 3)) == pytest.approx(1e-3 * 96 / 256)  # MAE-DFER DFEW


def test_vit_groups_decay_only_matrices_and_scale_layers_like_mae():
    model = create_model("vit_tiny_patch16", **TINY_VIT, num_classes=3)  # depth 2
    groups = _groups_by_name(param_groups(model, weight_decay=0.05, layer_decay=0.5))
    for name, p in model.named_parameters():
        g = groups[name]
        no_decay = p.ndim == 1 or name in ("cls_token", "pos_embed")
        assert g["weight_decay"] == (0.0 if no_decay else 0.05), name
    # MAE util/lr_decay.py: scale = decay ** (num_layers + 1 - layer_id), embedding 0, block N -> N + 1, head top
    assert groups["patch_embed.proj.weight"]["lr_scale"] == pytest.approx(0.5**3)
    assert groups["cls_token"]["lr_scale"] == pytest.approx(0.5**3)
    assert groups["blocks.0.attn.qkv.weight"]["lr_scale"] == pytest.approx(0.5**2)
    assert groups["blocks.1.mlp.fc2.bias"]["lr_scale"] == pytest.approx(0.5)
    assert groups["head.weight"]["lr_scale"] == 1.0 and groups["fc_norm.weight"]["lr_scale"] == 1.0


def test_frozen_parameters_are_left_out():
    model = create_model("vit_tiny_patch16", **TINY_VIT, num_classes=3)
    model.pos_embed.requires_grad_(False)
    names = {n for g in param_groups(model, 0.05, 0.75) for n in g["names"]}
    assert "pos_embed" not in names and "cls_token" in names


def test_lgi_former_region_tokens_get_no_decay_and_the_top_lr():
    model = create_model("vit_base_dim512_no_depth_patch16_160", img_size=32, all_frames=4, embed_dim=32, depth=2,
                         num_heads=2, lg_region_size=[2, 1, 2], num_classes=7)  # fmt: skip
    groups = _groups_by_name(param_groups(model, 0.05, 0.75))
    # MAE-DFER optim_factory: region tokens in no_weight_decay, layer id num_layers + 1 (scale 1)
    assert groups["lg_region_tokens"]["weight_decay"] == 0.0 and groups["lg_region_tokens"]["lr_scale"] == 1.0
    assert groups["blocks.1.first_attn.q.weight"]["lr_scale"] == pytest.approx(0.75)
    assert groups["patch_embed.proj.weight"]["lr_scale"] == pytest.approx(0.75**3)


def test_layer_ids_see_through_wrappers_and_encoders():
    assert layer_id("module.blocks.3.attn.qkv.weight", 12) == 4
    assert layer_id("encoder.blocks.0.mlp.fc1.weight", 12) == 1
    assert layer_id("vit.blocks.7.norm1.weight", 8) == 8  # APViT
    assert layer_id("decoder.blocks.0.attn.qkv.weight", 12) == 13  # not an encoder block
    assert layer_id("encoder.patch_embed.proj.weight", 12) == 0


def test_convnext_group_and_single_ids_follow_convnextv2_optim_factory():
    model = timm.create_model("convnextv2_atto", num_classes=7)  # depths 2-2-6-2, timm names
    names = [n for n, _ in model.named_parameters()]
    # 'group' (get_num_layer_for_convnext): stem 0, stage s<2 -> s + 1, stage 2 -> 3 + block // 3, stage 3 -> 12
    group = {n: layer_id(n, 12, "convnext_group") for n in names}
    assert group["stem.0.weight"] == 0
    assert group["stages.1.downsample.1.weight"] == 2 and group["stages.2.downsample.1.weight"] == 3
    assert group["stages.0.blocks.1.conv_dw.weight"] == 1 and group["stages.1.blocks.0.conv_dw.weight"] == 2
    assert group["stages.2.blocks.4.conv_dw.weight"] == 4 and group["stages.3.blocks.0.conv_dw.weight"] == 12
    assert group["head.fc.weight"] == 13
    # the reference's own names map the same way
    assert layer_id("downsample_layers.0.0.weight", 12, "convnext_group") == 0
    assert layer_id("stages.2.5.dwconv.weight", 12, "convnext_group") == 4
    # 'single': sum(depths[:stage]) + block + 1
    depths = [2, 2, 6, 2]
    assert layer_id("stages.2.blocks.3.conv_dw.weight", 12, "convnext_single", depths) == 2 + 2 + 3 + 1
    groups = _groups_by_name(param_groups(model, 0.05, 0.6, "convnext_single"))
    assert groups["head.fc.weight"]["lr_scale"] == 1.0
    assert groups["stages.0.blocks.0.conv_dw.weight"]["lr_scale"] == pytest.approx(0.6**12)


def test_grn_gamma_beta_and_tokens_are_not_decayed():
    assert is_no_decay("stages.0.0.grn.gamma", torch.zeros(1, 1, 1, 8), set())  # ConvNeXt-V2's 4-D GRN params
    assert is_no_decay("encoder.lg_region_tokens", torch.zeros(8, 32), set())
    assert is_no_decay("mask_token", torch.zeros(1, 1, 32), set())
    assert not is_no_decay("blocks.0.attn.qkv.weight", torch.zeros(96, 32), set())


def test_schedule_warms_up_linearly_then_follows_a_half_cosine():
    lr, min_lr, warm, total = 1.0, 0.1, 2, 10
    assert lr_at(0, lr, min_lr, warm, total) == 0
    assert lr_at(1, lr, min_lr, warm, total) == pytest.approx(0.5)
    assert lr_at(2, lr, min_lr, warm, total) == pytest.approx(1.0)
    assert lr_at(6, lr, min_lr, warm, total) == pytest.approx(min_lr + (lr - min_lr) * 0.5)
    assert lr_at(10, lr, min_lr, warm, total) == pytest.approx(min_lr)
    values = [lr_at(e / 10, lr, min_lr, warm, total) for e in range(20, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_at(3, lr, 0.0, 0, total) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.3)))


def test_optimizers_and_set_lr_apply_the_layer_scales():
    model = create_model("vit_tiny_patch16", **TINY_VIT, num_classes=3)
    cfg = {"weight_decay": 0.05, "layer_decay": 0.5, "opt": "adamw", "opt_betas": [0.9, 0.95]}
    opt = build_optimizer(model, cfg, lr=0.1)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.95)
    set_lr(opt, 0.2)
    assert sorted({round(g["lr"], 6) for g in opt.param_groups}) == [0.025, 0.05, 0.1, 0.2]
    sgd = build_optimizer(model, {**cfg, "opt": "sgd", "momentum": 0.9, "layer_decay": 1.0}, lr=0.1)
    assert isinstance(sgd, torch.optim.SGD) and all(g["momentum"] == 0.9 for g in sgd.param_groups)
    with pytest.raises(ValueError, match="opt must be"):
        build_optimizer(model, {**cfg, "opt": "lamb"}, lr=0.1)
