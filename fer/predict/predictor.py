"""The model side of `fer predict`: a checkpoint (ours or a seed's release) as a `Predictor` of aligned faces.

Our finetuning checkpoints carry their resolved recipe under "config" (contract 5): the model is rebuilt with
fer.engine.finetune.build_model and loaded strictly, and images get the finetuning eval transform (as its test
set does). Released checkpoints of MAE-SFER, MAE-DFER, FMAE-IAT and APViT carry no recipe: the architecture
comes from --model / --recipe (the first recipe that finetunes that model supplies its model_kwargs and
preprocessing), the class names from --classes (names, or a dataset family whose CLASSES / AUS fer.datasets
holds), and the weights go through fer.models.load_pretrained's per-family key maps.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

log = logging.getLogger(__name__)

_AU_NAME = re.compile(r"AU\d+$")


class PredictError(ValueError):
    """A checkpoint or option `fer predict` cannot use; the message says which and what to pass instead."""


def parse_labels(classes: str | Sequence[str] | None) -> tuple[list[str] | None, str | None]:
    """(names, task) from --classes: "a,b,c", a list, or a dataset family whose CLASSES / AUS to use
    (``rafdb``, ``dfew``, ``bp4d``, ``affectnet7`` for AffectNet's 7 classes). "AU<n>" names: an AU model."""
    if classes is None or (isinstance(classes, str) and not classes.strip()):
        return None, None
    if isinstance(classes, str):
        from fer.datasets import FAMILIES, get_dataset

        name = classes.strip().lower()
        if name in FAMILIES or name == "affectnet7":
            module = get_dataset("affectnet" if name == "affectnet7" else name)
            if getattr(module, "TASK", None) == "au":
                return [f"AU{a}" for a in module.AUS], "au"
            if getattr(module, "TASK", None) != "expression":
                raise PredictError(f"--classes {classes}: {name} is a pretraining set without classes")
            return list(module.CLASSES_7 if name == "affectnet7" else module.CLASSES), "expression"
        classes = [c.strip() for c in classes.split(",")]
    names = [str(c) for c in classes]
    if len(names) < 2 or len(set(names)) != len(names) or not all(names):
        raise PredictError(f"--classes needs two or more distinct names, got {names}")
    return names, "au" if all(_AU_NAME.match(n) for n in names) else "expression"


@dataclass
class Predictor:
    """A classifier ready for aligned faces: `__call__` takes faces [H, W, 3] or clips [T, H, W, 3] (uint8
    RGB) and returns probabilities [N, C] (softmax over classes, or a sigmoid per AU)."""

    model: nn.Module
    labels: list[str]
    task: str  # expression | au
    input_size: int
    num_frames: int  # 0: image model
    sampling_rate: int
    device: torch.device
    batch_size: int
    transform: object  # PIL image -> [3, S, S] tensor (image models)
    description: str = ""

    @property
    def is_video(self) -> bool:
        return self.num_frames > 0

    def __post_init__(self):
        from fer.data.transforms import VideoEvalTransform

        self.clip_transform = VideoEvalTransform(self.input_size)
        self.model.eval().to(self.device)

    def _tensor(self, item: np.ndarray) -> torch.Tensor:
        if not self.is_video:
            return self.transform(Image.fromarray(item))
        if item.ndim == 3:  # a still image: one repeated frame
            item = np.repeat(item[None], self.num_frames, axis=0)
        return self.clip_transform(item)

    @torch.inference_mode()
    def __call__(self, items: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for s in range(0, len(items), self.batch_size):
            x = torch.stack([self._tensor(a) for a in items[s : s + self.batch_size]]).to(self.device)
            logits = self.model(x)
            if isinstance(logits, (tuple, list)):  # FMAE-IAT with an identity head: (AU logits, id logits)
                logits = logits[0]
            logits = logits.float()
            probs = torch.sigmoid(logits) if self.task == "au" else torch.softmax(logits, dim=-1)
            out.append(probs.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def decide(self, probs: np.ndarray) -> tuple[str, float]:
        """(prediction, confidence): the top class and its probability; for AUs the AUs at p >= 0.5 joined by
        '+' ('none' when no AU is on) and the highest AU probability."""
        if self.task == "au":
            on = [name for name, p in zip(self.labels, probs) if p >= 0.5]
            return "+".join(on) or "none", float(probs.max())
        k = int(np.argmax(probs))
        return self.labels[k], float(probs[k])


def _matching_recipe(model: str, kind: str) -> dict | None:
    """The first recipe (by name) that finetunes `model` for `kind`: its model_kwargs and preprocessing."""
    from fer.engine.recipes import list_recipes, resolve

    for name, recipe_kind in list_recipes():
        if recipe_kind == kind:
            cfg = resolve(name)
            if cfg["model"] == model:
                return cfg
    return None


def _au_name(au) -> str:
    """AU columns are named "AU<n>" in the annotation tables; configs may hold the bare numbers."""
    return str(au) if str(au).startswith("AU") else f"AU{au}"


def _released_cfg(checkpoint: Path, model, recipe, labels, task, model_kwargs) -> dict:
    from fer.engine.recipes import resolve

    if labels is None:
        raise PredictError(
            f"{checkpoint}: this checkpoint carries no config (a released checkpoint of a seed?), so the "
            f"class names must be given: --classes rafdb | affectnet | affectnet7 | ferplus | dfew | mafw "
            f"| ferv39k | bp4d | bp4dplus | disfa (the dataset it was finetuned on) or --classes a,b,c..."
        )
    if not model and not recipe:
        raise PredictError(
            f"{checkpoint}: this checkpoint carries no config, so the architecture must be given: --model "
            f"NAME "
            f"(see `fer models list`; e.g. vit_base_patch16 for MAE-SFER, vit_large_patch16 for FMAE-IAT, "
            f"vit_base_dim512_no_depth_patch16_160 for MAE-DFER, apvit_raf for APViT) or --recipe NAME"
        )
    kind = "au" if task == "au" else "finetune"
    cfg = resolve(recipe) if recipe else _matching_recipe(model, kind)
    if cfg is None:
        cfg = {"model": model, "model_kwargs": {}, "input_size": None, "num_frames": None,
               "sampling_rate": None, "augment": "mae"}  # fmt: skip
    else:
        log.info("%s: model_kwargs and preprocessing of recipe %s", checkpoint, cfg["recipe"])
    # released weights carry no identity head (FMAE-IAT's is only for training): build without one
    cfg.update(kind=kind, model=model or cfg["model"], grad_reverse=0.0)
    cfg["model_kwargs"] = {**(cfg.get("model_kwargs") or {}), **(model_kwargs or {})}
    cfg["classes" if task == "expression" else "aus"] = labels
    return cfg


def _model_size(net: nn.Module) -> tuple[int | None, int]:
    """(input size fixed by the architecture or None, frames per clip or 0) read off a built model."""
    embed = getattr(net, "patch_embed", None)
    grid = getattr(embed, "img_size", None) or getattr(net, "img_size", None)
    size = grid[-1] if isinstance(grid, (tuple, list)) else grid
    return (int(size) if size else None), int(getattr(embed, "num_frames", 0) or 0)


def load_predictor(
    checkpoint: str | os.PathLike,
    model: str | None = None,
    classes: str | Sequence[str] | None = None,
    recipe: str | None = None,
    sampling_rate: int | None = None,
    device: str = "auto",
    batch_size: int = 32,
    model_kwargs: dict | None = None,
) -> Predictor:
    """Our finetuning checkpoints (model, sizes, classes and preprocessing from their "config") or a released
    one of the seeds (architecture from `model` / `recipe` + `model_kwargs`, names from `classes`, weights
    mapped by fer.models.load_pretrained). `sampling_rate` overrides the clip stride of the recipe."""
    from fer.engine.distributed import resolve_device
    from fer.engine.finetune import _image_transform, build_model
    from fer.io import load_checkpoint
    from fer.models import load_pretrained, unwrap_state_dict

    checkpoint = Path(checkpoint)
    labels, task = parse_labels(classes)
    state = load_checkpoint(checkpoint)
    cfg = state.get("config") if isinstance(state, dict) else None
    if isinstance(cfg, dict) and cfg.get("kind"):
        if cfg["kind"] not in ("finetune", "au"):
            raise PredictError(
                f"{checkpoint}: a {cfg['kind']} checkpoint; predict needs an expression or AU model"
            )
        if (model and model != cfg["model"]) or recipe or model_kwargs:
            raise PredictError(
                f"{checkpoint}: holds its own recipe ({cfg.get('recipe')}, model {cfg['model']}); leave out "
                f"--model, --recipe and --model-kwargs"
            )
        cfg = dict(cfg)
        task = "expression" if cfg["kind"] == "finetune" else "au"
        own = [str(c) for c in cfg["classes"]] if task == "expression" else [_au_name(a) for a in cfg["aus"]]
        if labels is not None and len(labels) != len(own):
            raise PredictError(
                f"{checkpoint}: the model has {len(own)} outputs {own}; --classes gave {len(labels)} names"
            )
        labels = labels or own
        net = build_model(cfg)
        net.load_state_dict(unwrap_state_dict(state["model"]))
        size, frames = int(cfg["input_size"]), int(cfg.get("num_frames") or 0)
        description = f"{cfg['model']} (recipe {cfg.get('recipe')})"
    else:
        cfg = _released_cfg(checkpoint, model, recipe, labels, task, model_kwargs)
        net = build_model(cfg)
        missing, _ = load_pretrained(net, checkpoint)
        params = {name for name, _ in net.named_parameters()}
        absent = sorted(k for k in missing if k in params)
        if absent:
            raise PredictError(
                f"{checkpoint}: no weights for {absent[:6]}; the checkpoint "
                f"is not a finetuned {cfg['model']} with {len(labels)} outputs (check --model, --classes, "
                f"--recipe)"
            )
        fixed, frames = _model_size(net)
        size = fixed or int(cfg["model_kwargs"].get("img_size") or cfg.get("input_size") or 224)
        description = f"{cfg['model']} (released weights)"
    cfg["input_size"] = size
    rate = int(sampling_rate or cfg.get("sampling_rate") or 0)
    if frames and not rate:
        rate = 4
        log.warning("%s: no sampling_rate known, using MAE-DFER's 4 (pass --sampling-rate)", checkpoint)
    transform = _image_transform(cfg, train=False)
    dev = resolve_device(device)
    return Predictor(net, labels, task, size, frames, rate or 1, dev, int(batch_size), transform, description)
