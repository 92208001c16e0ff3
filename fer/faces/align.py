"""Similarity alignment of a face to the ArcFace/InsightFace 5-point template.

The 112x112 template is the one InsightFace's `face_align.arcface_dst` uses for ArcFace training crops (eye
centres, nose tip, mouth corners). For other output sizes it is scaled uniformly by size/112, so a face fills the
same fraction of a 64, 160 or 224 crop as of a 112 crop; `margin` shrinks the template about the crop centre to
keep more context (margin=0.25: the template spans 1/1.25 of its usual extent).
"""

from __future__ import annotations

import cv2
import numpy as np

TEMPLATE_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # eye on the image's left
        [73.5318, 51.5014],  # eye on the image's right
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # mouth corner, image left
        [70.7299, 92.2041],  # mouth corner, image right
    ],
    dtype=np.float64,
)


def face_template(size: int = TEMPLATE_SIZE, margin: float = 0.0) -> np.ndarray:
    """The 5 destination points (float64 [5, 2]) for a size x size crop."""
    if int(size) != size or size < 8:
        raise ValueError(f"aligned face size must be an integer >= 8, got {size!r}")
    if not 0.0 <= margin < 10.0:
        raise ValueError(f"margin must be in [0, 10), got {margin!r}")
    centre = TEMPLATE_SIZE / 2.0
    pts = (ARCFACE_TEMPLATE - centre) / (1.0 + margin) + centre
    return pts * (size / TEMPLATE_SIZE)


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst, as a 2x3 matrix.

    Closed form of Umeyama (1991), "Least-squares estimation of transformation parameters between two point
    patterns", without reflection; the same estimate as skimage's SimilarityTransform.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching [N>=2, 2] point sets, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("landmarks contain NaN or inf")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("landmarks are degenerate (all points coincide); cannot estimate a similarity")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def warp_face(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Apply a 2x3 transform and cut a size x size crop (black outside the source image)."""
    return cv2.warpAffine(
        rgb, np.asarray(matrix, np.float64), (int(size), int(size)), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip


def align_face(
    rgb: np.ndarray, landmarks5: np.ndarray, size: int = TEMPLATE_SIZE, margin: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face whose 5 landmarks are given onto the template: (aligned uint8 [size, size, 3], 2x3 matrix)."""
    pts = np.asarray(landmarks5, np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"align_face needs 5 (x, y) landmarks, got shape {pts.shape}")
    matrix = similarity_matrix(pts, face_template(size, margin))
    return warp_face(rgb, matrix, size), matrix
