"""The other model families through their seeds' recipes: ConvNeXt V2 (group layer decay, EMA evaluated, gradient
accumulation) and APViT (SGD, gradient clipping, class-balanced oversampling, its augmentation)."""

import pytest
import torch
from engine_synthetic import write_expression

from fer.engine import finetune, resolve
from fer.io import load_checkpoint

CLASSES = ["disc", "square", "bar"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_families")
    write_expression(root, "train", 8, size=64, seed=0)
    write_expression(root, "test", 2, size=64, seed=1)
    return root


def _run(root, recipe, out, **overrides):
    cfg = resolve(recipe, {
        "input_size": 64, "batch_size": 8, "epochs": 2, "warmup_epochs": 1, "num_workers": 0,
        "data": {"train": str(root / "train.csv"), "val": str(root / "test.csv"), "test": str(root / "test.csv")},
        "classes": CLASSES, "output_dir": str(root / out), "log_every": 1,
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db", "experiment": out, "system_metrics": False},
        **overrides,
    })  # fmt: skip
    return finetune(cfg), load_checkpoint(root / out / "checkpoint-final.pth")


def test_convnextv2_with_ema_and_group_layer_decay(root):
    metrics, state = _run(
        root, "mae_sfer_convnextv2_base_finetune_rafdb", "convnext", model="convnextv2_atto",
        model_kwargs={"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128]}, accum_iter=2, batch_size=4, aa=None,
        model_ema_decay=0.5,
    )  # fmt: skip
    assert state["step"] == 2 * 3  # 24 images / (4 x 2 accum) per epoch
    assert set(metrics["ema"]) == {"acc", "uar", "war"}  # model_ema_eval: the EMA weights are evaluated too
    ema = {k.removeprefix("module."): v for k, v in state["ema"].items()}
    assert ema.keys() == state["model"].keys()
    moved = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.equal(v, ema[k])]
    assert moved  # an average, not a copy
    scales = sorted({round(g["lr_scale"], 8) for g in state["optimizer"]["param_groups"]})
    assert scales[-1] == 1.0 and scales[0] == pytest.approx(0.6**13)  # 12 groups + head (ConvNeXt-V2 'group')


def test_apvit_with_sgd_clipping_and_class_balancing(root):
    metrics, state = _run(root, "apvit_raf", "apvit", model="apvit_tiny", class_balanced=0.5)
    # 8 per class -> f = 1/3 each, r = sqrt(0.5 / (1/3)) = 1.22 -> every sample twice: 48 samples, 6 steps
    assert state["step"] == 2 * 6 and 0 <= metrics["acc"] <= 1
    groups = state["optimizer"]["param_groups"]
    assert all(g["momentum"] == 0.9 for g in groups) and {g["weight_decay"] for g in groups} == {0.0, 5e-4}
    assert all("momentum_buffer" in s for s in state["optimizer"]["state"].values())
