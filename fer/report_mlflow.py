"""MLflow view of a paper table: one experiment per table, a parent run per table row, the runs nested under it.

The finetune jobs of a table log into the experiment ``table_<name>`` (fer.config sets their tracking section);
fer.tracking nests each job under a container parent while it trains. When the table is written, its rows become
the parents: a run named after the row (tags ``fer.parent``, ``fer.row``, ``table``, ``git_commit``) adopts the
fold / seed runs of that row through MLflow's ``mlflow.parentRunId`` tag, logs the row's table numbers as metrics
and its plots as artifacts, and the emptied container is deleted. Rerunning the table finds the same parents.
The links of the Markdown table point at a running ``mlflow ui`` (run page, or the comparison of several runs).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote

log = logging.getLogger(__name__)

ROW_TAG = "fer.row"
PARENT_TAG = "fer.parent"  # the tag fer.tracking gives its parents
NOTE_TAG = "mlflow.note.content"  # the experiment description the MLflow UI shows (Markdown)
DEFAULT_UI = "http://127.0.0.1:5000"


def experiment_name(table: str) -> str:
    """The MLflow experiment of a paper table (also the name of its Snakemake target)."""
    return f"table_{table}"


def metric_key(*parts: str) -> str:
    """A metric name MLflow accepts (letters, digits, _ - . / space and colon) from free text."""
    return "/".join(re.sub(r"[^A-Za-z0-9_\-. :]+", "_", p).strip("_ ") for p in parts)


def run_links(ui_url: str, experiment_id: str):
    """link(run_ids) -> URL of the run's page in the MLflow UI, or of the comparison of several runs."""
    base = ui_url.rstrip("/")

    def link(run_ids: Iterable[str]) -> str | None:
        ids = [r for r in run_ids if r]
        if not ids:
            return None
        if len(ids) == 1:
            return f"{base}/#/experiments/{experiment_id}/runs/{ids[0]}"
        runs, experiments = quote(json.dumps(ids), safe=""), quote(json.dumps([experiment_id]), safe="")
        return f"{base}/#/compare-runs?runs={runs}&experiments={experiments}"

    return link


class TableRuns:
    """The MLflow experiment of one table in the store at `uri`."""

    def __init__(self, uri: str, table: str):
        from mlflow import MlflowClient

        self.uri, self.table = uri, table
        self.name = experiment_name(table)
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(self.name)
        self.experiment_id = found.experiment_id if found else self._create()

    def _create(self) -> str:
        from fer.tracking import store_dir

        store = store_dir(self.uri)  # artifacts beside the store, as fer.tracking places them
        location = (store / "mlartifacts" / self.name).resolve().as_uri() if store else None
        return self.client.create_experiment(self.name, artifact_location=location)

    # -- structure -----------------------------------------------------------------------------------------
    def adopt(
        self, rows: Mapping[str, Iterable[str]], tags: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Nest the runs of each row under the row's parent run; returns {row: parent run id}.

        A run id that is not in the store is an error naming the store (it was replaced or deleted: rerun the
        jobs); a run of another experiment is left where it is and only linked.
        """
        from filelock import FileLock

        from fer.tracking import git_commit, lock_path

        commit = git_commit()
        parents = {}
        with FileLock(
            str(lock_path(self.uri)), timeout=600
        ):  # fer.tracking's lock: jobs may be creating runs
            for row, run_ids in rows.items():
                runs = [self._get(run_id) for run_id in run_ids]
                # the row's parent carries what its runs share: datasets and recipes (joined when several)
                shared = {k: ",".join(sorted({r.data.tags[k] for r in runs if r.data.tags.get(k)}))
                          for k in ("dataset", "recipe")}  # fmt: skip
                parent = self._parent(row, {**shared, **(tags or {}), "git_commit": commit})
                parents[row] = parent
                for run in runs:
                    if run.info.experiment_id != self.experiment_id:
                        log.warning("run %s is in experiment %s, not %s; linked, not nested", run.info.run_id,
                                    run.info.experiment_id, self.name)  # fmt: skip
                        continue
                    if run.data.tags.get("mlflow.parentRunId") != parent:
                        self.client.set_tag(run.info.run_id, "mlflow.parentRunId", parent)
            self._drop_empty_containers()
        return parents

    def _get(self, run_id: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            raise ValueError(
                f"MLflow run {run_id} (named in a metrics.json) is not in the store {self.uri}; the store was "
                f"replaced or the run deleted: delete the table's finetune outputs and rerun them"
            ) from None

    def _parent(self, row: str, tags: Mapping[str, str]) -> str:
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROW_TAG}` = '{row.replace(chr(39), '')}'",
            order_by=["attributes.start_time ASC"],
        )
        found = [r for r in found if r.data.tags.get(ROW_TAG) == row]
        if found:
            run_id = found[0].info.run_id
        else:
            run_id = self.client.create_run(
                self.experiment_id, run_name=row, tags={PARENT_TAG: "true"}
            ).info.run_id
            self.client.set_terminated(run_id, "FINISHED")  # a container; its children did the work
        for key, value in {ROW_TAG: row, "table": self.table, **tags}.items():
            self.client.set_tag(run_id, key, str(value))
        return run_id

    def _drop_empty_containers(self) -> None:
        """Delete the parents fer.tracking made while the jobs trained, once no run is nested under them."""
        runs = self.client.search_runs([self.experiment_id], max_results=5000)
        children = {r.data.tags.get("mlflow.parentRunId") for r in runs}
        for r in runs:
            tags = r.data.tags
            if tags.get(PARENT_TAG) == "true" and ROW_TAG not in tags and r.info.run_id not in children:
                self.client.delete_run(r.info.run_id)

    # -- content -------------------------------------------------------------------------------------------
    def log_row(self, parent: str, metrics: Mapping[str, float], artifacts: Iterable[str | os.PathLike] = (),
                artifact_path: str | None = None) -> None:  # fmt: skip
        """The row's table numbers as metrics of its parent run (so the UI compares rows), and files."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [Metric(k, float(v), stamp, 0) for k, v in metrics.items() if v == v]  # NaN: no number
        for i in range(0, len(batch), 500):
            self.client.log_batch(parent, metrics=batch[i : i + 500])
        for path in artifacts:
            self.client.log_artifact(parent, str(path), artifact_path)

    def describe(self, markdown: str) -> None:
        """Show the table on the experiment's page of the MLflow UI."""
        self.client.set_experiment_tag(self.experiment_id, NOTE_TAG, markdown)

    def history(self, run_id: str, keys: Iterable[str]) -> dict[str, list[tuple[int, float]]]:
        """{metric: [(step, value)]} of a run, for the keys it logged."""
        logged = set(self._get(run_id).data.metrics)
        return {
            key: [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]
            for key in keys
            if key in logged
        }
