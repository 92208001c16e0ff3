"""Datasets over the annotation files of fer.data.annotations (contract (3) and (4) of the design).

- expression (images and videos): sunlicai/MAE-DFER's format, "<path> <label>" per line, no header, label 0-based;
  the path is one whitespace-free token (the reference reads it with `pd.read_csv(delimiter=' ')`), so paths with
  spaces are rejected rather than guessed at;
- AU: CSV with header "path,subject,subject_id,AU<n>,...", values 1 / 0 / -1 (unknown).
Every problem raises fer.data.AnnotationError naming "file:line" and the fix.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from . import AnnotationError
from .transforms import VideoEvalTransform, VideoPretrainTransform, VideoTrainTransform
from .video import eval_clip_indices, finetune_train_indices, is_video_file, open_video, pretrain_indices

AU_HEADER = ("path", "subject", "subject_id")
_AU_COLUMN = re.compile(r"AU\d+$")


def _open_text(csv_path: Path):
    if not csv_path.is_file():
        raise AnnotationError(
            f"{csv_path}: annotation file not found; run the annotations stage or fix the path"
        )
    return open(csv_path, newline="")


def read_expression_annotation(
    csv_path: str | os.PathLike, num_classes: int | None = None
) -> list[tuple[Path, int, int]]:
    """Parse "<path> <label>" lines into (path, label, line number); blank lines are skipped."""
    csv_path = Path(csv_path)
    samples = []
    with _open_text(csv_path) as f:
        for n, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{csv_path}:{n}"
            if len(fields) != 2:
                hint = ""
                if n == 1 and line.startswith("path,"):
                    hint = " This looks like an AU table: read it with AUImageDataset."
                raise AnnotationError(
                    f"{where}: expected '<path> <label>' (two fields separated by whitespace), got {line.strip()!r}. "
                    f"Paths may not contain spaces: rename the file or folder (or its parents) and regenerate the "
                    f"annotation.{hint}"
                )
            path, token = fields
            try:
                label = int(token)
            except ValueError:
                raise AnnotationError(
                    f"{where}: label {token!r} is not an integer; labels are 0-based class indices "
                    f"(fix the line or regenerate the annotation)"
                ) from None
            if label < 0 or (num_classes is not None and label >= num_classes):
                limit = f"0..{num_classes - 1} (num_classes={num_classes})" if num_classes else ">= 0"
                raise AnnotationError(
                    f"{where}: label {label} is outside {limit}; fix the label or the recipe's num_classes"
                )
            samples.append((Path(path), label, n))
    if not samples:
        raise AnnotationError(f"{csv_path}: no samples; regenerate the annotation")
    return samples


def read_au_annotation(csv_path: str | os.PathLike) -> tuple[tuple[str, ...], list[tuple]]:
    """Parse an AU table into (AU column names, rows of (path, aus, subject, subject_id, line number))."""
    csv_path = Path(csv_path)
    rows = []
    with _open_text(csv_path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:3]) != AU_HEADER:
            raise AnnotationError(
                f"{csv_path}:1: the header must start with 'path,subject,subject_id' followed by AU columns "
                f"(AU1,AU2,...), got {header!r}; regenerate the file with fer.data.annotations"
            )
        aus = tuple(h.strip() for h in header[3:])
        if not aus:
            raise AnnotationError(
                f"{csv_path}:1: AU column missing: the header {','.join(header)!r} has no AU<n> columns after "
                f"subject_id; regenerate the file with fer.data.annotations"
            )
        for name in aus:
            if not _AU_COLUMN.match(name):
                raise AnnotationError(
                    f"{csv_path}:1: column {name!r} is not an AU column (expected AU<n>, e.g. AU12); "
                    f"remove it or regenerate the file"
                )
        for fields in reader:
            n = reader.line_num
            if not fields or not any(x.strip() for x in fields):
                continue
            where = f"{csv_path}:{n}"
            if len(fields) != 3 + len(aus):
                raise AnnotationError(
                    f"{where}: expected {3 + len(aus)} comma-separated fields (path, subject, subject_id, "
                    f"{len(aus)} AUs), got {len(fields)}; fix the line or regenerate the file"
                )
            path, subject, sid = (x.strip() for x in fields[:3])
            try:
                subject_id = int(sid)
            except ValueError:
                subject_id = None
            if subject_id is None or subject_id < -1:
                raise AnnotationError(
                    f"{where}: subject_id {sid!r} must be an integer >= -1 (-1: subject not in the training split)"
                )
            values = []
            for name, v in zip(aus, fields[3:]):
                v = v.strip()
                if v not in ("1", "0", "-1"):
                    raise AnnotationError(f"{where}: {name} = {v!r}; AU values must be 1, 0 or -1 (unknown)")
                values.append(int(v))
            rows.append((Path(path), tuple(values), subject, subject_id, n))
    if not rows:
        raise AnnotationError(f"{csv_path}: no samples; regenerate the annotation")
    return aus, rows


def _load_image(path: Path, where: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as err:
        raise AnnotationError(
            f"{where}: cannot read image {path} ({err}); re-run the faces stage or remove the line"
        ) from err


def _check_images(csv_path: Path, entries) -> None:
    for path, *_, n in entries:
        if not path.is_file():
            what = "is a folder (a video? use VideoClipDataset)" if path.is_dir() else "not found"
            raise AnnotationError(
                f"{csv_path}:{n}: image {path} {what}; re-run the faces stage or remove the line"
            )


class ExpressionImageDataset(Dataset):
    """(image tensor, label) from an expression annotation of aligned face images.

    num_classes=None leaves labels unchecked beyond >= 0 (pretraining lists with their dummy label 0);
    transform=None gives unnormalised [0, 1] tensors (ToTensor).
    """

    def __init__(self, csv_path: str | os.PathLike, num_classes: int | None, transform=None):
        self.csv_path = Path(csv_path)
        self.num_classes = num_classes
        self.transform = transform if transform is not None else T.ToTensor()
        self.samples = self._read_samples()
        self.labels = [s[1] for s in self.samples]

    def _read_samples(self):
        samples = read_expression_annotation(self.csv_path, self.num_classes)
        _check_images(self.csv_path, samples)
        return samples

    def _image(self, index: int) -> Image.Image:
        path, _, n = self.samples[index]
        return _load_image(path, f"{self.csv_path}:{n}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return self.transform(self._image(index)), self.samples[index][1]


class AUImageDataset(Dataset):
    """(image tensor, AU tensor [n_aus] float with -1 unknown, subject_id int) from an AU table."""

    def __init__(self, csv_path: str | os.PathLike, transform=None):
        self.csv_path = Path(csv_path)
        self.transform = transform if transform is not None else T.ToTensor()
        self.aus, self.samples = self._read_samples()
        self.num_subjects = max(s[3] for s in self.samples) + 1

    def _read_samples(self):
        aus, rows = read_au_annotation(self.csv_path)
        _check_images(self.csv_path, rows)
        return aus, rows

    def _image(self, index: int) -> Image.Image:
        path, *_, n = self.samples[index]
        return _load_image(path, f"{self.csv_path}:{n}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        _, aus, _, subject_id, _ = self.samples[index]
        return self.transform(self._image(index)), torch.tensor(aus, dtype=torch.float32), subject_id


class VideoClipDataset(Dataset):
    """(clip [3, T, S, S], label) from an expression annotation of frame folders or video files.

    train=True samples one random clip (MAE-DFER finetuning, or `sampling="pretrain"` for its VoxCeleb2 loader);
    train=False reads test_clips uniformly spaced clips x test_crops spatial crops and returns them stacked as
    [V, 3, T, S, S] (V = clips x crops, clip-major as the reference orders them) for averaging, or one
    [3, T, S, S] clip when V == 1. `transform` maps a uint8 [T, H, W, 3] clip to [3, T, S, S] (or to
    [test_crops, 3, T, S, S] in test mode); the default is built from input_size.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        num_classes: int | None,
        num_frames: int = 16,
        sampling_rate: int = 4,
        transform=None,
        train: bool = True,
        test_clips: int = 1,
        test_crops: int = 1,
        input_size: int = 160,
        sampling: str = "finetune",
    ):
        if sampling not in ("finetune", "pretrain"):
            raise ValueError(f"sampling must be 'finetune' or 'pretrain', got {sampling!r}")
        if test_clips < 1 or test_crops < 1:
            raise ValueError(f"test_clips ({test_clips}) and test_crops ({test_crops}) must be >= 1")
        self.csv_path = Path(csv_path)
        self.num_classes = num_classes
        self.num_frames, self.sampling_rate = num_frames, sampling_rate
        self.train, self.sampling = train, sampling
        self.test_clips, self.test_crops = test_clips, test_crops
        if transform is None:
            if not train:
                transform = VideoEvalTransform(input_size, test_crops)
            elif sampling == "pretrain":
                transform = VideoPretrainTransform(input_size)
            else:
                transform = VideoTrainTransform(input_size)
        self.transform = transform
        self.samples = self._read_samples()
        self.labels = [s[1] for s in self.samples]

    def _read_samples(self):
        samples = read_expression_annotation(self.csv_path, self.num_classes)
        for path, _, n in samples:
            if not (path.is_dir() or (path.is_file() and is_video_file(path))):
                what = "is not a frame folder nor a video file" if path.exists() else "not found"
                raise AnnotationError(
                    f"{self.csv_path}:{n}: frame folder or video {path} {what}; re-run the faces stage or remove "
                    f"the line"
                )
        return samples

    def _open(self, index: int):
        """The video of a sample: len() frames and get(indices) -> uint8 [k, H, W, 3]."""
        path, _, n = self.samples[index]
        try:
            return open_video(path)
        except Exception as err:
            raise AnnotationError(
                f"{self.csv_path}:{n}: cannot open {path} ({err}); re-run the faces stage"
            ) from err

    def _where(self, index: int) -> str:
        return f"{self.csv_path}:{self.samples[index][2]}"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        video = self._open(index)
        total = len(video)
        if total == 0:
            raise AnnotationError(
                f"{self._where(index)}: {self.samples[index][0]} holds no frames; re-run the faces stage"
            )
        if self.train:
            pick = pretrain_indices if self.sampling == "pretrain" else finetune_train_indices
            clips = [pick(total, self.num_frames, self.sampling_rate)]
        else:
            clips = eval_clip_indices(total, self.num_frames, self.sampling_rate, self.test_clips)
        # decode each needed frame once, even where clips overlap or short videos repeat a frame
        wanted, inverse = np.unique(np.concatenate(clips), return_inverse=True)
        try:
            decoded = video.get(wanted)[inverse.reshape(-1)]
        except Exception as err:
            raise AnnotationError(
                f"{self._where(index)}: cannot decode frames of {self.samples[index][0]} ({err}); "
                f"re-run the faces stage or remove the line"
            ) from err
        views = [
            self.transform(clip) for clip in decoded.reshape(len(clips), self.num_frames, *decoded.shape[1:])
        ]
        if self.train:
            return views[0], self.samples[index][1]
        views = torch.cat([v if v.dim() == 5 else v.unsqueeze(0) for v in views])
        expected = self.test_clips * self.test_crops
        if views.shape[0] != expected:
            raise ValueError(
                f"the test transform gave {views.shape[0]} views for {self.test_clips} clips x "
                f"{self.test_crops} crops; it must return [test_crops, 3, T, H, W] per clip"
            )
        return (views[0] if expected == 1 else views), self.samples[index][1]
