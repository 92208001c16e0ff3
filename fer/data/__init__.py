"""Data loaders: annotation files -> tensors (images, video clips, AU labels), transforms and the packed format.

The loaders are imported on first use (PEP 562), so `from fer.data import AnnotationError` (the annotation
writer, workflow scripts) does not pay for importing torchvision and timm.
"""

from __future__ import annotations

import importlib


class AnnotationError(ValueError):
    """An annotation file (or a file it points to) is unusable; the message names "file:line" and the fix."""


_EXPORTS = {
    "AUImageDataset": "datasets",
    "ExpressionImageDataset": "datasets",
    "VideoClipDataset": "datasets",
    "read_au_annotation": "datasets",
    "read_expression_annotation": "datasets",
    "PackedImageDataset": "packed",
    "PackedVideoDataset": "packed",
    "pack_annotation": "packed",
    "image_eval_transform": "transforms",
    "image_pretrain_transform": "transforms",
    "image_train_transform": "transforms",
    "video_eval_transform": "transforms",
    "video_pretrain_transform": "transforms",
    "video_train_transform": "transforms",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["AnnotationError", *_EXPORTS]
