"""Small learnable datasets for the engine tests, written as the annotation files of the design's contract (3).

Expression images: one coloured shape per class (red disc, green square, blue bar) at a random place and size on a
noisy grey background. AU images: shape presence is the AU (AU1 disc, AU2 square, AU4 bar, each at its own place, several per image),
the background tint is the subject's identity, and every tenth AU4 label is unknown (-1). Videos: frame folders
of a shape moving right (class 0) or down (class 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = ((220, 40, 40), (40, 200, 40), (40, 60, 230))
AU_PLACES = ((0.3, 0.28), (0.3, 0.72), (0.72, 0.5))  # (y, x) of AU1, AU2, AU4 as fractions of the image


def _canvas(rng: np.random.Generator, size: int, tint=(0, 0, 0)) -> np.ndarray:
    base = rng.normal(110, 12, (size, size, 3)) + np.asarray(tint, dtype=float)
    return np.clip(base, 0, 255)


def _draw(img: np.ndarray, shape: int, cy: float, cx: float, r: float) -> None:
    size = img.shape[0]
    yy, xx = np.mgrid[:size, :size]
    if shape == 0:
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif shape == 1:
        m = (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8)
    else:
        m = (abs(yy - cy) <= r * 0.35) & (abs(xx - cx) <= r * 1.3)
    img[m] = COLOURS[shape]


def shape_image(label: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    img = _canvas(rng, size)
    r = rng.uniform(0.18, 0.28) * size
    cy, cx = rng.uniform(r + 1, size - r - 1, 2)
    _draw(img, label, cy, cx, r)
    return img.astype(np.uint8)


def write_expression(
    root: Path, name: str, per_class: int, classes: int = 3, size: int = 32, seed: int = 0
) -> Path:
    """<root>/<name>/NNNN.png and <root>/<name>.csv with "<abs path> <label>" lines (MAE-DFER format)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(per_class * classes):
        label = i % classes
        path = folder / f"{i:04d}.png"
        Image.fromarray(shape_image(label, rng, size)).save(path)
        lines.append(f"{path.resolve()} {label}")
    csv = Path(root) / f"{name}.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def write_au(
    root: Path,
    name: str,
    subjects: list[str],
    per_subject: int,
    size: int = 32,
    seed: int = 0,
    known_subjects: list[str] | None = None,
) -> Path:
    """AU table "path,subject,subject_id,AU1,AU2,AU4" (1 / 0 / -1) of shape-presence images, tint = identity."""
    rng = np.random.default_rng(seed)
    known = known_subjects if known_subjects is not None else subjects
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,subject,subject_id,AU1,AU2,AU4"]
    k = 0
    for s_index, subject in enumerate(subjects):
        tint = [(-50, 0, 0), (0, -50, 0), (0, 0, -50), (40, 40, -40)][s_index % 4]
        for _ in range(per_subject):
            aus = rng.integers(0, 2, 3)
            img = _canvas(rng, size, tint)
            for shape in np.flatnonzero(aus):  # each AU at its own place, as action units on a face
                cy, cx = np.asarray(AU_PLACES[shape]) * size + rng.uniform(-1.5, 1.5, 2)
                _draw(img, int(shape), cy, cx, 0.16 * size)
            path = folder / f"{k:04d}.png"
            Image.fromarray(img.astype(np.uint8)).save(path)
            labels = [int(a) for a in aus]
            if k % 10 == 9:
                labels[2] = -1
            sid = known.index(subject) if subject in known else -1
            rows.append(f"{path.resolve()},{subject},{sid}," + ",".join(map(str, labels)))
            k += 1
    csv = Path(root) / f"{name}.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def write_video(
    root: Path, name: str, per_class: int, frames: int = 8, size: int = 32, seed: int = 0
) -> Path:
    """Frame folders <root>/<name>/NNNN/00001.png ... of a disc moving right (0) or down (1); "<folder> <label>"."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(per_class * 2):
        label = i % 2
        folder = Path(root) / name / f"{i:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        r = size * 0.15
        y0, x0 = rng.uniform(r + 1, size / 2, 2)
        for t in range(frames):
            img = _canvas(rng, size)
            step = t * (size / 2 - r) / frames
            _draw(img, 0, y0 + (step if label else 0), x0 + (0 if label else step), r)
            Image.fromarray(img.astype(np.uint8)).save(folder / f"{t + 1:05d}.png")
        lines.append(f"{folder.resolve()} {label}")
    csv = Path(root) / f"{name}.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
TINY_MAE = dict(TINY_VIT, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
