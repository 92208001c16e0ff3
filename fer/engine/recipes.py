"""Named recipes (fer/recipes.yaml): the seeds' command lines, resolved into the plain dict the engine runs."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

RECIPES_FILE = Path(__file__).resolve().parent.parent / "recipes.yaml"
KINDS = ("pretrain_image_mae", "pretrain_video_mae", "pretrain_fcmae", "finetune", "au", "id_probe")
PRETRAIN_KINDS = KINDS[:3]
# Keys whose value is a mapping: an override updates them key by key instead of replacing them.
_MERGED_KEYS = ("model_kwargs", "data", "tracking")


class RecipeError(ValueError):
    """An unknown recipe or override key; the message lists what is valid."""


@lru_cache(maxsize=1)
def _load() -> dict:
    with open(RECIPES_FILE) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or "defaults" not in doc or "recipes" not in doc:
        raise RecipeError(f"{RECIPES_FILE}: expected top-level 'defaults' and 'recipes' mappings")
    return doc


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key in _MERGED_KEYS and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _recipe(name: str, chain: tuple[str, ...] = ()) -> dict:
    recipes = _load()["recipes"]
    if name not in recipes:
        raise RecipeError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(recipes))}")
    if name in chain:
        raise RecipeError(f"{RECIPES_FILE}: recipe {name!r} is its own base ({' -> '.join((*chain, name))})")
    own = dict(recipes[name])
    base = own.pop("base", None)
    parent = _recipe(base, (*chain, name)) if base else copy.deepcopy(_load()["defaults"])
    return _merge(parent, own)


def valid_keys() -> list[str]:
    return sorted(_load()["defaults"])


def list_recipes() -> list[tuple[str, str]]:
    """(name, kind) of every recipe, sorted by name (for `fer pretrain --help`)."""
    return [(name, _recipe(name)["kind"]) for name in sorted(_load()["recipes"])]


def resolve(name: str, overrides: dict[str, Any] | None = None, where: str | None = None) -> dict[str, Any]:
    """The recipe `name` with `overrides` applied, as a plain (JSON-able) dict.

    `where` names the config entry the overrides come from, for the error message. Mapping-valued keys
    (model_kwargs, data, tracking) are updated key by key; every other override replaces the recipe's value.
    """
    cfg = _recipe(name)
    keys = set(_load()["defaults"])
    unknown = sorted(set(overrides or {}) - keys)
    if unknown:
        origin = f"{where}: " if where else ""
        raise RecipeError(
            f"{origin}unknown override key(s) {unknown} for recipe {name!r}; valid keys: {', '.join(sorted(keys))}"
        )
    cfg = _merge(cfg, overrides or {})
    bad = sorted(set(cfg) - keys)
    if bad:
        raise RecipeError(f"{RECIPES_FILE}: recipe {name!r} sets keys missing from `defaults`: {bad}")
    if cfg["kind"] not in KINDS:
        raise RecipeError(
            f"{RECIPES_FILE}: recipe {name!r} has kind {cfg['kind']!r}; expected one of {KINDS}"
        )
    if not cfg["model"]:
        raise RecipeError(f"{RECIPES_FILE}: recipe {name!r} names no model")
    cfg["recipe"] = name
    return cfg
