"""Reading clips from frame folders or video files, and MAE-DFER's temporal sampling.

Sampling follows sunlicai/MAE-DFER `kinetics.py`:
- finetuning, train: `VideoClsDatasetFrame.load_video` (num_segment=1): a window of num_frames * sampling_rate
  frames ending at a random frame, num_frames points spread over it by `np.linspace`; a video no longer than the
  window takes every sampling_rate-th frame (again by linspace) and repeats the last frame to fill the clip;
- finetuning, test: every sampling_rate-th frame of the whole video (the last one repeated up to num_frames),
  then `test_clips` windows of num_frames consecutive entries spaced uniformly from first to last;
- pretraining (VoxCeleb2, 16 frames at rate 4): `VideoMAE._sample_train_indices` + `_video_TSN_decord_batch_loader`
  with one segment and no jitter: a random start, then steps of sampling_rate that stop advancing (repeat the
  last frame) when the next step would pass the end of the video.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

FRAME_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".mpg", ".mpeg", ".m4v")


def _natural_key(name: str) -> list:
    # "2.jpg" before "10.jpg"; equal to plain sorting for zero-padded names such as the faces stage's 00001.jpg
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """The frame images of a folder in temporal (natural) order."""
    folder = Path(folder)
    names = [n for n in os.listdir(folder) if n.lower().endswith(FRAME_EXTS) and not n.startswith(".")]
    return [folder / n for n in sorted(names, key=_natural_key)]


def is_video_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(VIDEO_EXTS)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """One image file as an HxWx3 uint8 RGB array."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class FrameFolder:
    """A video stored as one image per frame (MAE-DFER's layout, and the faces stage's output)."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder)
        self.frames = list_frames(folder)

    def __len__(self) -> int:
        return len(self.frames)

    def get(self, indices) -> np.ndarray:
        """Frames at `indices` as a [len(indices), H, W, 3] uint8 array (each file decoded once)."""
        cache = {i: load_rgb(self.frames[i]) for i in sorted(set(int(i) for i in indices))}
        return np.stack([cache[int(i)] for i in indices])


class VideoFile:
    """A video file decoded with decord (batched `get_batch`, as MAE-DFER's `loadvideo_decord`)."""

    def __init__(self, path: str | os.PathLike):
        from decord import VideoReader, cpu  # imported here: decord is only needed for video files

        self.path = Path(path)
        self.reader = VideoReader(str(path), num_threads=1, ctx=cpu(0))

    def __len__(self) -> int:
        return len(self.reader)

    def get(self, indices) -> np.ndarray:
        self.reader.seek(0)
        return self.reader.get_batch([int(i) for i in indices]).asnumpy()


def open_video(path: str | os.PathLike) -> FrameFolder | VideoFile:
    """A frame folder or a video file, both with len() and get(indices) -> [T, H, W, 3] uint8."""
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path)
    if path.is_file() and is_video_file(path):
        return VideoFile(path)
    if path.is_file():
        raise ValueError(f"{path}: not a frame folder nor a video file ({', '.join(VIDEO_EXTS)})")
    raise FileNotFoundError(f"{path}: no such frame folder or video file")


def _check(num_total: int, num_frames: int, sampling_rate: int) -> None:
    if num_total < 1:
        raise ValueError("the video has no frames")
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(f"num_frames ({num_frames}) and sampling_rate ({sampling_rate}) must be >= 1")


def finetune_train_indices(
    num_total: int, num_frames: int, sampling_rate: int, generator: torch.Generator | None = None
) -> np.ndarray:
    """Frame indices of one random training clip (MAE-DFER `VideoClsDatasetFrame.load_video`, train mode)."""
    _check(num_total, num_frames, sampling_rate)
    window = num_frames * sampling_rate
    if num_total <= window:
        n_spread = num_total // sampling_rate
        index = np.linspace(0, num_total, num=n_spread)
        index = np.concatenate((index, np.full(num_frames - n_spread, float(num_total))))
        return np.clip(index, 0, num_total - 1).astype(np.int64)
    end = int(torch.randint(window, num_total, (1,), generator=generator))
    start = end - window
    index = np.linspace(start, end, num=num_frames)
    return np.clip(index, start, end - 1).astype(np.int64)


def eval_clip_indices(
    num_total: int, num_frames: int, sampling_rate: int, num_clips: int
) -> list[np.ndarray]:
    """Frame indices of `num_clips` uniformly spaced test clips (MAE-DFER test mode, `test_num_segment`).

    The reference divides by num_clips - 1; for a single clip we take the centred window.
    """
    _check(num_total, num_frames, sampling_rate)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    strided = list(range(0, num_total, sampling_rate))
    strided += [strided[-1]] * max(0, num_frames - len(strided))
    spare = len(strided) - num_frames
    if num_clips == 1:
        starts = [spare // 2]
    else:
        step = spare / (num_clips - 1)
        starts = [int(k * step) for k in range(num_clips)]
    return [np.asarray(strided[s : s + num_frames], dtype=np.int64) for s in starts]


def pretrain_indices(
    num_total: int, num_frames: int = 16, sampling_rate: int = 4, generator: torch.Generator | None = None
) -> np.ndarray:
    """Frame indices of one pretraining clip (MAE-DFER `VideoMAE`, one segment, no temporal jitter)."""
    _check(num_total, num_frames, sampling_rate)
    spare = num_total - num_frames * sampling_rate + 1
    offset = int(torch.randint(spare, (1,), generator=generator)) + 1 if spare > 0 else 1
    index = []
    for _ in range(num_frames):
        index.append(offset - 1)
        if offset + sampling_rate < num_total:
            offset += sampling_rate
    return np.asarray(index, dtype=np.int64)
