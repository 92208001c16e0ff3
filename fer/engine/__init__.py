"""Training engine: `pretrain(cfg) -> Path`, `finetune(cfg) -> dict`, `evaluate_checkpoint`, named recipes.

cfg is the plain dict `fer.engine.recipes.resolve(name, overrides)` returns, plus run-time keys (data, output_dir,
seed, device, pretrained, resume, tracking, classes / aus).
"""

from .checkpoint import Preempted
from .distributed import DeviceError
from .evaluate import evaluate_checkpoint
from .finetune import finetune
from .loop import ConfigError, NonFiniteLossError
from .pretrain import pretrain
from .recipes import RecipeError, list_recipes, resolve

__all__ = [
    "ConfigError",
    "DeviceError",
    "NonFiniteLossError",
    "Preempted",
    "RecipeError",
    "evaluate_checkpoint",
    "finetune",
    "list_recipes",
    "pretrain",
    "resolve",
]
