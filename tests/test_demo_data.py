"""Demo data generator: real layouts (checked by the adapters), balance, real MTCNN detection, learnability,
determinism, idempotent and atomic writes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from fer.datasets import bp4d, demo, dfew, rafdb

# ArcFace's 112x112 five-point template, scaled to the 64x64 faces the demo recipes train on.
TEMPLATE_64 = (
    np.array([[38.29, 51.7], [73.53, 51.5], [56.03, 71.74], [41.55, 92.37], [70.73, 92.2]]) * 64 / 112
)
TINY = {"rafdb_train": 14, "rafdb_test": 7, "dfew_clips": 4, "dfew_frames": 16, "bp4d_subjects": 3}
TINY.update(bp4d_tasks=1, bp4d_frames=3, image_size=96, video_size=96)


def _count_faces(rgb: np.ndarray) -> int:
    return len(demo._detector().detect_faces(rgb))


def _aligned_pixels(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """64x64 similarity-aligned face, downsampled to 24x24 grey, as a feature vector."""
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), TEMPLATE_64.astype(np.float32))
    face = cv2.warpAffine(rgb, matrix, (64, 64))
    small = cv2.resize(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY), (24, 24), interpolation=cv2.INTER_AREA)
    return small.ravel() / 255.0


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> tuple[dict[str, Path], float]:
    """The real demo at its default sizes, generated once for the module (and timed)."""
    start = time.perf_counter()
    out = demo.generate_demo(tmp_path_factory.mktemp("demo"), seed=0)
    return out, time.perf_counter() - start


def test_default_demo_passes_the_adapters(demo_root):
    out, seconds = demo_root
    assert set(out) == {"rafdb", "dfew", "bp4d"}
    sizes = demo.DEFAULT_SIZES
    # the budget is < 30 s on one free core; the bound leaves room for a CPU shared with other jobs
    assert seconds < 90, f"generating the demo took {seconds:.1f} s"

    rafdb.verify(out["rafdb"], full=False)
    rafdb.verify(out["rafdb"], images="original", full=False)
    records = rafdb.load_records(out["rafdb"], images="original")
    assert len(records) == sizes["rafdb_train"] + sizes["rafdb_test"]
    for part in ("train", "test"):
        counts = Counter(r.label for r in records if r.split == part)
        assert sorted(counts) == list(range(7)) and max(counts.values()) - min(counts.values()) <= 1
    image = cv2.imread(str(records[0].path))
    assert image.shape == (sizes["image_size"], sizes["image_size"], 3)

    dfew.verify(out["dfew"], full=False)
    clips = dfew.load_records(out["dfew"])
    assert len(clips) == sizes["dfew_clips"]
    for fold in (1, 2):
        parts = dfew.split(clips, fold)
        assert (
            len(parts["test"]) == sizes["dfew_clips"] // 2 and len(parts["train"]) == sizes["dfew_clips"] // 2
        )
        assert set(Counter(r.label for r in parts["test"]).values()) == {sizes["dfew_clips"] // 14}
    decord = pytest.importorskip("decord")
    video = decord.VideoReader(str(clips[0].path))
    assert len(video) == sizes["dfew_frames"] and video[0].shape == (sizes["video_size"],) * 2 + (3,)

    bp4d.verify(out["bp4d"], full=False)
    frames = bp4d.load_records(out["bp4d"])
    assert len(frames) == sizes["bp4d_subjects"] * sizes["bp4d_tasks"] * sizes["bp4d_frames"]
    subjects = {r.subject for r in frames}
    assert len(subjects) == sizes["bp4d_subjects"] and subjects <= set(bp4d.SUBJECTS)
    for fold in bp4d.FOLDS:  # every official subject fold has test subjects and training subjects
        parts = bp4d.split(frames, fold)
        assert parts["test"] and parts["train"]
        assert not {r.subject for r in parts["test"]} & {r.subject for r in parts["train"]}
    aus = np.array([r.aus for r in frames])
    assert aus.shape[1] == len(bp4d.AUS)
    assert (aus == -1).any(), "a few frames carry unknown codes (BP4D's 9)"
    assert ((aus == 1).sum(0) > 0).sum() >= 10 and ((aus == 0).sum(0) > 0).all()

    again = time.perf_counter()
    stamp = (out["rafdb"] / rafdb.LABEL_FILE).stat().st_mtime_ns
    assert demo.generate_demo(out["rafdb"].parent, seed=0) == out
    assert time.perf_counter() - again < 2, "an up-to-date demo is kept, not regenerated"
    assert (out["rafdb"] / rafdb.LABEL_FILE).stat().st_mtime_ns == stamp


def test_ten_generated_images_each_show_exactly_one_face(demo_root):
    out, _ = demo_root
    rng = np.random.default_rng(0)
    raf = rafdb.load_records(out["rafdb"], images="original")
    au = bp4d.load_records(out["bp4d"])
    paths = [raf[i].path for i in rng.choice(len(raf), 4, replace=False)]
    paths += [au[i].path for i in rng.choice(len(au), 3, replace=False)]
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    import decord

    clip = dfew.load_records(out["dfew"])[int(rng.integers(demo.DEFAULT_SIZES["dfew_clips"]))]
    video = decord.VideoReader(str(clip.path))
    images += [video[i].asnumpy() for i in (0, len(video) // 2, len(video) - 1)]
    assert [_count_faces(img) for img in images] == [1] * 10


def test_expressions_are_learnable_from_aligned_pixels():
    """A linear classifier on 24x24 aligned grey faces beats chance (1/7) by far on held-out samples, with
    identities, poses, lighting and backgrounds varying; the faces are found and aligned by MTCNN."""
    rng = np.random.default_rng(123)
    features, labels = [], []
    for i in range(7 * 30):
        label = i % 7
        img = demo.make_expression_face(label, rng, size=128)
        features.append(_aligned_pixels(img, demo.detect_landmarks(img, f"sample {i}")))
        labels.append(label)
    x, y = np.array(features), np.array(labels)
    train = np.arange(len(y)) < 7 * 20
    clf = LogisticRegression(max_iter=3000, C=0.1).fit(x[train], y[train])
    accuracy = (clf.predict(x[~train]) == y[~train]).mean()
    assert accuracy > 0.5, f"held-out accuracy {accuracy:.2f} (chance 0.14)"


def test_action_units_are_learnable_and_cooccur():
    rng = np.random.default_rng(7)
    labels, strength = demo.sample_au_frames("T1", 4000, bp4d.AUS, rng)
    on = labels == 1
    i6, i12, i15 = (bp4d.AUS.index(a) for a in (6, 12, 15))
    assert on[on[:, i6], i12].mean() > on[:, i12].mean() + 0.15, "AU12 co-occurs with AU6 in amusement"
    assert not (on[:, i12] & on[:, i15]).any()
    assert 0.01 < (labels == -1).mean() < 0.06

    # per-AU linear classifiers on aligned pixels (landmarks from the renderer) beat chance on held-out frames
    features, targets = [], []
    for task in ("T1", "T2", "T6", "T7"):
        for identity in (0, 4, 2, 6):
            _, strength = demo.sample_au_frames(task, 20, bp4d.AUS, rng)
            for row in strength:
                look = demo.random_look(rng, 0.4, background=False)
                img, lm = demo.render_face(dict(zip(bp4d.AUS, row)), identity, look, 128, rng)
                features.append(_aligned_pixels(img, lm))
                targets.append(row > 0.5)
    x, y = np.array(features), np.array(targets)
    train = np.arange(len(y)) % 3 != 0
    scores = []
    for j in range(len(bp4d.AUS)):
        clf = LogisticRegression(max_iter=3000, C=1.0, class_weight="balanced").fit(x[train], y[train, j])
        scores.append(balanced_accuracy_score(y[~train, j], clf.predict(x[~train])))
    assert np.mean(scores) > 0.75 and min(scores) > 0.6, dict(zip(bp4d.AUS, np.round(scores, 2)))


def _aligned_mouth_brightness(frame: np.ndarray) -> float:
    matrix, _ = cv2.estimateAffinePartial2D(demo.detect_landmarks(frame), TEMPLATE_64.astype(np.float32))
    return float(cv2.warpAffine(frame, matrix, (64, 64))[44:62, 16:48].mean())


def test_clip_expression_grows_and_face_leaving_video():
    """Over a surprise clip the (MTCNN-aligned) mouth darkens as the jaw drops; over a neutral clip it does not."""
    change = {}
    for name in ("surprise", "neutral"):
        drops = []
        for seed in range(4):
            clip = demo.make_expression_clip(demo.EXPRESSIONS.index(name), np.random.default_rng(seed), 16)
            assert clip.shape == (16, 128, 128, 3) and clip.dtype == np.uint8
            drops.append(_aligned_mouth_brightness(clip[0]) - _aligned_mouth_brightness(clip[-1]))
        change[name] = np.mean(drops)
    assert change["surprise"] > change["neutral"] + 8, change

    frames, presence = demo.make_face_leaving_video(np.random.default_rng(4), num_frames=24)
    assert frames.shape == (24, 128, 128, 3)
    assert (presence == 1).sum() >= 6 and (presence == 0).sum() >= 3
    assert presence[0] == 1 and presence[-1] == 1
    for t in np.flatnonzero((presence == 1) | (presence == 0)):
        assert _count_faces(frames[t]) == int(presence[t]), f"frame {t}, presence {presence[t]:.2f}"


def test_same_seed_same_data_and_atomic_replacement(tmp_path, monkeypatch):
    a = demo.generate_demo(tmp_path / "a", seed=5, sizes=TINY)
    demo.generate_demo(tmp_path / "b", seed=5, sizes=TINY)
    demo.generate_demo(tmp_path / "c", seed=6, sizes=TINY)
    files = sorted(p.relative_to(a["rafdb"].parent) for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 30
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    image = Path("rafdb") / rafdb.ORIGINAL_DIR / "train_00001.jpg"
    assert (tmp_path / "a" / image).read_bytes() != (tmp_path / "c" / image).read_bytes()
    first = demo.make_expression_face(2, np.random.default_rng(9), 96)
    assert np.array_equal(first, demo.make_expression_face(2, np.random.default_rng(9), 96))

    # a failing rebuild (other sizes) leaves the previous copy whole and no temporary folders behind
    before = sorted(p.name for p in a["bp4d"].rglob("*"))

    def broken(root, rng, sizes):
        (root / "half_written.txt").write_text("x")
        raise RuntimeError("disk full")

    monkeypatch.setitem(demo._BUILDERS, "bp4d", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        demo.generate_demo(tmp_path / "a", seed=5, sizes={**TINY, "bp4d_frames": 4})
    assert sorted(p.name for p in a["bp4d"].rglob("*")) == before
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_dir()) == ["bp4d", "dfew", "rafdb"]
    monkeypatch.undo()
    out = demo.generate_demo(tmp_path / "a", seed=5, sizes={**TINY, "bp4d_frames": 4})
    assert len(bp4d.load_records(out["bp4d"])) == 3 * 1 * 4


def test_bad_sizes_are_refused_with_the_valid_keys(tmp_path):
    with pytest.raises(ValueError, match="valid keys: rafdb_train"):
        demo.generate_demo(tmp_path, sizes={"rafdb_images": 10})
    with pytest.raises(ValueError, match="at most 8"):
        demo.generate_demo(tmp_path, sizes={"bp4d_subjects": 9})
    with pytest.raises(ValueError, match="positive integer"):
        demo.generate_demo(tmp_path, sizes={"dfew_clips": 0})
    assert not list(tmp_path.iterdir())
