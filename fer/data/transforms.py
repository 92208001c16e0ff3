"""Image and video transforms, ImageNet-normalised float tensors out.

Images (PIL RGB in, [3, S, S] out):
- train: timm `create_transform(is_training=True, ...)` as MAE / FMAE-IAT `build_transform` call it
  (RandomResizedCrop, flip, RandAugment "rand-m9-mstd0.5-inc1", bicubic, random erasing `reprob` in pixel mode);
- eval: resize to input_size / crop_pct and center crop (MAE `main_finetune.build_transform`: crop_pct 224/256 up to
  224 px, else 1.0); crop_pct=1.0 is FMAE-IAT's AU eval (`Resize([S, S])`) on square faces;
- pretrain: MAE `main_pretrain`: RandomResizedCrop(scale 0.2-1, bicubic) + flip.

Videos (uint8 [T, H, W, 3] in, [3, T, S, S] out), after sunlicai/MAE-DFER `kinetics.VideoClsDatasetFrame`:
- every frame is first resized to S x S (bilinear), as the reference does in every mode;
- train (`_aug_frame`): RandAugment "rand-m7-n4-mstd0.5-inc1" with the same ops and magnitudes on every frame,
  normalise, one RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, bilinear) and one flip for the whole clip, then
  random erasing, which (as the reference's RandomErasing over a [T, C, H, W] batch) draws a box per frame
  (num_splits=0: every frame; the reference's num_splits=recount only differs for recount > 1);
- eval / test: resize and normalise; `num_crops` spatial crops along the longer side (after the square resize
  they coincide, exactly as in the reference's DFEW test with test_num_crop=2);
- pretrain (`DataAugmentationForVideoMAE`): GroupMultiScaleCrop(scales 1, .875, .75, .66; 13 fixed offsets),
  bilinear resize to S x S, normalise; no flip.
Mixup / cutmix are batch-level and live in the engine (timm.data.Mixup).
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from timm.data import auto_augment, create_transform
from timm.data.auto_augment import rand_augment_transform
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.data.random_erasing import RandomErasing
from timm.data.transforms import str_to_pil_interp
from torchvision import transforms

MEAN = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)


def _posterize(img: Image.Image, bits_to_keep: int, **_) -> Image.Image:
    """RandAugment's posterize as the seeds ran it: at magnitude 10 "inc1" keeps 0 bits, which Pillow < 11
    turned into a black image and Pillow >= 11 refuses (ValueError), crashing a training run at random."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


for _name in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
    auto_augment.NAME_TO_OP[_name] = _posterize


# ----------------------------------------------------------------------------------------------- images


def image_train_transform(
    input_size: int,
    auto_augment: str | None = "rand-m9-mstd0.5-inc1",
    reprob: float = 0.25,
    remode: str = "pixel",
    recount: int = 1,
    scale: tuple[float, float] = (0.08, 1.0),
    hflip: float = 0.5,
    color_jitter: float | None = None,
    interpolation: str = "bicubic",
):
    """Finetuning augmentation of MAE / FMAE-IAT (timm create_transform with their arguments)."""
    return create_transform(
        input_size=input_size,
        is_training=True,
        scale=scale,
        hflip=hflip,
        color_jitter=color_jitter,
        auto_augment=auto_augment or None,
        interpolation=interpolation,
        re_prob=reprob,
        re_mode=remode,
        re_count=recount,
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
    )


def image_eval_transform(input_size: int, crop_pct: float | None = None, interpolation: str = "bicubic"):
    """Resize the short side to input_size / crop_pct, center crop input_size, normalise."""
    if crop_pct is None:
        crop_pct = 224 / 256 if input_size <= 224 else 1.0
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    return transforms.Compose(
        [
            transforms.Resize(int(input_size / crop_pct), interpolation=_tv_interp(interpolation)),
            transforms.CenterCrop(input_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
        ]
    )


def image_pretrain_transform(input_size: int, scale: tuple[float, float] = (0.2, 1.0)):
    """MAE pretraining augmentation (facebookresearch/mae main_pretrain.py)."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(
                input_size, scale=scale, interpolation=transforms.InterpolationMode.BICUBIC
            ),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
        ]
    )


def _tv_interp(name: str) -> transforms.InterpolationMode:
    return transforms.InterpolationMode(name)


# ----------------------------------------------------------------------------------------------- videos


def _as_frames(clip) -> list[Image.Image]:
    if isinstance(clip, torch.Tensor):
        clip = clip.numpy()
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"a clip must be a uint8 [T, H, W, 3] array, got {clip.dtype} {tuple(clip.shape)}")
    return [Image.fromarray(frame) for frame in clip]


def _resize_square(frames: list[Image.Image], size: int) -> list[Image.Image]:
    # PIL returns an identical copy when the frame already has this size (packed clips stay bit-identical)
    return [f.resize((size, size), Image.BILINEAR) for f in frames]


def _to_normalized(frames: list[Image.Image]) -> torch.Tensor:
    """PIL frames -> ImageNet-normalised float [T, 3, H, W]."""
    x = torch.from_numpy(np.stack([np.asarray(f) for f in frames])).permute(0, 3, 1, 2).float().div_(255)
    return (x - MEAN) / STD


def _apply_same_random(op, frames: list[Image.Image]) -> list[Image.Image]:
    """Apply a random PIL op to every frame with the same random draws.

    timm's RandAugment draws from Python's `random` and numpy's global RNG only; replaying their state per frame
    gives every frame the same ops and magnitudes (MAE-DFER's video RandAugment applies one draw to the list).
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    out = []
    for frame in frames:
        random.setstate(py_state)
        np.random.set_state(np_state)
        out.append(op(frame))
    return out


def spatial_crops(x: torch.Tensor, size: int, num_crops: int) -> torch.Tensor:
    """[3, T, H, W] -> [num_crops, 3, T, size, size]: crops spaced uniformly along the longer side.

    MAE-DFER test mode (`spatial_step`), with one crop centred instead of dividing by num_crops - 1.
    """
    h, w = x.shape[-2:]
    if min(h, w) < size:
        raise ValueError(f"frames of {h}x{w} are smaller than the crop size {size}")
    long_side = max(h, w)
    if num_crops == 1:
        starts = [(long_side - size) // 2]
    else:
        step = (long_side - size) / (num_crops - 1)
        starts = [int(k * step) for k in range(num_crops)]
    off = (min(h, w) - size) // 2  # centred on the short side
    views = [
        x[..., s : s + size, off : off + size] if h >= w else x[..., off : off + size, s : s + size]
        for s in starts
    ]
    return torch.stack(views)


class VideoTrainTransform:
    """Same random crop, flip and RandAugment for every frame of a clip; uint8 [T, H, W, 3] -> [3, T, S, S]."""

    def __init__(
        self,
        input_size: int,
        auto_augment: str | None = "rand-m7-n4-mstd0.5-inc1",
        reprob: float = 0.25,
        remode: str = "pixel",
        recount: int = 1,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (0.75, 1.3333),
        hflip: float = 0.5,
        interpolation: str = "bicubic",
    ):
        self.input_size, self.scale, self.ratio, self.hflip = input_size, scale, ratio, hflip
        self.rand_augment = None
        if auto_augment:
            if not auto_augment.startswith("rand"):
                raise ValueError(
                    f"video augmentation supports RandAugment strings ('rand-...'), got {auto_augment!r}"
                )
            hparams = {
                "translate_const": int(input_size * 0.45),
                "interpolation": str_to_pil_interp(interpolation),
            }
            self.rand_augment = rand_augment_transform(auto_augment, hparams)
        self.erasing = (
            RandomErasing(reprob, mode=remode, max_count=recount, num_splits=0, device="cpu")
            if reprob > 0
            else None
        )

    def __call__(self, clip) -> torch.Tensor:
        frames = _resize_square(_as_frames(clip), self.input_size)
        if self.rand_augment is not None:
            frames = _apply_same_random(self.rand_augment, frames)
        x = _to_normalized(frames)  # [T, 3, S, S]
        i, j, h, w = transforms.RandomResizedCrop.get_params(x[0], self.scale, self.ratio)
        x = F.interpolate(
            x[:, :, i : i + h, j : j + w], size=(self.input_size,) * 2, mode="bilinear", align_corners=False
        )
        if torch.rand(1).item() < self.hflip:
            x = x.flip(-1)
        if self.erasing is not None:
            x = self.erasing(x)  # [T, C, H, W] is a batch to timm: one draw per frame, as in the reference
        return x.permute(1, 0, 2, 3).contiguous()


class VideoEvalTransform:
    """Resize to S x S and normalise; uint8 [T, H, W, 3] -> [3, T, S, S], or [K, 3, T, S, S] for K crops."""

    def __init__(self, input_size: int, num_crops: int = 1):
        if num_crops < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        self.input_size, self.num_crops = input_size, num_crops

    def __call__(self, clip) -> torch.Tensor:
        x = _to_normalized(_resize_square(_as_frames(clip), self.input_size)).permute(1, 0, 2, 3).contiguous()
        return x if self.num_crops == 1 else spatial_crops(x, self.input_size, self.num_crops)


# GroupMultiScaleCrop.fill_fix_offset with more_fix_crop: corners and centre, then edge centres and quarters,
# in quarters of the free space
_FIX_OFFSETS = ((0, 0), (4, 0), (0, 4), (4, 4), (2, 2)) + ((0, 2), (4, 2), (2, 4), (2, 0))
_FIX_OFFSETS += ((1, 1), (3, 1), (1, 3), (3, 3))


class VideoPretrainTransform:
    """VideoMAE's GroupMultiScaleCrop (fix_crop, more_fix_crop, max_distort=1) + bilinear resize + normalise."""

    def __init__(
        self, input_size: int, scales: tuple[float, ...] = (1, 0.875, 0.75, 0.66), max_distort: int = 1
    ):
        self.input_size, self.scales, self.max_distort = input_size, scales, max_distort

    def _crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        base = min(width, height)
        sizes = [int(base * s) for s in self.scales]
        # sizes within 3 px of the target snap to it (as the reference does)
        sizes = [self.input_size if abs(s - self.input_size) < 3 else s for s in sizes]
        pairs = [
            (w, h) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= self.max_distort
        ]
        crop_w, crop_h = pairs[int(torch.randint(len(pairs), (1,)))]
        ws, hs = (width - crop_w) // 4, (height - crop_h) // 4
        grid = _FIX_OFFSETS
        gx, gy = grid[int(torch.randint(len(grid), (1,)))]
        return gx * ws, gy * hs, crop_w, crop_h

    def __call__(self, clip) -> torch.Tensor:
        frames = _as_frames(clip)
        x0, y0, w, h = self._crop_box(*frames[0].size)
        size = (self.input_size, self.input_size)
        frames = [f.crop((x0, y0, x0 + w, y0 + h)).resize(size, Image.BILINEAR) for f in frames]
        return _to_normalized(frames).permute(1, 0, 2, 3).contiguous()


def video_train_transform(input_size: int, **kwargs) -> VideoTrainTransform:
    return VideoTrainTransform(input_size, **kwargs)


def video_eval_transform(input_size: int, num_crops: int = 1) -> VideoEvalTransform:
    return VideoEvalTransform(input_size, num_crops)


def video_pretrain_transform(input_size: int, **kwargs) -> VideoPretrainTransform:
    return VideoPretrainTransform(input_size, **kwargs)
