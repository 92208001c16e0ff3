"""Packed format: every aligned face of one annotation file in a single memory-mapped uint8 .npy.

`pack_annotation(csv, prefix, S)` writes
- `<prefix>.npy`: uint8 [N, S, S, 3] RGB (images: one row per sample; videos: every frame of every video, video
  after video, so a 160 px frame costs 77 KB: size the disk before packing a large video set);
- `<prefix>.index.csv`: the index, row i of the table <-> sample i, in the annotation's order:
  expression images "path,label"; videos "path,label,start,length" (rows start..start+length-1 of the array);
  AU images the AU table itself ("path,subject,subject_id,AU<n>...").
Faces already S x S are stored bit-exact, so the packed datasets return the same tensors as the folder ones;
others are resized to S x S (images bicubic; video frames bilinear, the first step of the video transforms, so
packed clips stay identical). Reading a face from the page cache is ~30x faster than decoding a JPEG
(/work/shared/notes/decoding-rates.md).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T
from tqdm import tqdm

from fer.io import atomic_path, write_text

from . import AnnotationError
from .datasets import (
    AU_HEADER,
    VideoClipDataset,
    _check_images,
    _load_image,
    read_au_annotation,
    read_expression_annotation,
)
from .video import FRAME_EXTS, is_video_file, open_video

_CHUNK = 64  # frames decoded and written at a time


def packed_paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """(<prefix>.npy, <prefix>.index.csv); the index name never collides with an annotation <split>.csv."""
    return Path(f"{prefix}.npy"), Path(f"{prefix}.index.csv")


def _fit(frame: np.ndarray, size: int, resample) -> np.ndarray:
    if frame.shape[:2] == (size, size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), resample))


def _open_video(path: Path, where: str):
    try:
        return open_video(path)
    except Exception as err:
        raise AnnotationError(f"{where}: cannot open {path} ({err}); re-run the faces stage") from err


def _media(csv_path: Path, samples) -> str:
    kinds = set()
    for path, _, n in samples:
        if path.is_dir() or (path.is_file() and is_video_file(path)):
            kinds.add("video")
        elif path.is_file() and path.name.lower().endswith(FRAME_EXTS):
            kinds.add("image")
        else:
            what = "not found" if not path.exists() else "neither an image, a frame folder nor a video file"
            raise AnnotationError(f"{csv_path}:{n}: {path} {what}; re-run the faces stage or remove the line")
    if len(kinds) > 1:
        raise AnnotationError(f"{csv_path}: mixes images and videos; write one annotation per media type")
    return kinds.pop()


def _rows_csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def pack_annotation(
    csv_path: str | os.PathLike, out_prefix: str | os.PathLike, input_size: int, progress: bool = True
) -> Path:
    """Pack the faces of an expression or AU annotation file; returns the index path (<out_prefix>.index.csv)."""
    csv_path = Path(csv_path)
    array_path, index_path = packed_paths(out_prefix)
    if index_path.resolve() == csv_path.resolve():
        raise ValueError(
            f"{csv_path}: the packed index {index_path} would overwrite it; choose another out_prefix"
        )
    if _first_line(csv_path).startswith("path,"):
        aus, rows = read_au_annotation(csv_path)
        _check_images(csv_path, rows)
        items = [(r[0], f"{csv_path}:{r[-1]}") for r in rows]
        header = [*AU_HEADER, *aus]
        index = [[str(p), subject, sid, *values] for p, values, subject, sid, _ in rows]
        media = "image"
    else:
        samples = read_expression_annotation(csv_path)
        media = _media(csv_path, samples)
        items = [(path, f"{csv_path}:{n}") for path, _, n in samples]
        header = ["path", "label"]
        index = [[str(p), label] for p, label, _ in samples]
    bar = tqdm(total=len(items), desc=f"pack {csv_path.name}", unit="item", disable=not progress)

    with atomic_path(array_path) as tmp:
        if media == "image":
            out = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(items), input_size, input_size, 3))
            for i, (path, where) in enumerate(items):
                out[i] = _fit(np.asarray(_load_image(path, where)), input_size, Image.BICUBIC)
                bar.update()
        else:
            # one reader open at a time: decord holds a decoder per video
            lengths = [len(_open_video(path, where)) for path, where in items]
            for (path, where), length in zip(items, lengths):
                if length == 0:
                    raise AnnotationError(f"{where}: {path} holds no frames; re-run the faces stage")
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
            out = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(sum(lengths), input_size, input_size, 3))
            for (path, where), start, length in zip(items, starts, lengths):
                video = _open_video(path, where)
                for lo in range(0, length, _CHUNK):
                    chunk = video.get(range(lo, min(lo + _CHUNK, length)))
                    for k, frame in enumerate(chunk):
                        out[start + lo + k] = _fit(frame, input_size, Image.BILINEAR)
                bar.update()
            header += ["start", "length"]
            index = [row + [int(s), n] for row, s, n in zip(index, starts, lengths)]
        out.flush()
        del out
    bar.close()
    write_text(index_path, _rows_csv(header, index))
    return index_path


# ----------------------------------------------------------------------------------------------- reading


class _PackedArray:
    """The memory-mapped array, opened lazily so each DataLoader worker maps it itself (never pickled)."""

    def __init__(self, prefix: str | os.PathLike, num_rows: int):
        self.path, self.index_path = packed_paths(prefix)
        self.num_rows = num_rows
        self._array = None
        if not self.path.is_file():
            raise AnnotationError(f"{self.path}: packed array not found; run pack_annotation again")
        self.get()  # fail at construction, not in a worker

    def get(self) -> np.ndarray:
        if self._array is None:
            array = np.load(self.path, mmap_mode="r")
            if (
                array.dtype != np.uint8
                or array.ndim != 4
                or array.shape[0] != self.num_rows
                or array.shape[3] != 3
            ):
                raise AnnotationError(
                    f"{self.path}: array {array.dtype} {array.shape} does not match its index {self.index_path} "
                    f"({self.num_rows} rows of uint8 faces); run pack_annotation again"
                )
            self._array = array
        return self._array

    def __getstate__(self):
        return {**self.__dict__, "_array": None}


def _first_line(path: Path) -> str:
    if not path.is_file():
        return ""
    with open(path) as f:
        return f.readline()


def _read_expression_index(index_path: Path, columns: list[str], num_classes: int | None) -> list[tuple]:
    if not index_path.is_file():
        raise AnnotationError(f"{index_path}: packed index not found; run pack_annotation again")
    rows = []
    with open(index_path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != columns:
            raise AnnotationError(
                f"{index_path}:1: expected the header {','.join(columns)!r}, got {header!r}; "
                f"this index was not written by pack_annotation for this kind of dataset"
            )
        for fields in reader:
            n = reader.line_num
            try:
                path, *numbers = fields
                numbers = [int(x) for x in numbers]
                if len(numbers) != len(columns) - 1:
                    raise ValueError
            except ValueError:
                raise AnnotationError(
                    f"{index_path}:{n}: expected {','.join(columns)} with integer values, got {fields!r}; "
                    f"run pack_annotation again"
                ) from None
            label = numbers[0]
            if label < 0 or (num_classes is not None and label >= num_classes):
                raise AnnotationError(
                    f"{index_path}:{n}: label {label} is outside 0..{(num_classes or 1) - 1} "
                    f"(num_classes={num_classes}); fix the label or the recipe's num_classes"
                )
            rows.append((Path(path), *numbers, n))
    if not rows:
        raise AnnotationError(f"{index_path}: no samples; run pack_annotation again")
    return rows


class PackedImageDataset(Dataset):
    """Packed expression or AU images; items as ExpressionImageDataset / AUImageDataset give them."""

    def __init__(self, prefix: str | os.PathLike, transform=None, num_classes: int | None = None):
        self.prefix = Path(prefix)
        _, self.index_path = packed_paths(prefix)
        self.transform = transform if transform is not None else T.ToTensor()
        self.aus = None
        if _first_line(self.index_path).startswith("path,subject,subject_id"):
            self.aus, self.samples = read_au_annotation(self.index_path)
            self.num_subjects = max(s[3] for s in self.samples) + 1
        else:
            self.samples = _read_expression_index(self.index_path, ["path", "label"], num_classes)
            self.labels = [s[1] for s in self.samples]
        self.array = _PackedArray(prefix, len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        image = self.transform(Image.fromarray(np.asarray(self.array.get()[index])))
        if self.aus is None:
            return image, self.samples[index][1]
        _, aus, _, subject_id, _ = self.samples[index]
        return image, torch.tensor(aus, dtype=torch.float32), subject_id


class _PackedVideo:
    def __init__(self, array: np.ndarray, start: int, length: int):
        self.array, self.start, self.length = array, start, length

    def __len__(self) -> int:
        return self.length

    def get(self, indices) -> np.ndarray:
        return np.asarray(self.array[self.start + np.asarray(indices, dtype=np.int64)])


class PackedVideoDataset(VideoClipDataset):
    """Packed videos; same arguments (a prefix instead of the annotation) and items as VideoClipDataset."""

    def __init__(self, prefix: str | os.PathLike, num_classes: int | None, **kwargs):
        self.prefix = Path(prefix)
        super().__init__(packed_paths(prefix)[1], num_classes, **kwargs)

    def _read_samples(self):
        rows = _read_expression_index(self.csv_path, ["path", "label", "start", "length"], self.num_classes)
        self.spans = [(start, length) for _, _, start, length, _ in rows]
        self.array = _PackedArray(self.prefix, sum(length for _, length in self.spans))
        return [(path, label, n) for path, label, _, _, n in rows]

    def _open(self, index: int) -> _PackedVideo:
        return _PackedVideo(self.array.get(), *self.spans[index])
