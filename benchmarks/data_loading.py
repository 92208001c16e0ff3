"""Data-loading throughput of the training datasets with their real augmentation, for 1, 2, 4, ... workers.

Pipelines (the engine's datasets and transforms, fer.data):
  image pretrain  MAE `main_pretrain.py`: RandomResizedCrop(0.2-1, bicubic) + flip, 224 px
  image finetune  MAE / FMAE-IAT `build_transform` (timm): RandomResizedCrop, flip, RandAugment m9, erasing, 224 px
  video pretrain  MAE-DFER VoxCeleb2: 16 frames at sampling rate 4, GroupMultiScaleCrop, 160 px
  video finetune  MAE-DFER DFEW: 16 frames at rate 4, RandAugment m7 n4 per clip, crop, flip, erasing, 160 px
Sources:
  on disk   the faces stage's output read as the loaders read it: JPEG faces (ExpressionImageDataset, PIL
            decode; and the same files decoded by torchvision.io.decode_jpeg), frame folders (VideoClipDataset)
  packed    fer.data.packed: every face of the annotation in one memory-mapped uint8 array
  -> device only with --device (default: the GPU when there is one): workers hand over raw uint8 faces or JPEG
            bytes, and decoding (nvjpeg on CUDA) plus crop / resize / flip / normalise run batched on the device
            with the same crop parameters as the CPU transforms (torchvision's RandomResizedCrop.get_params,
            VideoPretrainTransform's crop box) and grid_sample for the resize

The input data are demo faces and clips of fer.datasets.demo written to a temporary directory in the faces stage's
layout (aligned JPEGs at quality 95, <key>/00001.jpg frame folders) and packed with fer.data.pack_annotation.

    python benchmarks/data_loading.py                 # 1, 2, 4, ... workers up to the CPU count
    python benchmarks/data_loading.py --tiny          # < 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torchvision import transforms
from torchvision.io import decode_jpeg, read_file

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import available_cpus, fmt, report, run_header, synchronize, worker_counts  # noqa: E402
from fer.data import (  # noqa: E402
    ExpressionImageDataset,
    PackedImageDataset,
    PackedVideoDataset,
    VideoClipDataset,
    image_pretrain_transform,
    image_train_transform,
    pack_annotation,
    video_pretrain_transform,
    video_train_transform,
)
from fer.data.transforms import VideoPretrainTransform  # noqa: E402
from fer.datasets import demo  # noqa: E402

IMAGE_SIZE, VIDEO_SIZE, NUM_FRAMES, SAMPLING_RATE = 224, 160, 16, 4
NUM_CLASSES = 7
JPEG_QUALITY = 95  # the faces stage's default (fer.faces.align_records)
_MEAN = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)


# ----------------------------------------------------------------------------------------------- inputs


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise RuntimeError(f"{path}: JPEG encoding failed")
    path.write_bytes(buf.tobytes())


def write_inputs(root: Path, images: int, clips: int, frames: int, face_size: int, seed: int = 0) -> dict:
    """Demo faces / clips as the faces stage leaves them, their annotations, and their packed copies."""
    rng = np.random.default_rng(seed)
    aligned = root / "aligned"
    aligned.mkdir(parents=True)
    image_lines, clip_lines = [], []
    for i in range(images):
        label = int(rng.integers(NUM_CLASSES))
        path = aligned / f"img_{i:05d}.jpg"
        _write_jpeg(path, demo.make_expression_face(label, rng, size=face_size))
        image_lines.append(f"{path} {label}")
    for i in range(clips):
        label = int(rng.integers(NUM_CLASSES))
        folder = aligned / f"clip_{i:05d}"
        folder.mkdir()
        for t, frame in enumerate(demo.make_expression_clip(label, rng, frames, size=face_size), start=1):
            _write_jpeg(folder / f"{t:05d}.jpg", frame)
        clip_lines.append(f"{folder} {label}")
    out = {"images_csv": root / "images.csv", "clips_csv": root / "clips.csv"}
    out["images_csv"].write_text("\n".join(image_lines) + "\n")
    out["clips_csv"].write_text("\n".join(clip_lines) + "\n")
    out["images_packed"] = root / "packed" / "images"
    out["clips_packed"] = root / "packed" / "clips"
    pack_annotation(out["images_csv"], out["images_packed"], face_size, progress=False)
    pack_annotation(out["clips_csv"], out["clips_packed"], face_size, progress=False)
    return out


# ----------------------------------------------------------------------------------------------- datasets


class TorchvisionJpegDataset(ExpressionImageDataset):
    """ExpressionImageDataset decoding with torchvision.io.decode_jpeg instead of PIL; same transforms after."""

    def _image(self, index: int):
        from PIL import Image

        data = read_file(str(self.samples[index][0]))
        return Image.fromarray(decode_jpeg(data).permute(1, 2, 0).numpy())


class JpegBytesDataset(ExpressionImageDataset):
    """(encoded JPEG bytes as a uint8 tensor, label): decoding is left to the device."""

    def __getitem__(self, index: int):
        return read_file(str(self.samples[index][0])), self.samples[index][1]


class PackedFacesDataset(PackedImageDataset):
    """(uint8 [S, S, 3] face straight from the packed array, label): augmentation is left to the device."""

    def __getitem__(self, index: int):
        return torch.from_numpy(np.array(self.array.get()[index])), self.samples[index][1]


def uint8_clip(clip: np.ndarray) -> torch.Tensor:
    """The video datasets' transform for device-side augmentation: the sampled uint8 [T, H, W, 3] clip as is."""
    return torch.from_numpy(np.ascontiguousarray(clip))


def bytes_collate(batch):
    """JPEG byte strings of different lengths, concatenated into one tensor (one shared-memory block per batch,
    not one per sample) with their lengths, and the labels."""
    datas = [b[0] for b in batch]
    return torch.cat(datas), torch.tensor([len(d) for d in datas]), torch.tensor([b[1] for b in batch])


# ----------------------------------------------------------------------------------------------- device side


def crop_resize(
    x: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int, mode: str = "bicubic"
) -> torch.Tensor:
    """Batched crop + resize + horizontal flip + ImageNet normalisation on x's device.

    x: uint8 [N, 3, H, W]; boxes: [N, 4] (top, left, height, width) in pixels as torchvision's
    RandomResizedCrop.get_params returns them; flips: [N] bool. Returns float [N, 3, size, size]. The crop box edges
    map onto the output's pixel edges (align_corners=False), which is what cropping and then resizing does; values
    are clamped to [0, 255] as a uint8 image would be. No antialiasing: the faces are upsampled (112 -> 224 / 160).
    """
    n, _, h, w = x.shape
    # the affine parameters are built on the CPU, where the crop parameters are drawn, and sent in one copy
    top, left, bh, bw = boxes.to(device="cpu", dtype=torch.float32).unbind(1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(flips.cpu(), -bw / w, bw / w)
    theta[:, 0, 2] = (2 * left + bw) / w - 1
    theta[:, 1, 1], theta[:, 1, 2] = bh / h, (2 * top + bh) / h - 1
    grid = F.affine_grid(theta.to(x.device, non_blocking=True), [n, 3, size, size], align_corners=False)
    out = F.grid_sample(x.float(), grid, mode=mode, padding_mode="border", align_corners=False)
    mean, std = _mean_std(x.device)
    return out.clamp_(0, 255).div_(255).sub_(mean).div_(std)


@functools.cache
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return _MEAN.to(device), _STD.to(device)


def image_pretrain_on_device(x: torch.Tensor, size: int = IMAGE_SIZE, scale=(0.2, 1.0)) -> torch.Tensor:
    """MAE pretraining augmentation of uint8 [N, 3, H, W] faces: RandomResizedCrop (bicubic) + flip."""
    n, _, h, w = x.shape
    shape = torch.empty(1, h, w)  # get_params reads only the size
    boxes = torch.tensor(
        [transforms.RandomResizedCrop.get_params(shape, scale, (3 / 4, 4 / 3)) for _ in range(n)]
    )
    return crop_resize(x, boxes, torch.rand(n) < 0.5, size, "bicubic")


def video_pretrain_on_device(clips: torch.Tensor, size: int = VIDEO_SIZE) -> torch.Tensor:
    """VideoMAE's multi-scale crop of uint8 [N, T, H, W, 3] clips (one box per clip, bilinear, no flip)."""
    n, t, h, w, _ = clips.shape
    sampler = VideoPretrainTransform(size)
    boxes = []
    for _ in range(n):
        x0, y0, bw, bh = sampler._crop_box(w, h)  # the CPU transform's own crop sampler
        boxes.append((y0, x0, bh, bw))
    boxes = torch.tensor(boxes, dtype=torch.float32).repeat_interleave(t, 0)
    frames = clips.reshape(n * t, h, w, 3).permute(0, 3, 1, 2)
    out = crop_resize(frames, boxes, torch.zeros(n * t, dtype=torch.bool), size, "bilinear")
    return out.reshape(n, t, 3, size, size).transpose(1, 2)


# ----------------------------------------------------------------------------------------------- pipelines


@dataclass(frozen=True)
class Pipeline:
    name: str
    source: str
    make: Callable[[dict], Dataset]
    video: bool = False
    on_device: Callable | None = None  # batch -> augmented tensor on the device
    collate: Callable | None = None


def cpu_pipelines() -> list[Pipeline]:
    vid = dict(num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE, input_size=VIDEO_SIZE)
    pre = dict(vid, sampling="pretrain")
    return [
        Pipeline("image pretrain", "JPEG files, PIL decode",
                 lambda d: ExpressionImageDataset(d["images_csv"], None, image_pretrain_transform(IMAGE_SIZE))),
        Pipeline("image pretrain", "JPEG files, torchvision.io decode",
                 lambda d: TorchvisionJpegDataset(d["images_csv"], None, image_pretrain_transform(IMAGE_SIZE))),
        Pipeline("image pretrain", "packed uint8",
                 lambda d: PackedImageDataset(d["images_packed"], image_pretrain_transform(IMAGE_SIZE))),
        Pipeline("image finetune", "JPEG files, PIL decode",
                 lambda d: ExpressionImageDataset(d["images_csv"], NUM_CLASSES, image_train_transform(IMAGE_SIZE))),
        Pipeline("image finetune", "packed uint8",
                 lambda d: PackedImageDataset(d["images_packed"], image_train_transform(IMAGE_SIZE), NUM_CLASSES)),
        Pipeline("video pretrain", "frame folders (JPEG), PIL decode",
                 lambda d: VideoClipDataset(d["clips_csv"], None, transform=video_pretrain_transform(VIDEO_SIZE),
                                            **pre), video=True),
        Pipeline("video pretrain", "packed uint8",
                 lambda d: PackedVideoDataset(d["clips_packed"], None, transform=video_pretrain_transform(VIDEO_SIZE),
                                              **pre), video=True),
        Pipeline("video finetune", "frame folders (JPEG), PIL decode",
                 lambda d: VideoClipDataset(d["clips_csv"], NUM_CLASSES, transform=video_train_transform(VIDEO_SIZE,
                                            auto_augment="rand-m7-n4-mstd0.5-inc1"), **vid), video=True),
        Pipeline("video finetune", "packed uint8",
                 lambda d: PackedVideoDataset(d["clips_packed"], NUM_CLASSES, transform=video_train_transform(
                     VIDEO_SIZE, auto_augment="rand-m7-n4-mstd0.5-inc1"), **vid), video=True),
    ]  # fmt: skip


def device_pipelines(device: torch.device) -> list[Pipeline]:
    dev = device.type
    decoder = "nvjpeg" if dev == "cuda" else "torchvision.io"

    def packed_images(batch):
        return image_pretrain_on_device(batch[0].to(device, non_blocking=True).permute(0, 3, 1, 2))

    def jpeg_images(batch):
        datas = list(torch.split(batch[0], batch[1].tolist()))
        return image_pretrain_on_device(torch.stack(decode_jpeg(datas, device=device)))

    def packed_clips(batch):
        return video_pretrain_on_device(batch[0].to(device, non_blocking=True))

    pre = dict(num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE, input_size=VIDEO_SIZE, sampling="pretrain")
    return [
        Pipeline("image pretrain", f"JPEG bytes -> {decoder} decode + augment on {dev}",
                 lambda d: JpegBytesDataset(d["images_csv"], None), on_device=jpeg_images, collate=bytes_collate),
        Pipeline("image pretrain", f"packed uint8 -> augment on {dev}",
                 lambda d: PackedFacesDataset(d["images_packed"]), on_device=packed_images),
        Pipeline("video pretrain", f"packed uint8 -> augment on {dev}",
                 lambda d: PackedVideoDataset(d["clips_packed"], None, transform=uint8_clip, **pre), video=True,
                 on_device=packed_clips),
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------------- measuring


def samples_per_second(
    dataset: Dataset,
    workers: int,
    batch_size: int,
    seconds: float,
    min_batches: int,
    device: torch.device,
    on_device: Callable | None = None,
    collate: Callable | None = None,
) -> float:
    """Steady-state samples/s of a DataLoader (plus the device stage): the batches the workers prefetch while
    starting are drawn before the clock starts, then batches are drawn until `seconds` and `min_batches` pass."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=10**9)  # never runs out
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        drop_last=True,
        timeout=300 if workers else 0,  # a worker that died raises here instead of hanging the run
    )
    batches = iter(loader)
    for _ in range(max(1, 2 * workers)):  # prefetch_factor 2 per worker
        out = next(batches)
        if on_device is not None:
            on_device(out)
    synchronize(device)
    n, t0 = 0, time.perf_counter()
    while n < min_batches or time.perf_counter() - t0 < seconds:
        out = next(batches)
        if on_device is not None:
            out = on_device(out)
        n += 1
    synchronize(device)
    rate = n * batch_size / (time.perf_counter() - t0)
    del batches  # shuts the workers down
    return rate


def main(argv: list[str] | None = None) -> list[list[str]]:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="few samples, short windows (< 2 minutes)")
    ap.add_argument(
        "--workers", type=int, nargs="+", default=None, help="default: 1, 2, 4, ... up to the CPUs"
    )
    ap.add_argument(
        "--device", default="auto", help="device-side rows: auto (cuda if present) | none | cpu | cuda"
    )
    ap.add_argument("--images", type=int, default=None, help="distinct faces (default 512, --tiny 32)")
    ap.add_argument("--clips", type=int, default=None, help="distinct clips (default 32, --tiny 4)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default 96, --tiny 64)")
    ap.add_argument("--face-size", type=int, default=112, help="aligned face size (config.yaml faces.size)")
    ap.add_argument("--image-batch", type=int, default=None, help="default 128, --tiny 8")
    ap.add_argument("--video-batch", type=int, default=None, help="default 32, --tiny 2")
    ap.add_argument(
        "--seconds", type=float, default=None, help="timed window per cell (default 10, --tiny 0.5)"
    )
    ap.add_argument("--markdown", default=None, help="append the table to this markdown file")
    args = ap.parse_args(argv)
    tiny = args.tiny
    images = args.images or (32 if tiny else 512)
    clips, frames = args.clips or (4 if tiny else 32), args.frames or (64 if tiny else 96)
    image_batch, video_batch = (
        args.image_batch or (8 if tiny else 128),
        args.video_batch or (2 if tiny else 32),
    )
    seconds = args.seconds or (0.5 if tiny else 10.0)
    workers = args.workers or worker_counts(available_cpus())
    if args.device == "auto":
        device = torch.device("cuda") if torch.cuda.is_available() else None
    else:
        device = None if args.device == "none" else torch.device(args.device)
    host = device or torch.device("cpu")
    pipelines = cpu_pipelines() + (device_pipelines(device) if device is not None else [])
    header = run_header(host, __file__, argv)
    cv2.setNumThreads(1)

    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fer_data_bench_") as tmp:
        data = write_inputs(Path(tmp), images, clips, frames, args.face_size)
        print(f"  inputs written and packed ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        for p in pipelines:
            dataset = p.make(data)
            batch = video_batch if p.video else image_batch
            cells = [
                fmt(samples_per_second(dataset, w, batch, seconds, 2, host, p.on_device, p.collate))
                for w in workers
            ]
            rows.append([p.name, p.source, batch, *cells])
            print(
                f"  measured {p.name}, {p.source} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    columns = ["pipeline", "source", "batch", *(f"{w} worker{'s' if w > 1 else ''}" for w in workers)]
    notes = [
        f"samples/s of the DataLoader (workers as the columns say), after drawing the batches the workers prefetch at "
        f"start (2 per worker), over at least {seconds:g} s and 2 batches per cell; samples drawn at random with "
        f"replacement",
        f"inputs: {images} demo faces at {args.face_size} px (JPEG quality {JPEG_QUALITY}) and {clips} demo clips of "
        f"{frames} frames (frame folders) from fer.datasets.demo, and their packed copies; all in the page cache",
        f"outputs: images {IMAGE_SIZE} px; clips {NUM_FRAMES} frames at sampling rate {SAMPLING_RATE}, {VIDEO_SIZE} px; "
        f"float32 ImageNet-normalised, as the training step receives them",
    ]
    if device is not None:
        notes.append(
            f"'-> {device.type}' rows: workers only read (bytes or uint8 arrays); decoding and augmentation of each "
            f"batch run on {device.type} in the main process, synchronised at the end of the window"
        )
    else:
        notes.append("no device-side rows: no GPU here (--device cpu runs those pipelines on the CPU)")
    report("Data loading: samples/s by worker count" + (" (--tiny)" if tiny else ""), header, columns, rows, notes,
           args.markdown)  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
