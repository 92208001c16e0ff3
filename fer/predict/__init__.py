"""`fer predict`: a finetuned model on your own images and videos, with annotated copies and timelines.

Exports load on first use (PEP 562), so the workflow's parse-time helpers (fer.predict.workflow) do not import
torch and OpenCV.
"""

from __future__ import annotations

import importlib

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


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = list(_EXPORTS)
