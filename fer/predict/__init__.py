"""`fer predict`: a finetuned model on your own images and videos, with annotated copies and timelines.

Exports load on first use (PEP 562), so the workflow's parse-time helpers (fer.predict.workflow) do not import
torch and OpenCV.
"""

from __future__ import annotations

from fer._lazy import lazy_exports

_EXPORTS = {
    "PredictError": "predictor",
    "Predictor": "predictor",
    "load_predictor": "predictor",
    "parse_labels": "predictor",
    "COLUMNS": "run",
    "STATUSES": "run",
    "InputFile": "run",
    "PredictionRun": "run",
    "collect_inputs": "run",
    "predict": "run",
    "write_csv": "run",
    "IoUTracker": "tracking",
    "Track": "tracking",
    "box_iou": "tracking",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
