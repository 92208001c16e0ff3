"""Image ViT / MAE family: reference key lists, equivalence with the reference code, checkpoint loading, heads.

The fixtures were generated from the reference codebases themselves (facebookresearch/mae efb2a80, FMAE-IAT
89af5e0 / e7bff23, MAE-SFER 7e91c1d, built with timm 1.0.31, reference attention in its explicit form):
- ref_keys_*.json: state-dict keys and shapes of full-size reference models (each names our factory + kwargs);
- ref_mae_tiny.pt / ref_vit_tiny.pt: tiny reference models' weights, inputs, the masking noise and outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import fer.models.mae  # noqa: F401  (registers the factories)
import fer.models.vit  # noqa: F401
from fer.io import load_checkpoint, save_checkpoint
from fer.models import CheckpointMismatchError, create_model, load_pretrained
from fer.models.heads import GradientReversal, LinearProbe, grad_reverse
from fer.models.pos_embed import get_2d_sincos_pos_embed, resample_pos_embed
from fer.models.vit import checkpoint_filter_fn, set_fused_attn

FIXTURES = Path(__file__).parent / "fixtures"
TINY = dict(embed_dim=32, depth=2, num_heads=2)  # demo-sized encoder
TINY_DEC = dict(decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


@pytest.fixture(scope="module")
def ref_vit():
    return load_checkpoint(FIXTURES / "ref_vit_tiny.pt")


@pytest.fixture(scope="module")
def ref_mae():
    return load_checkpoint(FIXTURES / "ref_mae_tiny.pt")


# ------------------------------------------------------------------------------------------- (a) key lists
KEY_FIXTURES = sorted([*FIXTURES.glob("ref_keys_vit_*.json"), *FIXTURES.glob("ref_keys_mae_*.json")])


@pytest.mark.parametrize("path", KEY_FIXTURES, ids=lambda p: p.stem)
def test_state_dict_matches_reference_keys(path):
    ref = json.loads(path.read_text())
    with torch.device("meta"):  # full-size variants: shapes only, no memory
        model = create_model(ref["model"], **ref["kwargs"])
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: shape for k, shape in ref["state_dict"]}


def test_reference_key_fixtures_cover_the_variants():
    names = {json.loads(p.read_text())["model"] for p in KEY_FIXTURES}
    assert {"mae_vit_small_patch16", "mae_vit_base_patch16", "vit_small_patch16", "vit_base_patch16"} <= names
    assert {f"vit_{s}_fixedpe_patch16_224" for s in ("tiny", "small", "base")} <= names


@pytest.mark.parametrize("name", ["vit_tiny_patch16", "mae_vit_tiny_patch16"])
def test_tiny_variant_dims(name):
    with torch.device("meta"):
        model = create_model(name)
    assert model.pos_embed.shape == (1, 197, 192)
    assert len(model.blocks) == 12 and model.blocks[0].attn.num_heads == 3


def test_small_fixedpe_builds_patch32_as_the_reference():
    model = create_model("vit_small_fixedpe_patch16_224", num_classes=7)
    assert model.patch_embed.patch_size == (32, 32) and model.pos_embed.shape == (1, 50, 384)
    assert not model.pos_embed.requires_grad
    assert torch.equal(model.pos_embed[0], get_2d_sincos_pos_embed(384, 7, cls_token=True))


# ------------------------------------------------------------------------------------ (b) equivalence
def test_mae_matches_reference(ref_mae):
    model = create_model(ref_mae["our_model"], **ref_mae["our_kwargs"]).eval()
    model.load_state_dict(ref_mae["model"], strict=True)
    imgs, ratio = ref_mae["imgs"], ref_mae["mask_ratio"]
    with torch.no_grad():
        loss, pred, mask = model(imgs, mask_ratio=ratio, noise=ref_mae["noise"])
    assert torch.equal(mask, ref_mae["mask"])
    torch.testing.assert_close(pred, ref_mae["pred"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, ref_mae["loss"], rtol=1e-5, atol=1e-6)

    # Same seed -> same noise -> same mask and loss, without passing the noise.
    torch.manual_seed(ref_mae["seed"])
    with torch.no_grad():
        loss2, _, mask2 = model(imgs, mask_ratio=ratio)
    assert torch.equal(mask2, ref_mae["mask"])
    torch.testing.assert_close(loss2, ref_mae["loss"], rtol=1e-5, atol=1e-6)

    model.norm_pix_loss = False
    torch.testing.assert_close(
        model.forward_loss(imgs, pred, mask), ref_mae["loss_plain"], rtol=1e-5, atol=1e-6
    )
    assert torch.equal(model.patchify(imgs), ref_mae["patchified"])
    assert torch.equal(model.unpatchify(model.patchify(imgs)), imgs)
    assert mask.sum(1).tolist() == [12.0] * imgs.shape[0]  # 16 patches, 75 % masked


def test_sincos_tables_and_mae_init_match_reference(ref_mae):
    # The reference's own tables (numpy, float64 -> float32) for a 4x4 grid, 32-d encoder and 16-d decoder.
    ref_enc, ref_dec = ref_mae["model"]["pos_embed"], ref_mae["model"]["decoder_pos_embed"]
    assert torch.equal(get_2d_sincos_pos_embed(32, 4, cls_token=True), ref_enc[0])
    assert torch.equal(get_2d_sincos_pos_embed(16, (4, 4), cls_token=True), ref_dec[0])
    model = create_model(ref_mae["our_model"], **ref_mae["our_kwargs"])
    assert torch.equal(model.pos_embed, ref_enc) and torch.equal(model.decoder_pos_embed, ref_dec)
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad


@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "seed_mode"])
@pytest.mark.parametrize("case", ["mae_vit_gap", "mae_vit_cls", "sfer_fixedpe"])
def test_vit_matches_reference(ref_vit, case, fused):
    ref = ref_vit["cases"][case]
    model = create_model(ref["our_model"], fused_attn=fused, **ref["our_kwargs"]).eval()
    model.load_state_dict(ref["model"], strict=True)
    with torch.no_grad():
        logits = model(ref_vit["x"])
        if "feat" in ref:
            torch.testing.assert_close(
                model.forward_features(ref_vit["x"]), ref["feat"], rtol=1e-4, atol=1e-5
            )
    torch.testing.assert_close(logits, ref["logits"], rtol=1e-4, atol=1e-5)


def test_fmae_iat_identity_head_matches_reference(ref_vit):
    ref = ref_vit["cases"]["fmae_iat"]
    model = create_model(ref["our_model"], **ref["our_kwargs"]).eval()
    model.load_state_dict(ref["model"], strict=True)
    logits, id_logits = model(ref_vit["x"])
    torch.testing.assert_close(logits, ref["logits"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(id_logits, ref["id_logits"], rtol=1e-4, atol=1e-5)
    ((logits * ref["w_au"]).sum() + (id_logits * ref["w_id"]).sum()).backward()
    grads = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == ref["grads"].keys()
    for k, g in grads.items():
        torch.testing.assert_close(g, ref["grads"][k], rtol=1e-4, atol=1e-5, msg=k)


def test_pos_embed_resample_matches_reference(ref_vit):
    ref = ref_vit["cases"]["pos_interp"]
    torch.testing.assert_close(resample_pos_embed(ref["pos_embed_224"], 4), ref["pos_embed_64"])
    # and through the checkpoint filter, for a 64 px model
    model = create_model("vit_tiny_patch16", img_size=64, num_classes=3, **TINY)
    out = checkpoint_filter_fn({"module.pos_embed": ref["pos_embed_224"]}, model)
    torch.testing.assert_close(out["pos_embed"], ref["pos_embed_64"])


def test_attention_goes_through_sdpa_unless_seed_mode(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    x = torch.randn(1, 3, 32, 32)
    model = create_model("vit_tiny_patch16", img_size=32, patch_size=8, num_classes=2, **TINY).eval()
    fused = model(x)
    assert len(calls) == 2
    assert set_fused_attn(model, False) == 2
    calls.clear()
    torch.testing.assert_close(model(x), fused, rtol=1e-4, atol=1e-5)
    assert not calls
    mae = create_model(
        "mae_vit_tiny_patch16", img_size=32, patch_size=8, fused_attn=False, **TINY, **TINY_DEC
    )
    mae(x)
    assert not calls


# ------------------------------------------------------------------------------- (c) checkpoint loading
def _mae_checkpoint(tmp_path, img_size=64, **kw):
    torch.manual_seed(0)
    mae = create_model("mae_vit_tiny_patch16", img_size=img_size, **TINY, **TINY_DEC, **kw)
    path = tmp_path / f"mae_{img_size}.pth"
    save_checkpoint(
        {"model": mae.state_dict(), "epoch": 3, "config": {"model": "mae_vit_tiny_patch16"}}, path
    )
    return mae, path


def test_pretrain_to_finetune_drops_decoder(tmp_path):
    mae, path = _mae_checkpoint(tmp_path)
    vit = create_model("vit_tiny_patch16", img_size=64, num_classes=7, **TINY)
    missing, unexpected = load_pretrained(vit, path)
    assert set(missing) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    assert unexpected == ["norm.bias", "norm.weight"]  # global pooling replaces the encoder's norm by fc_norm
    assert torch.equal(vit.blocks[1].mlp.fc2.weight, mae.blocks[1].mlp.fc2.weight)
    assert torch.equal(vit.pos_embed, mae.pos_embed)

    cls_vit = create_model("vit_tiny_patch16", img_size=64, num_classes=7, global_pool=False, **TINY)
    missing, unexpected = load_pretrained(cls_vit, path)
    assert set(missing) == {"head.weight", "head.bias"} and unexpected == []
    assert torch.equal(cls_vit.norm.weight, mae.norm.weight)


def test_pretrain_224_to_finetune_64_interpolates_pos_embed(tmp_path):
    mae, path = _mae_checkpoint(tmp_path, img_size=224)
    vit = create_model("vit_tiny_patch16", img_size=64, num_classes=7, **TINY)
    missing, _ = load_pretrained(vit, path)
    assert "pos_embed" not in missing and vit.pos_embed.shape == (1, 17, 32)
    torch.testing.assert_close(vit.pos_embed, resample_pos_embed(mae.pos_embed.detach(), 4))
    assert torch.equal(vit.pos_embed[:, 0], mae.pos_embed[:, 0])  # class-token slot kept as is


def test_mae_resume_at_another_grid_uses_its_own_sincos(tmp_path):
    _, path = _mae_checkpoint(tmp_path, img_size=224)
    mae64 = create_model("mae_vit_tiny_patch16", img_size=64, **TINY, **TINY_DEC)
    expected = mae64.decoder_pos_embed.detach().clone()
    missing, unexpected = load_pretrained(mae64, path)
    assert missing == [] and unexpected == []
    assert torch.equal(mae64.decoder_pos_embed, expected)


def test_class_and_subject_count_change_reinitialises_heads(tmp_path):
    src = create_model("vit_tiny_patch16", img_size=32, patch_size=8, num_classes=12, num_subjects=41,
                       grad_reverse=2.0, **TINY)  # fmt: skip
    path = tmp_path / "fmae_iat.pth"
    save_checkpoint({"model": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = create_model("vit_tiny_patch16", img_size=32, patch_size=8, num_classes=8, num_subjects=27,
                       grad_reverse=0.5, **TINY)  # fmt: skip
    missing, unexpected = load_pretrained(dst, path)
    assert set(missing) == {"head.weight", "head.bias", "ID_head.weight", "ID_head.bias"} and unexpected == []
    no_id = create_model("vit_tiny_patch16", img_size=32, patch_size=8, num_classes=12, **TINY)
    missing, unexpected = load_pretrained(no_id, path)
    assert missing == [] and set(unexpected) == {"ID_head.weight", "ID_head.bias"}


def test_other_architecture_is_refused(tmp_path):
    _, path = _mae_checkpoint(tmp_path)
    wider = create_model("vit_tiny_patch16", img_size=64, num_classes=7, embed_dim=48, depth=2, num_heads=2)
    with pytest.raises(CheckpointMismatchError, match="does not fit"):
        load_pretrained(wider, path)
    resnet_like = tmp_path / "resnet.pth"
    save_checkpoint({"state_dict": {"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(7, 8)}},
                    resnet_like)  # fmt: skip
    with pytest.raises(CheckpointMismatchError):
        load_pretrained(create_model("vit_tiny_patch16", img_size=64, num_classes=7, **TINY), resnet_like)


# -------------------------------------------------------------------------------------------- heads
def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(4, 5, requires_grad=True)
    w = torch.randn(4, 5)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.5 * w)
    x.grad = None
    layer = GradientReversal(2.0)
    (layer(x) * w).sum().backward()
    torch.testing.assert_close(x.grad, -2.0 * w)


def test_identity_head_sits_behind_the_reversal():
    torch.manual_seed(0)
    model = create_model("vit_tiny_patch16", img_size=32, patch_size=8, num_classes=3, num_subjects=5,
                         grad_reverse=1.5, **TINY).eval()  # fmt: skip
    x = torch.randn(2, 3, 32, 32)
    _, id_logits = model(x)
    id_logits.sum().backward()
    reversed_grad, id_head_grad = model.fc_norm.weight.grad.clone(), model.ID_head.weight.grad.clone()
    model.zero_grad()
    model.ID_head(model.forward_features(x)).sum().backward()  # same path without the reversal
    torch.testing.assert_close(reversed_grad, -1.5 * model.fc_norm.weight.grad)
    torch.testing.assert_close(id_head_grad, model.ID_head.weight.grad)  # the head itself learns normally
    with pytest.raises(ValueError, match="num_subjects"):
        create_model("vit_tiny_patch16", grad_reverse=1.0, **TINY)


def test_linear_probe_trains_only_its_head():
    torch.manual_seed(0)
    encoder = create_model("vit_tiny_patch16", img_size=32, patch_size=8, num_classes=0, **TINY)
    probe = LinearProbe(encoder, num_classes=4, bias=False).train()
    assert not encoder.training and probe.head.training
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["head.1.weight"]
    x = torch.randn(6, 3, 32, 32)
    before = probe.head[0].running_mean.clone()
    probe(x).sum().backward()
    assert probe.head[1].weight.grad is not None
    assert all(p.grad is None for p in encoder.parameters())
    assert not torch.equal(before, probe.head[0].running_mean)  # BN statistics follow the features
    probe.eval()
    with torch.no_grad():
        torch.testing.assert_close(probe(x), probe.head(encoder.forward_features(x)))


def test_bad_mask_ratio_is_refused():
    mae = create_model("mae_vit_tiny_patch16", img_size=32, patch_size=8, **TINY, **TINY_DEC)
    for ratio in (1.0, 0.0, -0.1):
        with pytest.raises(ValueError, match="mask_ratio"):
            mae(torch.randn(1, 3, 32, 32), mask_ratio=ratio)


# ------------------------------------------------------------------------------ (d) compile / autocast
def test_compiled_vit_matches_eager():
    torch.manual_seed(0)
    model = create_model("vit_tiny_patch16", img_size=32, patch_size=8, num_classes=3, embed_dim=32, depth=1,
                         num_heads=2).eval()  # fmt: skip
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_on_cpu():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    vit = create_model("vit_tiny_patch16", img_size=32, patch_size=8, num_classes=3, **TINY).eval()
    mae = create_model(
        "mae_vit_tiny_patch16", img_size=32, patch_size=8, norm_pix_loss=True, **TINY, **TINY_DEC
    )
    noise = torch.rand(2, 16)
    with torch.no_grad():
        ref_logits, (ref_loss, _, _) = vit(x), mae(x, noise=noise)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = vit(x)
            loss, pred, mask = mae(x, noise=noise)
    assert logits.dtype == torch.bfloat16 and pred.dtype == torch.bfloat16
    assert loss.dtype == torch.float32 and mask.dtype == torch.float32
    torch.testing.assert_close(logits.float(), ref_logits, rtol=0.1, atol=0.05)
    torch.testing.assert_close(loss, ref_loss, rtol=0.05, atol=0.02)
