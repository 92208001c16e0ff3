"""Video path on a tiny LGI-Former: MAE-DFER pretraining (part-window tube masks, appearance + motion target),
finetuning from it with mixup / cutmix on clips, test-time clips x crops averaging, `evaluate_checkpoint`."""

import pytest
import torch
from engine_synthetic import write_video

from fer.engine import evaluate_checkpoint, finetune, pretrain, resolve
from fer.engine.distributed import DistEnv
from fer.engine.evaluate import predict
from fer.engine.finetune import build_model, eval_dataset
from fer.io import load_checkpoint

SIZE = dict(
    img_size=32, patch_size=8, all_frames=4, embed_dim=32, depth=2, num_heads=2, lg_region_size=[2, 2, 2]
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_video")
    return (
        root,
        write_video(root, "train", 8, frames=10, seed=0),
        write_video(root, "test", 3, frames=10, seed=1),
    )


def _common(root, out):
    return {
        "input_size": 32, "num_frames": 4, "sampling_rate": 2, "batch_size": 4, "accum_iter": 1, "epochs": 2,
        "warmup_epochs": 1, "num_workers": 0, "output_dir": str(root / out), "log_every": 1,
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db", "experiment": out, "system_metrics": False},
    }  # fmt: skip


def test_video_mae_pretrain_then_finetune_with_clip_and_crop_averaging(clips):
    root, train, test = clips
    pre_cfg = resolve("mae_dfer_pretrain_voxceleb2", {
        **_common(root, "pre"), "blr": 1e-2, "data": {"train": [str(train)]},
        "model_kwargs": {**SIZE, "decoder_embed_dim": 16, "decoder_num_heads": 2, "decoder_depth": 1},
    })  # fmt: skip
    checkpoint = pretrain(pre_cfg)
    state = load_checkpoint(checkpoint)
    assert state["step"] == 2 * 4 and any(k.startswith("encoder.blocks.1.third_attn") for k in state["model"])

    cfg = resolve("mae_dfer_finetune_dfew", {
        **_common(root, "ft"), "blr": 1e-2, "model_kwargs": SIZE, "aa": None, "reprob": 0.25,
        "mixup": 0.8, "cutmix": 1.0, "test_clips": 2, "test_crops": 2, "classes": ["right", "down"],
        "data": {"train": str(train), "val": str(test), "test": str(test)}, "pretrained": str(checkpoint),
    })  # fmt: skip
    metrics = finetune(cfg)
    assert sum(map(sum, metrics["confusion"])) == 6 and 0 <= metrics["uar"] <= 1

    # the test set gives [V, 3, T, H, W] views (2 clips x 2 crops); their softmax mean is the prediction
    final = load_checkpoint(root / "ft" / "checkpoint-final.pth")
    model = build_model(final["config"])
    model.load_state_dict(final["model"])
    test_set = eval_dataset(final["config"], test, final=True)
    x, label = test_set[0]
    assert x.shape == (4, 3, 4, 32, 32)
    probs, (labels,) = predict(model, test_set, DistEnv(), batch_size=3, views=True)
    model.eval()
    with torch.no_grad():
        by_hand = torch.softmax(model(x), dim=-1).mean(dim=0)
    assert torch.allclose(torch.from_numpy(probs[0]), by_hand, atol=1e-5) and labels[0] == label
    assert evaluate_checkpoint(root / "ft" / "checkpoint-final.pth", test, device="cpu") == {
        k: v for k, v in metrics.items() if k not in ("mlflow_run_id", "checkpoint")}  # fmt: skip
