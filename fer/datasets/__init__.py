"""Dataset adapters, one module per family: raw layout -> records (path, label(s), subject, split, fold)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .base import DatasetError, Record

FAMILIES = (
    "rafdb",
    "affectnet",
    "ferplus",
    "dfew",
    "mafw",
    "ferv39k",
    "voxceleb2",
    "bp4d",
    "bp4dplus",
    "disfa",
)


def get_dataset(family: str) -> ModuleType:
    """The adapter module of a dataset family (see fer.datasets.base for what it exposes)."""
    if family not in FAMILIES:
        raise DatasetError(f"unknown dataset family {family!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(f"fer.datasets.{family}")


__all__ = ["FAMILIES", "DatasetError", "Record", "get_dataset"]
