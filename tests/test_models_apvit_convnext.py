"""APViT and ConvNeXt V2 / FCMAE against their reference implementations.

Fixtures (tests/fixtures), generated outside the repo from the fetched reference code:
- ref_apvit_raf_state_shapes.json: key -> shape and parameter count of youqingxiaozhua/APViT configs/apvit/RAF.py,
  built from its mmcls modules (IRSE, PoolingViT, PoolingBlock) with the mmcv / mmcls framework imports stubbed.
- ref_apvit_small.pt: the same reference modules at a small size (IRSE get_blocks patched to 1-1-2 units of
  16-24-32 channels, PoolingViT depth 4 / dim 32 / 4 heads, APP keep 29 of 36, ATP 0.9 in blocks 3-4), every
  tensor perturbed, eval-mode input / logits / cls features and the token count entering each block.
- ref_convnextv2_small.pt: facebookresearch/ConvNeXt-V2 dense ConvNeXtV2 (depths 1-1-2-1, dims 8-32, 5 classes,
  perturbed) state dict, input, logits and stage-4 features; plus the same encoder in the sparse FCMAE layout
  (MinkowskiEngine kernels, `ln` / `linear` wrappers) with a dense reference decoder Block (dim 16), checked
  there to turn back into the dense state dict through the reference `utils.remap_checkpoint_keys`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from fer.io import save_checkpoint
from fer.models import apvit, convnextv2, create_model, load_pretrained

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def apvit_ref():
    return torch.load(FIXTURES / "ref_apvit_small.pt", weights_only=True)


@pytest.fixture(scope="module")
def convnext_ref():
    return torch.load(FIXTURES / "ref_convnextv2_small.pt", weights_only=True)


# ----------------------------------------------------------------------------------------------- APViT


def test_apvit_raf_matches_reference_keys_and_parameter_count():
    ref = json.loads((FIXTURES / "ref_apvit_raf_state_shapes.json").read_text())
    with torch.device("meta"):
        model = create_model("apvit_raf")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == list(ref["state_dict"])
    assert shapes == ref["state_dict"]
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == ref["num_parameters"]
    assert abs(n_params / 1e6 - 65.21) <= 0.01
    # the RAF-DB config's pooling: APP keeps 160 of 196 patches, ATP 0.9 in blocks 5-8; IR without SE
    assert model.vit.keep_num == 160
    assert [b.keep_rate for b in model.vit.blocks] == [1.0] * 4 + [0.9] * 4
    assert not any(".res_layer.5." in k for k in shapes)


def test_apvit_matches_reference_outputs(apvit_ref):
    model = apvit.APViT(**apvit_ref["config"]).eval()
    assert model.load_state_dict(apvit_ref["state_dict"], strict=True)
    seen = []
    hooks = [b.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1])) for b in model.vit.blocks]
    with torch.no_grad():
        features = model.forward_features(apvit_ref["input"])
        logits = model.head(features)
    for h in hooks:
        h.remove()
    assert seen == apvit_ref["tokens_per_block"]  # 1 + 29 after APP; ATP 29 -> 26 in block 3
    torch.testing.assert_close(features, apvit_ref["features"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, apvit_ref["logits"], atol=1e-5, rtol=1e-5)


def test_attentive_pooling_has_no_parameters_and_keeps_the_top_tokens():
    plain = apvit.PoolingBlock(32, 4, 3.0, keep_rate=1.0)
    pooling = apvit.PoolingBlock(32, 4, 3.0, keep_rate=0.5)
    assert [(n, p.shape) for n, p in plain.named_parameters()] == [
        (n, p.shape) for n, p in pooling.named_parameters()
    ]
    tiny = create_model("apvit_tiny", img_size=32)
    no_pool = apvit.APViT(
        img_size=32,
        stage_units=(1, 1, 2),
        stage_channels=(16, 32, 64),
        stem_channels=16,
        embed_dim=96,
        depth=2,
        num_heads=4,
        keep_num=16,
        keep_rates=[1.0, 1.0],
    )
    assert tiny.vit.keep_num < 16 and tiny.vit.blocks[1].keep_rate < 1
    assert sum(p.numel() for p in tiny.parameters()) == sum(p.numel() for p in no_pool.parameters())

    tokens = torch.arange(6.0).reshape(1, 6, 1).repeat(2, 1, 3)
    scores = torch.tensor([[0.1, 5.0, 0.3, 4.0, 0.2, 3.0], [9.0, 0.0, 8.0, 0.0, 7.0, 0.0]])
    kept = apvit.attentive_patch_pooling(tokens, scores, 3)
    assert kept[..., 0].tolist() == [[1.0, 3.0, 5.0], [0.0, 2.0, 4.0]]  # top-3, original order

    x = torch.arange(11.0).reshape(1, 11, 1)  # cls + 10 patches
    cls_scores = torch.tensor([[100.0, 1, 9, 2, 8, 3, 7, 4, 6, 5, 0]])
    pooled = apvit.attentive_token_pooling(x, cls_scores, 0.75)  # int(10 * 0.75) = 7 patches kept
    assert pooled[0, :, 0].tolist() == [0.0, 2, 4, 5, 6, 7, 8, 9]  # patches 1, 3, 10 score lowest
    assert apvit.attentive_token_pooling(x, cls_scores, 1.0) is x


def test_apvit_trains_end_to_end():
    torch.manual_seed(0)
    model = create_model("apvit_tiny", num_classes=3, img_size=32)
    nn.init.normal_(model.head.fc.weight, std=0.1)  # the reference zero-inits the head
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 3)
    nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert model.extractor.input_layer[0].weight.grad.abs().sum() > 0
    assert model.vit.patch_pos_embed.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="img_size"):
        model(torch.randn(1, 3, 48, 48))


def test_apvit_loads_mmcls_evolve_and_vit_checkpoints(tmp_path):
    torch.manual_seed(0)
    source = create_model("apvit_tiny", num_classes=7, img_size=32).eval()
    nn.init.normal_(source.head.fc.weight, std=0.1)
    # an mmcls checkpoint: {'meta', 'state_dict'} with the classifier's own attribute names
    path = tmp_path / "apvit_mmcls.pth"
    save_checkpoint({"meta": {"epoch": 40, "CLASSES": ["Surprise"]}, "state_dict": source.state_dict()}, path)
    target = create_model("apvit_tiny", num_classes=7, img_size=32).eval()
    missing, unexpected = load_pretrained(target, path)
    assert missing == [] and unexpected == []
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))
    # another dataset: the 7-class head is dropped, the rest loads
    other = create_model("apvit_tiny", num_classes=5, img_size=32)
    missing, _ = load_pretrained(other, path)
    assert sorted(missing) == ["head.fc.bias", "head.fc.weight"]

    # face.evoLVe IR backbone: flat unit numbering, a 4th stage and the face-recognition output layer
    flat, index = {}, 0
    for stage in source.extractor.body:
        for unit in stage:
            flat.update({f"body.{index}.{k}": v for k, v in unit.state_dict().items()})
            index += 1
    flat.update({f"input_layer.{k}": v for k, v in source.extractor.input_layer.state_dict().items()})
    flat[f"body.{index}.res_layer.1.weight"] = torch.zeros(128, 64, 3, 3)
    flat["output_layer.3.weight"] = torch.zeros(512, 25088)
    mapped = apvit.checkpoint_filter_fn(flat, target)
    ext = {f"extractor.{k}": v for k, v in source.extractor.state_dict().items()}
    assert mapped.keys() == ext.keys()
    assert all(torch.equal(mapped[k], ext[k]) for k in ext)

    # a timm ViT (APViT's ViT init): pos_embed split into cls / patch parts and resized 5x5 -> 4x4
    vit_sd = {k.removeprefix("vit."): v for k, v in source.state_dict().items() if k.startswith("vit.blocks")}
    vit_sd.update(
        cls_token=torch.randn(1, 1, 96),
        pos_embed=torch.randn(1, 26, 96),
        **{
            "norm.weight": torch.ones(96),
            "norm.bias": torch.zeros(96),
            "patch_embed.proj.weight": torch.zeros(96, 3, 16, 16),
            "head.weight": torch.zeros(1000, 96),
        },
    )
    mapped = apvit.checkpoint_filter_fn(vit_sd, target)
    assert not any(k.startswith(("vit.patch_embed", "head.", "vit.head", "vit.pos_embed")) for k in mapped)
    torch.testing.assert_close(mapped["vit.cls_pos_embed"], vit_sd["pos_embed"][:, :1])
    assert mapped["vit.patch_pos_embed"].shape == target.vit.patch_pos_embed.shape == (1, 16, 96)
    grid = vit_sd["pos_embed"][:, 1:].reshape(1, 5, 5, 96)
    corner = mapped["vit.patch_pos_embed"].reshape(1, 4, 4, 96)[0, 0, 0]
    # bilinear, align_corners=False: output 0 samples the source at 0.125 in each direction
    expected = (
        0.875**2 * grid[0, 0, 0] + 0.875 * 0.125 * (grid[0, 0, 1] + grid[0, 1, 0]) + 0.125**2 * grid[0, 1, 1]
    )
    torch.testing.assert_close(corner, expected)
    assert set(mapped) - set(target.state_dict()) == set()


# ------------------------------------------------------------------------------------------ ConvNeXt V2


def _small_convnext(ref, **kwargs):
    cfg = ref["config"]
    return create_model("convnextv2_atto", depths=cfg["depths"], dims=cfg["dims"], **kwargs).eval()


def test_convnextv2_official_checkpoint_gives_reference_logits(convnext_ref, tmp_path):
    path = tmp_path / "convnextv2_official.pth"
    save_checkpoint({"model": convnext_ref["official_state_dict"], "epoch": 99}, path)
    model = _small_convnext(convnext_ref, num_classes=5)
    missing, unexpected = load_pretrained(model, path)
    assert missing == [] and unexpected == []
    with torch.no_grad():
        torch.testing.assert_close(model(convnext_ref["input"]), convnext_ref["logits"], atol=1e-5, rtol=1e-5)
    other = _small_convnext(convnext_ref, num_classes=3)
    missing, _ = load_pretrained(other, path)
    assert sorted(missing) == ["head.fc.bias", "head.fc.weight"]


def test_official_fcmae_checkpoint_loads_into_finetune_and_pretrain_models(convnext_ref, tmp_path):
    path = tmp_path / "fcmae_official.pth"
    save_checkpoint({"model": convnext_ref["fcmae_state_dict"]}, path)
    model = _small_convnext(convnext_ref, num_classes=5)
    missing, unexpected = load_pretrained(model, path)
    assert sorted(missing) == ["head.fc.bias", "head.fc.weight", "head.norm.bias", "head.norm.weight"]
    assert unexpected == []
    with torch.no_grad():
        features = model.forward_features(convnext_ref["input"])
    torch.testing.assert_close(features, convnext_ref["features"], atol=1e-5, rtol=1e-5)

    cfg = convnext_ref["config"]
    fcmae = create_model(
        "fcmae_convnextv2_atto",
        img_size=64,
        depths=cfg["depths"],
        dims=cfg["dims"],
        decoder_embed_dim=cfg["decoder_embed_dim"],
    )
    missing, unexpected = load_pretrained(fcmae, path)
    assert missing == [] and unexpected == []
    dec = convnext_ref["fcmae_state_dict"]
    torch.testing.assert_close(fcmae.decoder[0].mlp.grn.weight, dec["decoder.0.grn.gamma"].flatten())
    torch.testing.assert_close(fcmae.decoder[0].conv_dw.weight, dec["decoder.0.dwconv.weight"])


def test_fcmae_forward_loss_and_mask_ratio():
    torch.manual_seed(0)
    model = create_model(
        "fcmae_convnextv2_atto", img_size=128, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), decoder_embed_dim=16
    )
    imgs = torch.randn(3, 3, 128, 128)
    loss, pred, mask = model(imgs, mask_ratio=0.6)
    assert torch.isfinite(loss) and loss.ndim == 0
    assert pred.shape == (3, 16, 32 * 32 * 3) and mask.shape == (3, 16)
    assert mask.sum(dim=1).tolist() == [16 - int(16 * 0.4)] * 3  # 10 of 16 patches masked in every image
    assert not torch.equal(mask[0], mask[1])
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.unpatchify(model.patchify(imgs)).equal(imgs)
    target = model.patchify(imgs)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert model.forward_loss(imgs, target, mask).abs() < 1e-5


def _perturbed_fcmae_and_dense(img_size):
    """A small FCMAE whose biases, norms and GRN are all non-trivial, and the plain network with its encoder."""
    arch = dict(depths=(2, 2, 2, 2), dims=(8, 16, 24, 32))
    model = create_model("fcmae_convnextv2_atto", img_size=img_size, decoder_embed_dim=16, **arch).eval()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    dense = create_model("convnextv2_atto", **arch).eval()
    encoder = {
        k.removeprefix("encoder."): v for k, v in model.state_dict().items() if k.startswith("encoder.")
    }
    dense.load_state_dict(encoder, strict=False)
    # float64: the reference-style init (std 1) gives large activations, float32 rounding would blur the check
    return model.double(), dense.double()


def test_fcmae_masked_encoder_matches_sparse_semantics():
    torch.manual_seed(0)
    model, dense = _perturbed_fcmae_and_dense(96)
    img = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    with torch.no_grad():
        # nothing masked: the plain network
        torch.testing.assert_close(
            model.forward_encoder(img, img.new_zeros(1, 9)), dense.forward_features(img)
        )
        # only the top-left 2x2 patches visible: a sparse network sees exactly the 64 px crop, zero-padded
        mask = img.new_ones(1, 3, 3)
        mask[:, :2, :2] = 0
        out = model.forward_encoder(img, mask.flatten(1))
        torch.testing.assert_close(out[..., :2, :2], dense.forward_features(img[..., :64, :64]))
        assert out[..., 2, :].abs().max() == 0 and out[..., :, 2].abs().max() == 0
        # what hides under the mask never reaches the encoder output
        noisy = img.clone()
        noisy[..., 64:, :] = 100.0
        noisy[..., :, 64:] = -100.0
        assert torch.equal(model.forward_encoder(noisy, mask.flatten(1)), out)


def test_fcmae_grn_pools_over_the_batch_like_minkowski_grn():
    torch.manual_seed(1)
    model, _ = _perturbed_fcmae_and_dense(64)
    a, b = torch.randn(2, 1, 3, 64, 64, dtype=torch.float64)
    mask = torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        alone = model.forward_encoder(a, mask)
        # GRN divides by the mean channel norm, so a batch of copies changes nothing (but eps) ...
        copies = model.forward_encoder(torch.cat([a, a]), mask.repeat(2, 1))[:1]
        torch.testing.assert_close(
            copies, alone, rtol=1e-5, atol=1e-5 * alone.abs().max().item()
        )  # up to GRN eps
        # ... but another image in the batch does: the statistic spans all visible points of the batch
        mixed = model.forward_encoder(torch.cat([a, b]), mask.repeat(2, 1))[:1]
    assert (mixed - alone).abs().max() > 1e-3 * alone.abs().max()


def test_fcmae_checkpoint_loads_into_finetune_model(tmp_path):
    torch.manual_seed(0)
    dims = dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    fcmae = create_model("fcmae_convnextv2_atto", img_size=64, decoder_embed_dim=16, **dims)
    path = tmp_path / "checkpoint-final.pth"
    save_checkpoint(
        {"model": fcmae.state_dict(), "epoch": 1, "config": {"model": "fcmae_convnextv2_atto"}}, path
    )
    model = create_model("convnextv2_atto", num_classes=7, **dims)
    missing, unexpected = load_pretrained(model, path)
    assert sorted(missing) == ["head.fc.bias", "head.fc.weight", "head.norm.bias", "head.norm.weight"]
    assert unexpected == []
    own = model.state_dict()
    for key, value in fcmae.encoder.state_dict().items():
        assert torch.equal(own[key], value), key


def test_convnextv2_factories_build_the_reference_sizes():
    with torch.device("meta"):
        base = create_model("convnextv2_base", num_classes=1000, drop_path_rate=0.1)
        fcmae = create_model("fcmae_convnextv2_base")
    # facebookresearch/ConvNeXt-V2: ConvNeXt V2-Base has 89 M parameters (1000 classes)
    assert round(sum(p.numel() for p in base.parameters()) / 1e6) == 89
    assert [len(s.blocks) for s in base.stages] == [3, 3, 27, 3] and base.num_features == 1024
    assert base.stages[3].blocks[2].drop_path.drop_prob == pytest.approx(0.1)
    head = create_model(
        "convnextv2_atto", num_classes=100, depths=(1, 1, 1, 1), dims=(8, 16, 24, 320)
    ).head.fc
    assert head.weight.std() < 1e-4  # head_init_scale 0.001 as the reference finetuning
    assert (
        isinstance(fcmae, convnextv2.FCMAE)
        and fcmae.proj.out_channels == 512
        and len(fcmae.decoder) == 1
        and fcmae.patch_size == 32
    )
    assert fcmae.pred.out_channels == 32 * 32 * 3 and fcmae.norm_pix_loss
    with pytest.raises(ValueError, match="multiple of 32"):
        create_model("convnextv2_atto", img_size=100)


def test_fcmae_gradients_stay_finite_when_a_channel_is_all_zero():
    torch.manual_seed(0)
    model = create_model("fcmae_convnextv2_atto", img_size=64)
    imgs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # a dead channel: zero weights and bias of one stem output
        model.encoder.stem[0].weight[0].zero_()
        model.encoder.stem[0].bias[0].zero_()
    loss, _, _ = model(imgs, mask_ratio=0.6)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
