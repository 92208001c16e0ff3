"""`fer predict`: a finetuned model on your own images and videos, with the face pipeline it was trained on.

Faces are found by the faces stage's detector and aligned to its template at `face_size` (the stage's default
112 px; checkpoints do not record it), then preprocessed as the checkpoint's recipe says: the finetuning eval
transform for images (fer.engine.finetune), resize + normalise for clips (MAE-DFER's test mode). Videos: every
frame is decoded and searched for faces, faces are tracked (fer.predict.tracking), and

- image models classify every face of every frame;
- video models classify clips of `num_frames` frames `sampling_rate` apart (MAE-DFER's temporal stride) cut
  from each track by a sliding window (hop `clip_hop`, default half a window); every frame gets the mean
  probabilities of the windows that cover it. A track shorter than a window repeats its last frame, as
  MAE-DFER pads short videos. A still image given to a video model is a clip of one repeated frame.

Outputs under out_dir: predictions.csv (`COLUMNS`, one `prob_<class>` column per class or AU, then error),
annotated/<input> (images as they came, videos as mp4), timelines/<input>.png (videos), and a summary table.
A file without a face gives rows with status no_face, an unreadable one a row with status unreadable and the
reason in `error`; neither stops the run.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer.faces import align_face, create_detector
from fer.faces.process import IMAGE_EXTS, VIDEO_EXTS, MediaError, open_video, read_image, read_video_frames

from . import render
from .predictor import PredictError, Predictor, load_predictor
from .tracking import IoUTracker

log = logging.getLogger(__name__)

COLUMNS = ("file", "frame", "time", "face_id", "x0", "y0", "x1", "y1", "score", "status", "prediction",
           "confidence")  # fmt: skip
STATUSES = ("ok", "reused", "no_face", "unreadable")


# --------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InputFile:
    path: Path
    key: str  # relative output name (annotated/<key>, timelines/<key>.png)
    kind: str  # image | video | unknown


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[InputFile]:
    """Files as given, and the images and videos inside folders (recursively, sorted); keys made unique."""
    found: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS
            )
            if not files:
                log.warning("%s: no images (%s) or videos (%s) inside", path, " ".join(sorted(IMAGE_EXTS)),
                            " ".join(sorted(VIDEO_EXTS)))  # fmt: skip
            found += [(p, f"{path.resolve().name}/{p.relative_to(path).as_posix()}") for p in files]
        else:
            found.append((path, path.name))
    out, seen = [], set()
    for path, key in found:
        base, n = key, 1
        while key in seen:  # same name from two places: a.jpg, a-2.jpg
            n += 1
            key = f"{Path(base).with_suffix('')}-{n}{Path(base).suffix}"
        seen.add(key)
        ext = path.suffix.lower()
        out.append(
            InputFile(
                path, key, "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else "unknown"
            )
        )
    return out


# --------------------------------------------------------------------------------------------------- rows


def _row(item: InputFile, frame: int, status: str, time: float | None = None, error: str = "") -> dict:
    return {"file": str(item.path), "kind": item.kind, "frame": frame,
            "time": "" if time is None else f"{time:.3f}", "face_id": "", "x0": "", "y0": "", "x1": "",
            "y1": "", "score": "", "status": status, "prediction": "", "confidence": "",
            "error": error}  # fmt: skip


def _face_row(item, frame, time, face_id, face, reused, probs, predictor: Predictor) -> dict:
    row = _row(item, frame, "reused" if reused else "ok", time)
    label, conf = predictor.decide(probs)
    row.update(face_id=face_id, score=f"{face.score:.4f}", prediction=label, confidence=f"{conf:.4f}")
    row.update({k: f"{v:.1f}" for k, v in zip(("x0", "y0", "x1", "y1"), face.box)})
    row.update({f"prob_{name}": f"{p:.4f}" for name, p in zip(predictor.labels, probs)})
    if reused:
        row["error"] = "no detection in this frame: the track's last face (box and landmarks) reused"
    return row


def _drawn(row: dict) -> dict:
    return {"box": [float(row[k]) for k in ("x0", "y0", "x1", "y1")], "face_id": int(row["face_id"]),
            "label": row["prediction"], "confidence": float(row["confidence"]),
            "reused": row["status"] == "reused"}  # fmt: skip


# --------------------------------------------------------------------------------------------------- the run


@dataclass
class _Run:
    predictor: Predictor
    detector: object
    out_dir: Path
    face_size: int
    face_margin: float
    max_faces: int | None
    clip_hop: int | None
    max_gap: int
    iou_threshold: float
    annotate: bool
    progress: bool
    annotated: list[Path] = field(default_factory=list)
    timelines: list[Path] = field(default_factory=list)

    def align(self, rgb: np.ndarray, face) -> np.ndarray:
        return align_face(rgb, face.landmarks5, self.face_size, self.face_margin)[0]


def _predict_image(item: InputFile, run: _Run) -> list[dict]:
    try:
        rgb = read_image(item.path)
    except MediaError as err:
        return [_row(item, -1, "unreadable", error=str(err))]
    faces = run.detector.detect(rgb, max_faces=run.max_faces)  # most likely subject first: face_id 0
    if not faces:
        rows = [_row(item, -1, "no_face", error=f"{item.path}: no face detected")]
    else:
        probs = run.predictor([run.align(rgb, f) for f in faces])
        rows = [
            _face_row(item, -1, None, i, f, False, p, run.predictor)
            for i, (f, p) in enumerate(zip(faces, probs))
        ]
    if run.annotate:
        target = run.out_dir / "annotated" / item.key
        bgr = (
            render.draw_faces(rgb, [_drawn(r) for r in rows])
            if faces
            else render.draw_message(rgb, "no face")
        )
        try:
            run.annotated.append(render.write_image(target, bgr))
        except OSError:  # an extension OpenCV cannot write (e.g. .gif): JPEG next to it
            run.annotated.append(render.write_image(target.with_name(target.name + ".jpg"), bgr))
    return rows


def _chunks(vr, n: int, size: int, path: Path):
    """Decoded frames in order, `size` per decoder call: lists of (index, rgb or None, error)."""
    for s in range(0, n, size):
        yield list(read_video_frames(vr, list(range(s, min(s + size, n))), size, path))


def _windows(first: int, last: int, span: int, hop: int) -> list[int]:
    """Start frames of sliding windows of `span` frames over first..last, the last window ending at `last`."""
    end = max(first, last - span + 1)
    starts = list(range(first, end + 1, hop))
    if starts[-1] != end:
        starts.append(end)
    return starts


def _clip_indices(start: int, last: int, num_frames: int, sampling_rate: int) -> list[int]:
    """Every sampling_rate-th frame from `start`, the last one repeated where the track ends first (MAE-DFER's
    test mode on a short video, as fer.data.video.eval_clip_indices)."""
    idx = list(range(start, min(start + num_frames * sampling_rate, last + 1), sampling_rate))
    return idx + [idx[-1]] * (num_frames - len(idx))


def _predict_video(item: InputFile, run: _Run) -> list[dict]:
    from tqdm import tqdm

    try:
        vr = open_video(item.path)
    except MediaError as err:
        return [_row(item, -1, "unreadable", error=str(err))]
    n = len(vr)
    fps = float(vr.get_avg_fps() or 0.0)
    if not math.isfinite(fps) or fps <= 0:
        log.warning("%s: no frame rate in the file; times assume 25 fps", item.path)
        fps = 25.0
    try:  # presentation times (variable frame rate videos); the mean rate where the container has none
        times = np.asarray(vr.get_frame_timestamp(np.arange(n)), np.float64)[:, 0]
    except Exception:
        times = np.arange(n) / fps
    passes = 3 if run.annotate else 2
    with tqdm(
        total=n * passes, desc=item.key[-30:], unit="frame", leave=False, disable=not run.progress
    ) as bar:
        return _video_passes(item, run, vr, n, fps, times, bar)


def _video_passes(item: InputFile, run: _Run, vr, n: int, fps: float, times: np.ndarray, bar) -> list[dict]:
    pred, bs = run.predictor, run.predictor.batch_size

    # pass 1: detect every frame, track
    tracker, bad, size = IoUTracker(run.iou_threshold, run.max_gap), {}, None
    for chunk in _chunks(vr, n, bs, item.path):
        good = [(i, rgb) for i, rgb, err in chunk if not err]
        bad.update({i: err for i, _, err in chunk if err})
        found = run.detector.detect_batch([rgb for _, rgb in good], max_faces=run.max_faces) if good else []
        for (i, rgb), faces in zip(good, found):
            size = size or (rgb.shape[1], rgb.shape[0])
            tracker.update(i, faces)
        bar.update(len(chunk))
    tracks = {t.track_id: t for t in tracker.tracks}
    at = defaultdict(list)  # frame -> the tracks covering it (detected or bridged)
    for tr in tracker.tracks:
        for f in tr.frames():
            at[f].append(tr)
    if size is None:  # no frame decoded at all
        return [_row(item, i, "unreadable", times[i], bad.get(i, "")) for i in range(n)]

    # pass 2: align the faces of every track and classify them (per frame, or clips of a sliding window)
    sums = {t: np.zeros((len(tr.frames()), len(pred.labels))) for t, tr in tracks.items()}
    counts = {t: np.zeros(len(tr.frames())) for t, tr in tracks.items()}
    windows = []  # (frame that completes it, track, first and last frame it covers, its frame indices)
    need = defaultdict(int)  # how many windows still use the crop of (track, frame)
    if pred.is_video:
        span = pred.num_frames * pred.sampling_rate
        hop = max(1, run.clip_hop or span // 2)
        for t, tr in tracks.items():
            for start in _windows(tr.first, tr.last, span, hop):
                idx = _clip_indices(start, tr.last, pred.num_frames, pred.sampling_rate)
                windows.append((max(idx), t, start, min(start + span - 1, tr.last), idx))
                for f in set(idx):
                    need[(t, f)] += 1
        windows.sort(key=lambda w: w[0])
    crops, last_crop, queue, wi = {}, {}, [], 0

    def flush(force: bool = False) -> None:
        if queue and (force or len(queue) >= bs):
            probs = pred([x for *_, x in queue])
            for (t, lo, hi, _), p in zip(queue, probs):
                first = tracks[t].first
                sums[t][lo - first : hi - first + 1] += p
                counts[t][lo - first : hi - first + 1] += 1
            queue.clear()

    for chunk in _chunks(vr, n, bs, item.path):
        for i, rgb, _ in chunk:
            for tr in at.get(i, ()):
                t = tr.track_id
                if pred.is_video and (t, i) not in need:
                    continue
                crop = run.align(rgb, tr.face_at(i)[0]) if rgb is not None else last_crop.get(t)
                if crop is None:  # undecodable first frame of a track
                    crop = np.zeros((run.face_size, run.face_size, 3), np.uint8)
                last_crop[t] = crop
                if pred.is_video:
                    crops[(t, i)] = crop
                else:
                    queue.append((t, i, i, crop))
            while wi < len(windows) and windows[wi][0] <= i:
                _, t, lo, hi, idx = windows[wi]
                queue.append((t, lo, hi, np.stack([crops[(t, f)] for f in idx])))
                for f in set(idx):
                    need[(t, f)] -= 1
                    if need[(t, f)] == 0:
                        del crops[(t, f)]
                wi += 1
            flush()
        bar.update(len(chunk))
    flush(force=True)

    rows, per_frame = [], defaultdict(list)
    for i in range(n):
        if i in bad:
            rows.append(_row(item, i, "unreadable", times[i], bad[i]))
            continue
        active = at.get(i, [])
        if not active:
            rows.append(_row(item, i, "no_face", times[i], f"{item.path}: no face detected in frame {i}"))
        for tr in active:
            face, reused = tr.face_at(i)
            k = i - tr.first
            p = sums[tr.track_id][k] / max(counts[tr.track_id][k], 1)
            rows.append(_face_row(item, i, times[i], tr.track_id, face, reused, p, pred))
            per_frame[i].append(_drawn(rows[-1]))

    # pass 3: pictures
    if run.annotate:
        key = item.key if item.key.lower().endswith(".mp4") else item.key + ".mp4"
        with render.VideoWriter(run.out_dir / "annotated" / key, fps, size) as writer:
            for chunk in _chunks(vr, n, bs, item.path):
                for i, rgb, _ in chunk:
                    if rgb is None:
                        writer.write(np.zeros((size[1], size[0], 3), np.uint8))
                    else:
                        faces = per_frame.get(i)
                        writer.write(
                            render.draw_faces(rgb, faces) if faces else render.draw_message(rgb, "no face")
                        )
                bar.update(len(chunk))
        run.annotated.append(writer.path)
        series = {t: (np.array(list(tr.frames())), sums[t] / np.maximum(counts[t], 1)[:, None])
                  for t, tr in tracks.items()}  # fmt: skip
        no_face = np.array([i not in bad and i not in at for i in range(n)])
        run.timelines.append(render.timeline_png(
            run.out_dir / "timelines" / f"{item.key}.png", times, series, pred.labels,
            f"{item.path.name}  |  {pred.description}", no_face,
            "P(AU)" if pred.task == "au" else "probability"))  # fmt: skip
    return rows


@dataclass
class PredictionRun:
    """What `predict` wrote: the CSV, its rows, the pictures and the summary table."""

    csv: Path
    rows: list[dict]
    annotated: list[Path]
    timelines: list[Path]
    summary: str
    labels: list[str]
    frames: int = 0  # images + video frames processed
    seconds: float = 0.0  # wall time of the processing (model loading excluded)


def predict(
    inputs: Sequence[str | os.PathLike],
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike = "predictions",
    device: str = "auto",
    model: str | None = None,
    classes: str | Sequence[str] | None = None,
    recipe: str | None = None,
    sampling_rate: int | None = None,
    batch_size: int = 32,
    face_size: int = 112,
    face_backend: str = "mtcnn",
    face_margin: float = 0.0,
    max_faces: int | None = None,
    clip_hop: int | None = None,
    max_gap: int = 2,
    iou_threshold: float = 0.3,
    annotate: bool = True,
    progress: bool = True,
    model_kwargs: dict | None = None,
) -> PredictionRun:
    """Predict expressions or AUs of every face in `inputs` (files or folders); outputs go to out_dir."""
    import time

    from tqdm import tqdm

    if batch_size < 1 or face_size < 8 or max_gap < 0 or (clip_hop is not None and clip_hop < 1):
        raise PredictError(
            f"need batch_size >= 1, face_size >= 8, max_gap >= 0, clip_hop >= 1; got {batch_size}, "
            f"{face_size}, {max_gap}, {clip_hop}"
        )
    items = collect_inputs(inputs)
    if not items:
        raise PredictError(f"no input files in {[str(i) for i in inputs]}")
    predictor = load_predictor(
        checkpoint, model, classes, recipe, sampling_rate, device, batch_size, model_kwargs
    )
    log.info("%s: %s model, %s, input %d px%s", predictor.description, predictor.task, predictor.labels,
             predictor.input_size, f", clips of {predictor.num_frames} frames every {predictor.sampling_rate}"
             if predictor.is_video else "")  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    detector = create_detector(face_backend, device=str(predictor.device))
    run = _Run(predictor, detector, out_dir, int(face_size), float(face_margin), max_faces, clip_hop,
               int(max_gap), float(iou_threshold), annotate, progress)  # fmt: skip
    rows, frames, start = [], 0, time.perf_counter()
    with tqdm(total=len(items), desc="predict", unit="file", disable=not progress) as bar:
        for item in items:
            bar.set_postfix_str(item.key[-40:])
            if not item.path.exists():
                new = [_row(item, -1, "unreadable", error=f"{item.path}: file not found")]
            elif item.kind == "image":
                new = _predict_image(item, run)
            elif item.kind == "video":
                new = _predict_video(item, run)
            else:
                kinds = f"images: {' '.join(sorted(IMAGE_EXTS))}; videos: {' '.join(sorted(VIDEO_EXTS))}"
                error = f"{item.path}: unsupported file type {item.path.suffix!r}; {kinds}"
                new = [_row(item, -1, "unreadable", error=error)]
            frames += len({r["frame"] for r in new if r["status"] != "unreadable"})
            rows += new
            bar.update()
    seconds = time.perf_counter() - start
    path = write_csv(out_dir / "predictions.csv", rows, predictor.labels)
    summary = render.summary_table(rows)
    return PredictionRun(path, rows, run.annotated, run.timelines, summary, predictor.labels, frames, seconds)


def write_csv(path: str | os.PathLike, rows: list[dict], labels: list[str]) -> Path:
    """predictions.csv: `COLUMNS`, prob_<label> per class or AU, error; written atomically."""
    path = Path(path)
    fields = [*COLUMNS, *(f"prob_{name}" for name in labels), "error"]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=fields, restval="", extrasaction="ignore", lineterminator="\n"
            )
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
