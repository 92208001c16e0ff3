"""Face tracks across video frames: greedy IoU association, a new track id after a gap.

A detection joins the active track whose last box overlaps it most (IoU >= `iou_threshold`, best pairs
first, one detection per track and frame). A track stays active for `max_gap` frames without a detection;
those frames are bridged with its last detection (the faces stage does the same: "reused" frames keep the
last good transform), so a detector missing one frame does not cut a clip. A longer gap ends the track: a face
that comes back later gets a new id. Ids count from 0 in order of first appearance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer.faces import Face


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N, 4] with every box in b [M, 4] (x0 y0 x1 y1): [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class Track:
    """One face over time: its detections by frame index; the frames between them are bridged."""

    track_id: int
    detections: dict[int, Face] = field(default_factory=dict)

    @property
    def first(self) -> int:
        return min(self.detections)

    @property
    def last(self) -> int:
        return max(self.detections)

    def frames(self) -> range:
        """Every frame the track spans, detected or bridged."""
        return range(self.first, self.last + 1)

    def face_at(self, frame: int) -> tuple[Face, bool]:
        """(face, reused): the detection at `frame`, or in a bridged gap the latest one before it (reused)."""
        if frame in self.detections:
            return self.detections[frame], False
        if not self.first <= frame <= self.last:
            raise KeyError(f"track {self.track_id} spans frames {self.first}..{self.last}, not {frame}")
        return self.detections[max(f for f in self.detections if f < frame)], True


class IoUTracker:
    """Feed `update(frame, faces)` frame by frame in increasing order; `tracks` holds every track so far."""

    def __init__(self, iou_threshold: float = 0.3, max_gap: int = 2):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0 frames, got {max_gap}")
        self.iou_threshold, self.max_gap = float(iou_threshold), int(max_gap)
        self.tracks: list[Track] = []
        self._last_frame: int | None = None

    def _active(self, frame: int) -> list[Track]:
        return [t for t in self.tracks if frame - t.last <= self.max_gap + 1]

    def update(self, frame: int, faces: list[Face]) -> list[int]:
        """Assign each face of `frame` a track id (same order as `faces`)."""
        if self._last_frame is not None and frame <= self._last_frame:
            raise ValueError(f"frames must come in increasing order: {frame} after {self._last_frame}")
        self._last_frame = frame
        active = self._active(frame)
        ids = [-1] * len(faces)
        if active and faces:
            iou = box_iou(
                np.stack([f.box for f in faces]), np.stack([t.detections[t.last].box for t in active])
            )
            # best pairs first; each face and each track used once
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                i, j = divmod(int(flat), len(active))
                if iou[i, j] < self.iou_threshold:
                    break
                if ids[i] == -1 and frame not in active[j].detections:
                    ids[i] = active[j].track_id
                    active[j].detections[frame] = faces[i]
        for i, face in enumerate(faces):
            if ids[i] == -1:
                track = Track(len(self.tracks), {frame: face})
                self.tracks.append(track)
                ids[i] = track.track_id
        return ids

    def tracks_at(self, frame: int) -> list[Track]:
        """Tracks whose span (detections and bridged gaps) covers `frame`, once tracking is finished."""
        return [t for t in self.tracks if t.first <= frame <= t.last]
