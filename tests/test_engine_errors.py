"""The engine's clear errors: CUDA asked for without CUDA, a batch that does not divide, a NaN loss, bad configs."""

import pytest
import torch
from engine_synthetic import TINY_MAE, TINY_VIT, write_expression

from fer.engine import ConfigError, DeviceError, NonFiniteLossError, finetune, pretrain, resolve
from fer.engine.checkpoint import LAST
from fer.engine.distributed import per_process_batch, resolve_device
from fer.io import load_checkpoint


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_errors")
    write_expression(root, "train", 8, seed=0)
    write_expression(root, "test", 2, seed=1)
    return root


def _cfg(root, out, **overrides):
    base = {
        "model_kwargs": TINY_VIT, "input_size": 32, "batch_size": 4, "accum_iter": 1, "epochs": 2,
        "warmup_epochs": 0, "num_workers": 0, "aa": None, "reprob": 0.0, "mixup": 0.0, "cutmix": 0.0,
        "data": {"train": str(root / "train.csv"), "test": str(root / "test.csv")},
        "classes": ["disc", "square", "bar"], "output_dir": str(root / out), "resume": False,
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db", "experiment": "errors", "system_metrics": False},
    }  # fmt: skip
    return resolve("mae_sfer_vit_tiny_finetune", {**base, **overrides})


def test_cuda_without_cuda_says_so_and_how_to_fix_it(root):
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda" and resolve_device("auto").type == "cuda"
        return
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(
        DeviceError, match=r"device 'cuda' was asked for, but CUDA is not available.*device: cpu"
    ):
        finetune(_cfg(root, "cuda", device="cuda"))


def test_global_batch_that_does_not_divide_is_refused(root):
    assert per_process_batch(4, None, 2, 8) == 4  # batch_size is per process unless a global batch is given
    assert per_process_batch(4, 24, 2, 3) == 4
    with pytest.raises(
        DeviceError, match=r"global_batch_size 10 does not divide across 1 processes x accum_iter 3"
    ):
        finetune(_cfg(root, "batch", global_batch_size=10, accum_iter=3))
    with pytest.raises(DeviceError, match=r"multiple of 4"):
        per_process_batch(4, 30, 2, 2)


def test_nan_loss_stops_with_the_step_after_saving_the_last_good_checkpoint(root):
    # An absurd learning rate: the first step is finite, its update overflows the next forward pass.
    with pytest.raises(
        NonFiniteLossError, match=r"loss is nan at step 1 \(epoch 0.*last good checkpoint: .*step 1"
    ):
        finetune(_cfg(root, "nan", lr=1e30))
    state = load_checkpoint(root / "nan" / LAST)
    assert state["step"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_config_mistakes_name_the_key(root):
    cfg = _cfg(root, "bad")
    with pytest.raises(ConfigError, match="'data.test' is required"):
        finetune({**cfg, "data": {"train": cfg["data"]["train"]}})
    with pytest.raises(
        ConfigError, match=r"built for 32x32 px but input_size is 64; set model_kwargs.img_size: 64"
    ):
        finetune({**cfg, "input_size": 64})
    with pytest.raises(ConfigError, match="not a pretraining kind"):
        pretrain(cfg)
    with pytest.raises(ConfigError, match="no full optimizer step of 32 x accum_iter 1"):
        finetune({**cfg, "batch_size": 32})
    with pytest.raises(ConfigError, match="`classes`"):
        finetune({**cfg, "classes": None})
    pre = resolve("mae_sfer_vit_tiny_pretrain", {"model_kwargs": TINY_MAE, "input_size": 32, "output_dir": cfg[
        "output_dir"], "data": {"train": [str(root / "missing.csv")]}})  # fmt: skip
    with pytest.raises(ConfigError, match="missing.csv: pretraining list not found"):
        pretrain(pre)
