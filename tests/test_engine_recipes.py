"""Recipes: every seed command is there, resolves to a complete dict, and overrides are checked."""

import pytest
from engine_synthetic import TINY_MAE, TINY_VIT

from fer.engine.recipes import KINDS, RecipeError, list_recipes, resolve, valid_keys
from fer.models import create_model, list_models

EXPECTED = [
    "mae_sfer_vit_tiny_pretrain", "mae_sfer_vit_small_pretrain", "mae_sfer_vit_base_pretrain",
    "mae_sfer_vit_tiny_finetune", "mae_sfer_vit_small_finetune", "mae_sfer_vit_base_finetune",
    "mae_sfer_convnextv2_base_pretrain", "mae_sfer_convnextv2_base_finetune_rafdb",
    "mae_dfer_pretrain_voxceleb2", "mae_dfer_finetune_dfew", "mae_dfer_finetune_mafw", "mae_dfer_finetune_ferv39k",
    "fmae_pretrain_vit_s", "fmae_pretrain_vit_b", "fmae_pretrain_vit_l",
    "fmae_bp4d", "fmae_bp4dplus", "fmae_disfa", "fmae_iat_bp4d", "fmae_iat_bp4dplus", "fmae_iat_disfa",
    "fmae_rafdb", "fmae_affectnet8", "fmae_id_probe_bp4d", "apvit_raf",
]  # fmt: skip


def test_every_seed_recipe_is_listed_with_its_kind():
    listed = dict(list_recipes())
    assert sorted(listed) == sorted(EXPECTED)
    assert set(listed.values()) <= set(KINDS)
    assert listed["mae_dfer_pretrain_voxceleb2"] == "pretrain_video_mae"
    assert listed["mae_sfer_convnextv2_base_pretrain"] == "pretrain_fcmae"
    assert listed["fmae_iat_bp4d"] == "au" and listed["fmae_id_probe_bp4d"] == "id_probe"


@pytest.mark.parametrize("name", EXPECTED)
def test_recipe_is_complete_and_names_a_registered_model(name):
    cfg = resolve(name)
    assert set(valid_keys()) <= set(cfg)
    assert cfg["recipe"] == name
    assert cfg["model"] in list_models()
    assert cfg["source"] and len(cfg["source"]) > 40  # the seed command it comes from
    assert cfg["batch_size"] > 0 and cfg["epochs"] > cfg["warmup_epochs"] >= 0
    assert cfg["blr"] > 0 or cfg["lr"]


def test_values_follow_the_seed_commands():
    assert {n: resolve(n)["grad_reverse"] for n in ("fmae_iat_bp4d", "fmae_iat_bp4dplus", "fmae_iat_disfa")} == {
        "fmae_iat_bp4d": 2.0, "fmae_iat_bp4dplus": 1.0, "fmae_iat_disfa": 0.5}  # fmt: skip
    assert all(resolve(n)["grad_reverse"] == 0 for n in ("fmae_bp4d", "fmae_bp4dplus", "fmae_disfa"))
    assert resolve("fmae_bp4d")["blr"] == 2e-4 and resolve("fmae_iat_bp4d")["epochs"] == 30
    sfer = resolve("mae_sfer_vit_base_pretrain")
    assert (sfer["batch_size"], sfer["accum_iter"], sfer["mask_ratio"], sfer["epochs"], sfer["warmup_epochs"]) == (
        32, 4, 0.75, 300, 40)  # fmt: skip
    ft = resolve("mae_sfer_vit_base_finetune")
    assert (ft["layer_decay"], ft["drop_path"], ft["mixup"], ft["cutmix"], ft["reprob"]) == (
        0.65,
        0.1,
        0.8,
        1.0,
        0.25,
    )
    cnx = resolve("mae_sfer_convnextv2_base_finetune_rafdb")
    assert cnx["model_ema"] and cnx["layer_decay_type"] == "convnext_group" and cnx["accum_iter"] == 4
    dfew, mafw, ferv = (resolve(f"mae_dfer_finetune_{d}") for d in ("dfew", "mafw", "ferv39k"))
    assert (dfew["test_clips"], dfew["test_crops"], dfew["num_frames"], dfew["sampling_rate"]) == (
        2,
        2,
        16,
        4,
    )
    assert {k: v for k, v in mafw.items() if k not in ("source", "recipe")} == {
        k: v for k, v in dfew.items() if k not in ("source", "recipe")}  # fmt: skip
    assert (ferv["batch_size"], ferv["sampling_rate"]) == (40, 1)
    assert resolve("mae_dfer_pretrain_voxceleb2")["mask_ratio"] == 0.9
    assert resolve("fmae_pretrain_vit_l")["batch_size"] == 128 and resolve("fmae_pretrain_vit_b")["model_kwargs"] == {
        "norm_pix_loss": True}  # fmt: skip
    apvit = resolve("apvit_raf")
    assert (apvit["opt"], apvit["lr"], apvit["clip_grad"], apvit["epochs"], apvit["input_size"]) == (
        "sgd", 1e-3, 10.0, 40, 112)  # fmt: skip


def test_overrides_merge_model_kwargs_and_replace_the_rest():
    cfg = resolve(
        "mae_dfer_finetune_dfew", {"model_kwargs": {"depth": 2}, "epochs": 3, "data": {"train": "a.csv"}}
    )
    assert cfg["model_kwargs"]["depth"] == 2
    assert cfg["model_kwargs"]["lg_region_size"] == [2, 5, 10]  # kept from the recipe
    assert cfg["epochs"] == 3 and cfg["data"] == {"train": "a.csv"}
    assert resolve("mae_dfer_finetune_dfew")["model_kwargs"]["depth"] == 16  # the recipe itself is untouched


def test_unknown_override_key_lists_the_valid_keys():
    with pytest.raises(RecipeError) as err:
        resolve("fmae_bp4d", {"epoch": 3}, where="experiments.bp4d_demo")
    msg = str(err.value)
    assert "experiments.bp4d_demo" in msg and "'epoch'" in msg and "epochs" in msg and "warmup_epochs" in msg


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(RecipeError, match="known recipes: .*apvit_raf"):
        resolve("mae_sfer_vit_huge_pretrain")


@pytest.mark.parametrize(
    "name, tiny",
    [
        ("mae_sfer_vit_tiny_pretrain", TINY_MAE),
        ("fmae_pretrain_vit_b", TINY_MAE),
        ("mae_sfer_vit_tiny_finetune", dict(TINY_VIT, num_classes=7)),
        ("fmae_iat_bp4d", dict(TINY_VIT, num_classes=12, num_subjects=5, grad_reverse=2.0)),
        ("mae_dfer_pretrain_voxceleb2", dict(img_size=32, all_frames=4, embed_dim=32, depth=1, num_heads=2,
                                             decoder_embed_dim=16, decoder_num_heads=2, lg_region_size=[2, 1, 2])),
        ("mae_dfer_finetune_dfew", dict(img_size=32, all_frames=4, embed_dim=32, depth=1, num_heads=2,
                                        lg_region_size=[2, 1, 2], num_classes=7)),
    ],
)  # fmt: skip
def test_recipe_model_kwargs_are_accepted_by_the_factory(name, tiny):
    cfg = resolve(name)
    model = create_model(cfg["model"], **{**cfg["model_kwargs"], **tiny})
    assert sum(p.numel() for p in model.parameters()) > 0
