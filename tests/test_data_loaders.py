"""Data loaders on tiny files written here: shapes, sampling, same crop per frame, errors, packed == folder."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fer.data import (
    AnnotationError,
    AUImageDataset,
    ExpressionImageDataset,
    PackedImageDataset,
    PackedVideoDataset,
    VideoClipDataset,
    image_eval_transform,
    image_train_transform,
    pack_annotation,
)
from fer.data.transforms import VideoEvalTransform, VideoTrainTransform
from fer.data.video import eval_clip_indices, finetune_train_indices, pretrain_indices

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
S = 16  # input size of every test


def _img(rng, size=S):
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _write_images(root, n, size=S, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths, arrays = [], []
    for i in range(n):
        a = _img(rng, size)
        p = root / f"{i:03d}.png"
        Image.fromarray(a).save(p)
        paths.append(p)
        arrays.append(a)
    return paths, arrays


def _write_frames(folder, values, size=24):
    """Frame t is a flat image of gray level values[t] (so a view's content tells which frame it shows)."""
    folder.mkdir(parents=True)
    for t, v in enumerate(values):
        Image.fromarray(np.full((size, size, 3), v, np.uint8)).save(folder / f"{t + 1:05d}.png")
    return folder


def _write_mp4(path, values, size=32):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (size, size))
    for v in values:
        writer.write(np.full((size, size, 3), v, np.uint8))
    writer.release()
    return path


def _lines(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _normalised(a):
    return (torch.from_numpy(a).permute(2, 0, 1).float() / 255 - MEAN) / STD


def _seed(s):
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s)


# ----------------------------------------------------------------------------------------------- images


def test_expression_images_eval_and_train(tmp_path):
    paths, arrays = _write_images(tmp_path / "faces", 3)
    ann = _lines(tmp_path / "test.csv", [f"{p} {i % 2}" for i, p in enumerate(paths)] + [""])
    ds = ExpressionImageDataset(ann, num_classes=2, transform=image_eval_transform(S, crop_pct=1.0))
    assert len(ds) == 3 and ds.labels == [0, 1, 0]
    x, y = ds[1]
    assert x.dtype == torch.float32 and x.shape == (3, S, S) and y == 1 and isinstance(y, int)
    assert torch.allclose(x, _normalised(arrays[1]), atol=1e-5)
    # MAE's default eval crop (224/256) resizes up then center crops: not the plain image any more
    assert image_eval_transform(S)(Image.fromarray(arrays[1])).shape == (3, S, S)

    train = ExpressionImageDataset(ann, 2, transform=image_train_transform(S, reprob=0.5))
    _seed(0)
    a, _ = train[0]
    b, _ = train[0]
    assert a.shape == (3, S, S) and not torch.allclose(a, b)


def test_au_dataset(tmp_path):
    paths, arrays = _write_images(tmp_path / "faces", 2)
    ann = _lines(
        tmp_path / "train.csv",
        ["path,subject,subject_id,AU1,AU12", f"{paths[0]},F001,0,1,-1", f"{paths[1]},M002,3,0,1"],
    )
    ds = AUImageDataset(ann, image_eval_transform(S, crop_pct=1.0))
    assert ds.aus == ("AU1", "AU12") and ds.num_subjects == 4 and len(ds) == 2
    x, aus, sid = ds[0]
    assert torch.allclose(x, _normalised(arrays[0]), atol=1e-5)
    assert aus.dtype == torch.float32 and aus.tolist() == [1.0, -1.0] and sid == 0
    assert ds[1][1].tolist() == [0.0, 1.0] and ds[1][2] == 3


# ----------------------------------------------------------------------------------------------- errors


def _bad_expression(tmp_path, line, media="image"):
    paths, _ = _write_images(tmp_path / "faces", 1)
    folder = _write_frames(tmp_path / "vid", [0, 1, 2])
    good = f"{folder if media == 'video' else paths[0]} 1"
    return _lines(tmp_path / "bad.csv", [good, line.format(img=paths[0], tmp=tmp_path)])


@pytest.mark.parametrize(
    "line, media, fix",
    [
        ("{tmp}/my faces/a.png 1", "image", "may not contain spaces"),
        ("{img}", "image", "expected '<path> <label>'"),
        ("{img} happy", "image", "not an integer"),
        ("{img} 7", "image", "outside 0..2"),
        ("{img} -1", "image", "outside 0..2"),
        ("{tmp}/gone.png 0", "image", "not found"),
        ("{tmp}/gone 0", "video", "frame folder or video"),
        ("{img} 0", "video", "not a frame folder nor a video file"),
    ],
)
def test_expression_errors_name_file_and_line(tmp_path, line, media, fix):
    ann = _bad_expression(tmp_path, line, media)
    with pytest.raises(AnnotationError, match=re.escape(f"{ann}:2: ")) as err:
        if media == "image":
            ExpressionImageDataset(ann, num_classes=3)
        else:
            VideoClipDataset(ann, num_classes=3, num_frames=2, sampling_rate=1, input_size=S)
    assert fix in str(err.value)


@pytest.mark.parametrize(
    "lines, where, fix",
    [
        (["path,subject,subject_id"], ":1: ", "AU column missing"),
        (["path,subject,AU1"], ":1: ", "header must start with"),
        (["path,subject,subject_id,AU1,smile"], ":1: ", "not an AU column"),
        (["path,subject,subject_id,AU1,AU2", "{img},F1,0,1"], ":2: ", "expected 5 comma-separated fields"),
        (
            ["path,subject,subject_id,AU1,AU2", "{img},F1,0,1,0", "{img},F1,0,1,999"],
            ":3: ",
            "must be 1, 0 or -1",
        ),
        (["path,subject,subject_id,AU1", "{img},F1,x,1"], ":2: ", "subject_id"),
        (["path,subject,subject_id,AU1", "{img},F1,0,1", "{img}.gone,F1,0,1"], ":3: ", "not found"),
    ],
)
def test_au_errors_name_file_and_line(tmp_path, lines, where, fix):
    paths, _ = _write_images(tmp_path / "faces", 1)
    ann = _lines(tmp_path / "au.csv", [x.format(img=paths[0]) for x in lines])
    with pytest.raises(AnnotationError, match=re.escape(f"{ann}{where}")) as err:
        AUImageDataset(ann)
    assert fix in str(err.value)


def test_unreadable_image_and_empty_frame_folder(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    ds = ExpressionImageDataset(_lines(tmp_path / "a.csv", [f"{broken} 0"]), num_classes=1)
    with pytest.raises(AnnotationError, match=re.escape(f"{tmp_path / 'a.csv'}:1: cannot read image")):
        ds[0]
    (tmp_path / "empty").mkdir()
    ann = _lines(tmp_path / "v.csv", [f"{tmp_path / 'empty'} 0"])
    vds = VideoClipDataset(ann, 1, num_frames=2, sampling_rate=1, input_size=S)
    with pytest.raises(AnnotationError, match=re.escape(f"{ann}:1: ") + ".*holds no frames"):
        vds[0]


# ----------------------------------------------------------------------------------------------- sampling


def test_finetune_train_indices_follow_mae_dfer():
    # short video: every 4th frame by linspace(0, n, n // 4), then the last frame repeated
    assert finetune_train_indices(20, 16, 4).tolist() == [0, 5, 10, 15] + [19] * 12
    assert finetune_train_indices(3, 4, 4).tolist() == [2, 2, 2, 2]
    # long video: 16 points of linspace(start, start + 64) with the end clipped to start + 63
    pattern = np.array([0, 4, 8, 12, 17, 21, 25, 29, 34, 38, 42, 46, 51, 55, 59, 63])
    gen = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        idx = finetune_train_indices(100, 16, 4, generator=gen)
        start = int(idx[0])
        assert 0 <= start <= 100 - 65 and (idx - start).tolist() == pattern.tolist()
        starts.add(start)
    assert len(starts) > 20  # random start over the whole range


def test_eval_clip_indices_are_uniform():
    clips = eval_clip_indices(100, 16, 4, num_clips=2)
    assert clips[0].tolist() == list(range(0, 64, 4)) and clips[1].tolist() == list(range(36, 100, 4))
    short = eval_clip_indices(30, 16, 4, num_clips=2)  # 0..28 step 4, padded with 28
    assert short[0].tolist() == short[1].tolist() == [0, 4, 8, 12, 16, 20, 24, 28] + [28] * 8
    assert eval_clip_indices(100, 16, 4, num_clips=1)[0].tolist() == list(range(16, 80, 4))  # centred
    # 25 strided frames, windows of 4 start at entries 0, 10.5 -> 10, 21
    assert [c[0] for c in eval_clip_indices(100, 4, 4, num_clips=3)] == [0, 40, 84]


def test_pretrain_indices_follow_videomae():
    assert pretrain_indices(10, 16, 4).tolist() == [0, 4, 8] + [8] * 13
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        idx = pretrain_indices(100, 16, 4, generator=gen)
        assert 0 <= idx[0] <= 36 and (idx - idx[0]).tolist() == list(range(0, 64, 4))


# ----------------------------------------------------------------------------------------------- videos


def test_video_train_transform_same_crop_and_flip_on_every_frame():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 150, (24, 30, 3)).astype(np.uint8)
    clip = np.stack([base + 10 * t for t in range(4)]).astype(np.uint8)  # no overflow: max 179
    tf = VideoTrainTransform(S, auto_augment=None, reprob=0)
    outs = []
    for seed in range(4):
        _seed(seed)
        x = tf(clip)
        assert x.shape == (3, 4, S, S) and x.dtype == torch.float32
        # crop, resize and flip are linear: a frame differs from the first by its constant offset only
        for t in range(4):
            offset = (10 * t / 255) / STD
            assert torch.allclose(x[:, t] - x[:, 0], offset.expand(3, S, S), atol=1e-4)
        outs.append(x)
    assert not all(torch.allclose(outs[0], o) for o in outs[1:])  # the crop does change between draws


def test_video_rand_augment_is_identical_across_frames():
    frame = np.random.default_rng(1).integers(0, 256, (S, S, 3), dtype=np.uint8)
    clip = np.stack([frame] * 3)
    tf = VideoTrainTransform(S, reprob=0)  # MAE-DFER's rand-m7-n4-mstd0.5-inc1
    plain = VideoEvalTransform(S)(clip)
    changed = 0
    for seed in range(6):
        _seed(seed)
        x = tf(clip)
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
        changed += not torch.allclose(x, plain)
    assert changed >= 5
    # random erasing draws per frame (the reference erases a [T, C, H, W] batch)
    _seed(0)
    erased = VideoTrainTransform(S, auto_augment=None, reprob=1.0, scale=(1.0, 1.0), hflip=0)(clip)
    assert not torch.allclose(erased, plain) and not torch.equal(erased[:, 0], erased[:, 1])


def test_video_clip_dataset_frames_views_and_loader(tmp_path):
    v0 = _write_frames(tmp_path / "v0", [10 * t for t in range(20)])
    v1 = _write_frames(tmp_path / "v1", [200 - 10 * t for t in range(7)])
    ann = _lines(tmp_path / "dfew.csv", [f"{v0} 3", f"{v1} 6"])
    kw = dict(num_frames=4, sampling_rate=2, input_size=S)

    train = VideoClipDataset(ann, 7, **kw)
    x, y = train[0]
    assert x.shape == (3, 4, S, S) and y == 3
    batch = next(iter(DataLoader(train, batch_size=2)))
    assert batch[0].shape == (2, 3, 4, S, S) and batch[1].tolist() == [3, 6]

    test = VideoClipDataset(ann, 7, train=False, test_clips=2, test_crops=3, **kw)
    views, _ = test[0]
    assert views.shape == (6, 3, 4, S, S)
    # clip-major: views 0-2 show clip 0 (frames 0,2,4,6), views 3-5 clip 1 (frames 12,14,16,18)
    gray = ((views[:, 0, :, 0, 0] * STD[0, 0, 0] + MEAN[0, 0, 0]) * 255).round()
    assert gray[:3].tolist() == [[0, 20, 40, 60]] * 3 and gray[3:].tolist() == [[120, 140, 160, 180]] * 3
    single, _ = VideoClipDataset(ann, 7, train=False, **kw)[1]  # 7 frames: 0,2,4,6 centred
    assert single.shape == (3, 4, S, S)
    gray = ((single[0, :, 0, 0] * STD[0, 0, 0] + MEAN[0, 0, 0]) * 255).round()
    assert gray.tolist() == [200, 180, 160, 140]

    pre = VideoClipDataset(ann, None, sampling="pretrain", **kw)
    assert pre[1][0].shape == (3, 4, S, S)


def test_video_clip_dataset_reads_mp4(tmp_path):
    mp4 = _write_mp4(tmp_path / "clip.mp4", [20 * t for t in range(12)])
    ann = _lines(tmp_path / "v.csv", [f"{mp4} 1"])
    views, label = VideoClipDataset(
        ann, 2, num_frames=4, sampling_rate=3, train=False, test_clips=1, test_crops=2, input_size=S
    )[0]
    assert views.shape == (2, 3, 4, S, S) and label == 1
    gray = (views[0, 1, :, 8, 8] * STD[1, 0, 0] + MEAN[1, 0, 0]) * 255  # frames 0, 3, 6, 9 (lossy codec)
    assert torch.allclose(gray, torch.tensor([0.0, 60, 120, 180]), atol=8)


# ----------------------------------------------------------------------------------------------- packed


def test_packed_images_match_folder(tmp_path):
    paths, arrays = _write_images(tmp_path / "faces", 4)
    ann = _lines(tmp_path / "train.csv", [f"{p} {i}" for i, p in enumerate(paths)])
    index = pack_annotation(ann, tmp_path / "packed" / "train", S, progress=False)
    assert index == tmp_path / "packed" / "train.index.csv"
    tf = image_eval_transform(S)
    folder, packed = (
        ExpressionImageDataset(ann, 4, tf),
        PackedImageDataset(tmp_path / "packed" / "train", tf, 4),
    )
    assert len(packed) == 4
    for i in range(4):
        assert torch.equal(folder[i][0], packed[i][0]) and folder[i][1] == packed[i][1]
    # the array is memory-mapped per worker (not pickled along with the dataset)
    xs, ys = next(iter(DataLoader(packed, batch_size=4, num_workers=1)))
    assert torch.equal(xs[2], folder[2][0]) and ys.tolist() == [0, 1, 2, 3]

    # faces of another size are resized once, bicubic, to S x S
    big, big_arrays = _write_images(tmp_path / "big", 2, size=20, seed=3)
    pack_annotation(
        _lines(tmp_path / "big.csv", [f"{p} 0" for p in big]), tmp_path / "bigpack", S, progress=False
    )
    stored = np.load(tmp_path / "bigpack.npy")
    assert stored.shape == (2, S, S, 3)
    assert np.array_equal(stored[1], np.asarray(Image.fromarray(big_arrays[1]).resize((S, S), Image.BICUBIC)))


def test_packed_au_matches_folder(tmp_path):
    paths, _ = _write_images(tmp_path / "faces", 2)
    ann = _lines(
        tmp_path / "au.csv",
        ["path,subject,subject_id,AU4,AU6", f"{paths[0]},F1,0,1,-1", f"{paths[1]},F2,-1,0,1"],
    )
    pack_annotation(ann, tmp_path / "au_packed", S, progress=False)
    tf = image_eval_transform(S, crop_pct=1.0)
    folder, packed = AUImageDataset(ann, tf), PackedImageDataset(tmp_path / "au_packed", tf)
    assert packed.aus == ("AU4", "AU6")
    for i in range(2):
        (a, au_a, s_a), (b, au_b, s_b) = folder[i], packed[i]
        assert torch.equal(a, b) and torch.equal(au_a, au_b) and s_a == s_b


def test_packed_videos_match_folder_and_mp4(tmp_path):
    v0 = _write_frames(tmp_path / "v0", [(7 * t) % 256 for t in range(9)], size=S)
    v1 = _write_frames(tmp_path / "v1", [(13 * t) % 256 for t in range(5)], size=S)
    mp4 = _write_mp4(tmp_path / "c.mp4", [15 * t for t in range(10)], size=32)  # resized when packed
    ann = _lines(tmp_path / "test.csv", [f"{v0} 0", f"{v1} 1", f"{mp4} 2"])
    clash = _lines(tmp_path / "v.index.csv", ann.read_text().splitlines())
    with pytest.raises(ValueError, match="would overwrite it"):
        pack_annotation(clash, tmp_path / "v", S, progress=False)
    pack_annotation(ann, tmp_path / "test", S, progress=False)
    index = (tmp_path / "test.index.csv").read_text().splitlines()
    assert (
        index[0] == "path,label,start,length"
        and index[2].endswith(",1,9,5")
        and index[3].endswith(",2,14,10")
    )
    kw = dict(num_frames=4, sampling_rate=2, input_size=S)
    for train, clips, crops in ((False, 2, 2), (True, 1, 1)):
        folder = VideoClipDataset(ann, 3, train=train, test_clips=clips, test_crops=crops, **kw)
        packed = PackedVideoDataset(
            tmp_path / "test", 3, train=train, test_clips=clips, test_crops=crops, **kw
        )
        for i in range(3):
            _seed(i)
            a, la = folder[i]
            _seed(i)
            b, lb = packed[i]
            assert torch.equal(a, b) and la == lb == i


def test_packed_array_must_match_index(tmp_path):
    paths, _ = _write_images(tmp_path / "faces", 2)
    ann = _lines(tmp_path / "a.csv", [f"{p} {i}" for i, p in enumerate(paths)])
    pack_annotation(ann, tmp_path / "a", S, progress=False)
    np.save(tmp_path / "a.npy", np.zeros((1, S, S, 3), np.uint8))
    with pytest.raises(AnnotationError, match="does not match its index"):
        PackedImageDataset(tmp_path / "a")
    with pytest.raises(AnnotationError, match="outside 0..0"):
        pack_annotation(ann, tmp_path / "b", S, progress=False)
        PackedImageDataset(tmp_path / "b", num_classes=1)


def test_pack_errors_name_file_and_line(tmp_path):
    paths, _ = _write_images(tmp_path / "faces", 1)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    ann = _lines(tmp_path / "train.csv", [f"{paths[0]} 0", f"{broken} 1"])
    with pytest.raises(AnnotationError, match=re.escape(f"{ann}:2: cannot read image")):
        pack_annotation(ann, tmp_path / "p", S, progress=False)
    mixed = _lines(tmp_path / "mixed.csv", [f"{paths[0]} 0", f"{_write_frames(tmp_path / 'v', [1, 2])} 1"])
    with pytest.raises(AnnotationError, match="mixes images and videos"):
        pack_annotation(mixed, tmp_path / "p", S, progress=False)
    assert (
        not (tmp_path / "p.npy").exists() and not (tmp_path / "p.index.csv").exists()
    )  # nothing half-written


def test_annotation_error_import_is_light():
    # the annotation writer imports AnnotationError; the loaders (torch, timm) load on first use
    code = "import sys; from fer.data import AnnotationError; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    import fer.data

    assert fer.data.VideoClipDataset is VideoClipDataset and "VideoClipDataset" in dir(fer.data)


def test_randaugment_posterize_at_zero_bits_gives_black_image_not_an_error():
    from PIL import Image
    from timm.data import auto_augment

    import fer.data.transforms  # noqa: F401  (installs the posterize fix)

    img = Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8))
    op = auto_augment.NAME_TO_OP["PosterizeIncreasing"]
    assert np.asarray(op(img, 0)).max() == 0
    assert np.array_equal(np.asarray(op(img, 2)), np.full((8, 8, 3), 192, dtype=np.uint8))
    assert op(img, 8) is img
