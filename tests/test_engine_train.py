"""End to end on tiny models and learnable synthetic data: MAE pretraining, expression finetuning from it, AU
detection with identity adversarial training, identity probing. Real models, loaders, optimizer and MLflow."""

import json

import pytest
import torch
import torch.nn.functional as F
from engine_synthetic import TINY_MAE, TINY_VIT, write_au, write_expression
from mlflow import MlflowClient

from fer.engine import finetune, pretrain, resolve
from fer.engine.finetune import identity_loss, masked_bce
from fer.io import load_checkpoint
from fer.models import create_model

CLASSES = ["disc", "square", "bar"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_train")
    return {
        "root": root,
        "uri": f"sqlite:///{root}/mlflow.db",
        "train": write_expression(root, "train", 24, seed=0),
        "val": write_expression(root, "val", 8, seed=1),
        "test": write_expression(root, "test", 10, seed=2),
    }


def _tracking(data, experiment, run_name, **tags):
    return {
        "uri": data["uri"],
        "experiment": experiment,
        "run_name": run_name,
        "tags": tags,
        "system_metrics": False,
    }


@pytest.fixture(scope="module")
def pretrained(data):
    cfg = resolve("mae_sfer_vit_tiny_pretrain", {
        "model_kwargs": TINY_MAE, "input_size": 32, "batch_size": 16, "accum_iter": 1, "epochs": 5,
        "warmup_epochs": 1, "blr": 0.05, "num_workers": 0, "log_every": 2,
        "data": {"train": [str(data["train"])]}, "output_dir": str(data["root"] / "pre"),
        "tracking": _tracking(data, "pretrain/tiny", "tiny"),
    })  # fmt: skip
    return cfg, pretrain(cfg)


def _mae_loss(model, imgs):
    noise = torch.rand(imgs.shape[0], 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(imgs, mask_ratio=0.75, noise=noise)[0].item()


def test_mae_pretraining_lowers_the_reconstruction_loss(data, pretrained):
    cfg, path = pretrained
    assert path == data["root"] / "pre" / "checkpoint-final.pth" and path.is_file()
    state = load_checkpoint(path)
    assert (
        state["config"]["model"] == "mae_vit_tiny_patch16" and state["epoch"] == 5 and state["step"] == 5 * 4
    )
    assert {"model", "optimizer", "scaler", "rng", "config"} <= set(state)
    from fer.engine.pretrain import pretrain_dataset

    imgs = torch.stack([pretrain_dataset(cfg)[i][0] for i in range(16)])
    torch.manual_seed(0)
    untrained = create_model("mae_vit_tiny_patch16", **TINY_MAE).eval()
    trained = create_model("mae_vit_tiny_patch16", **TINY_MAE).eval()
    trained.load_state_dict(state["model"])
    assert _mae_loss(trained, imgs) < 0.8 * _mae_loss(untrained, imgs)


def test_finetuning_from_the_pretrained_mae_learns_the_classes(data, pretrained):
    out = data["root"] / "ft"
    cfg = resolve("mae_sfer_vit_tiny_finetune", {
        "model_kwargs": TINY_VIT, "input_size": 32, "batch_size": 12, "accum_iter": 2, "epochs": 6,
        "warmup_epochs": 1, "blr": 4e-3, "num_workers": 0, "aa": None, "reprob": 0.25, "mixup": 0.0, "cutmix": 0.0,
        "log_every": 1, "data": {k: str(data[k]) for k in ("train", "val", "test")}, "classes": CLASSES,
        "pretrained": str(pretrained[1]), "output_dir": str(out), "seed": 0,
        "tracking": _tracking(data, "rafdb_tiny", "fold1-seed0", dataset="synthetic", fold=1, seed=0),
    })  # fmt: skip
    metrics = finetune(cfg)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert set(metrics) >= {"acc", "uar", "war", "confusion", "classes", "mlflow_run_id", "checkpoint"}
    assert metrics["classes"] == CLASSES and sum(map(sum, metrics["confusion"])) == 30
    assert metrics["acc"] >= 0.9 and metrics["uar"] >= 0.9
    client = MlflowClient(data["uri"])
    val = [
        m.value
        for m in sorted(client.get_metric_history(metrics["mlflow_run_id"], "val/acc"), key=lambda m: m.step)
    ]
    assert len(val) == 6 and val[-1] > val[0]  # improves over the epochs
    steps = client.get_metric_history(metrics["mlflow_run_id"], "train/grad_norm")
    assert len(steps) == 6 * 3 and all(m.value > 0 for m in steps)  # every optimizer step (log_every 1)


def test_masked_au_and_identity_losses():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    targets = torch.tensor([[1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
    known = targets >= 0
    expected = F.binary_cross_entropy_with_logits(logits[known], targets[known])
    assert torch.allclose(masked_bce(logits, targets), expected)
    id_logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0], [9.0, 9.0, 9.0]])
    ids = torch.tensor([0, 2, -1])  # the last subject is not among the training subjects: ignored
    onehot = F.one_hot(ids[:2], 3).float()
    assert torch.allclose(
        identity_loss(id_logits, ids, "bce"), F.binary_cross_entropy_with_logits(id_logits[:2], onehot)
    )
    assert torch.allclose(identity_loss(id_logits, ids, "ce"), F.cross_entropy(id_logits[:2], ids[:2]))
    assert identity_loss(id_logits, torch.tensor([-1, -1, -1])).item() == 0.0


def test_au_detection_with_identity_adversarial_training_and_identity_probe(data, pretrained):
    root = data["root"]
    subjects = ["F001", "F002", "M001", "M002"]
    train = write_au(root, "au_train", subjects[:3], 16, seed=3)
    test = write_au(root, "au_test", subjects[2:], 8, seed=4, known_subjects=subjects[:3])  # M002 unseen: -1
    cfg = resolve("fmae_iat_bp4d", {
        "model": "vit_tiny_patch16", "model_kwargs": TINY_VIT, "input_size": 32, "batch_size": 12, "epochs": 3,
        "warmup_epochs": 1, "blr": 0.1, "num_workers": 0, "aa": None, "reprob": 0.0, "grad_reverse": 1.0,
        "data": {"train": str(train), "test": str(test)}, "pretrained": str(pretrained[1]),
        "output_dir": str(root / "au"), "tracking": _tracking(data, "bp4d_tiny", "fold1-seed0", fold=1),
    })  # fmt: skip
    metrics = finetune(cfg)
    assert set(metrics["f1"]) == {"AU1", "AU2", "AU4"} and 0 <= metrics["f1_mean"] <= 1
    assert metrics["f1_mean"] == pytest.approx(sum(metrics["f1"].values()) / 3)
    state = load_checkpoint(root / "au" / "checkpoint-final.pth")
    assert state["model"]["ID_head.weight"].shape == (3, 32)  # 3 training subjects behind gradient reversal
    assert state["config"]["num_subjects"] == 3 and state["config"]["aus"] == ["AU1", "AU2", "AU4"]
    artifacts = {a.path for a in MlflowClient(data["uri"]).list_artifacts(metrics["mlflow_run_id"], "plots")}
    assert artifacts == {"plots/au_f1.png"}

    # identity probe on the frozen AU encoder: the background tint identifies the subject
    probe_train = write_au(root, "id_train", subjects[:3], 16, seed=5)
    probe_test = write_au(root, "id_test", subjects[:3], 8, seed=6)
    cfg = resolve("fmae_id_probe_bp4d", {
        "model": "vit_tiny_patch16", "model_kwargs": TINY_VIT, "input_size": 32, "batch_size": 12, "epochs": 8,
        "warmup_epochs": 1, "blr": 0.1, "num_workers": 0, "aa": None, "reprob": 0.0,
        "data": {"train": str(probe_train), "test": str(probe_test)},
        "pretrained": str(root / "au" / "checkpoint-final.pth"), "output_dir": str(root / "probe"),
        "tracking": _tracking(data, "bp4d_id_probe", "seed0"),
    })  # fmt: skip
    probe = finetune(cfg)
    assert probe["acc"] >= 0.8 and len(probe["confusion"]) == 3
    final = load_checkpoint(root / "probe" / "checkpoint-final.pth")["model"]
    assert torch.equal(final["encoder.blocks.0.attn.qkv.weight"], state["model"]["blocks.0.attn.qkv.weight"])
    assert "head.1.bias" not in final  # FMAE-IAT's probe: bias-free classifier
