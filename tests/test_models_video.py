"""Video models: LGI-Former / VideoMAE finetuning and pretraining, against MAE-DFER's reference code.

The fixture tests/fixtures/ref_maedfer_video_tiny.pt was produced by running sunlicai/MAE-DFER's own
`modeling_finetune.py`, `modeling_pretrain.py`, `masking_generator.py` and `engine_for_pretraining.train_one_epoch`
(timm 1.0.31, torch 2.14, CPU) on tiny configurations with random weights (stored in fp16, so exact), random clips
and the reference's masks. It also holds the key/shape lists of the four full-size reference models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fer.io import load_checkpoint, save_checkpoint
from fer.models import CheckpointMismatchError, create_model, load_pretrained
from fer.models._flops import flops_per_sample
from fer.models.video_layers import TubeMaskingGenerator, tube_mask
from fer.models.video_mae import PretrainVideoMAE, VideoTransformer, checkpoint_filter_fn

FIXTURE = Path(__file__).parent / "fixtures" / "ref_maedfer_video_tiny.pt"
FINETUNE_TINY = dict(
    img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, all_frames=8, num_classes=5
)
PRETRAIN_TINY = dict(
    img_size=32, patch_size=8, encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=4,
    decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2,
)  # fmt: skip
# Demo size through the registered factories (16 frames would also work; 8 keeps it fast).
DEMO = dict(img_size=32, all_frames=8, embed_dim=32, depth=2, num_heads=4)


@pytest.fixture(scope="module")
def ref():
    return load_checkpoint(FIXTURE)


def _f32(state_dict):
    return {k: v.float() for k, v in state_dict.items()}


# (a) keys and shapes of the full-size models equal the reference's
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("vit_base_dim512_no_depth_patch16_160", dict(num_classes=7)),
        ("pretrain_videomae_base_dim512_no_depth_patch16_160", {}),
        ("vit_base_patch16_160", dict(num_classes=7)),
        ("pretrain_videomae_base_patch16_160", {}),
    ],
)
def test_full_size_state_dict_matches_reference(ref, name, kwargs):
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = ref["full_size_shapes"][name]
    assert sorted(set(ours) ^ set(expected)) == []
    assert ours == expected


# (b) numerical equivalence with the reference code
@pytest.mark.parametrize("fused_attn", [True, False])
def test_lgi_finetune_matches_reference(ref, fused_attn):
    model = VideoTransformer(
        attn_type="local_global", lg_region_size=(2, 2, 2), fused_attn=fused_attn, **FINETUNE_TINY
    )
    model.load_state_dict(_f32(ref["lgi_finetune"]["state_dict"]))
    model.eval()
    clip = ref["videos"].float()[:, :, :8]
    for kind, expected in ref["lgi_finetune"]["logits"].items():
        model.lg_classify_token_type = kind
        torch.testing.assert_close(model(clip), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fused_attn", [True, False])
def test_joint_finetune_matches_reference(ref, fused_attn):
    model = VideoTransformer(attn_type="joint", fused_attn=fused_attn, **FINETUNE_TINY).eval()
    model.load_state_dict(_f32(ref["joint_finetune"]["state_dict"]))
    torch.testing.assert_close(model(ref["videos"].float()[:, :, :8]), ref["joint_finetune"]["logits"])


def test_lgi_pretrain_loss_and_prediction_match_reference(ref):
    r = ref["lgi_pretrain"]
    model = PretrainVideoMAE(
        attn_type="local_global", lg_region_size=(2, 2, 4), use_frame_diff_target=True, **PRETRAIN_TINY
    )
    model.load_state_dict(_f32(r["state_dict"]))
    model.eval()
    clip = ref["videos"].float()
    loss, pred, mask = model(clip, r["mask"])
    assert pred.shape == (2, int(r["mask"][0].sum()), 3 * 2 * 8 * 8) and torch.equal(mask, r["mask"])
    torch.testing.assert_close(pred[:, :16], r["pred_first16"], rtol=1e-5, atol=1e-5)
    assert loss.item() == pytest.approx(r["loss_diff"], rel=1e-5)
    model.target_diff_weight = 0.3  # weighted appearance / motion split
    assert model(clip, r["mask"])[0].item() == pytest.approx(r["loss_diff_weighted"], rel=1e-5)
    model.target_diff_weight, model.use_frame_diff_target = None, False  # pixels only (VideoMAE target)
    assert model(clip, r["mask"])[0].item() == pytest.approx(r["loss_pixel"], rel=1e-5)
    # The reference pairs LGI tokens (region order) with raster-order decoder positions; the fix changes pred.
    model.reference_token_order = False
    assert not torch.allclose(model(clip, r["mask"])[1][:, :16], r["pred_first16"], atol=1e-4)


def test_joint_pretrain_matches_reference(ref):
    r = ref["joint_pretrain"]
    model = PretrainVideoMAE(attn_type="joint", **PRETRAIN_TINY).eval()
    model.load_state_dict(_f32(r["state_dict"]))
    for order in (True, False):  # no region reordering with joint attention
        model.reference_token_order = order
        loss, pred, _ = model(ref["videos"].float(), r["mask"])
        torch.testing.assert_close(pred[:, :16], r["pred_first16"], rtol=1e-5, atol=1e-5)
        assert loss.item() == pytest.approx(r["loss_pixel"], rel=1e-5)


# (c) compute: LGI-Former finetuning needs ~38% fewer FLOPs than VideoMAE ViT-B (MAE-DFER paper: 50G vs 81G)
def test_lgi_former_flops_reduction():
    with torch.device("meta"):
        lgi = create_model("vit_base_dim512_no_depth_patch16_160", num_classes=7)
        vit = create_model("vit_base_patch16_160", num_classes=7)
    f_lgi = flops_per_sample(lgi, (3, 16, 160, 160))
    f_vit = flops_per_sample(vit, (3, 16, 160, 160))
    reduction = 1 - f_lgi / f_vit
    print(f"LGI-Former {f_lgi / 2e9:.1f} GMACs, ViT-B {f_vit / 2e9:.1f} GMACs, reduction {reduction:.1%}")
    assert 0.33 < reduction < 0.43
    # FlopCounterMode counts multiply and add; the paper's GFLOPs are multiply-accumulates.
    assert f_lgi / 2e9 == pytest.approx(50, rel=0.05) and f_vit / 2e9 == pytest.approx(81, rel=0.05)


def test_flops_per_sample_leaves_model_usable():
    model = create_model("vit_base_dim512_no_depth_patch16_160", lg_region_size=(2, 2, 2), **DEMO).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert flops_per_sample(model, (3, 8, 32, 32)) > 0
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

    class PlainAttribute(torch.nn.Module):  # a tensor outside parameters and buffers cannot go to meta
        def __init__(self):
            super().__init__()
            self.fc, self.offset = torch.nn.Linear(8, 4), torch.ones(8)

        def forward(self, x):
            return self.fc(x + self.offset)

    assert flops_per_sample(PlainAttribute(), (8,)) == 2 * 8 * 4


# (d) pretraining checkpoint -> finetuning model, and the other checkpoint layouts
def _tiny_pretrain(name="pretrain_videomae_base_dim512_no_depth_patch16_160", **kw):
    return create_model(name, **DEMO, **kw)


def test_pretrain_to_finetune_through_load_pretrained(tmp_path):
    torch.manual_seed(0)
    pre = _tiny_pretrain(lg_region_size=(2, 2, 2)).eval()
    path = tmp_path / "checkpoint.pth"
    save_checkpoint({"model": pre.state_dict(), "config": {"model": pre.fer_model_name}}, path)
    ft = create_model(
        "vit_base_dim512_no_depth_patch16_160", num_classes=3, lg_region_size=(2, 2, 2), **DEMO
    ).eval()
    missing, unused = load_pretrained(ft, path)
    assert sorted(missing) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert unused == []  # the filter dropped decoder, mask_token, encoder_to_decoder and the encoder's norm
    kept = checkpoint_filter_fn(pre.state_dict(), ft)
    assert set(kept) == set(ft.state_dict()) - {"fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"}
    assert torch.equal(ft.lg_region_tokens, pre.encoder.lg_region_tokens)
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():  # same encoder: the finetune tokens, normed, are the pretraining encoder's output
        torch.testing.assert_close(pre.encoder.norm(ft.encode(clip)[0]), pre.encoder.encode(clip)[0])


def test_finetuned_checkpoint_with_other_classes_and_ddp_prefix(tmp_path):
    src = create_model(
        "vit_base_dim512_no_depth_patch16_160", num_classes=7, lg_region_size=(2, 2, 2), **DEMO
    )
    path = tmp_path / "finetuned.pth"
    save_checkpoint({"model": {f"module.{k}": v for k, v in src.state_dict().items()}, "epoch": 3}, path)
    dst = create_model(
        "vit_base_dim512_no_depth_patch16_160", num_classes=5, lg_region_size=(2, 2, 2), **DEMO
    )
    missing, _ = load_pretrained(dst, path)
    assert sorted(missing) == ["head.bias", "head.weight"] and torch.equal(
        dst.fc_norm.weight, src.fc_norm.weight
    )
    same = create_model(
        "vit_base_dim512_no_depth_patch16_160", num_classes=7, lg_region_size=(2, 2, 2), **DEMO
    )
    assert load_pretrained(same, path)[0] == [] and torch.equal(same.head.weight, src.head.weight)


def test_videomae_checkpoint_into_plain_vit_and_wrong_family_refused(tmp_path):
    pre = _tiny_pretrain("pretrain_videomae_base_patch16_160")
    path = tmp_path / "videomae.pth"
    save_checkpoint({"module": {f"module.{k}": v for k, v in pre.state_dict().items()}}, path)  # DDP-saved
    vit = create_model("vit_base_patch16_160", num_classes=4, **DEMO)
    missing, _ = load_pretrained(vit, path)
    assert sorted(missing) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert torch.equal(vit.blocks[1].attn.qkv.weight, pre.encoder.blocks[1].attn.qkv.weight)
    lgi = create_model("vit_base_dim512_no_depth_patch16_160", lg_region_size=(2, 2, 2), **DEMO)
    with pytest.raises(CheckpointMismatchError, match="does not fit"):
        load_pretrained(lgi, path)


# (e) mixed precision and compilation
def test_bf16_autocast_cpu():
    torch.manual_seed(0)
    ft = create_model("vit_base_dim512_no_depth_patch16_160", lg_region_size=(2, 2, 2), **DEMO).eval()
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        ref_features = ft.forward_features(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = ft.forward_features(clip)
            tokens = ft.encode(clip)[0]
    assert tokens.dtype == torch.bfloat16  # the residual stream really ran in bf16
    torch.testing.assert_close(features.float(), ref_features, rtol=0.1, atol=0.1)
    pre = _tiny_pretrain(lg_region_size=(2, 2, 2)).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, _ = pre(clip)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert pre.encoder.lg_region_tokens.grad is not None and pre.mask_token.grad is not None


@pytest.mark.parametrize("attn_type, region", [("local_global", (2, 2, 2)), ("joint", (2, 5, 10))])
def test_compiled_matches_eager(attn_type, region):
    # aot_eager: dynamo + AOT autograd trace the whole graph (fullgraph) without the minute of C++ codegen.
    torch.manual_seed(0)
    ft = create_model(
        "vit_base_dim512_no_depth_patch16_160", attn_type=attn_type, lg_region_size=region, **DEMO
    )
    ft.eval()
    clip = torch.randn(2, 3, 8, 32, 32)
    compiled = torch.compile(ft, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(clip), ft(clip))


@pytest.mark.slow
def test_inductor_compiled_matches_eager():
    torch.manual_seed(0)
    ft = create_model("vit_base_dim512_no_depth_patch16_160", lg_region_size=(2, 2, 2), **DEMO).eval()
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(ft)(clip), ft(clip), rtol=1e-4, atol=1e-4)


# masks, targets, validation
def test_tube_mask_same_in_every_slice_and_balanced_per_window():
    g = torch.Generator().manual_seed(0)
    mask = tube_mask(3, (8, 10, 10), 0.9, window=(5, 10), generator=g).reshape(3, 8, 10, 10)
    assert torch.equal(mask, mask[:, :1].expand_as(mask))
    assert mask[:, 0, :5].sum((1, 2)).tolist() == [45] * 3 and mask[:, 0, 5:].sum((1, 2)).tolist() == [45] * 3
    plain = TubeMaskingGenerator((8, 10, 10), 0.9)(g)
    assert plain.shape == (800,) and int(plain.sum()) == 8 * 90
    assert not torch.equal(mask[0], mask[1])
    with pytest.raises(ValueError, match="does not divide"):
        TubeMaskingGenerator((8, 10, 10), 0.9, window=(3, 10))


def test_pretrain_draws_fitting_masks_and_rejects_unbalanced_ones():
    pre = _tiny_pretrain(lg_region_size=(2, 1, 2))  # 4 regions of the 4x2x2 token grid, mask windows 1x2
    assert pre.grid_size == (4, 2, 2)
    clip = torch.randn(2, 3, 8, 32, 32)
    loss, pred, mask = pre(clip, mask_ratio=0.5)
    assert mask.shape == (2, 16) and mask.sum(1).tolist() == [8, 8] and pred.shape[1] == 8
    bad = torch.zeros(2, 16, dtype=torch.bool)
    bad[:, [0, 1, 4, 5]] = True  # region 0 (slices 0-1, row 0) fully hidden, the others fully visible
    with pytest.raises(ValueError, match="same number of visible tokens"):
        pre(clip, bad)
    ragged = torch.zeros(2, 16, dtype=torch.bool)
    ragged[0, 0] = True
    with pytest.raises(ValueError, match="same number of tokens"):
        pre(clip, ragged)


def test_region_size_must_divide_token_grid():
    with pytest.raises(
        ValueError, match=r"lg_region_size \(2, 5, 10\) does not divide the token grid \(4, 2, 2\)"
    ):
        create_model("vit_base_dim512_no_depth_patch16_160", **DEMO)
    with pytest.raises(ValueError, match="lg_classify_token_type"):
        create_model(
            "vit_base_dim512_no_depth_patch16_160",
            lg_classify_token_type="cls",
            lg_region_size=(2, 2, 2),
            **DEMO,
        )
    with pytest.raises(ValueError, match="model was built for 8x32x32"):
        create_model("vit_base_patch16_160", **DEMO)(torch.randn(1, 3, 16, 32, 32))


def test_reconstruct_inverts_target_for_a_perfect_prediction():
    pre = _tiny_pretrain(lg_region_size=(2, 1, 2))
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None, None]
    # slow motion: the second frame of every tubelet is the first one plus a little noise
    pixels = torch.rand(2, 3, 4, 32, 32).repeat_interleave(2, dim=2)
    pixels = (pixels + 0.01 * torch.randn_like(pixels)).clamp(0, 1)
    clip = (pixels - mean) / std
    mask = pre.make_mask(2)
    perfect = pre.target(clip)[mask].reshape(2, -1, pre.num_outputs)
    torch.testing.assert_close(pre.reconstruct(clip, perfect, mask), pixels, rtol=1e-4, atol=1e-4)
    # the motion half of the target is the frame difference inside each tubelet
    target = pre.target(clip).reshape(2, 16, 2, -1)
    assert target[:, :, 1].abs().mean() < 0.1 * target[:, :, 0].abs().mean()
