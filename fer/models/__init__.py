"""The model zoo of MAE-SFER, MAE-DFER, FMAE-IAT and APViT: `create_model(name, **kwargs)`, `load_pretrained`."""

from ._loading import CheckpointMismatchError, load_pretrained, unwrap_state_dict
from ._registry import create_model, list_models, model_entrypoint, register_model

__all__ = [
    "CheckpointMismatchError",
    "create_model",
    "list_models",
    "load_pretrained",
    "model_entrypoint",
    "register_model",
    "unwrap_state_dict",
]
