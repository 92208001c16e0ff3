"""MLflow tracking in a temporary sqlite store: experiments, parent / nested runs, tags, params, metrics, artifacts,
reopening a resumed run, and two jobs starting at once."""

import json
import multiprocessing as mp
import time

import pytest
from mlflow import MlflowClient

from fer.tracking import PARENT_TAG, RUN_FILE, Tracker, flatten, tracking_uri


def _cfg(uri, output_dir, run_name, **extra):
    return {
        "recipe": "mae_dfer_finetune_dfew", "kind": "finetune", "seed": 1, "batch_size": 32,
        "model_kwargs": {"depth": 16, "lg_region_size": [2, 5, 10]}, "pretrained": None, "output_dir": str(output_dir),
        "tracking": {"uri": uri, "experiment": "dfew_lgi_former", "run_name": run_name, "system_metrics": False,
                     "tags": {"dataset": "dfew_demo", "fold": 2, "seed": 1}},
        **extra,
    }  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    return root, f"sqlite:///{root}/mlflow.db"


def test_flatten_and_default_uri(tmp_path, monkeypatch):
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": "x"}) == {"a.b": "1", "a.c": "[1, 2]", "d": "null",
                                                                          "e": "x"}  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert tracking_uri({}) == f"sqlite:///{tmp_path}/mlflow.db"
    assert (
        tracking_uri({"tracking": {"uri": "sqlite:///results/m.db"}}) == f"sqlite:///{tmp_path}/results/m.db"
    )


def test_nested_run_with_tags_params_metrics_and_artifacts(store, tmp_path):
    root, uri = store
    out = tmp_path / "fold2-seed1"
    with Tracker(_cfg(uri, out, "fold2-seed1"), out) as tracker:
        tracker.log_metrics({"train/loss": 1.5, "train/lr": 1e-3}, step=10)
        tracker.log_metrics({"train/loss": 1.2}, step=20)
        metrics = {"acc": 0.5, "uar": 0.4, "war": 0.5, "confusion": [[1, 1], [0, 2]], "classes": ["a", "b"]}
        (out / "metrics.json").write_text(json.dumps(metrics))
        tracker.log_results(metrics, out / "metrics.json", "/ckpt/checkpoint-final.pth")
    client = MlflowClient(uri)
    saved = json.loads((out / RUN_FILE).read_text())
    assert saved["run_id"] == tracker.run_id and saved["tracking_uri"] == uri
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "fold2-seed1"
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == saved["parent_run_id"]
    assert (tags["dataset"], tags["fold"], tags["seed"], tags["recipe"]) == ("dfew_demo", "2", "1",
                                                                             "mae_dfer_finetune_dfew")  # fmt: skip
    assert len(tags["git_commit"].split("+")[0]) == 40 and tags["checkpoint"] == "/ckpt/checkpoint-final.pth"
    assert (
        run.data.params["model_kwargs.lg_region_size"] == "[2, 5, 10]"
        and run.data.params["batch_size"] == "32"
    )
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1.5, 1.2]
    assert run.data.metrics["test/uar"] == 0.4
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert paths == {"metrics.json", "plots"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/confusion.png"]
    parent = client.get_run(saved["parent_run_id"])
    assert parent.data.tags[PARENT_TAG] == "true" and parent.info.run_name == "dfew_lgi_former"
    experiment = client.get_experiment(saved["experiment_id"])
    assert experiment.name == "dfew_lgi_former" and experiment.artifact_location.startswith(f"file://{root}/")


def test_reopening_the_run_of_an_interrupted_job(store, tmp_path):
    _, uri = store
    out = tmp_path / "job"
    cfg = _cfg(uri, out, "fold1-seed0")
    with pytest.raises(SystemExit), Tracker(cfg, out) as first:
        first.log_metrics({"train/loss": 2.0}, step=1)
        raise SystemExit(143)  # preempted
    client = MlflowClient(uri)
    assert client.get_run(first.run_id).info.status == "KILLED"
    with Tracker({**cfg, "num_workers": 8}, out) as second:  # a resumed job; a new key is added as a param
        second.log_metrics({"train/loss": 1.0}, step=2)
    assert second.run_id == first.run_id and second.parent_run_id == first.parent_run_id
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.params["num_workers"] == "8"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]


def test_disabled_tracker_does_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path}/never.db"
    with Tracker(_cfg(uri, tmp_path, "x"), tmp_path, enabled=False) as tracker:
        tracker.log_metrics({"a": 1.0}, step=0)
        tracker.log_results({"acc": 1.0}, tmp_path / "metrics.json", None)
    assert (
        tracker.run_id is None and not (tmp_path / "never.db").exists() and not (tmp_path / RUN_FILE).exists()
    )


def test_system_metrics_are_logged(store, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    _, uri = store
    cfg = _cfg(uri, tmp_path, "sys")
    cfg["tracking"]["system_metrics"] = True
    with Tracker(cfg, tmp_path) as tracker:
        time.sleep(2.0)
    keys = MlflowClient(uri).get_run(tracker.run_id).data.metrics
    assert any(k.startswith("system/cpu") for k in keys), keys


def test_au_f1_plot_is_a_png(tmp_path):
    from fer.plots import au_f1_bars

    path = au_f1_bars({"AU1": (50, 0), "AU2": (75, 0), "AU12": (90, 0)}, {}, tmp_path / "plots" / "au_f1.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _start_job(uri, out, name, go):
    while not go.exists():
        time.sleep(0.01)
    Tracker(_cfg(uri, out, name), out).start().finish()


def test_two_jobs_starting_at_once_share_one_parent(tmp_path):
    uri = f"sqlite:///{tmp_path}/race.db"
    go = tmp_path / "go"
    ctx = mp.get_context("fork")  # mlflow is imported already: the jobs only race on the store
    jobs = [
        ctx.Process(target=_start_job, args=(uri, tmp_path / f"f{k}", f"fold{k}-seed0", go)) for k in (1, 2)
    ]
    for job in jobs:
        job.start()
    time.sleep(1.0)
    go.touch()
    for job in jobs:
        job.join(timeout=180)
        assert job.exitcode == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("dfew_lgi_former")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get(PARENT_TAG) == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.info.run_name for r in children) == ["fold1-seed0", "fold2-seed0"]
