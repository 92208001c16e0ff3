"""Data loaders: annotation files -> tensors (images, video clips, AU labels), transforms and the packed format."""

from __future__ import annotations


class AnnotationError(ValueError):
    """An annotation file (or a file it points to) is unusable; the message names "file:line" and the fix."""


# The submodules import AnnotationError from here, so they come after it.
from .datasets import (  # noqa: E402
    AUImageDataset,
    ExpressionImageDataset,
    VideoClipDataset,
    read_au_annotation,
    read_expression_annotation,
)
from .packed import PackedImageDataset, PackedVideoDataset, pack_annotation  # noqa: E402
from .transforms import (  # noqa: E402
    image_eval_transform,
    image_pretrain_transform,
    image_train_transform,
    video_eval_transform,
    video_pretrain_transform,
    video_train_transform,
)

__all__ = [
    "AUImageDataset",
    "AnnotationError",
    "ExpressionImageDataset",
    "PackedImageDataset",
    "PackedVideoDataset",
    "VideoClipDataset",
    "image_eval_transform",
    "image_pretrain_transform",
    "image_train_transform",
    "pack_annotation",
    "read_au_annotation",
    "read_expression_annotation",
    "video_eval_transform",
    "video_pretrain_transform",
    "video_train_transform",
]
