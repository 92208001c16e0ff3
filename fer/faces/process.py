"""The faces stage: detect, align and save every image and every video frame of a list of records.

Layout (contract 2 of the lead's interface notes):

- image record -> ``out_dir/<key>.jpg``
- video record (mp4/avi/... file or folder of frames) -> ``out_dir/<key>/00001.jpg, 00002.jpg, ...``, one file per
  decoded frame, numbered 1.. in decoding order (the manifest's ``frame`` column holds the source frame index)
- ``out_dir/manifest.csv``: one row per image or video frame, columns `COLUMNS`

A video frame without a face is warped with the transform of the last frame that had one (frames before the first
detection use the first detection's) and marked ``reused``. Unreadable files and files without a face get rows,
never outputs, and never stop the run.

Resuming: each finished item is appended as one JSON line to ``out_dir/manifest.partial.jsonl`` (the first line
holds the settings); a rerun skips items found there whose outputs exist, and writes manifest.csv atomically at
the end. Video frames are written to a hidden folder renamed into place when the video is done, so a crash never
leaves a half-written frame folder that looks complete.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from fer.io import atomic_path

from .align import align_face, warp_face
from .detect import Detector, Face, create_detector

logger = logging.getLogger(__name__)

COLUMNS = ("item", "frame", "status", "score", "box", "landmarks", "output", "error")
STATUSES = ("ok", "no_face", "unreadable", "reused")
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"})
MANIFEST = "manifest.csv"
LOG = "manifest.partial.jsonl"


class MediaError(OSError):
    """A file or frame cannot be read; the message names it."""


@dataclass(frozen=True)
class Settings:
    """What decides the outputs; a rerun into the same out_dir must use the same values."""

    backend: str = "mtcnn"
    size: int = 112
    margin: float = 0.0
    max_frames: int | None = None
    frame_stride: int = 1
    detector_kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    settings: Settings
    out_dir: Path
    device: str
    batch_size: int
    jpeg_quality: int
    threads: int | None  # cv2/torch threads in a worker; None leaves the defaults


# --------------------------------------------------------------------------------------------- reading media


def media_kind(path: Path) -> str:
    """'image', 'video' (a file decord decodes) or 'frames' (a folder of frame images), from the path alone."""
    if path.is_dir():
        return "frames"
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    raise MediaError(
        f"{path}: unsupported file type {ext!r}; images: {' '.join(sorted(IMAGE_EXTS))}; "
        f"videos: {' '.join(sorted(VIDEO_EXTS))}; or a folder of frame images"
    )


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 array, or MediaError naming the file."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise MediaError(f"{path}: cannot read file ({err})") from err
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise MediaError(f"{path}: cannot decode image (corrupt, truncated or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """Frame images of a folder in natural order (1.jpg, 2.jpg, 10.jpg)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _select(n: int, max_frames: int | None, stride: int) -> list[int]:
    idx = list(range(0, n, stride))
    return idx if max_frames is None else idx[:max_frames]


def open_video(path: Path, threads: int = 1):
    """A decord VideoReader on the CPU, or MediaError naming the file."""
    import decord

    try:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
    except Exception as err:  # decord raises DECORDError / RuntimeError with ffmpeg's reason
        raise MediaError(f"{path}: cannot open video ({str(err).splitlines()[0][:200]})") from err
    if len(vr) == 0:
        raise MediaError(f"{path}: video has no frames")
    return vr


def _decode_error(path, i: int, err: Exception) -> str:
    return f"{path}: cannot decode frame {i} ({(str(err).splitlines() or [type(err).__name__])[0][:200]})"


def read_frames_random(vr, indices: list[int], batch_size: int = 32, path: Path | str = "video") -> Iterator:
    """Yield (index, RGB frame or None, error) for any index list: decord's `get_batch`, `batch_size` at a time;
    a failing batch is retried frame by frame so that one bad packet costs one frame, not the batch."""
    for s in range(0, len(indices), batch_size):
        chunk = indices[s : s + batch_size]
        try:
            frames = vr.get_batch(chunk).asnumpy()
        except Exception:
            for i in chunk:
                try:
                    yield i, vr[i].asnumpy(), ""
                except Exception as err:
                    yield i, None, _decode_error(path, i, err)
            continue
        yield from ((i, f, "") for i, f in zip(chunk, frames))


def read_video_frames(vr, indices: list[int], batch_size: int = 32, path: Path | str = "video") -> Iterator:
    """Yield (index, RGB frame or None, error) for `indices`, decoding the video front to back.

    Evenly spaced indices (what the stage selects) are read in one sequential pass, `next()` for a kept frame and
    `skip_frames` (decoded, not converted) between them, handed out `batch_size` at a time by the caller. With
    decord 0.6.0 on a 640x360 mp4 this cost about 10% less CPU per frame than `get_batch` of 32 and the same as
    per-index access (benchmarks/faces_throughput.py): decoding dominates, and no seek is ever needed.
    Other index lists, and the rest of a video after a decoding error, use `read_frames_random`.
    """
    if not indices:
        return
    step = indices[1] - indices[0] if len(indices) > 1 else 1
    if step < 1 or any(b - a != step for a, b in zip(indices, indices[1:])):
        yield from read_frames_random(vr, indices, batch_size, path)
        return
    try:
        if indices[0]:
            vr.seek_accurate(indices[0])
        else:
            vr.seek(0)
    except Exception as err:
        yield indices[0], None, _decode_error(path, indices[0], err)
        yield from read_frames_random(vr, indices[1:], batch_size, path)
        return
    for n, i in enumerate(indices):
        try:
            frame = vr.next().asnumpy()
            if step > 1 and n + 1 < len(indices):
                vr.skip_frames(step - 1)
        except Exception as err:  # StopIteration too: decord's length can count frames it cannot decode
            yield i, None, _decode_error(path, i, err)
            yield from read_frames_random(vr, indices[n + 1 :], batch_size, path)
            return
        yield i, frame, ""


class _FrameSource:
    """The selected frames of a video file or frame folder: one pass in order, and re-reads by index."""

    def __init__(self, path: Path, kind: str, settings: Settings, batch_size: int):
        self.path, self.batch_size = path, batch_size
        if kind == "video":
            self.vr = open_video(path)
            n = len(self.vr)
        else:
            self.files = frame_files(path)
            if not self.files:
                raise MediaError(f"{path}: folder holds no frame images ({' '.join(sorted(IMAGE_EXTS))})")
            self.vr, n = None, len(self.files)
        self.indices = _select(n, settings.max_frames, settings.frame_stride)

    def _images(self, indices: list[int]) -> Iterator:
        for i in indices:
            try:
                yield i, read_image(self.files[i]), ""
            except MediaError as err:
                yield i, None, str(err)

    def frames(self) -> Iterator:
        if self.vr is None:
            return self._images(self.indices)
        return read_video_frames(self.vr, self.indices, self.batch_size, self.path)

    def reread(self, indices: list[int]) -> Iterator:
        if self.vr is None:
            return self._images(indices)
        # a second reader, so the sequential pass of `frames` keeps its position
        return read_frames_random(open_video(self.path), indices, self.batch_size, self.path)


# --------------------------------------------------------------------------------------------- one item


def _row(
    item: str, frame: int, status: str, face: Face | None = None, output: str = "", error: str = ""
) -> dict:
    return {
        "item": item,
        "frame": frame,
        "status": status,
        "score": f"{face.score:.4f}" if face else "",
        "box": " ".join(f"{v:.1f}" for v in face.box) if face else "",
        "landmarks": " ".join(f"{v:.2f}" for v in face.landmarks5.reshape(-1)) if face else "",
        "output": output,
        "error": error,
    }


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def _process_image(key: str, path: Path, detector: Detector, job: _Job) -> list[dict]:
    try:
        rgb = read_image(path)
    except MediaError as err:
        return [_row(key, -1, "unreadable", error=str(err))]
    faces = detector.detect(rgb, max_faces=1)
    if not faces:
        return [_row(key, -1, "no_face", error=f"{path}: no face detected")]
    aligned, _ = align_face(rgb, faces[0].landmarks5, job.settings.size, job.settings.margin)
    rel = f"{key}.jpg"
    with atomic_path(job.out_dir / rel) as tmp:
        tmp.write_bytes(_jpeg(aligned, job.jpeg_quality))
    return [_row(key, -1, "ok", faces[0], output=rel)]


def _process_video(key: str, path: Path, kind: str, detector: Detector, job: _Job) -> list[dict]:
    st = job.settings
    try:
        source = _FrameSource(path, kind, st, job.batch_size)
    except MediaError as err:
        return [_row(key, -1, "unreadable", error=str(err))]
    final = job.out_dir / key
    partial = final.parent / f".{final.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    number = {idx: n + 1 for n, idx in enumerate(source.indices)}  # output file number of each source frame

    # plain writes: the whole folder is renamed into place at the end
    def save(idx: int, rgb: np.ndarray) -> str:
        name = f"{number[idx]:05d}.jpg"
        (partial / name).write_bytes(_jpeg(rgb, job.jpeg_quality))
        return f"{key}/{name}"

    rows: dict[int, dict] = {}
    first, last = None, None  # (frame index, matrix) of the first and the latest frame with a face
    waiting: list[int] = []  # faceless frames seen before the first detection
    stream = source.frames()
    while frames := list(islice(stream, job.batch_size)):
        for idx, _, err in frames:
            if err:
                rows[idx] = _row(key, idx, "unreadable", error=err)
        good = [(idx, rgb) for idx, rgb, err in frames if not err]
        found = detector.detect_batch([rgb for _, rgb in good], max_faces=1)
        for (idx, rgb), faces in zip(good, found):
            if faces:
                aligned, matrix = align_face(rgb, faces[0].landmarks5, st.size, st.margin)
                rows[idx] = _row(key, idx, "ok", faces[0], output=save(idx, aligned))
                last = (idx, matrix)
                first = first or last
            elif last is not None:
                out = save(idx, warp_face(rgb, last[1], st.size))
                msg = f"{path}: no face in frame {idx}; transform of frame {last[0]} reused"
                rows[idx] = _row(key, idx, "reused", output=out, error=msg)
            else:
                waiting.append(idx)
        # leading faceless frames are read again once a face is found, rather than held in memory
        if first is not None and waiting:
            for idx, rgb, err in source.reread(waiting):
                if err:
                    rows[idx] = _row(key, idx, "unreadable", error=err)
                    continue
                out = save(idx, warp_face(rgb, first[1], st.size))
                msg = f"{path}: no face in frame {idx}; transform of frame {first[0]} reused"
                rows[idx] = _row(key, idx, "reused", output=out, error=msg)
            waiting = []
    if first is None:  # no face anywhere: rows only, no outputs
        shutil.rmtree(partial)
        for idx in waiting:
            rows[idx] = _row(key, idx, "no_face", error=f"{path}: no face detected in any frame")
        return [rows[i] for i in source.indices]
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return [rows[i] for i in source.indices]


def process_item(record, detector: Detector, job: _Job) -> list[dict]:
    """Manifest rows of one record, after writing its aligned outputs."""
    key, path = record.key, Path(record.path)
    try:
        kind = media_kind(path)
    except MediaError as err:
        return [_row(key, -1, "unreadable", error=str(err))]
    try:
        if kind == "image":
            return _process_image(key, path, detector, job)
        return _process_video(key, path, kind, detector, job)
    except MediaError as err:
        return [_row(key, -1, "unreadable", error=str(err))]
    except Exception as err:  # a bug or a detector failure: stop, naming the file (a rerun resumes here)
        raise RuntimeError(
            f"faces stage failed on item {key!r} ({path}): {type(err).__name__}: {err}"
        ) from err


# --------------------------------------------------------------------------------------------- workers

_WORKER: dict = {}


def _make_detector(job: _Job) -> Detector:
    return create_detector(job.settings.backend, device=job.device, **job.settings.detector_kwargs)


def _default_start_method(backend: str, device: str) -> str:
    """fork, unless the workers will use CUDA (which cannot be forked); mtcnn always runs on the CPU."""
    cuda = backend != "mtcnn" and not device.startswith("cpu")
    return "spawn" if cuda or "fork" not in mp.get_all_start_methods() else "fork"


def _init_worker(job: _Job, forked: bool) -> None:
    # an initializer that raises makes multiprocessing.Pool respawn workers forever: keep the error for _work
    try:
        # cv2.setNumThreads in a forked child can wait forever on the parent's pool threads (seen here): forked
        # workers inherit the parent's setting instead, which align_records lowers around the pool
        if job.threads is not None and not forked:
            cv2.setNumThreads(job.threads)
        _WORKER["job"], _WORKER["detector"] = job, _make_detector(job)
        if job.threads is not None and "torch" in sys.modules:  # only torch backends import it
            sys.modules["torch"].set_num_threads(job.threads)
    except Exception as err:
        _WORKER["error"] = err


def _work(record) -> tuple[str, list[dict]]:
    if "error" in _WORKER:
        raise _WORKER["error"]
    return record.key, process_item(record, _WORKER["detector"], _WORKER["job"])


# --------------------------------------------------------------------------------------------- resume log


class _Log:
    """Append-only JSON lines: the settings, then one line per finished item (a torn last line is dropped).

    Only an index (item -> byte range, first and last output) stays in memory; rows are read back from the file
    when the manifest is written, so a dataset of a million videos does not hold a billion row dicts.
    """

    def __init__(self, path: Path, settings: Settings):
        self.path = path
        self.index: dict[str, tuple[int, int, str, str]] = {}
        want = json.loads(json.dumps(asdict(settings)))
        if path.exists() and path.stat().st_size:
            self._load(want)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"settings": want}) + "\n")

    def _load(self, want: dict) -> None:
        with open(self.path, "rb") as f:  # streamed: the log of a large video dataset runs to gigabytes
            head = f.readline()
            if not head.endswith(b"\n"):  # not even the settings line was finished
                self.path.write_text(json.dumps({"settings": want}) + "\n")
                return
            try:
                have = json.loads(head)["settings"]
            except (ValueError, KeyError) as err:
                raise ValueError(
                    f"{self.path}: not a faces-stage log ({err}); delete it to start over"
                ) from err
            if have != want:
                diff = ", ".join(
                    f"{k}: {have.get(k)!r} -> {want[k]!r}" for k in want if have.get(k) != want[k]
                )
                raise ValueError(
                    f"{self.path}: this out_dir was produced with other settings ({diff}); "
                    f"write to a new out_dir, or delete {self.path.parent} to redo it"
                )
            offset = len(head)
            for line in f:
                if not line.endswith(b"\n"):  # a crash mid-append: forget the partial line
                    break
                self._add(json.loads(line), offset, len(line))
                offset += len(line)
        if offset < self.path.stat().st_size:
            os.truncate(self.path, offset)

    def _add(self, entry: dict, offset: int, length: int) -> None:
        out = [r["output"] for r in entry["rows"] if r["output"]] or [""]
        self.index[entry["item"]] = (offset, length, out[0], out[-1])

    def append(self, key: str, rows: list[dict]) -> None:
        # one line per item, written and closed at once: a crash can tear only the last line (see _load)
        entry = {"item": key, "rows": rows}
        line = (json.dumps(entry) + "\n").encode()
        with open(self.path, "ab") as f:
            offset = f.tell()
            f.write(line)
        self._add(entry, offset, len(line))

    def complete(self, key: str, out_dir: Path) -> bool:
        """Logged and its outputs still on disk (first and last checked: frame folders are renamed in whole)."""
        if key not in self.index:
            return False
        _, _, first, last = self.index[key]
        return not first or ((out_dir / first).is_file() and (out_dir / last).is_file())

    def rows(self, key: str, f) -> list[dict]:
        offset, length, _, _ = self.index[key]
        f.seek(offset)
        return json.loads(f.read(length))["rows"]


# --------------------------------------------------------------------------------------------- entry points


def _check_keys(records: list) -> None:
    seen = set()
    for r in records:
        key = r.key
        parts = Path(key).parts
        if not key or Path(key).is_absolute() or ".." in parts or key.endswith((".partial", "/")):
            raise ValueError(f"record key {key!r} cannot be used as a relative output path (from {r.path})")
        if key in seen:
            raise ValueError(
                f"duplicate record key {key!r} (from {r.path}): outputs would overwrite each other"
            )
        seen.add(key)


def align_records(
    records: Iterable,
    out_dir: str | os.PathLike,
    backend: str = "mtcnn",
    size: int = 112,
    workers: int = 1,
    device: str = "cpu",
    max_frames: int | None = None,
    frame_stride: int = 1,
    margin: float = 0.0,
    batch_size: int = 32,
    jpeg_quality: int = 95,
    detector_kwargs: dict | None = None,
    progress: bool = True,
    start_method: str | None = None,
) -> Path:
    """Detect, align and save the faces of `records` (fer.datasets.base.Record) under out_dir; returns manifest.csv.

    workers > 1 runs that many processes, each with its own detector; workers=1 runs here. `batch_size` video
    frames are decoded (decord) and detected per call. A rerun into the same out_dir skips finished items.
    start_method: multiprocessing's; by default "fork" for CPU detectors (mtcnn always; works from unguarded scripts
    such as Snakemake's `script:` files) and "spawn" for a GPU detector (CUDA cannot be forked; the calling script
    then needs an ``if __name__ == "__main__":`` guard, as multiprocessing documents).
    """
    from tqdm import tqdm

    records = list(records)
    _check_keys(records)
    if workers < 1 or frame_stride < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"need workers >= 1, frame_stride >= 1, max_frames >= 1 or None; got "
                         f"{workers}, {frame_stride}, {max_frames}")  # fmt: skip
    settings = Settings(
        backend, int(size), float(margin), max_frames, int(frame_stride), dict(detector_kwargs or {})
    )
    out_dir = Path(out_dir)
    log = _Log(out_dir / LOG, settings)
    todo = [r for r in records if not log.complete(r.key, out_dir)]
    logger.info(
        "faces: %d records, %d done earlier, %d to process", len(records), len(records) - len(todo), len(todo)
    )
    job = _Job(settings, out_dir, device, batch_size, jpeg_quality, threads=1 if workers > 1 else None)
    bar = tqdm(total=len(todo), desc="faces", unit="item", disable=not progress)
    try:
        if todo and workers == 1:
            detector = _make_detector(job)
            for r in todo:
                log.append(r.key, process_item(r, detector, job))
                bar.update()
        elif todo:
            method = start_method or _default_start_method(backend, device)
            cv2_threads = cv2.getNumThreads()
            if method == "fork":
                cv2.setNumThreads(job.threads)  # inherited by the workers; restored below
            try:
                with mp.get_context(method).Pool(
                    min(workers, len(todo)), _init_worker, (job, method == "fork")
                ) as pool:
                    for key, rows in pool.imap_unordered(_work, todo, chunksize=1):
                        log.append(key, rows)
                        bar.update()
            finally:
                cv2.setNumThreads(cv2_threads)
    finally:
        bar.close()
    with (
        atomic_path(out_dir / MANIFEST) as tmp,
        open(tmp, "w", newline="") as out,
        open(log.path, "rb") as src,
    ):
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in records:
            writer.writerows(log.rows(r.key, src))
    return out_dir / MANIFEST


def read_manifest(manifest: str | os.PathLike) -> list[dict]:
    """Rows of a manifest.csv as dicts (frame as int), checking the header."""
    manifest = Path(manifest)
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(
                f"{manifest}: header {reader.fieldnames} is not the faces manifest's {list(COLUMNS)}"
            )
        return [{**row, "frame": int(row["frame"])} for row in reader]


def summarize(manifest: str | os.PathLike) -> dict:
    """Counts for the workflow log: rows, items, and rows per status (every status present, 0 when absent)."""
    rows = read_manifest(manifest)
    counts = Counter(r["status"] for r in rows)
    return {
        "rows": len(rows),
        "items": len({r["item"] for r in rows}),
        **{s: counts.get(s, 0) for s in STATUSES},
    }
