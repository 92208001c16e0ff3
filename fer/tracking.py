"""MLflow tracking: the one place that knows experiment and run names, nesting, and what is logged.

Layout of a store: one MLflow experiment per table / experiment (cfg.tracking.experiment), one parent run in it
(tag `fer.parent`), and a nested run per fold and seed (cfg.tracking.run_name) tagged with dataset, fold, seed,
recipe and git commit. A run logs the resolved config as params (flattened, dotted keys), per-step metrics
(`train/*`, step = optimizer step), per-epoch metrics (`epoch/*`, `val/*`, step = epoch), and at the end
metrics.json and a confusion-matrix or per-AU F1 plot as artifacts and the final checkpoint path as a tag.
The run id goes to <output_dir>/mlflow_run.json, so a resumed job reopens the same run.

Only rank 0 creates a `Tracker` with enabled=True; on other ranks every method does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fer import plots
from fer.io import write_json

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///mlflow.db"
RUN_FILE = "mlflow_run.json"
PARENT_TAG = "fer.parent"
_MAX_PARAM_LEN = 6000  # MLflow 3's limit on a param value
_BATCH = 100  # MLflow's limit on params per log_batch call


def tracking_uri(cfg: dict) -> str:
    """cfg.tracking.uri, default sqlite:///mlflow.db in the working directory; relative sqlite paths made absolute."""
    uri = (cfg.get("tracking") or {}).get("uri") or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def store_dir(uri: str) -> Path | None:
    """The folder that holds a local store (sqlite file or file store), None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent
    if uri.startswith("file:"):
        return Path(urlparse(uri).path)
    if "://" not in uri:
        return Path(uri)
    return None


def lock_path(uri: str) -> Path:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :] + ".lock")
    store = store_dir(uri)
    if store is not None:
        return store / ".fer-tracking.lock"
    return Path(tempfile.gettempdir()) / f"fer-tracking-{hashlib.sha1(uri.encode()).hexdigest()[:12]}.lock"


def flatten(cfg: dict, prefix: str = "") -> dict[str, str]:
    """{"model_kwargs": {"img_size": 64}} -> {"model_kwargs.img_size": "64"}; lists and None as JSON text."""
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:_MAX_PARAM_LEN]
    return out


def git_commit() -> str:
    """The commit of the checkout holding this package ("+dirty" when it has changes), or "unknown"."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "experiment"


class Tracker:
    """One nested MLflow run of one training job; a no-op object when `enabled` is False (ranks > 0)."""

    def __init__(self, cfg: dict, output_dir: str | os.PathLike, enabled: bool = True):
        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self.enabled = enabled
        track = cfg.get("tracking") or {}
        self.uri = tracking_uri(cfg)
        self.experiment = str(track.get("experiment") or cfg.get("recipe") or "fer")
        self.run_name = str(track.get("run_name") or f"seed{cfg.get('seed', 0)}")
        self.extra_tags = {k: str(v) for k, v in (track.get("tags") or {}).items()}
        self.system_metrics = bool(track.get("system_metrics", True))
        self.client = None
        self.run_id: str | None = None
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self._monitor = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> Tracker:
        if not self.enabled:
            return self
        from filelock import FileLock
        from mlflow import MlflowClient

        lock = lock_path(self.uri)
        lock.parent.mkdir(parents=True, exist_ok=True)
        # One lock around store creation, experiment and parent lookup: two fold jobs starting together must
        # not create the schema twice nor two parents.
        with FileLock(str(lock), timeout=600):
            self.client = MlflowClient(tracking_uri=self.uri)
            self.experiment_id = self._experiment_id()
            self.parent_run_id = self._parent_run_id()
            reopened = self._reopen()
            if not reopened:
                self.run_id = self._create_run()
        self.log_params(self.cfg)
        write_json(self.output_dir / RUN_FILE, {
            "run_id": self.run_id, "parent_run_id": self.parent_run_id, "experiment_id": self.experiment_id,
            "experiment": self.experiment, "run_name": self.run_name, "tracking_uri": self.uri,
        })  # fmt: skip
        self._start_system_metrics(resume=reopened)
        log.info("MLflow run %s (%s / %s) in %s", self.run_id, self.experiment, self.run_name, self.uri)
        return self

    def finish(self, status: str = "FINISHED") -> None:
        if not self.enabled or self.client is None:
            return
        if self._monitor is not None:
            try:
                self._monitor.finish()
            except Exception as err:  # never lose a finished run to the monitor thread
                log.warning("system metrics monitor did not stop cleanly: %s", err)
            self._monitor = None
        self.client.set_terminated(self.run_id, status=status)

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("FINISHED")
        elif issubclass(exc_type, (SystemExit, KeyboardInterrupt)):
            self.finish("KILLED")  # preempted: the resumed job reopens this run
        else:
            self.finish("FAILED")

    # -- logging -----------------------------------------------------------------------------------------------
    def log_params(self, cfg: dict) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        params = flatten(cfg)
        logged = self.client.get_run(self.run_id).data.params
        changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
        if changed:
            log.warning(
                "run %s: params %s differ from the first attempt; MLflow keeps the first values",
                self.run_id,
                changed,
            )
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        for i in range(0, len(new), _BATCH):
            self.client.log_batch(self.run_id, params=new[i : i + _BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if not self.enabled or not metrics:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if not self.enabled:
            return
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_results(self, metrics: dict, metrics_file: str | os.PathLike, checkpoint: str | None) -> None:
        """Final test metrics (as `test/*` metrics), metrics.json, a plot, and the checkpoint path."""
        if not self.enabled:
            return
        scalars = {
            f"test/{k}": v
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        scalars.update({f"test/f1_{k}": v for k, v in (metrics.get("f1") or {}).items()})
        self.log_metrics(scalars, step=0)
        self.log_artifact(metrics_file)
        plot = self.output_dir / "plots"
        if "confusion" in metrics:
            path = plots.confusion_matrix(
                metrics["confusion"], metrics.get("classes"), plot / "confusion.png"
            )
            self.log_artifact(path, "plots")
        if "f1" in metrics:
            f1 = {au: (100 * float(v), 0.0) for au, v in metrics["f1"].items()}
            self.log_artifact(plots.au_f1_bars(f1, {}, plot / "au_f1.png"), "plots")
        if checkpoint:
            self.set_tags({"checkpoint": checkpoint})

    # -- helpers -----------------------------------------------------------------------------------------------
    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        store = store_dir(self.uri)
        location = (store / "mlartifacts" / _slug(self.experiment)).resolve().as_uri() if store else None
        return self.client.create_experiment(self.experiment, artifact_location=location)

    def _parent_run_id(self) -> str:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = 'true'", max_results=1,
            order_by=["attributes.start_time ASC"],
        )  # fmt: skip
        if runs:
            return runs[0].info.run_id
        run = self.client.create_run(self.experiment_id, run_name=self.experiment, tags={PARENT_TAG: "true"})
        self.client.set_terminated(run.info.run_id, status="FINISHED")  # a container; children carry the work
        return run.info.run_id

    def _reopen(self) -> bool:
        """Continue the run of an earlier attempt in this output dir (same store), if there is one."""
        path = self.output_dir / RUN_FILE
        if not path.is_file() or not self.cfg.get("resume", True):  # a fresh start gets a fresh run
            return False
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        if saved.get("tracking_uri") != self.uri or saved.get("experiment_id") != self.experiment_id:
            return False
        try:
            self.client.get_run(saved["run_id"])
        except Exception:  # deleted store or run: start a new one
            return False
        self.run_id = saved["run_id"]
        self.client.update_run(self.run_id, status="RUNNING")
        return True

    def _create_run(self) -> str:
        commit = git_commit()
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            "recipe": str(self.cfg.get("recipe")),
            "seed": str(self.cfg.get("seed", 0)),
            "git_commit": commit,
            "mlflow.source.git.commit": commit,
            "kind": str(self.cfg.get("kind")),
        }
        if self.cfg.get("dataset"):
            tags["dataset"] = str(self.cfg["dataset"])
        tags.update(self.extra_tags)
        return self.client.create_run(self.experiment_id, run_name=self.run_name, tags=tags).info.run_id

    def _start_system_metrics(self, resume: bool) -> None:
        if not self.system_metrics:
            return
        try:
            import psutil  # noqa: F401  (the CPU / memory monitor needs it)
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
        except ImportError as err:
            log.info("MLflow system metrics not logged (%s); install psutil to get them", err)
            return
        self._monitor = SystemMetricsMonitor(self.run_id, resume_logging=resume, tracking_uri=self.uri)
        self._monitor.start()
