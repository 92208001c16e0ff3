"""Demo data: learnable miniature RAF-DB, DFEW and BP4D in their real on-disk layouts, generated offline.

The samples are rendered by :mod:`fer.datasets.demo_faces` from face photos that ship in installed packages and
written through the adapters' ``write_miniature`` functions, so each on-disk layout has one source of truth
(:mod:`fer.datasets.rafdb`, :mod:`fer.datasets.dfew`, :mod:`fer.datasets.bp4d`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from fer.io import write_json

from .demo_faces import (  # noqa: F401  (re-exported: the demo's public API)
    ACTION_UNITS,
    BP4D_TASK_AUS,
    EXPRESSION_AUS,
    EXPRESSIONS,
    IDENTITIES,
    Look,
    _detector,
    detect_landmarks,
    expression_aus,
    expression_index,
    head_motion,
    make_au_face,
    make_expression_clip,
    make_expression_face,
    make_face_leaving_video,
    moved_look,
    random_look,
    render_face,
    sample_au_frames,
    source_photos,
)

DEFAULT_SIZES = {
    "rafdb_train": 210,  # 30 per class: a tiny ViT from scratch reaches ~70% in 20 epochs (98: ~25%)
    "rafdb_test": 70,  # 10 per class
    "dfew_clips": 56,  # 4 per class and fold
    "dfew_folds": 2,  # the clips fill the test sets of folds 1..dfew_folds
    "dfew_frames": 16,
    "bp4d_subjects": 6,  # 2 in each of the 3 official subject folds
    "bp4d_tasks": 2,
    "bp4d_frames": 20,
    "image_size": 128,
    "video_size": 128,
}
VERSION = 1  # bump when the rendering changes, so that generate_demo does not keep an old copy


# ------------------------------------------------------------------------------------------------ datasets


def _check_sizes(sizes: Mapping[str, int] | None) -> dict[str, int]:
    out = dict(DEFAULT_SIZES)
    for key, value in (sizes or {}).items():
        if key not in DEFAULT_SIZES:
            raise ValueError(f"unknown demo size {key!r}; valid keys: {', '.join(DEFAULT_SIZES)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"demo size {key!r} must be a positive integer, got {value!r}")
        out[key] = value
    limits = {"dfew_folds": 5, "bp4d_tasks": len(BP4D_TASK_AUS), "bp4d_subjects": len(IDENTITIES)}
    for key, limit in limits.items():
        if out[key] > limit:
            raise ValueError(f"demo size {key!r} must be at most {limit}, got {out[key]}")
    return out


def _balanced(n: int, rng: np.random.Generator) -> list[int]:
    """n labels cycling over the 7 classes (counts differ by at most one), in random order."""
    return [int(v) for v in rng.permutation(np.arange(n) % len(EXPRESSIONS))]


def _detectable(make: Callable[[], np.ndarray], where: str, tries: int = 5) -> np.ndarray:
    """Redraw a still (the rng moves on) until MTCNN finds exactly one face in it, as real datasets leave out
    faceless images; with the ranges above a redraw is rare (none in 1,400 expression samples)."""
    for _ in range(tries):
        image = make()
        if len(_detector().detect_faces(image)) == 1:
            return image
    raise RuntimeError(f"{where}: MTCNN found no single face in {tries} draws; narrow the rendering ranges")


def _build_rafdb(root: Path, rng: np.random.Generator, sizes: dict[str, int]) -> None:
    from . import rafdb

    images, labels, splits = [], [], []
    for part in ("train", "test"):
        for label in _balanced(sizes[f"rafdb_{part}"], rng):
            expression = expression_index(rafdb.CLASSES[label])
            make = functools.partial(make_expression_face, expression, rng, sizes["image_size"])
            images.append(_detectable(make, f"rafdb {part} sample {len(images)}"))
            labels.append(label)
            splits.append(part)
    rafdb.write_miniature(root, images, labels, splits)


def _build_dfew(root: Path, rng: np.random.Generator, sizes: dict[str, int]) -> None:
    from . import dfew

    folds = [1 + i % sizes["dfew_folds"] for i in range(sizes["dfew_clips"])]
    labels = [0] * len(folds)
    for k in sorted(set(folds)):  # classes balanced inside every fold's test set
        members = [i for i, f in enumerate(folds) if f == k]
        for i, label in zip(members, _balanced(len(members), rng)):
            labels[i] = label
    n, size = sizes["dfew_frames"], sizes["video_size"]
    clips = [make_expression_clip(expression_index(dfew.CLASSES[c]), rng, n, size) for c in labels]
    dfew.write_miniature(root, clips, labels, folds)


def bp4d_subjects(n: int) -> list[tuple[str, int]]:
    """(real BP4D subject id, identity index) of n demo subjects: round-robin over the 3 official subject folds,
    women and men alternating, and both source photos inside every fold (no fold trains on one photo only)."""
    from . import bp4d

    order = (0, 4, 1, 5, 2, 6, 3, 7)  # subject j goes to fold j % 3, so each fold gets both photos
    out = []
    for j in range(n):
        fold = bp4d.FOLDS[j % len(bp4d.FOLDS)]
        gender = "FM"[(j // len(bp4d.FOLDS)) % 2]
        pool = sorted(s for s in bp4d.PARTITIONS[fold] if s.startswith(gender))
        out.append((pool[j // (2 * len(bp4d.FOLDS))], order[j]))
    return out


def _build_bp4d(root: Path, rng: np.random.Generator, sizes: dict[str, int]) -> None:
    from . import bp4d

    sequences, codes = {}, {}
    n, size = sizes["bp4d_frames"], sizes["image_size"]
    for subject, identity in bp4d_subjects(sizes["bp4d_subjects"]):
        for task in sorted(str(t) for t in rng.choice(bp4d.TASKS, sizes["bp4d_tasks"], replace=False)):
            labels, strength = sample_au_frames(task, n, bp4d.AUS, rng)
            base, motion = random_look(rng, 0.4, background=False), head_motion(rng, n)
            frames = []
            for t in range(n):
                aus = dict(zip(bp4d.AUS, strength[t]))
                make = functools.partial(make_au_face, aus, rng, identity, size, moved_look(base, motion[t]))
                frames.append(_detectable(make, f"bp4d {subject} {task} frame {t}"))
            sequences[(subject, task)], codes[(subject, task)] = frames, labels
    bp4d.write_miniature(root, sequences, codes)


_BUILDERS = {"rafdb": _build_rafdb, "dfew": _build_dfew, "bp4d": _build_bp4d}


def generate_family(
    family: str, target: str | os.PathLike, seed: int = 0, sizes: Mapping[str, int] | None = None
) -> Path:
    """Write one demo dataset (``rafdb``, ``dfew`` or ``bp4d``) into `target` in its real layout.

    Idempotent: a folder generated with the same seed, sizes and VERSION (recorded beside it in
    ``.<name>.demo.json``) is kept as it is. Atomic: the dataset is written into a temporary folder next to its
    target and renamed into place, so an interrupted run never leaves half a dataset. Each family draws from its
    own random stream (seed, index), so it is the same whether generated alone or with the others.
    """
    if family not in _BUILDERS:
        raise ValueError(f"no demo generator for {family!r}; demo families: {', '.join(_BUILDERS)}")
    config = _check_sizes(sizes)
    target = Path(target)
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    stamp_file = root / f".{target.name}.demo.json"
    media = "video_size" if family == "dfew" else "image_size"
    # the stamp holds only the sizes this dataset depends on
    mine = {k: v for k, v in config.items() if k.startswith(family) or k == media}
    stamp = {"version": VERSION, "family": family, "seed": int(seed), "sizes": mine}
    if target.is_dir() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return target
    stamp_file.unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=root))
    old = root / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    try:
        index = list(_BUILDERS).index(family)
        _BUILDERS[family](tmp, np.random.default_rng([int(seed), index]), config)
        if target.exists():  # a directory cannot be renamed over another: move the old copy aside first
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    write_json(stamp_file, stamp)
    return target


def generate_demo(
    root: str | os.PathLike, seed: int = 0, sizes: Mapping[str, int] | None = None
) -> dict[str, Path]:
    """Write root/rafdb, root/dfew and root/bp4d (see generate_family); returns {name: folder}."""
    return {name: generate_family(name, Path(root) / name, seed, sizes) for name in _BUILDERS}
