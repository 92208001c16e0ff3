"""The model zoo of MAE-SFER, MAE-DFER, FMAE-IAT and APViT: `create_model(name, **kwargs)`, `load_pretrained`."""

from ._loading import CheckpointMismatchError, load_pretrained, unwrap_state_dict
from ._registry import create_model, list_models, model_entrypoint, register_model

# Importing the family files registers their variants.
from . import apvit, convnextv2, mae, video_mae, vit  # noqa: E402,F401  isort: skip

__all__ = [
    "CheckpointMismatchError",
    "create_model",
    "list_models",
    "load_pretrained",
    "model_entrypoint",
    "register_model",
    "unwrap_state_dict",
]
