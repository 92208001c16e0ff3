"""`fer predict`: a finetuned model on your own images and videos, with annotated copies and timelines."""

from .predictor import PredictError, Predictor, load_predictor, parse_labels
from .run import (
    COLUMNS,
    STATUSES,
    InputFile,
    PredictionRun,
    collect_inputs,
    predict,
    write_csv,
)
from .tracking import IoUTracker, Track, box_iou

__all__ = [
    "COLUMNS",
    "STATUSES",
    "InputFile",
    "IoUTracker",
    "PredictError",
    "PredictionRun",
    "Predictor",
    "Track",
    "box_iou",
    "collect_inputs",
    "load_predictor",
    "parse_labels",
    "predict",
    "write_csv",
]
