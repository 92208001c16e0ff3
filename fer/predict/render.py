"""Pictures of predictions: annotated images and mp4 videos (cv2), probability timelines (matplotlib Agg),
and the summary table printed at the end of `fer predict`."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

# distinct BGR colours per face id (tab10 order), so a face keeps its colour in the video and the timeline
_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")  # fmt: skip


def face_colour(face_id: int) -> tuple[int, int, int]:
    """BGR colour of a face id."""
    h = _TAB10[int(face_id) % len(_TAB10)].lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return b, g, r


def draw_faces(rgb: np.ndarray, faces: list[dict]) -> np.ndarray:
    """A BGR copy of `rgb` with each face's box and "#id label conf" written above it.

    faces: dicts with box (x0, y0, x1, y1), face_id, label, confidence and reused (bool: box carried over from
    an earlier frame, drawn dashed-thin).
    """
    out = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    h, w = out.shape[:2]
    scale = max(0.35, min(h, w) / 640.0)  # text and lines grow with the frame
    thick = max(2, round(2 * scale))
    for face in faces:
        x0, y0, x1, y1 = (round(float(v)) for v in face["box"])
        colour = face_colour(face["face_id"])
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 1 if face.get("reused") else thick)
        conf = face.get("confidence")
        text = f"#{face['face_id']} {face['label']}" + (f" {conf:.2f}" if conf is not None else "")
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, thick)
        ty = (
            y0 - 4 if y0 - th - base - 4 >= 0 else min(y1 + th + 4, h - base)
        )  # below the box at the top edge
        tx = min(max(x0, 0), max(w - tw, 0))
        cv2.rectangle(out, (tx, ty - th - base), (tx + tw, ty + base), colour, -1)
        cv2.putText(
            out, text, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), thick, cv2.LINE_AA
        )
    return out


def draw_message(rgb: np.ndarray, text: str) -> np.ndarray:
    """A BGR copy of `rgb` with `text` in the top-left corner (frames without a face)."""
    out = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    scale = max(0.35, min(out.shape[:2]) / 640.0)
    cv2.putText(out, text, (4, int(16 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 255),
                max(1, round(2 * scale)), cv2.LINE_AA)  # fmt: skip
    return out


def write_image(path: str | os.PathLike, bgr: np.ndarray) -> Path:
    """Encode by the file's extension and write through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".jpg", bgr)
    if not ok:
        raise OSError(f"{path}: OpenCV cannot encode images of type {path.suffix!r}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
    return path


class VideoWriter:
    """mp4 (MPEG-4 Part 2, 'mp4v', in every OpenCV wheel) written to a hidden file renamed on close."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self.size = size  # (width, height)
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
        if not self.writer.isOpened():
            raise OSError(
                f"{self.path}: OpenCV cannot open an mp4v video writer (is FFmpeg in this OpenCV build?)"
            )

    def write(self, bgr: np.ndarray) -> None:
        if (bgr.shape[1], bgr.shape[0]) != self.size:  # frames of another size would be dropped silently
            bgr = cv2.resize(bgr, self.size)
        self.writer.write(bgr)

    def close(self, keep: bool = True) -> None:
        self.writer.release()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(keep=exc_type is None)


def timeline_png(
    path: str | os.PathLike,
    times: np.ndarray,
    tracks: dict[int, tuple[np.ndarray, np.ndarray]],
    labels: list[str],
    title: str,
    no_face: np.ndarray | None = None,
    ylabel: str = "probability",
) -> Path:
    """One panel per face id: the probability of every class (or AU) over time, frames without a face shaded.

    times: [T] seconds of every frame; tracks: face id -> (frame indices, probabilities [n, C]);
    no_face: [T] bool.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(len(tracks), 1)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.2 + 2.0 * n), sharex=True, squeeze=False)
    cmap = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    span = (float(times[0]), float(times[-1])) if len(times) else (0.0, 1.0)
    if not tracks:
        axes[0, 0].text(
            0.5, 0.5, "no face detected", ha="center", va="center", transform=axes[0, 0].transAxes
        )
    for ax, (face_id, (frames, probs)) in zip(axes[:, 0], sorted(tracks.items())):
        t = times[frames]
        for c, label in enumerate(labels):
            ax.plot(
                t,
                probs[:, c],
                color=cmap(c % cmap.N),
                lw=1.4,
                label=label,
                marker="." if len(t) < 3 else None,
            )
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(f"face #{face_id}\n{ylabel}")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        if no_face is not None and no_face.any():
            _shade(ax, times, no_face)
        ax.set_xlim(*span)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("time (s)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="upper right", fontsize=8, ncol=min(len(names), 7))
    fig.tight_layout(rect=(0, 0, 1, 0.93 if handles else 1))
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _shade(ax, times: np.ndarray, mask: np.ndarray) -> None:
    """Grey bands over the runs of frames where mask is True."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    for k, (start, stop) in enumerate(zip(edges[::2], edges[1::2])):
        ax.axvspan(times[start] - step / 2, times[stop - 1] + step / 2, color="0.85", zorder=0,
                   label="no face" if k == 0 else None)  # fmt: skip


def summary_table(rows: list[dict]) -> str:
    """One line per input file: kind, frames, faces, frames without a face, most frequent prediction, status.

    rows: the predictions.csv rows (dicts) of the run.
    """
    files: dict[str, dict] = {}
    for r in rows:
        s = files.setdefault(r["file"], {"kind": r["kind"], "frames": set(), "faces": set(), "no_face": set(),
                                         "pred": Counter(), "status": Counter()})  # fmt: skip
        s["frames"].add(r["frame"])
        s["status"][r["status"]] += 1
        if r["status"] == "no_face":
            s["no_face"].add(r["frame"])
        if r["face_id"] != "":
            s["faces"].add(r["face_id"])
            s["pred"][r["prediction"]] += 1
    header = ("file", "kind", "frames", "faces", "no-face frames", "most frequent prediction", "status")
    lines = []
    for name, s in files.items():
        status = "unreadable" if s["status"].get("unreadable") and not s["faces"] else "ok"
        if status == "ok" and not s["faces"]:
            status = "no_face"
        top = s["pred"].most_common(1)
        frames = len(s["frames"]) if s["kind"] == "video" else 1
        lines.append((name, s["kind"], str(frames), str(len(s["faces"])), str(len(s["no_face"])),
                      f"{top[0][0]} ({top[0][1]})" if top else "-", status))  # fmt: skip
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)
    ]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)
