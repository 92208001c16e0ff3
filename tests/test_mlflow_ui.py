"""The MLflow UI shows the runs of a paper table: `mlflow ui` on the store, read with headless Chromium.

A paper table is built the way the workflow builds it (fer.tracking runs logged into the table's experiment by
fold / seed, then fer.papers.write_paper_table nesting them under one parent run per table row); then the real
`mlflow ui` serves that store on 127.0.0.1 and Debian's chromium renders (1) the experiment's runs page, where
the row parents must be listed, and (2) the page a number of the Markdown table links to, which must show the
names of the fold / seed runs it averages and their test metrics. No training: the runs carry given metrics.

Chromium comes from apt-get (installed here when missing, as root); without it the tests skip saying why.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
F1 = {  # fold, seed -> per-AU F1 of the FMAE runs (FMAE-IAT adds 0.05); every run's mean differs
    (1, 0): {"AU1": 0.50, "AU2": 0.30},
    (1, 1): {"AU1": 0.60, "AU2": 0.40},
    (2, 0): {"AU1": 0.70, "AU2": 0.50},
    (2, 1): {"AU1": 0.80, "AU2": 0.60},
}


def _chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (needs root and the Debian mirrors)."""
    found = _chromium_binary()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (apt-get as root is needed)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired:
            pytest.skip(f"`{' '.join(step)}` did not finish in 15 minutes; chromium not installed")
        if done.returncode != 0:
            pytest.skip(f"`{' '.join(step)}` failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    found = _chromium_binary()
    if not found:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A two-row FMAE-IAT DISFA table over real MLflow runs: 2 folds x 2 seeds per row."""
    from fer.papers import write_paper_table
    from fer.report import Cell
    from fer.tracking import Tracker

    root = tmp_path_factory.mktemp("mlflow_ui")
    uri = f"sqlite:///{root}/results/mlflow.db"
    (root / "results").mkdir()
    cells = []
    for row, shift, recipe in (("FMAE", 0.0, "fmae_disfa"), ("FMAE-IAT", 0.05, "fmae_iat_disfa")):
        files = []
        for (fold, seed), f1 in F1.items():
            out = root / "results/papers/fmae_iat_disfa/runs" / row / f"fold{fold}" / f"seed{seed}"
            out.mkdir(parents=True)
            cfg = {"recipe": recipe, "seed": seed, "kind": "au", "tracking": {
                "uri": uri, "experiment": "table_fmae_iat_disfa", "run_name": f"{row} / fold{fold}-seed{seed}",
                "tags": {"dataset": "disfa_demo", "fold": fold, "seed": seed, "recipe": recipe},
                "system_metrics": False}}  # fmt: skip
            values = {k: v + shift for k, v in f1.items()}
            metrics = {"f1": values, "f1_mean": sum(values.values()) / len(values)}
            with Tracker(cfg, out) as tracker:
                for epoch in range(3):
                    tracker.log_metrics({"val/f1_mean": metrics["f1_mean"] * (epoch + 1) / 3}, step=epoch)
                metrics["mlflow_run_id"] = tracker.run_id
                (out / "metrics.json").write_text(json.dumps(metrics))
                tracker.log_results(metrics, out / "metrics.json", None)
            files.append(str(out / "metrics.json"))
        cells.append(Cell(row, None, files, row))
    port = _free_port()
    papers = root / "results/papers"
    written = write_paper_table(
        "fmae_iat_disfa", cells, papers / "t.md", papers / "t.csv", papers / "t.tex", papers / "plots",
        tracking_uri=uri, ui_url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    return {"root": root, "uri": uri, "port": port, "table": written, "md": (papers / "t.md").read_text()}


@pytest.fixture(scope="module")
def server(table):
    """`mlflow ui` on the table's store, 127.0.0.1 and a free port; stopped by its process id at the end."""
    mlflow = Path(sys.executable).with_name("mlflow")
    log_path = table["root"] / "mlflow_ui.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job workers
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(mlflow), "ui", "--backend-store-uri", table["uri"], "--host", "127.0.0.1", "--port",
             str(table["port"]), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=table["root"], env=env, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{table['port']}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow ui exited ({proc.returncode}): {log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow ui did not answer /health within 240 s")
            time.sleep(1)
        yield url
    finally:
        # the server (and any worker it forked) runs in its own session: signal that group by the server's id
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass


def _page_text(chromium: str, url: str, profile: Path, expect: list[str]) -> str:
    """Visible text of `url` after the single-page app rendered, read from Chromium's --dump-dom; retried with a
    longer virtual time budget until every string of `expect` is there (the app fetches runs asynchronously)."""
    text = ""
    for budget in (15000, 30000, 60000):
        shutil.rmtree(profile, ignore_errors=True)
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        body = re.sub(r"<(script|style)\b.*?</\1>", " ", done.stdout, flags=re.S)
        text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))
        if all(s in text for s in expect):
            break
    return text


def test_the_runs_page_lists_a_parent_run_per_table_row(chromium, table, server, tmp_path):
    from mlflow import MlflowClient

    experiment = MlflowClient(table["uri"]).get_experiment_by_name("table_fmae_iat_disfa")
    text = _page_text(chromium, f"{server}/#/experiments/{experiment.experiment_id}/runs", tmp_path / "p1",
                      ["FMAE-IAT"])  # fmt: skip
    assert "table_fmae_iat_disfa" in text
    for row in ("FMAE", "FMAE-IAT"):
        assert re.search(rf"(?<![\w-]){re.escape(row)}(?![\w-])", text), f"row parent {row!r} not on the page"
    assert "fold1-seed0" not in text  # nested: the fold / seed runs sit collapsed under their row


def test_a_table_number_links_to_a_page_with_its_runs_and_metrics(chromium, table, server, tmp_path):
    # the FMAE-IAT Avg cell of the Markdown table: a link to the comparison of its 4 runs
    line = next(ln for ln in table["md"].splitlines() if ln.startswith("| Avg |"))
    links = re.findall(r"\]\((http[^)]+)\)", line)
    assert len(links) == 2 and all(link.startswith(server) for link in links)
    names = [f"FMAE-IAT / fold{f}-seed{s}" for f, s in F1]
    text = _page_text(chromium, links[1], tmp_path / "p2", names)
    for name in names:
        assert name in text, f"{name!r} missing from the page the number links to"
    assert "test/f1_mean" in text
    cell = table["table"]
    runs = cell[(cell["level"] == "run") & (cell["row"] == "FMAE-IAT") & (cell["column"] == "Avg")]
    for value in runs["ours"] / 100:  # each run's test F1 as MLflow shows it
        assert re.search(rf"\b{value:.2f}", text), f"test/f1_mean {value:.4f} not shown"
