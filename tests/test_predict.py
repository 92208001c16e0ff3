"""`fer predict` end to end on generated faces: two tiny models trained here (an image ConvNeXt V2 through
fer.engine.finetune, a MAE-DFER-style video transformer through the engine's training loop), then predictions
on new generated photos and videos: the CSV's columns, accuracy above chance, annotated copies that decode, a
timeline per video, a face that leaves and comes back (no_face frames, two track ids), a face-less image and
corrupt files as rows; the tracker, released-checkpoint loading, an AU model, the CLI and the Snakemake rule.
The tests that train or run models are marked slow (about 90 s in all on one core)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from fer.datasets import demo
from fer.faces import align_face, create_detector
from fer.predict import COLUMNS, IoUTracker, PredictError, box_iou, load_predictor, parse_labels, predict
from fer.predict.run import _clip_indices, _windows

REPO = Path(__file__).resolve().parents[1]
LABELS = (0, 2, 3)  # demo.EXPRESSIONS (RAF-DB order): surprise, disgust, happiness
CLASSES = ["surprise", "disgust", "happiness"]
FPS = 10


def _face(detector, rgb: np.ndarray) -> np.ndarray | None:
    faces = detector.detect(rgb, max_faces=1)
    return align_face(rgb, faces[0].landmarks5, 112)[0] if faces else None


def _jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _mp4(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _tracking(tmp: Path) -> dict:
    return {"uri": f"sqlite:///{tmp / 'mlflow.db'}", "system_metrics": False}


@pytest.fixture(scope="module")
def detector():
    return create_detector("mtcnn")


def _write_images(folder: Path, n: int, rng, detector) -> Path:
    """Aligned 112 px faces as the faces stage writes them, and their "<path> <label>" annotation."""
    lines = []
    for i in range(n):
        aligned = _face(detector, demo.make_expression_face(LABELS[i % 3], rng, size=128))
        if aligned is not None:
            _jpeg(folder / f"{i:03d}.jpg", aligned)
            lines.append(f"{folder / f'{i:03d}.jpg'} {i % 3}")
    folder.with_suffix(".csv").write_text("\n".join(lines) + "\n")
    return folder.with_suffix(".csv")


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory, detector) -> Path:
    """A 3-class ConvNeXt V2 (64 px) finetuned by fer.engine.finetune on aligned demo faces (~20 s)."""
    from fer.engine import finetune, resolve

    root = tmp_path_factory.mktemp("image_model")
    rng = np.random.default_rng(0)
    train = _write_images(root / "train", 90, rng, detector)
    test = _write_images(root / "test", 15, rng, detector)
    cfg = resolve("mae_sfer_vit_tiny_finetune", dict(
        model="convnextv2_atto", input_size=64, augment="apvit", aa=None, reprob=0.0, mixup=0.0, cutmix=0.0,
        smoothing=0.0, drop_path=0.0, epochs=20, warmup_epochs=1, batch_size=16, accum_iter=1, lr=2e-3,
        weight_decay=0.01, layer_decay=1.0, num_workers=0, device="cpu", classes=CLASSES,
        tracking=_tracking(root)))  # fmt: skip
    cfg["model_kwargs"] = dict(img_size=64, depths=[1, 1, 1, 1], dims=[16, 32, 64, 128])
    cfg.update(output_dir=str(root / "run"), data={"train": str(train), "test": str(test)}, resume=False)
    metrics = finetune(cfg)
    assert metrics["acc"] > 0.6, metrics  # the model itself learned (chance 1/3)
    return Path(metrics["checkpoint"])


@pytest.fixture(scope="module")
def video_checkpoint(tmp_path_factory, detector) -> Path:
    """A 3-class video transformer (4 frames x 32 px, stride 2) trained with the engine's loop on aligned demo
    clips. finetune() is not used: its video augmentation always does RandomResizedCrop(scale 0.08-1), which
    a model this small does not learn through in seconds; the eval transform keeps it learnable (~20 s)."""
    from fer.data import VideoClipDataset
    from fer.data.transforms import VideoEvalTransform
    from fer.engine import resolve
    from fer.engine.finetune import build_model, make_step, resolve_labels
    from fer.engine.loop import Trainer, setup

    root = tmp_path_factory.mktemp("video_model")
    rng = np.random.default_rng(1)
    lines = []
    for i in range(48):
        clip = demo.make_expression_clip(LABELS[i % 3], rng, num_frames=8, size=128)
        faces = [_face(detector, frame) for frame in clip]
        if any(f is None for f in faces):
            continue
        for t, face in enumerate(faces):
            _jpeg(root / "clips" / f"{i:03d}" / f"{t + 1:05d}.jpg", face)
        lines.append(f"{root / 'clips' / f'{i:03d}'} {i % 3}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    kwargs = dict(img_size=32, patch_size=8, all_frames=4, tubelet_size=2, embed_dim=64, depth=2, num_heads=2,
                  attn_type="joint")  # fmt: skip
    cfg = resolve("mae_dfer_finetune_dfew", dict(
        input_size=32, num_frames=4, sampling_rate=2, model_kwargs=kwargs, epochs=30, warmup_epochs=1,
        batch_size=8, accum_iter=1, lr=1e-3, weight_decay=0.01, layer_decay=1.0, drop_path=0.0, num_workers=0,
        device="cpu", classes=CLASSES, tracking=_tracking(root)))  # fmt: skip
    cfg.update(output_dir=str(root / "run"), data={"train": str(root / "train.csv")}, resume=False)
    cfg = resolve_labels(cfg)
    train_set = VideoClipDataset(root / "train.csv", 3, num_frames=4, sampling_rate=2, input_size=32,
                                 transform=VideoEvalTransform(32), train=True)  # fmt: skip
    ctx = setup(cfg)
    with ctx.tracker:
        return Trainer(ctx, build_model(cfg), train_set, make_step(cfg, ctx.device)).fit()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, dict]:
    """photos/<class>_<n>.jpg, a face-less and a corrupt image; videos/<class>_<n>.mp4, a face leaving and
    coming back, a corrupt mp4. Returns the folder and the leaving video's face presence per frame."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(7)
    for i in range(12):
        face = demo.make_expression_face(LABELS[i % 3], rng, 128)
        _jpeg(root / "photos" / f"{CLASSES[i % 3]}_{i}.jpg", face)
    wall = np.clip(rng.normal(120, 30, (120, 160, 3)), 0, 255).astype(np.uint8)
    _jpeg(root / "photos" / "wall.png", cv2.GaussianBlur(wall, (0, 0), 3))
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    for i in range(6):
        clip = demo.make_expression_clip(LABELS[i % 3], rng, 16, 128)
        _mp4(root / "videos" / f"{CLASSES[i % 3]}_{i}.mp4", clip)
    frames, presence = demo.make_face_leaving_video(rng, num_frames=40, size=128)
    _mp4(root / "videos" / "leaving.mp4", frames)
    (root / "videos" / "broken.mp4").write_bytes(os.urandom(2000))
    return root, {"presence": presence}


@pytest.fixture(scope="module")
def image_run(image_checkpoint, inputs, tmp_path_factory):
    return predict([inputs[0]], image_checkpoint, tmp_path_factory.mktemp("out_image"), device="cpu",
                   batch_size=16, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def video_run(video_checkpoint, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("out_video")
    return predict([inputs[0] / "videos"], video_checkpoint, out, device="cpu", batch_size=16, progress=False)


def _read(run) -> list[dict]:
    with open(run.csv, newline="") as f:
        return list(csv.DictReader(f))


def _by_file(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(Path(r["file"]).name, []).append(r)
    return out


def _probs(rows: list[dict]) -> np.ndarray:
    return np.array([[float(r[f"prob_{c}"]) for c in CLASSES] for r in rows])


def _video_accuracy(files: dict[str, list[dict]]) -> float:
    """Per video: mean probabilities over the face rows of its second half (the expression grows first)."""
    hits = []
    for name, rows in files.items():
        if name.split("_")[0] in CLASSES and name.endswith(".mp4"):
            faces = [r for r in rows if r["face_id"] != "" and int(r["frame"]) >= 8]
            hits.append(CLASSES[int(_probs(faces).mean(0).argmax())] == name.split("_")[0])
    assert len(hits) == 6
    return float(np.mean(hits))


# ------------------------------------------------------------------------------------------- image model


@pytest.mark.slow
def test_image_model_csv_columns_and_accuracy(image_run):
    with open(image_run.csv, newline="") as f:
        header = next(csv.reader(f))
    assert header == [*COLUMNS, *(f"prob_{c}" for c in CLASSES), "error"]
    rows = _read(image_run)
    files = _by_file(rows)
    photos = {n: r for n, r in files.items() if n.endswith(".jpg") and n.split("_")[0] in CLASSES}
    assert len(photos) == 12 and all(len(r) == 1 and r[0]["status"] == "ok" for r in photos.values())
    accuracy = np.mean([r[0]["prediction"] == n.split("_")[0] for n, r in photos.items()])
    assert accuracy >= 7 / 12, accuracy  # chance 1/3
    assert _video_accuracy(files) >= 4 / 6
    faces = [r for r in rows if r["status"] in ("ok", "reused")]
    np.testing.assert_allclose(_probs(faces).sum(1), 1.0, atol=2e-3)
    for r in faces:  # the prediction is the most probable class, its probability the confidence
        assert r["prediction"] == CLASSES[int(_probs([r]).argmax())]
        assert float(r["confidence"]) == pytest.approx(_probs([r]).max(), abs=1e-4)
        assert float(r["x0"]) < float(r["x1"]) and float(r["y0"]) < float(r["y1"])
    video = files["disgust_1.mp4"]
    assert [int(r["frame"]) for r in video] == list(range(16))
    assert [float(r["time"]) for r in video] == pytest.approx([i / FPS for i in range(16)], abs=1e-3)
    assert "disgust_1.mp4" in image_run.summary and "broken.jpg" in image_run.summary


@pytest.mark.slow
def test_faceless_and_corrupt_files_give_rows(image_run):
    files = _by_file(_read(image_run))
    (wall,) = files["wall.png"]
    assert wall["status"] == "no_face" and wall["face_id"] == "" and wall["prob_disgust"] == ""
    (broken,) = files["broken.jpg"]
    assert broken["status"] == "unreadable"
    assert "broken.jpg" in broken["error"] and "decode" in broken["error"]
    (broken_video,) = files["broken.mp4"]
    assert broken_video["status"] == "unreadable" and "broken.mp4" in broken_video["error"]


@pytest.mark.slow
def test_annotated_copies_decode(image_run, inputs):
    import decord

    from fer.predict.render import face_colour

    root = inputs[0]
    out = image_run.csv.parent
    files = _by_file(_read(image_run))
    for src in sorted((root / "photos").glob("*")):
        if src.name == "broken.jpg":
            continue
        copy = cv2.imread(str(out / "annotated" / root.name / "photos" / src.name))
        original = cv2.imread(str(src))
        assert copy is not None and copy.shape == original.shape, src.name
        (row,) = files[src.name]
        if row["status"] == "no_face":  # a lossless PNG: only the "no face" note differs
            assert 20 < (copy != original).any(axis=2).sum() < copy.size // 30, src.name
            continue
        x0, x1, y1 = (round(float(row[k])) for k in ("x0", "x1", "y1"))
        edge = copy[min(y1, copy.shape[0] - 1), x0 + 2 : x1 - 2].astype(int)  # the box's bottom edge
        assert np.abs(edge - face_colour(0)).mean() < 25, src.name  # drawn in face #0's colour
    for src in sorted((root / "videos").glob("*.mp4")):
        if src.name == "broken.mp4":
            continue
        video = decord.VideoReader(str(out / "annotated" / root.name / "videos" / src.name))
        assert len(video) == len(decord.VideoReader(str(src))), src.name
        assert video[0].shape == (128, 128, 3)
        timeline = cv2.imread(str(out / "timelines" / root.name / "videos" / f"{src.name}.png"))
        assert timeline is not None and timeline.shape[0] > 100, src.name
    assert len(image_run.timelines) == 7  # 6 clips + the leaving video; not the broken one
    assert len(image_run.annotated) == 13 + 7


@pytest.mark.slow
def test_face_leaving_and_coming_back_splits_the_track(image_run, inputs):
    presence = inputs[1]["presence"]
    rows = _by_file(_read(image_run))["leaving.mp4"]
    assert sorted({int(r["frame"]) for r in rows}) == list(range(len(presence)))
    status = {int(r["frame"]): r["status"] for r in rows}
    ids = {int(r["frame"]): int(r["face_id"]) for r in rows if r["face_id"] != ""}
    gone = np.flatnonzero(presence == 0)
    assert len(gone) >= 5 and all(status[i] == "no_face" for i in gone)
    assert all(i in ids for i in np.flatnonzero(presence == 1))  # the whole face is seen, with an id
    assert set(ids.values()) == {0, 1}
    first, second = [f for f, k in ids.items() if k == 0], [f for f, k in ids.items() if k == 1]
    assert max(first) < gone.min() and min(second) > gone.max()


# ------------------------------------------------------------------------------------------- video model


@pytest.mark.slow
def test_video_model_predicts_clips_above_chance(video_run, video_checkpoint):
    rows = _read(video_run)
    files = _by_file(rows)
    assert _video_accuracy(files) >= 4 / 6
    faces = [r for r in rows if r["status"] in ("ok", "reused")]
    np.testing.assert_allclose(_probs(faces).sum(1), 1.0, atol=2e-3)
    # every frame of a face track has a prediction: the sliding windows cover the whole track
    assert all(r["prediction"] in CLASSES for r in faces)
    assert {r["face_id"] for r in files["leaving.mp4"] if r["face_id"]} == {"0", "1"}
    assert len(video_run.timelines) == 7 and all(p.is_file() for p in video_run.timelines)
    predictor = load_predictor(video_checkpoint, device="cpu")
    assert (predictor.num_frames, predictor.sampling_rate, predictor.input_size) == (4, 2, 32)


def test_clip_frames_follow_mae_dfer_test_sampling():
    from fer.data.video import eval_clip_indices

    for length, frames, rate in [(10, 4, 4), (64, 16, 4), (5, 16, 1), (100, 16, 4)]:
        ours = _clip_indices(0, length - 1, frames, rate)
        if length >= frames * rate:  # a full window: a plain stride
            assert ours == list(range(0, frames * rate, rate))
        else:  # the whole short track, last frame repeated: MAE-DFER's single test clip
            assert ours == eval_clip_indices(length, frames, rate, 1)[0].tolist()
    assert _clip_indices(7, 12, 4, 2) == [7, 9, 11, 11]


def test_sliding_windows_cover_every_frame():
    for first, last, span, hop in [(0, 39, 8, 4), (5, 6, 8, 4), (3, 30, 8, 3), (0, 7, 8, 4), (10, 10, 16, 8)]:
        starts = _windows(first, last, span, hop)
        covered = {f for s in starts for f in range(s, min(s + span, last + 1))}
        assert covered == set(range(first, last + 1))
        assert starts[0] == first and max(starts) == max(first, last - span + 1)


# ------------------------------------------------------------------------------------------- tracking


def _det(x: float, y: float = 10.0, w: float = 20.0):
    from fer.faces import Face

    return Face(np.array([x, y, x + w, y + w], np.float32), np.zeros((5, 2), np.float32), 0.99)


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_tracker_bridges_short_gaps_and_splits_long_ones():
    tracker = IoUTracker(iou_threshold=0.3, max_gap=2)
    seen = {}
    for frame in range(20):
        faces = [] if frame in (5, 6) or 10 <= frame <= 12 else [_det(frame * 1.0), _det(100 - frame * 1.0)]
        for face, tid in zip(faces, tracker.update(frame, faces)):
            seen.setdefault(tid, []).append((frame, float(face.box[0])))
    # two faces, each kept across the 2-frame gap (5, 6), each split by the 3-frame gap (10..12)
    assert len(tracker.tracks) == 4
    assert [sorted({f for f, _ in seen[t]}) for t in (0, 1)] == [[0, 1, 2, 3, 4, 7, 8, 9]] * 2
    assert all(x < 50 for _, x in seen[0]) and all(x > 50 for _, x in seen[1])  # ids follow the boxes
    face, reused = tracker.tracks[0].face_at(6)
    assert reused and face is tracker.tracks[0].detections[4]
    assert [t.track_id for t in tracker.tracks_at(11)] == []
    assert [t.track_id for t in tracker.tracks_at(13)] == [2, 3]
    with pytest.raises(ValueError, match="increasing"):
        tracker.update(3, [])


# ------------------------------------------------------------------------------------------- checkpoints


def test_class_names_from_datasets():
    from fer.datasets import dfew, rafdb

    assert parse_labels("rafdb") == (list(rafdb.CLASSES), "expression")
    assert parse_labels("DFEW") == (list(dfew.CLASSES), "expression")
    assert parse_labels("bp4d")[1] == "au" and parse_labels("bp4d")[0][:3] == ["AU1", "AU2", "AU4"]
    assert len(parse_labels("affectnet7")[0]) == 7
    assert parse_labels("a, b") == (["a", "b"], "expression")
    with pytest.raises(PredictError, match="distinct"):
        parse_labels("a,a")


@pytest.mark.slow
def test_released_checkpoint_needs_model_and_classes(image_checkpoint, tmp_path):
    from fer.io import load_checkpoint

    ours = load_predictor(image_checkpoint, device="cpu")
    state = load_checkpoint(image_checkpoint)["model"]
    released = tmp_path / "released.pth"  # a seed's layout: no config, DDP-prefixed keys under state_dict
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, released)
    kwargs = dict(img_size=64, depths=[1, 1, 1, 1], dims=[16, 32, 64, 128])
    with pytest.raises(PredictError, match="--classes"):
        load_predictor(released, model="convnextv2_atto", model_kwargs=kwargs)
    with pytest.raises(PredictError, match="--model"):
        load_predictor(released, classes=",".join(CLASSES))
    with pytest.raises(Exception, match="head|outputs|shape"):
        load_predictor(released, model="convnextv2_atto", model_kwargs=kwargs, classes="rafdb")
    theirs = load_predictor(released, model="convnextv2_atto", model_kwargs=kwargs, classes=CLASSES)
    assert theirs.labels == CLASSES and theirs.input_size == 64 and not theirs.is_video
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(theirs.model(x), ours.model(x))
    with pytest.raises(PredictError, match="2 names"):
        load_predictor(image_checkpoint, classes="a,b")
    with pytest.raises(PredictError, match="leave out"):
        load_predictor(image_checkpoint, model="vit_tiny_patch16")


def test_au_model_with_identity_head(inputs, tmp_path):
    """An FMAE-IAT-style AU checkpoint (ours, untrained: its ID head returns (AU logits, id logits)): sigmoid
    probabilities per AU, the AUs at p >= 0.5 as the prediction."""
    from fer.engine import resolve
    from fer.engine.finetune import build_model
    from fer.io import save_checkpoint

    tiny = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    cfg = resolve("fmae_iat_bp4d", dict(model="vit_tiny_patch16", input_size=32, model_kwargs=tiny))
    cfg.update(aus=["AU1", "AU2", "AU4"], num_subjects=5)
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.normal_(model.head.weight, std=0.5)  # spread the AU probabilities around 0.5
    save_checkpoint({"model": model.state_dict(), "config": cfg}, tmp_path / "au.pth")
    run = predict([inputs[0] / "photos" / "surprise_0.jpg"], tmp_path / "au.pth", tmp_path, device="cpu",
                  progress=False, annotate=False)  # fmt: skip
    (row,) = _read(run)
    probs = {au: float(row[f"prob_{au}"]) for au in ("AU1", "AU2", "AU4")}
    assert all(0 < p < 1 for p in probs.values()) and row["status"] == "ok"
    assert row["prediction"] == ("+".join(a for a, p in probs.items() if p >= 0.5) or "none")
    assert float(row["confidence"]) == pytest.approx(max(probs.values()), abs=1e-4)


# ------------------------------------------------------------------------------------------- CLI, workflow


@pytest.mark.slow
def test_cli_prints_the_summary(image_checkpoint, inputs, tmp_path, capsys):
    from fer.cli import main

    photo = inputs[0] / "photos" / "surprise_0.jpg"
    assert main(["predict", str(photo), "--checkpoint", str(image_checkpoint), "--out", str(tmp_path),
                 "--device", "cpu", "--no-annotate"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "surprise_0.jpg" in out and "1 rows" in out
    assert not (tmp_path / "annotated").exists() and (tmp_path / "predictions.csv").is_file()
    with pytest.raises(SystemExit, match="--model"):
        main(["predict", str(photo), "--checkpoint", str(image_checkpoint), "--model", "vit_tiny_patch16"])


def test_workflow_config_helpers():
    from fer.config import WorkflowConfig
    from fer.predict.workflow import predict_checkpoint, predict_section

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    w = WorkflowConfig(config)
    with pytest.raises(ValueError, match="needs a `predict` section"):
        predict_section(config)
    config["predict"] = {"inputs": ["clips/"], "experiment": "rafdb_vit_tiny_demo", "seed": 0}
    assert (
        predict_checkpoint(config, "results", w)
        == "results/finetune/rafdb_vit_tiny_demo/fold1/seed0/metrics.json"
    )
    config["predict"] = {"inputs": ["clips/"], "experiment": "nope"}
    with pytest.raises(Exception, match="nope"):
        predict_checkpoint(config, "results", w)
    config["predict"] = {"inputs": ["clips/"]}
    with pytest.raises(ValueError, match="`checkpoint`"):
        predict_checkpoint(config, "results", w)


@pytest.mark.slow
def test_snakemake_predict_target(image_checkpoint, inputs, tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["predict"] = {"inputs": [str(inputs[0] / "photos")], "checkpoint": str(image_checkpoint)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\n'
        f'include: "{REPO / "rules" / "common.smk"}"\n'
        f'include: "{REPO / "rules" / "predict.smk"}"\n'
    )
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(tmp_path / "Snakefile"), "--directory",
           str(tmp_path), "--cores", "1", "predict"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results" / "predict" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len({r["file"] for r in rows}) == 14
    assert {r["status"] for r in rows} == {"ok", "no_face", "unreadable"}
    assert (tmp_path / "results" / "predict" / "annotated" / "photos" / "wall.png").is_file()
    # with an experiment instead of a file, its finetuning (and what that needs) comes first in the DAG
    config["predict"] = {
        "inputs": [str(inputs[0] / "photos")],
        "experiment": "rafdb_vit_tiny_demo",
        "out": "p2",
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    rules = ("common", "data", "faces", "annotations", "pretrain", "finetune", "predict")
    (tmp_path / "Snakefile").write_text('configfile: "config.yaml"\n' + "".join(
        f'include: "{REPO / "rules" / f"{name}.smk"}"\n' for name in rules))  # fmt: skip
    result = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "finetune" in result.stdout and "fold1/seed0/metrics.json" in result.stdout
