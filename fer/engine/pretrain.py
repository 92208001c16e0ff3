"""Self-supervised pretraining: image MAE, video MAE (appearance + motion targets) and FCMAE.

As facebookresearch/mae `engine_pretrain.py` (images: `loss, _, _ = model(samples, mask_ratio)`), MAE-DFER
`engine_for_pretraining.py` (clips; the mask comes with the batch, here drawn per step by the model's
`make_mask`, MAE-DFER's part-window tube masking for LGI-Former, and the model computes its pixel / frame
difference loss) and ConvNeXt-V2 `engine_pretrain.py` (FCMAE, same call as the image MAE). Data: the pretraining
lists of the annotations stage ("<path> 0" lines; AU tables are accepted too, their labels unused); several
lists are concatenated.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch.utils.data import ConcatDataset, Dataset

from fer.data import (
    AUImageDataset,
    ExpressionImageDataset,
    VideoClipDataset,
    image_pretrain_transform,
    video_pretrain_transform,
)
from fer.models import create_model, load_pretrained

from .distributed import cleanup
from .loop import ConfigError, Trainer, require, setup, to_device
from .recipes import PRETRAIN_KINDS

log = logging.getLogger(__name__)


class ImagesOnly(Dataset):
    """(image, 0) from any image dataset: the pretraining loop ignores labels."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index][0], 0


def _is_au_table(path: Path) -> bool:
    with open(path) as f:
        return f.readline().startswith("path,")


def pretrain_dataset(cfg: dict) -> Dataset:
    paths = cfg["data"]["train"]
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    size = int(cfg["input_size"])
    parts: list[Dataset] = []
    for path in paths:
        if not path.is_file():
            raise ConfigError(
                f"{path}: pretraining list not found; run the annotations stage or fix data.train"
            )
        if cfg["kind"] == "pretrain_video_mae":
            transform = video_pretrain_transform(size)
            parts.append(VideoClipDataset(path, None, num_frames=int(cfg["num_frames"]),
                                          sampling_rate=int(cfg["sampling_rate"] or 1), transform=transform,
                                          train=True, input_size=size, sampling="pretrain"))  # fmt: skip
        elif _is_au_table(path):
            parts.append(ImagesOnly(AUImageDataset(path, transform=image_pretrain_transform(size))))
        else:
            parts.append(ExpressionImageDataset(path, None, transform=image_pretrain_transform(size)))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def build_model(cfg: dict):
    kwargs = dict(cfg.get("model_kwargs") or {})
    if cfg.get("drop_path") is not None:
        kwargs.setdefault("drop_path_rate", float(cfg["drop_path"]))
    model = create_model(cfg["model"], **kwargs)
    if cfg["kind"] == "pretrain_video_mae" and not hasattr(model, "make_mask"):
        raise ConfigError(
            f"model {cfg['model']!r} is not a video MAE (no make_mask); recipe kind is {cfg['kind']}"
        )
    return model


def make_step(cfg: dict, device):
    ratio = cfg.get("mask_ratio")
    if ratio is None:
        raise ConfigError(f"recipe kind {cfg['kind']} needs mask_ratio")
    ratio = float(ratio)
    if cfg["kind"] == "pretrain_video_mae":

        def video_step(net, batch):
            videos = to_device(batch[0], device)
            model = net.module if hasattr(net, "module") else net
            model = getattr(model, "_orig_mod", model)
            mask = model.make_mask(videos.shape[0], ratio)  # CPU RNG: the same masks after a resume
            return net(videos, mask.to(device))[0]

        return video_step
    return lambda net, batch: net(to_device(batch[0], device), mask_ratio=ratio)[0]


def pretrain(cfg: dict) -> Path:
    """Pretrain the recipe's model on data.train; returns <output_dir>/checkpoint-final.pth."""
    require(cfg, "output_dir", "data.train", "model")
    if cfg["kind"] not in PRETRAIN_KINDS:
        raise ConfigError(
            f"recipe kind {cfg['kind']!r} is not a pretraining kind {PRETRAIN_KINDS}; use finetune()"
        )
    dataset = pretrain_dataset(cfg)
    ctx = setup(cfg)
    try:
        with ctx.tracker:
            model = build_model(cfg)
            if cfg.get("pretrained"):  # continue from another run's weights (e.g. a released checkpoint)
                load_pretrained(model, cfg["pretrained"])
            trainer = Trainer(ctx, model, dataset, make_step(cfg, ctx.device))
            path = trainer.fit()
            ctx.tracker.set_tags({"checkpoint": str(path)})
            return path
    finally:
        cleanup(ctx.env)
