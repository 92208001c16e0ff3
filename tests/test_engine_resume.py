"""A run killed by SIGTERM mid-epoch and resumed ends with exactly the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from engine_synthetic import TINY_VIT, write_expression

from fer.engine import finetune, resolve
from fer.engine.checkpoint import FINAL, LAST
from fer.io import load_checkpoint

RUN = "import json, sys, torch; torch.set_num_threads(1); from fer.engine import finetune; finetune(json.load(open(sys.argv[1])))"


def _cfg(root, out):
    # Every random stream in play: per-sample crops and erasing, mixup / cutmix (numpy), drop path (torch),
    # gradient accumulation, EMA and the optimizer state all have to come back exactly.
    return resolve("mae_sfer_vit_tiny_finetune", {
        "model_kwargs": TINY_VIT, "input_size": 32, "batch_size": 4, "accum_iter": 2, "epochs": 2,
        "warmup_epochs": 1, "blr": 4e-3, "num_workers": 0, "aa": None, "reprob": 0.5, "mixup": 0.8, "cutmix": 1.0,
        "drop_path": 0.1, "model_ema": True, "model_ema_decay": 0.9, "log_every": 1, "save_every_steps": 0,
        "data": {"train": str(root / "train.csv"), "val": str(root / "val.csv"), "test": str(root / "val.csv")},
        "classes": ["disc", "square", "bar"], "output_dir": str(root / out), "resume": True,
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db", "experiment": "resume", "run_name": out,
                     "system_metrics": False},
    })  # fmt: skip


def _start(root, out, **overrides):
    path = root / f"{out}.json"
    path.write_text(json.dumps({**_cfg(root, out), **overrides}))
    env = dict(os.environ, OMP_NUM_THREADS="1", FER_NO_PROGRESS="1")
    return subprocess.Popen([sys.executable, "-c", RUN, str(path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip


def _wait_for_step(proc, progress, step, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run ended before step {step}:\n{proc.stdout.read()}")
        try:
            if json.loads(progress.read_text())["step"] >= step:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"no step {step} within {timeout}s")


def _finish(proc):
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


@pytest.mark.timeout(120)
def test_sigterm_to_the_process_group_with_loader_workers_still_saves(tmp_path):
    """scancel and preemption signal every process of the job: the loader workers must not die first."""
    write_expression(tmp_path, "train", 24, seed=0)
    write_expression(tmp_path, "val", 3, seed=1)
    run = _start(tmp_path, "workers", num_workers=2)
    _wait_for_step(run, tmp_path / "workers" / "progress.json", 2)
    os.killpg(run.pid, signal.SIGTERM)
    code, log = _finish(run)
    assert code == 128 + signal.SIGTERM, log
    assert "DataLoader worker" not in log
    assert load_checkpoint(tmp_path / "workers" / LAST)["step"] >= 2


@pytest.mark.timeout(300)
def test_sigterm_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    write_expression(tmp_path, "train", 24, seed=0)  # 72 images: 9 optimizer steps of 2 x 4 per epoch
    write_expression(tmp_path, "val", 3, seed=1)

    interrupted = _start(tmp_path, "interrupted")
    _wait_for_step(interrupted, tmp_path / "interrupted" / "progress.json", 3)
    interrupted.send_signal(signal.SIGTERM)
    code, log = _finish(interrupted)
    assert code == 128 + signal.SIGTERM, log  # non-zero: a launcher requeues it
    state = load_checkpoint(tmp_path / "interrupted" / LAST)
    assert 0 < state["step_in_epoch"] < 9 and state["epoch"] == 0, "the stop must land mid-epoch"
    assert not (tmp_path / "interrupted" / FINAL).exists()
    run_id = json.loads((tmp_path / "interrupted" / "mlflow_run.json").read_text())["run_id"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocess: the same summation order
    try:
        finetune(_cfg(tmp_path, "interrupted"))  # resume: true, in the same output dir
        finetune(_cfg(tmp_path, "uninterrupted"))  # the reference
    finally:
        torch.set_num_threads(threads)
    assert json.loads((tmp_path / "interrupted" / "mlflow_run.json").read_text())["run_id"] == run_id

    a = load_checkpoint(tmp_path / "uninterrupted" / FINAL)
    b = load_checkpoint(tmp_path / "interrupted" / FINAL)
    assert a["step"] == b["step"] == 18
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ma, mb = (
        json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("uninterrupted", "interrupted")
    )
    assert {k: v for k, v in ma.items() if k not in ("mlflow_run_id", "checkpoint")} == {
        k: v for k, v in mb.items() if k not in ("mlflow_run_id", "checkpoint")}  # fmt: skip


def test_resume_refuses_a_changed_config(tmp_path):
    write_expression(tmp_path, "train", 4, seed=0)
    write_expression(tmp_path, "val", 1, seed=1)
    cfg = _cfg(tmp_path, "run")
    cfg.update(epochs=1, warmup_epochs=0, mixup=0.0, cutmix=0.0, model_ema=False)
    finetune(cfg)
    with pytest.raises(ValueError, match=r"config changed.*batch_size: 4 -> 2.*Delete"):
        finetune({**cfg, "batch_size": 2})
    again = finetune(cfg)  # finished run: nothing to train, same test metrics
    assert again["acc"] == json.loads((tmp_path / "run" / "metrics.json").read_text())["acc"]
