"""Evaluation: predictions over a dataset (sharded over processes, gathered in order) and the task metrics.

Video test-time augmentation follows sunlicai/MAE-DFER `engine_for_finetuning.merge`: each of the
test_clips x test_crops views is classified, softmax-ed, and the probabilities are averaged per video. AU
detection thresholds the sigmoid at 0.5 (logits at 0), FMAE-IAT's `AU_evaluate`. Metrics come from fer.metrics.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fer import metrics as fm

from .distributed import DistEnv, ShardSampler, all_gather_objects

log = logging.getLogger(__name__)


def _logits(out) -> torch.Tensor:
    """The task logits of a model output: FMAE-IAT models return (au_logits, id_logits)."""
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: Dataset,
    env: DistEnv,
    batch_size: int,
    num_workers: int = 0,
    autocast=contextlib.nullcontext,
    softmax: bool = True,
    views: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(outputs [N, C], the other fields of every item stacked) in dataset order, on every process.

    Each process runs its shard (indices rank, rank + world, ...). With `views`, inputs carry a views axis
    ([B, V, C, T, H, W]: test clips x crops) and the softmax probabilities are averaged over it; otherwise
    outputs are softmax probabilities (softmax=True) or raw logits.
    """
    was_training = model.training
    model.eval()
    sampler = ShardSampler(len(dataset), env.world_size, env.rank)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )
    outputs, fields = [], []
    for batch in loader:
        x, rest = batch[0].to(env.device, non_blocking=True), [np.asarray(f) for f in batch[1:]]
        b = x.shape[0]
        if views:
            x = x.flatten(0, 1)
        with autocast():
            out = _logits(model(x)).float()
        if views:
            out = F.softmax(out, dim=-1).reshape(b, -1, out.shape[-1]).mean(dim=1)
        elif softmax:
            out = F.softmax(out, dim=-1)
        outputs.append(out.cpu().numpy())
        fields.append(rest)
    model.train(was_training)
    mine = (sampler.indices, np.concatenate(outputs) if outputs else None,
            [np.concatenate(f) for f in zip(*fields)] if fields else None)  # fmt: skip
    parts = [p for p in all_gather_objects(mine) if p[1] is not None]
    order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
    out = np.concatenate([p[1] for p in parts])[order]
    rest = [np.concatenate([p[2][i] for p in parts])[order] for i in range(len(parts[0][2]))]
    return out, rest


def evaluate_expression(
    model, dataset, classes, env, batch_size, num_workers=0, autocast=contextlib.nullcontext, views=False
):
    """acc, uar, war, confusion, classes of a classifier on an expression dataset ((x, label) items)."""
    probs, (labels,) = predict(model, dataset, env, batch_size, num_workers, autocast, views=views)
    return fm.expression_metrics(labels, probs, classes)


def evaluate_au(model, dataset, aus, env, batch_size, num_workers=0, autocast=contextlib.nullcontext):
    """f1_mean and per-AU f1 of an AU detector ((x, aus, subject_id) items; -1 labels ignored)."""
    logits, (targets, _) = predict(model, dataset, env, batch_size, num_workers, autocast, softmax=False)
    return fm.au_metrics(logits, targets.astype(np.int64), list(aus), threshold=0.0)


def evaluate_identity(model, dataset, env, batch_size, num_workers=0, autocast=contextlib.nullcontext):
    """Identity probe accuracy on (x, aus, subject_id) items; subjects unseen in training (-1) are left out."""
    probs, (_, subject_ids) = predict(model, dataset, env, batch_size, num_workers, autocast)
    known = subject_ids >= 0
    if not known.any():
        raise ValueError(
            f"{getattr(dataset, 'csv_path', 'test set')}: no test subject appears in the training split "
            f"(every subject_id is -1); the identity probe needs a split by images, not by subjects"
        )
    if (~known).any():
        log.warning(
            "identity probe: %d test samples of subjects absent from training left out", int((~known).sum())
        )
    classes = [str(i) for i in range(probs.shape[1])]
    return fm.expression_metrics(subject_ids[known], probs[known], classes)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike, test: str | os.PathLike, device: str = "auto", use_ema: bool = False
) -> dict:
    """Metrics of a finetuned checkpoint of this engine on an annotation file (`fer evaluate`).

    The model, its sizes and the test-time settings come from the checkpoint's own config.
    """
    from fer.io import load_checkpoint

    from .distributed import cleanup, init_distributed
    from .finetune import build_model, eval_dataset, task_of

    state = load_checkpoint(checkpoint)
    cfg = state.get("config") if isinstance(state, dict) else None
    if not isinstance(cfg, dict) or "kind" not in cfg:
        raise ValueError(
            f"{checkpoint}: not a checkpoint of fer's finetuning (no 'config' with the recipe); evaluate a "
            f"checkpoint-final.pth written by `fer finetune`"
        )
    env = init_distributed(device)
    try:
        model = build_model(cfg)
        weights = state["model"]
        if use_ema:
            if "ema" not in state:
                raise ValueError(f"{checkpoint}: holds no EMA weights (the run had model_ema: false)")
            weights = {k.removeprefix("module."): v for k, v in state["ema"].items()}
        model.load_state_dict(weights)
        model.to(env.device)
        dataset = eval_dataset(cfg, Path(test), final=True)
        bs = int(cfg.get("batch_size", 32))
        task = task_of(cfg)
        if task == "au":
            return evaluate_au(model, dataset, cfg["aus"], env, bs)
        if task == "id_probe":
            return evaluate_identity(model, dataset, env, bs)
        views = int(cfg.get("test_clips") or 1) * int(cfg.get("test_crops") or 1) > 1 and bool(
            cfg.get("num_frames")
        )
        return evaluate_expression(model, dataset, cfg["classes"], env, bs, views=views)
    finally:
        cleanup(env)
