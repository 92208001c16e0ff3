"""Finetuning: expressions (images, videos), AU detection with identity adversarial training, identity probing.

Losses follow the seeds: facebookresearch/mae `main_finetune.py` (timm Mixup / CutMix with SoftTargetCrossEntropy,
else LabelSmoothingCrossEntropy or cross-entropy; random erasing inside the image transform), MAE-DFER
`run_class_finetuning.py` (the same on [B, C, T, H, W] clips, CutMix boxes in H x W), FMAE-IAT
`BP4D_finetune.py` (BCEWithLogitsLoss on the AUs, here with -1 = unknown masked out; with grad_reverse != 0 the
model also returns identity logits behind its gradient reversal layer and their loss is added: BCE on one-hot
subject ids as the seed computes it, or cross-entropy) and its `BP4D_ID_linear_prob` branch (frozen encoder,
linear classifier on subject ids). Optional EMA of the weights (timm ModelEmaV3), as ConvNeXt-V2's
`--model_ema`. Metrics: fer.metrics, written to <output_dir>/metrics.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from torch.utils.data import Dataset, Subset
from torchvision import transforms as T

from fer.data import (
    AUImageDataset,
    ExpressionImageDataset,
    VideoClipDataset,
    image_eval_transform,
    image_train_transform,
    video_train_transform,
)
from fer.io import write_json
from fer.models import create_model, load_pretrained
from fer.models.heads import LinearProbe

from .distributed import all_gather_objects, cleanup
from .evaluate import evaluate_au, evaluate_expression, evaluate_identity
from .loop import ConfigError, Context, Trainer, require, setup, to_device

log = logging.getLogger(__name__)

TASKS = {"finetune": "expression", "au": "au", "id_probe": "id_probe"}


def task_of(cfg: dict) -> str:
    if cfg["kind"] not in TASKS:
        raise ConfigError(
            f"recipe kind {cfg['kind']!r} is not a finetuning kind ({', '.join(TASKS)}); use pretrain()"
        )
    return TASKS[cfg["kind"]]


# -- labels ----------------------------------------------------------------------------------------------------
def resolve_labels(cfg: dict, train_set: Dataset | None = None) -> dict:
    """cfg with `classes` (expression), `aus` (AU names from the table) and `num_subjects` filled in."""
    cfg = dict(cfg)
    task = task_of(cfg)
    if task == "expression" and not cfg.get("classes"):
        if not cfg.get("num_classes"):
            raise ConfigError(
                "expression finetuning needs `classes` (class names, index = label) or `num_classes`"
            )
        cfg["classes"] = [str(i) for i in range(int(cfg["num_classes"]))]
    if task in ("au", "id_probe") and train_set is not None:
        table = list(train_set.aus)
        if cfg.get("aus"):
            given = [a if isinstance(a, str) else f"AU{a}" for a in cfg["aus"]]
            if given != table:
                raise ConfigError(
                    f"{train_set.csv_path}: AU columns {table} differ from the config's aus {given}; regenerate the "
                    f"annotation or fix `aus`"
                )
        cfg["aus"] = table
        cfg["num_subjects"] = int(train_set.num_subjects)
    return cfg


# -- data ------------------------------------------------------------------------------------------------------
def apvit_train_transform(input_size: int, reprob: float = 0.5) -> T.Compose:
    """APViT configs/_base_/datasets/RAF.py train pipeline (mmcls ops as torchvision ones)."""
    return T.Compose([
        T.RandomApply([T.RandomRotation(6)], p=0.5),
        T.RandomResizedCrop(input_size, scale=(0.8, 1.0), ratio=(1.0, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomGrayscale(0.2),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.ToTensor(),
        T.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
        T.RandomErasing(p=reprob, scale=(0.02, 0.33), ratio=(0.3, 3.3), value="random"),
    ])  # fmt: skip


def _image_transform(cfg: dict, train: bool):
    size, task = int(cfg["input_size"]), task_of(cfg)
    if train and cfg.get("augment") == "apvit":
        return apvit_train_transform(size, float(cfg.get("reprob") or 0))
    if train:
        return image_train_transform(
            size,
            auto_augment=cfg.get("aa"),
            reprob=float(cfg.get("reprob") or 0),
            color_jitter=cfg.get("color_jitter"),
            scale=tuple(cfg.get("crop_scale") or (0.08, 1.0)),
        )
    # FMAE-IAT evaluates AUs on the whole (square) face, APViT resizes to 112; MAE resizes + center-crops.
    whole = task != "expression" or cfg.get("augment") == "apvit"
    crop_pct = cfg.get("eval_crop_pct") or (1.0 if whole else None)
    return image_eval_transform(size, crop_pct=crop_pct)


def _dataset(cfg: dict, path: Path, train: bool, final: bool = False) -> Dataset:
    task = task_of(cfg)
    if task in ("au", "id_probe"):
        return AUImageDataset(path, transform=_image_transform(cfg, train))
    n = len(cfg["classes"]) if cfg.get("classes") else cfg.get("num_classes")
    if cfg.get("num_frames"):
        common = dict(num_frames=int(cfg["num_frames"]), sampling_rate=int(cfg["sampling_rate"] or 1),
                      input_size=int(cfg["input_size"]))  # fmt: skip
        if train:
            transform = video_train_transform(
                int(cfg["input_size"]),
                auto_augment=cfg.get("aa"),
                reprob=float(cfg.get("reprob") or 0),
                scale=tuple(cfg.get("crop_scale") or (0.08, 1.0)),
            )
            return VideoClipDataset(path, n, transform=transform, train=True, **common)
        clips, crops = (int(cfg.get("test_clips") or 1), int(cfg.get("test_crops") or 1)) if final else (1, 1)
        return VideoClipDataset(path, n, train=False, test_clips=clips, test_crops=crops, **common)
    return ExpressionImageDataset(path, n, transform=_image_transform(cfg, train))


def class_balanced(dataset: Dataset, oversample_thr: float) -> Subset:
    """mmcls ClassBalancedDataset (APViT fork, method 'sqrt'): repeat each sample ceil(max(1, sqrt(t / f(c))))
    times, f(c) = fraction of samples of its class."""
    import math
    from collections import Counter

    labels = list(dataset.labels)
    freq = {c: n / len(labels) for c, n in Counter(labels).items()}
    repeat = {c: max(1.0, math.sqrt(oversample_thr / f)) for c, f in freq.items()}
    indices = [i for i, c in enumerate(labels) for _ in range(math.ceil(repeat[c]))]
    log.info(
        "class-balanced oversampling (thr %.3g): %d -> %d samples", oversample_thr, len(labels), len(indices)
    )
    return Subset(dataset, indices)


def train_dataset(cfg: dict) -> Dataset:
    return _dataset(cfg, Path(cfg["data"]["train"]), train=True)


def eval_dataset(cfg: dict, path: Path, final: bool = False) -> Dataset:
    return _dataset(cfg, Path(path), train=False, final=final)


def _has_samples(path: str | None) -> bool:
    """A val/test file that exists and holds at least one line (a fold may have no val split)."""
    if not path or not Path(path).is_file():
        return False
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    return len(lines) > (1 if lines and lines[0].startswith("path,") else 0)


# -- model -----------------------------------------------------------------------------------------------------
def build_model(cfg: dict) -> nn.Module:
    """The recipe's model with the task's head sizes (no weights loaded)."""
    task, kwargs = task_of(cfg), dict(cfg.get("model_kwargs") or {})
    if cfg.get("drop_path") is not None and task != "id_probe":
        kwargs.setdefault("drop_path_rate", float(cfg["drop_path"]))
    if task == "id_probe":
        encoder = create_model(cfg["model"], **{**kwargs, "num_classes": 0})
        return LinearProbe(encoder, int(cfg["num_subjects"]), bias=bool(cfg.get("probe_bias", True)))
    if task == "au":
        kwargs.setdefault("num_classes", len(cfg["aus"]))
        if float(cfg.get("grad_reverse") or 0) != 0:
            kwargs.update(num_subjects=int(cfg["num_subjects"]), grad_reverse=float(cfg["grad_reverse"]))
    else:
        kwargs.setdefault("num_classes", len(cfg["classes"]))
    return create_model(cfg["model"], **kwargs)


def check_input_size(model: nn.Module, cfg: dict) -> None:
    """A ViT's patch grid is fixed at build time: input_size must match it."""
    holder = model.encoder if isinstance(model, LinearProbe) else model
    size = getattr(getattr(holder, "patch_embed", None), "img_size", None)
    if size is None:
        return
    size = tuple(size)[-2:] if isinstance(size, (tuple, list)) else (size, size)
    want = (int(cfg["input_size"]),) * 2
    if tuple(size) != want:
        raise ConfigError(
            f"model {cfg['model']!r} is built for {size[0]}x{size[1]} px but input_size is {want[0]}; set "
            f"model_kwargs.img_size: {want[0]} (or input_size: {size[0]})"
        )


def load_weights(model: nn.Module, cfg: dict) -> None:
    if not cfg.get("pretrained"):
        log.info("no pretrained checkpoint: training %s from scratch", cfg["model"])
        return
    target = model.encoder if isinstance(model, LinearProbe) else model
    missing, unused = load_pretrained(target, cfg["pretrained"])
    log.info("loaded %s (%d missing, %d unused keys)", cfg["pretrained"], len(missing), len(unused))


# -- losses ----------------------------------------------------------------------------------------------------
def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits averaged over the known labels (targets 1 / 0; -1 = unknown, ignored)."""
    known = (targets >= 0).float()
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.clamp(min=0).float(), reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


def identity_loss(id_logits: torch.Tensor, subject_ids: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Identity classification loss over samples of training subjects (subject_id >= 0)."""
    valid = subject_ids >= 0
    if not valid.any():
        return id_logits.sum() * 0.0  # keeps the graph (and DDP's reducer) whole
    logits, ids = id_logits[valid].float(), subject_ids[valid]
    if kind == "ce":
        return F.cross_entropy(logits, ids)
    if kind == "bce":  # FMAE-IAT: BCEWithLogitsLoss on one-hot identity vectors
        return F.binary_cross_entropy_with_logits(logits, F.one_hot(ids, logits.shape[1]).float())
    raise ConfigError(f"id_loss must be 'bce' or 'ce', got {kind!r}")


def make_step(cfg: dict, device: torch.device):
    """step_fn(net, batch) -> loss for the recipe's task."""
    task = task_of(cfg)
    id_kind = cfg.get("id_loss", "bce")
    if task == "au":

        def au_step(net, batch):
            x, aus, sids = to_device(batch, device)
            out = net(x)
            if isinstance(out, (tuple, list)):
                return masked_bce(out[0], aus) + identity_loss(out[1], sids, id_kind)
            return masked_bce(out, aus)

        return au_step
    if task == "id_probe":
        return lambda net, batch: identity_loss(
            net(to_device(batch[0], device)), to_device(batch[2], device), id_kind
        )

    n = len(cfg["classes"])
    smoothing = float(cfg.get("smoothing") or 0)
    mixup = None
    if float(cfg.get("mixup") or 0) > 0 or float(cfg.get("cutmix") or 0) > 0:
        mixup = Mixup(mixup_alpha=float(cfg.get("mixup") or 0), cutmix_alpha=float(cfg.get("cutmix") or 0),
                      label_smoothing=smoothing, num_classes=n)  # fmt: skip
        criterion = SoftTargetCrossEntropy()
    elif smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(smoothing)
    else:
        criterion = nn.CrossEntropyLoss()

    def expression_step(net, batch):
        x, y = to_device(batch, device)
        if mixup is not None:
            if x.shape[0] % 2:
                raise ConfigError(f"mixup / cutmix need an even batch size per process, got {x.shape[0]}")
            shape = x.shape  # clips [B, C, T, H, W]: mix on [B, C*T, H, W] so CutMix boxes are spatial
            x, y = mixup(x.reshape(shape[0], -1, *shape[-2:]), y)
            x = x.reshape(shape)
        return criterion(net(x).float(), y)

    return expression_step


# -- the run ---------------------------------------------------------------------------------------------------
def _evaluate(cfg: dict, ctx: Context, model: nn.Module, dataset: Dataset, views: bool = False) -> dict:
    args = dict(env=ctx.env, batch_size=int(cfg["batch_size"]), num_workers=int(cfg.get("num_workers", 0)),
                autocast=ctx.autocast)  # fmt: skip
    task = task_of(cfg)
    if task == "au":
        return evaluate_au(model, dataset, cfg["aus"], **args)
    if task == "id_probe":
        return evaluate_identity(model, dataset, **args)
    return evaluate_expression(model, dataset, cfg["classes"], views=views, **args)


def _scalars(metrics: dict, prefix: str) -> dict:
    out = {f"{prefix}/{k}": v for k, v in metrics.items() if isinstance(v, float)}
    out.update({f"{prefix}/f1_{k}": v for k, v in (metrics.get("f1") or {}).items()})
    return out


def finetune(cfg: dict) -> dict:
    """Train on data.train, evaluate on data.val each epoch and on data.test at the end; metrics.json."""
    require(cfg, "output_dir", "data.train", "data.test")
    task_of(cfg)
    train_set = train_dataset(resolve_labels(cfg))
    cfg = resolve_labels(cfg, train_set)
    if cfg.get("class_balanced"):
        train_set = class_balanced(train_set, float(cfg["class_balanced"]))
    ctx = setup(cfg)
    try:
        with ctx.tracker:
            model = build_model(cfg)
            check_input_size(model, cfg)
            load_weights(model, cfg)
            trainer = Trainer(ctx, model, train_set, make_step(cfg, ctx.device))
            val_path = cfg["data"].get("val")
            val_set = eval_dataset(cfg, Path(val_path)) if _has_samples(val_path) else None

            def on_epoch_end(epoch: int) -> dict:
                if val_set is None:
                    return {}
                scalars = _scalars(_evaluate(cfg, ctx, trainer.model, val_set), "val")
                if trainer.ema is not None and cfg.get("model_ema_eval"):
                    scalars.update(_scalars(_evaluate(cfg, ctx, trainer.ema.module, val_set), "val_ema"))
                return scalars

            checkpoint = trainer.fit(on_epoch_end)
            test_set = eval_dataset(cfg, Path(cfg["data"]["test"]), final=True)
            views = (
                bool(cfg.get("num_frames"))
                and int(cfg.get("test_clips") or 1) * int(cfg.get("test_crops") or 1) > 1
            )
            metrics = _evaluate(cfg, ctx, trainer.model, test_set, views=views)
            if trainer.ema is not None and cfg.get("model_ema_eval"):
                ema = _evaluate(cfg, ctx, trainer.ema.module, test_set, views=views)
                metrics["ema"] = {k: v for k, v in ema.items() if k not in ("confusion", "classes")}
            run_id = all_gather_objects(ctx.tracker.run_id)[0]  # rank 0's, so every process returns the same
            metrics.update(mlflow_run_id=run_id, checkpoint=str(checkpoint))
            path = ctx.output_dir / "metrics.json"
            if ctx.env.is_main:
                write_json(path, metrics)
                ctx.tracker.log_results(metrics, path, str(checkpoint))
            log.info("test: %s", {k: v for k, v in metrics.items() if isinstance(v, float)})
            return metrics
    finally:
        cleanup(ctx.env)
