"""Faces stage: detector backends, 5-point landmarks, similarity alignment, batch processing of images and videos."""

from .align import ARCFACE_TEMPLATE, align_face, face_template, similarity_matrix, warp_face
from .detect import BACKENDS, Detector, Face, WeightsMissingError, create_detector, landmarks68_to_5
from .process import COLUMNS, STATUSES, MediaError, align_records, read_manifest, summarize

__all__ = [
    "ARCFACE_TEMPLATE",
    "BACKENDS",
    "COLUMNS",
    "STATUSES",
    "Detector",
    "Face",
    "MediaError",
    "WeightsMissingError",
    "align_face",
    "align_records",
    "create_detector",
    "face_template",
    "landmarks68_to_5",
    "read_manifest",
    "similarity_matrix",
    "summarize",
    "warp_face",
]
