"""Faces stage: real MTCNN detection, real decoding (cv2-written mp4s through decord), real alignment and manifests.

The face_alignment backend is exercised offline with randomly initialised networks built from face-alignment's own
classes and saved under the file names it expects, so its loading, cropping, batching and heatmap decoding run.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import SimilarityTransform

from fer.datasets.base import Record
from fer.faces import (
    COLUMNS,
    WeightsMissingError,
    align_face,
    align_records,
    create_detector,
    face_template,
    landmarks68_to_5,
    read_manifest,
    similarity_matrix,
    summarize,
)
from fer.faces import detect as detect_mod

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _save_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _face_patch(side: int = 96) -> np.ndarray:
    """The astronaut's face with some context, resized: a real face to move around synthetic frames."""
    return cv2.resize(data.astronaut()[20:240, 120:330], (side, side), interpolation=cv2.INTER_AREA)


def _frames(positions: list[tuple[int, int] | None], hw: int = 192) -> list[np.ndarray]:
    """Frames with a smooth background and the face pasted at each (x, y), or no face where None."""
    yy, xx = np.mgrid[0:hw, 0:hw]
    background = np.stack([60 + xx * 0.4, 90 + yy * 0.3, 120 + 0 * xx], -1).astype(np.uint8)
    patch = _face_patch()
    frames = []
    for pos in positions:
        f = background.copy()
        if pos is not None:
            x, y = pos
            f[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
        frames.append(f)
    return frames


def _write_mp4(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def mtcnn():
    return create_detector("mtcnn")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """One directory of inputs shared by the manifest tests."""
    root = tmp_path_factory.mktemp("media")
    m = {
        "astronaut": _save_rgb(root / "astronaut.jpg", data.astronaut()),
        "hopper": GRACE_HOPPER,
        "coffee": _save_rgb(root / "coffee.png", data.coffee()),
        "moving": _write_mp4(root / "moving.mp4", _frames([(10 + 12 * t, 30 + 5 * t) for t in range(6)])),
        "leaving": _write_mp4(
            root / "leaving.mp4", _frames([None, None, (40, 40), (44, 40), None, None, (50, 42)])
        ),
        "empty": _write_mp4(root / "empty.mp4", _frames([None] * 3)),
    }
    corrupt = root / "corrupt.jpg"
    corrupt.write_bytes(Path(m["astronaut"]).read_bytes()[:300])  # a JPEG header and nothing decodable
    m["corrupt"] = corrupt
    whole = Path(m["moving"]).read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # the moov atom (at the end) is lost
    m["truncated"] = root / "truncated.mp4"
    folder = root / "frames_dir"
    for i, f in enumerate(_frames([(20, 20), (30, 24), (40, 28)])):
        _save_rgb(folder / f"{i + 1}.jpg", f)
    (folder / "4.jpg").write_bytes(b"not a jpeg")  # one broken frame inside a readable folder
    m["folder"] = folder
    return m


def _records(media: dict[str, Path], names: list[str]) -> list[Record]:
    return [Record(key=f"set/{n}", path=Path(media[n])) for n in names]


def _by_item(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["item"], []).append(r)
    return out


# --------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_one_face_with_landmarks_in_place(mtcnn, name):
    rgb = data.astronaut() if name == "astronaut" else _rgb(GRACE_HOPPER)
    faces = mtcnn.detect(rgb)
    assert len(faces) == 1
    face = faces[0]
    (le, re_, nose, ml, mr) = face.landmarks5
    assert face.score > 0.9
    assert le[0] < re_[0] and ml[0] < mr[0]  # image-left point first
    assert max(le[1], re_[1]) < nose[1] < min(ml[1], mr[1])  # eyes above nose above mouth
    x0, y0, x1, y1 = face.box
    assert (face.landmarks5[:, 0] > x0).all() and (face.landmarks5[:, 0] < x1).all()
    assert (face.landmarks5[:, 1] > y0).all() and (face.landmarks5[:, 1] < y1).all()
    eye_dist = np.linalg.norm(re_ - le)
    assert 0.25 * (x1 - x0) < eye_dist < 0.75 * (x1 - x0)
    # the stages are called directly for sub-pixel output: the wheel's public API agrees to the truncated pixel
    (pub,) = mtcnn.net.detect_faces(rgb)
    kp = pub["keypoints"]
    ints = np.array([kp[k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")])
    assert np.abs(face.landmarks5 - ints).max() < 1.0
    if name == "astronaut":  # her face is at about x 180-270, y 60-175 in skimage's 512x512 image
        assert 170 < x0 < 200 and 255 < x1 < 285 and 50 < y0 < 80 and 160 < y1 < 190
    assert mtcnn.detect(data.coffee()) == []


# --------------------------------------------------------------------------------------------- alignment


def test_similarity_matches_skimage():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 400, (5, 2))
    dst = face_template(160, margin=0.2)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        ref = SimilarityTransform.from_estimate(src, dst)
    else:
        ref = SimilarityTransform()
        assert ref.estimate(src, dst)
    np.testing.assert_allclose(similarity_matrix(src, dst), ref.params[:2], atol=1e-8)
    with pytest.raises(ValueError, match="degenerate"):
        similarity_matrix(np.ones((5, 2)), dst)


@pytest.mark.parametrize("size", [112, 224, 64])
def test_aligned_eyes_land_on_template(mtcnn, size):
    rgb = data.astronaut()
    face = mtcnn.detect(rgb)[0]
    aligned, matrix = align_face(rgb, face.landmarks5, size)
    assert aligned.shape == (size, size, 3) and aligned.dtype == np.uint8
    template = face_template(size)
    mapped = face.landmarks5 @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - template).max() < 0.08 * size  # least squares: close, not exact
    if size >= 112:  # re-detect the face in the aligned crop: its eyes sit where the template puts them
        again = mtcnn.detect(aligned)
        assert len(again) == 1
        np.testing.assert_allclose(again[0].landmarks5[:2], template[:2], atol=0.06 * size)
    # a margin keeps more context: the eyes move toward the centre
    tight, loose = face_template(size), face_template(size, margin=0.5)
    assert np.ptp(loose[:, 0]) < np.ptp(tight[:, 0])
    assert np.allclose(loose.mean(0) - size / 2, (tight.mean(0) - size / 2) / 1.5)


# --------------------------------------------------------------------------------------------- manifests


def test_manifest_images_videos_and_failures(media, tmp_path):
    names = ["astronaut", "hopper", "coffee", "corrupt", "truncated", "moving", "leaving", "empty", "folder"]
    out = tmp_path / "out"
    manifest = align_records(_records(media, names), out, size=64, progress=False)
    assert manifest == out / "manifest.csv"
    with open(manifest, newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    rows = _by_item(read_manifest(manifest))
    assert list(rows) == [f"set/{n}" for n in names]  # record order

    for n in ["astronaut", "hopper"]:
        (r,) = rows[f"set/{n}"]
        assert (r["status"], r["frame"], r["output"], r["error"]) == ("ok", -1, f"set/{n}.jpg", "")
        assert len(r["box"].split()) == 4 and len(r["landmarks"].split()) == 10 and float(r["score"]) > 0.9
        assert cv2.imread(str(out / r["output"])).shape == (64, 64, 3)
    (r,) = rows["set/coffee"]
    assert r["status"] == "no_face" and r["output"] == "" and not (out / "set/coffee.jpg").exists()
    for n in ["corrupt", "truncated"]:
        (r,) = rows[f"set/{n}"]
        assert r["status"] == "unreadable" and r["output"] == ""
        assert str(media[n]) in r["error"]

    moving = rows["set/moving"]  # the face moves across every frame: every frame found and aligned
    assert [r["frame"] for r in moving] == list(range(6))
    assert {r["status"] for r in moving} == {"ok"}
    assert [r["output"] for r in moving] == [f"set/moving/{i:05d}.jpg" for i in range(1, 7)]
    assert sorted(p.name for p in (out / "set/moving").iterdir()) == [f"{i:05d}.jpg" for i in range(1, 7)]
    eye_x = [float(r["landmarks"].split()[0]) for r in moving]
    assert np.all(np.diff(eye_x) > 6)  # the landmarks follow the face (12 px per frame)

    leaving = rows["set/leaving"]  # leading faceless frames use the first transform, later ones the last
    assert [r["status"] for r in leaving] == ["reused", "reused", "ok", "ok", "reused", "reused", "ok"]
    assert "frame 2 reused" in leaving[0]["error"] and "frame 3 reused" in leaving[4]["error"]
    assert all((out / r["output"]).is_file() for r in leaving)
    assert [r["score"] for r in leaving if r["status"] == "reused"] == [""] * 4

    empty = rows["set/empty"]
    assert [r["status"] for r in empty] == ["no_face"] * 3 and not (out / "set/empty").exists()
    folder = rows["set/folder"]
    assert [r["status"] for r in folder] == ["ok", "ok", "ok", "unreadable"]
    assert "4.jpg" in folder[3]["error"]

    counts = summarize(manifest)
    assert counts == {"rows": 25, "items": 9, "ok": 14, "no_face": 4, "unreadable": 3, "reused": 4}
    assert not list(out.rglob("*.partial")) and not list(out.rglob("*.tmp"))


def test_stride_and_max_frames(media, tmp_path):
    rec = _records(media, ["moving"])
    rows = read_manifest(align_records(rec, tmp_path, size=64, frame_stride=2, max_frames=2, progress=False))
    assert [(r["frame"], r["output"]) for r in rows] == [
        (0, "set/moving/00001.jpg"),
        (2, "set/moving/00002.jpg"),
    ]


def test_sequential_reader_matches_get_batch(media):
    import decord

    from fer.faces.process import open_video, read_video_frames

    path = media["moving"]
    ref = decord.VideoReader(str(path)).get_batch(list(range(6))).asnumpy()
    for idx in ([0, 1, 2, 3, 4, 5], [0, 3], [1, 3, 5], [5, 2, 2]):  # stride 1, skips, a seek, random order
        got = list(read_video_frames(open_video(path), idx, batch_size=2, path=path))
        assert [i for i, _, _ in got] == idx and [e for *_, e in got] == [""] * len(idx)
        for i, frame, _ in got:
            np.testing.assert_array_equal(frame, ref[i])


def test_resume_skips_finished_items(media, tmp_path, monkeypatch):
    recs = _records(media, ["astronaut", "coffee", "corrupt", "leaving"])
    out = tmp_path / "out"
    calls = []
    real = detect_mod.MTCNNDetector.detect

    def counting(self, rgb, max_faces=None):
        calls.append(rgb.shape)
        return real(self, rgb, max_faces)

    monkeypatch.setattr(detect_mod.MTCNNDetector, "detect", counting)
    first = align_records(recs, out, size=64, progress=False).read_text()
    assert (
        len(calls) == 2 + 7
    )  # astronaut, coffee, 7 video frames; the corrupt file never reaches the detector
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}

    calls.clear()
    assert align_records(recs, out, size=64, progress=False).read_text() == first
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")} == mtimes

    # a lost output and a crash that tore the log's last line: only those items are redone
    (out / "set/astronaut.jpg").unlink()
    log = out / "manifest.partial.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["item"] == "set/leaving"
    log.write_text("".join(lines[:-1]) + lines[-1][:40])
    calls.clear()
    assert align_records(recs, out, size=64, progress=False).read_text() == first
    assert len(calls) == 1 + 7

    with pytest.raises(ValueError, match="other settings.*size: 64 -> 112"):
        align_records(recs, out, size=112, progress=False)


def test_two_workers_same_manifest(media, tmp_path):
    recs = _records(media, ["astronaut", "coffee", "corrupt", "moving", "leaving", "hopper"])
    one = align_records(recs, tmp_path / "w1", size=64, workers=1, progress=False)
    for method in ["fork", "spawn"]:
        out = tmp_path / f"w2_{method}"
        two = align_records(recs, out, size=64, workers=2, start_method=method, progress=False)
        assert one.read_text() == two.read_text()
        for r in read_manifest(one):
            if r["output"]:
                a = cv2.imread(str(tmp_path / "w1" / r["output"])).astype(int)
                b = cv2.imread(str(out / r["output"])).astype(int)
                assert np.abs(a - b).max() <= 2


def test_workers_from_an_unguarded_script(media, tmp_path):
    """Snakemake runs `script:` files as __main__ without a guard; the default (fork on the CPU) must cope."""
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\n"
        "from fer.datasets.base import Record\n"
        "from fer.faces import align_records, summarize\n"
        f"recs = [Record('a', Path({str(media['astronaut'])!r})), Record('c', Path({str(media['coffee'])!r}))]\n"
        f"print(summarize(align_records(recs, {str(tmp_path / 'out')!r}, workers=2, progress=False)))\n"
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "'ok': 1, 'no_face': 1" in res.stdout


def test_bad_keys_and_backend(tmp_path):
    with pytest.raises(ValueError, match="duplicate record key 'a'"):
        align_records([Record("a", tmp_path), Record("a", tmp_path)], tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="relative output path"):
        align_records([Record("../up", tmp_path)], tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="unknown face detector backend 'dlib'"):
        create_detector("dlib")


# --------------------------------------------------------------------------------------------- face_alignment


def _fa_preds_without_jit(hm, center=None, scale=None):
    """face_alignment.utils.get_preds_fromhm with its numba kernels run as Python (`_get_preds_fromhm.py_func`
    for the heatmap peaks, `utils.transform`, the torch twin of `transform_np`, for the way back to the image)."""
    from face_alignment import utils

    b, c, h, w = hm.shape
    flat = hm.reshape(b, c, h * w)
    idx = flat.argmax(-1)
    scores = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    preds, _ = utils._get_preds_fromhm.py_func(hm, idx.copy())
    orig = [
        [utils.transform(p.astype(np.float64), center, scale, h, True).numpy() for p in row] for row in preds
    ]
    return preds, np.array(orig, np.float32), scores


def test_face_alignment_backend_offline(tmp_path, media):
    import face_alignment.api
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    hub = tmp_path / "hub"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.hub, "_hub_dir", str(hub))
        with pytest.raises(WeightsMissingError) as err:
            create_detector("face_alignment")
        msg = str(err.value)
        assert (
            "2DFAN4-11f355bf06.pth.tar" in msg
            and "s3fd-619a316812.pth" in msg
            and str(hub / "checkpoints") in msg
        )

        # the same error reaches the caller from worker processes (a failing Pool initializer would respawn forever)
        recs = _records(media, ["astronaut", "coffee"])
        with pytest.raises(WeightsMissingError, match="2DFAN4"):
            align_records(recs, tmp_path / "no_weights", backend="face_alignment", workers=2, progress=False)

        (hub / "checkpoints").mkdir(parents=True)
        torch.manual_seed(0)
        torch.save(FAN(4).state_dict(), hub / "checkpoints" / "2DFAN4-11f355bf06.pth.tar")
        torch.save(s3fd().state_dict(), hub / "checkpoints" / "s3fd-619a316812.pth")
        det = create_detector("face_alignment")
        assert det.fa.face_alignment_net.training is False

        rgb, hop = data.astronaut(), _rgb(GRACE_HOPPER)
        box = np.array([182.0, 63.0, 269.0, 175.0, 0.99])
        hbox = np.array([174.0, 116.0, 357.0, 341.0, 0.9])
        faces = det.detect_batch([rgb, hop], boxes=[box[None], hbox[None]])  # two crops, one FAN forward
        assert [len(f) for f in faces] == [1, 1] and faces[0][0].score == pytest.approx(0.99)
        # face-alignment's own per-image path as reference; its heatmap decoding runs as the plain Python of its
        # numba kernel (`py_func`), which saves ~15 s of JIT compilation and computes the same numbers
        mp.setattr(face_alignment.api, "get_preds_fromhm", _fa_preds_without_jit)
        for (face,), img, b in [(faces[0], rgb, box), (faces[1], hop, hbox)]:
            # it truncates to whole pixels, we keep fractions: they agree within a pixel
            ref = det.fa.get_landmarks_from_image(img, detected_faces=[b])
            np.testing.assert_allclose(face.landmarks5, landmarks68_to_5(ref[0]), atol=1.0)
            # landmarks lie in image coordinates inside FAN's crop square around the box
            scale = (b[2] - b[0] + b[3] - b[1]) / 195.0
            centre = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2 - 0.12 * (b[3] - b[1])])
            assert (np.abs(face.landmarks5 - centre) <= 100 * scale + 1).all()

        # the detector path: the (random) S3FD proposes boxes; FAN runs only on the best one
        small = cv2.resize(rgb, (96, 96))
        faces = det.detect(small, max_faces=1)
        assert len(faces) <= 1 and all(f.landmarks5.shape == (5, 2) for f in faces)

        # and the backend plugs into the stage
        rows = read_manifest(
            align_records([Record("a", _save_rgb(tmp_path / "a.png", small))], tmp_path / "fa_out",
                          backend="face_alignment", size=64, progress=False)
        )  # fmt: skip
        assert rows[0]["status"] in ("ok", "no_face") and (rows[0]["status"] == "ok") == (len(faces) == 1)

        fold = create_detector("face_alignment", face_detector="folder")
        with pytest.raises(ValueError, match="needs the boxes"):
            fold.detect(rgb)
        (f2,) = fold.detect(rgb, boxes=box[None, :4])  # boxes without a score: FAN's heatmap confidence
        assert 0.0 <= f2.score <= 1.0
