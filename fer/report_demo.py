"""Demo copies of the datasets only the paper tables use: AffectNet, FER+, MAFW, FERV39k, BP4D+ and DISFA.

fer.datasets.demo renders RAF-DB, DFEW and BP4D for the default demo; the table targets also need the other
families of the seeds' tables. These miniatures come from the same renderer (AU-driven warps of the shipped
photos, EMFACS prototypes) and are written through each adapter's ``write_miniature``, so the workflow reads them
exactly as it would read the real releases. Classes without an EMFACS prototype in fer.datasets.demo get an AU
combination chosen to be distinct and learnable (contempt: a tight dimple with a faint smile, after Ekman's
unilateral AU12+AU14; MAFW's anxiety, helplessness and disappointment: mixtures of the fear / sadness
prototypes); they stand in for the classes, they are not FACS-validated depictions.

Generation is idempotent (a stamp beside the root records seed, sizes and version) and atomic (built in a
temporary folder, renamed into place), under a file lock, so two configured datasets may share one root (e.g.
AffectNet-7 and AffectNet-8).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from fer.datasets import demo

VERSION = 1
EXTRA_AUS: dict[str, dict[int, float]] = {
    "contempt": {14: 1.0, 12: 0.35},
    "anxiety": {1: 0.8, 4: 0.8, 20: 0.6, 24: 0.8},
    "helplessness": {1: 1.0, 15: 0.8, 26: 0.6},
    "disappointment": {4: 0.4, 15: 0.7, 17: 1.0, 24: 0.4},
}
SIZES = {
    "images_per_class": 10,  # training images per class (AffectNet, FER+)
    "test_per_class": 4,  # test (and FER+ validation) images per class
    "clips_per_class": 2,  # video clips per class and fold (MAFW) or split (FERV39k, halved for test)
    "video_folds": 2,  # MAFW folds whose test lists get clips
    "frames": 8,
    "au_subjects_per_fold": 2,
    "au_frames": 10,  # frames per subject and task (BP4D+) or per subject (DISFA)
    "image_size": 112,
}


def _prototype(name: str) -> dict[int, float]:
    key = name.lower()
    if key in EXTRA_AUS:
        return EXTRA_AUS[key]
    return demo.EXPRESSION_AUS[demo.EXPRESSIONS[demo.expression_index(key)]]


def _jittered(name: str, rng: np.random.Generator) -> dict[int, float]:
    overall = rng.uniform(0.8, 1.1)
    return {au: v * overall * rng.uniform(0.8, 1.2) for au, v in _prototype(name).items()}


def face(name: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One still RGB face of expression `name` (any class name of the adapters, e.g. 'contempt')."""
    identity = int(rng.integers(len(demo.IDENTITIES)))
    return demo.render_face(_jittered(name, rng), identity, demo.random_look(rng), size, rng)[0]


def clip(name: str, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """[T, size, size, 3] clip: the expression grows from neutral to its apex while the head moves a little."""
    identity, aus = int(rng.integers(len(demo.IDENTITIES))), _jittered(name, rng)
    base, motion = demo.random_look(rng, strength=0.7), demo.head_motion(rng, frames)
    onset = rng.uniform(0.05, 0.3) * frames
    apex = onset + rng.uniform(0.3, 0.45) * frames
    out = []
    for t in range(frames):
        x = float(np.clip((t - onset) / (apex - onset), 0, 1))
        ramp = x * x * (3 - 2 * x)
        look = demo.moved_look(base, motion[t])
        out.append(demo.render_face({k: v * ramp for k, v in aus.items()}, identity, look, size, rng)[0])
    return np.stack(out)


def _balanced(n_per_class: int, classes: int, rng: np.random.Generator) -> list[int]:
    return [int(c) for c in rng.permutation(np.repeat(np.arange(classes), n_per_class))]


# ---------------------------------------------------------------------------------------------------- builders
def _affectnet(root: Path, rng, s) -> None:
    from fer.datasets import affectnet as m

    labels, splits = [], []
    for part, n in (("train", s["images_per_class"]), ("test", s["test_per_class"])):
        chosen = _balanced(n, len(m.CLASSES), rng)
        labels += chosen
        splits += [part] * len(chosen)
    images = [face(m.CLASSES[c], rng, s["image_size"]) for c in labels]
    m.write_miniature(root, images, labels, splits)


def _ferplus(root: Path, rng, s) -> None:
    from fer.datasets import ferplus as m

    labels, splits = [], []
    for part, n in (
        ("train", s["images_per_class"]),
        ("val", s["test_per_class"]),
        ("test", s["test_per_class"]),
    ):
        chosen = _balanced(n, len(m.CLASSES), rng)
        labels += chosen
        splits += [part] * len(chosen)
    m.write_miniature(root, [face(m.CLASSES[c], rng, s["image_size"]) for c in labels], labels, splits)


def _mafw(root: Path, rng, s) -> None:
    from fer.datasets import mafw as m

    labels, folds = [], []
    for fold in range(1, s["video_folds"] + 1):
        chosen = _balanced(s["clips_per_class"], len(m.CLASSES), rng)
        labels += chosen
        folds += [fold] * len(chosen)
    clips = [clip(m.CLASSES[c], rng, s["frames"], s["image_size"]) for c in labels]
    m.write_miniature(root, clips, labels, folds)


def _ferv39k(root: Path, rng, s) -> None:
    from fer.datasets import ferv39k as m

    n_test = max(1, s["clips_per_class"] // 2)
    labels, splits = [], []
    for part, n in (("train", s["clips_per_class"]), ("test", n_test)):
        chosen = _balanced(n, len(m.CLASSES), rng)
        labels += chosen
        splits += [part] * len(chosen)
    clips = [clip(m.CLASSES[c], rng, s["frames"], s["image_size"]) for c in labels]
    m.write_miniature(root, clips, labels, splits)


def _au_frames(aus: tuple[int, ...], frames: int, task: str, identity: int, rng, size: int):
    """(frames, labels [T, len(aus)] 1/0/-1, strengths) of one sequence, with demo's episode model."""
    labels, strength = demo.sample_au_frames(task, frames, aus, rng)
    rendered = [demo.render_face({a: float(v) for a, v in zip(aus, strength[t]) if a in demo.ACTION_UNITS},
                                 identity, demo.random_look(rng, 0.4, background=False), size, rng)[0]
                for t in range(frames)]  # fmt: skip
    return rendered, labels, strength


def _bp4dplus(root: Path, rng, s) -> None:
    from fer.datasets import bp4dplus as m

    sequences, codes, identity = {}, {}, 0
    for fold in m.FOLDS:
        for subject in sorted(m.PARTITIONS[fold])[: s["au_subjects_per_fold"]]:
            for task in m.CODED_TASKS[:2]:
                episode_task = task if task in demo.BP4D_TASK_AUS else "T1"
                frames, labels, _ = _au_frames(m.AUS, s["au_frames"], episode_task,
                                               identity % len(demo.IDENTITIES), rng, s["image_size"])  # fmt: skip
                sequences[(subject, task)], codes[(subject, task)] = frames, labels
            identity += 1
    m.write_miniature(root, sequences, codes)


def _disfa(root: Path, rng, s) -> None:
    from fer.datasets import disfa as m

    videos, intensities, identity = {}, {}, 0
    tasks = sorted(demo.BP4D_TASK_AUS)
    for fold in m.FOLDS:
        for subject in sorted(m.PARTITIONS[fold])[: s["au_subjects_per_fold"]]:
            frames, labels, _ = _au_frames(m.AUS, s["au_frames"], tasks[identity % len(tasks)],
                                           identity % len(demo.IDENTITIES), rng, s["image_size"])  # fmt: skip
            # DISFA codes intensities 0-5 and FMAE-IAT counts >= 2 as present: on -> 2..5, off -> 0..1
            on = labels == 1
            intensities[subject] = np.where(on, rng.integers(2, 6, on.shape), rng.integers(0, 2, on.shape))
            videos[subject] = np.stack(frames)
            identity += 1
    m.write_miniature(root, videos, intensities)


BUILDERS: dict[str, Callable] = {
    "affectnet": _affectnet,
    "ferplus": _ferplus,
    "mafw": _mafw,
    "ferv39k": _ferv39k,
    "bp4dplus": _bp4dplus,
    "disfa": _disfa,
}


def generate_family(
    family: str, root: str | os.PathLike, seed: int = 0, sizes: Mapping[str, int] | None = None
) -> Path:
    """Write a miniature `family` dataset at root in its owners' layout (kept if already there); returns root."""
    from filelock import FileLock

    if family not in BUILDERS:
        raise ValueError(f"no table demo for dataset family {family!r}; families: {', '.join(BUILDERS)} "
                         f"(rafdb, dfew and bp4d come from fer.datasets.demo)")  # fmt: skip
    config = dict(SIZES)
    for key, value in (sizes or {}).items():
        if key not in SIZES or isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"demo size {key!r}={value!r}: keys are {', '.join(SIZES)}, values positive integers"
            )
        config[key] = value
    root = Path(root).resolve()
    root.parent.mkdir(parents=True, exist_ok=True)
    stamp_file = root.parent / f".{root.name}.demo.json"
    stamp = {"family": family, "version": VERSION, "seed": int(seed), "sizes": config}
    with FileLock(str(root.parent / f".{root.name}.demo.lock"), timeout=3600):
        if root.is_dir() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
            return root
        stamp_file.unlink(missing_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        try:
            index = sorted(BUILDERS).index(family)  # each family its own random stream
            BUILDERS[family](tmp, np.random.default_rng([int(seed), 100 + index]), config)
            if root.exists():
                os.replace(root, old)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        stamp_file.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return root
