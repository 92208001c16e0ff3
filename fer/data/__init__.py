"""Data loaders: annotation files -> tensors (images, video clips, AU labels), transforms and the packed format.

The loaders are imported on first use (PEP 562), so `from fer.data import AnnotationError` (the annotation
writer, workflow scripts) does not pay for importing torchvision and timm.
"""

from __future__ import annotations

from fer._lazy import lazy_exports


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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["AnnotationError", *_EXPORTS]
