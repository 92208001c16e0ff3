"""The Slurm path on a real single-node cluster (fixture `slurm_cluster`, .ci/slurm.sh): submitit pretraining that
is preempted, requeued and resumed to the same weights as an uninterrupted run; failures that name the job and
show its log; the workflow through `--profile profiles/slurm`.

Every test has a hard timeout (the failure modes of a cluster are silent hangs) and polls with deadlines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401 (the fixture)

from fer.engine import resolve
from fer.io import load_checkpoint
from fer.launch import LaunchError, PretrainJob, launch_pretrain, make_executor, wait_for

REPO = Path(__file__).resolve().parents[1]
# 1 CPU each, so the reference run and the interrupted run share the 2-core CI node
LAUNCHER = {"executor": "slurm", "timeout_min": 20, "cpus_per_task": 1, "mem_gb": 2}
EPOCHS, IMAGES, BATCH = 10, 32, 4  # 80 optimizer steps: long enough to interrupt twice mid-run


def _pretrain_list(folder: Path, n: int = IMAGES) -> Path:
    """n random 32x32 images and their pretraining list ("<path> 0", MAE-DFER's format with a dummy label)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        path = folder / f"face{i:03d}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        lines.append(f"{path} 0")
    listing = folder / "pretrain.csv"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def _pretrain_cfg(listing: Path, output_dir: Path) -> dict:
    """The engine's tiny MAE; log_every 1 so progress.json shows every step, no periodic checkpoints."""
    cfg = resolve("mae_sfer_vit_tiny_pretrain", {
        "input_size": 32,
        "model_kwargs": {"img_size": 32, "depth": 2, "decoder_embed_dim": 32, "decoder_depth": 1,
                         "decoder_num_heads": 2},
        "epochs": EPOCHS, "warmup_epochs": 1, "batch_size": BATCH, "accum_iter": 1,
        "num_workers": 0, "log_every": 1, "save_every_steps": 0,
    })  # fmt: skip
    cfg.update(
        data={"train": [str(listing)]},
        output_dir=str(output_dir),
        device="cpu",
        tracking={"uri": f"sqlite:///{output_dir}/mlflow.db", "experiment": "slurm-test", "run_name": "run"},
    )
    return cfg


def _step(output_dir: Path) -> int:
    """The last optimizer step a running job reported (progress.json), -1 before the first."""
    try:
        return int(json.loads((output_dir / "progress.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return -1


def _release_requeued(cluster: SlurmCluster, job_id: str) -> bool:
    """Once the requeued job waits for its BeginTime (CredExpire + 1 s after the requeue), start it now."""
    if cluster.state(job_id) != "PENDING BeginTime":
        return False
    cluster.run("scontrol", "update", f"jobid={job_id}", "StartTime=now")
    return True


def test_slurm_executor_without_sbatch_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the Slurm clients
    with pytest.raises(LaunchError, match=r"sbatch.*not on PATH.*launcher\.executor: local"):
        make_executor({"executor": "slurm"}, tmp_path / "submitit")


@pytest.mark.slurm
@pytest.mark.timeout(480, func_only=True)  # the fixture times its own steps
def test_preempted_pretraining_is_requeued_and_resumes_to_the_same_weights(slurm_cluster, tmp_path):  # noqa: F811
    listing = _pretrain_list(tmp_path / "faces")
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "interrupted"
    reference = make_executor(LAUNCHER, ref_dir / "submitit").submit(
        PretrainJob(), _pretrain_cfg(listing, ref_dir)
    )
    job = make_executor(LAUNCHER, run_dir / "submitit").submit(PretrainJob(), _pretrain_cfg(listing, run_dir))

    # 1. submitit's preemption (SIGTERM, then its USR2): the engine saves at the next step, submitit requeues
    slurm_cluster.wait(lambda: _step(run_dir) >= 2, 180, f"job {job.job_id} to train 2 steps")
    job._interrupt()
    slurm_cluster.wait(lambda: _release_requeued(slurm_cluster, job.job_id), 60, "the job to be requeued")
    first_stop = _step(run_dir)
    # 2. Slurm kills and requeues the job itself (as PreemptMode=REQUEUE does): SIGTERM, save, rerun resumes
    slurm_cluster.wait(lambda: _step(run_dir) >= first_stop + 2, 180, f"job {job.job_id} to resume training")
    slurm_cluster.run("scontrol", "requeue", job.job_id)
    slurm_cluster.wait(lambda: _release_requeued(slurm_cluster, job.job_id), 60, "the job to be requeued")
    second_stop = _step(run_dir)

    final, final_ref = Path(wait_for(job)), Path(wait_for(reference))
    steps = EPOCHS * IMAGES // BATCH
    assert 2 <= first_stop < second_stop < steps, (first_stop, second_stop)
    # the result arrives while the job is still exiting; then sacct holds one record per run of the job
    slurm_cluster.wait(lambda: slurm_cluster.state(job.job_id) == "", 60, f"job {job.job_id} to end")
    # slurmdbd records the last run's end a moment after squeue forgets the job
    slurm_cluster.wait(
        lambda: slurm_cluster.history(job.job_id)[-1:] != ["RUNNING"],
        60,
        f"sacct to record job {job.job_id}'s end",
    )
    assert slurm_cluster.history(job.job_id) == ["REQUEUED", "REQUEUED", "COMPLETED"]
    log = Path(job.paths.stderr).read_text()  # appended to by every run of the job
    resumed = re.findall(r"resumed from \S+checkpoint-last\.pth: epoch \d+, step (\d+)", log)
    assert resumed == [str(first_stop), str(second_stop)], log[-3000:]

    state, state_ref = load_checkpoint(final), load_checkpoint(final_ref)
    assert state["step"] == state_ref["step"] == steps
    assert state["model"].keys() == state_ref["model"].keys()
    for key, value in state_ref["model"].items():
        assert torch.equal(state["model"][key], value), f"{key} differs from the uninterrupted run"


@pytest.mark.slurm
@pytest.mark.timeout(240, func_only=True)  # the fixture times its own steps
def test_failing_pretraining_job_raises_with_job_id_and_log(slurm_cluster, tmp_path):  # noqa: F811
    listing = _pretrain_list(tmp_path / "faces", n=4)
    listing.write_text(listing.read_text() + "this-line-has-no-label\n")
    output = tmp_path / "pretrained.pth"
    with pytest.raises(LaunchError) as err:
        launch_pretrain(_pretrain_cfg(listing, tmp_path / "run"), LAUNCHER, output)
    message = str(err.value)
    job_id = re.search(r"pretraining job (\d+) failed", message)
    assert job_id, message
    # the error reaches us as soon as the job wrote it; Slurm then records the job's non-zero exit
    slurm_cluster.wait(
        lambda: "FAILED" in slurm_cluster.history(job_id.group(1)), 60, "the job to end FAILED"
    )
    assert f"{listing}:5" in message  # the data loader's error, from the last lines of the job's log
    assert str(tmp_path / "run" / "submitit") in message  # where the whole log is
    assert not output.exists()


# -- the workflow through the Slurm profile -------------------------------------------------------------------
def _snakemake(workdir: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    """Snakemake with the Slurm profile, started in workdir (the plugin puts its sbatch logs there, logs/slurm)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile",
           str(REPO / "profiles" / "slurm"), "--configfile", str(workdir / "config.yaml"),
           "--slurm-init-seconds-before-status-checks", "2", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)


def _mini_rafdb(root: Path, per_class: dict[str, int]) -> None:
    """A RAF-DB folder in its owners' layout with a few of the demo's rendered faces per class and split."""
    from fer.datasets import rafdb
    from fer.datasets.demo import make_expression_face

    rng = np.random.default_rng(0)
    splits = [split for split, n in per_class.items() for _ in range(n * len(rafdb.CLASSES))]
    labels = [i % len(rafdb.CLASSES) for i in range(len(splits))]
    rafdb.write_miniature(root, [make_expression_face(label, rng) for label in labels], labels, splits)


def _workflow_config(workdir: Path, datasets: dict) -> None:
    """config.yaml with only `datasets` and the demo's RAF-DB finetuning, from scratch and short."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    experiment = config["experiments"]["rafdb_vit_tiny_demo"]
    experiment.update(dataset=next(iter(datasets)), pretrain=None)
    experiment["overrides"].update(epochs=2, warmup_epochs=1, num_workers=0)
    config.update(datasets=datasets, pretrain={}, experiments={"rafdb_vit_tiny_demo": experiment})
    config.get("tables", {}).pop("papers", None)  # the paper tables name every demo dataset
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _submitted(out: str) -> dict[str, str]:
    """rule -> Slurm job id, from the plugin's 'submitted with SLURM jobid <id> (log: .../rule_<rule>/...)'."""
    return {
        rule: job for job, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", out)
    }


@pytest.mark.slurm
@pytest.mark.timeout(420, func_only=True)  # the fixture times its own steps
def test_workflow_runs_through_the_slurm_profile(slurm_cluster, tmp_path):  # noqa: F811
    _mini_rafdb(tmp_path / "rafdb", {"train": 3, "test": 1})
    _workflow_config(tmp_path, {"rafdb_mini": {"family": "rafdb", "root": str(tmp_path / "rafdb"), "folds": [1],
                                               "options": {"images": "original"}, "check_counts": False}})  # fmt: skip
    target = "results/finetune/rafdb_vit_tiny_demo/fold1/seed0/metrics.json"
    result = _snakemake(tmp_path, target, timeout=360)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    metrics = json.loads((tmp_path / target).read_text())
    assert {"acc", "uar", "war", "confusion"} <= set(metrics)
    # every rule ran as its own Slurm job, and the accounting database saw each one complete
    jobs = _submitted(out)
    assert set(jobs) == {"records", "faces", "fold_annotations", "finetune"}, out[-6000:]
    for rule, job_id in jobs.items():
        assert slurm_cluster.history(job_id) == ["COMPLETED"], rule


@pytest.mark.slurm
@pytest.mark.timeout(300, func_only=True)  # the fixture times its own steps
def test_failing_rule_stops_snakemake_and_shows_its_log(slurm_cluster, tmp_path):  # noqa: F811
    missing = tmp_path / "no-such-rafdb"  # a dataset root that was never downloaded
    _workflow_config(tmp_path, {"rafdb_real": {"family": "rafdb", "root": str(missing), "folds": [1]}})
    result = _snakemake(tmp_path, "results/data/rafdb_real/records.csv", timeout=240)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-4000:]
    assert re.search(r"Error in rule records:\n\s+message: SLURM-job '\d+' failed", out), out[-4000:]
    rule_log = (
        "Logfile logs/data/rafdb_real.records.log:"  # Snakemake prints the failed rule's log after this
    )
    assert rule_log in out, out[-4000:]
    shown = out[out.index(rule_log) :]
    assert f"DatasetError: rafdb: dataset root {missing} is not a directory" in shown, out[-4000:]
    assert "Exiting because a job execution failed" in out, out[-4000:]
    assert not (tmp_path / "results/data/rafdb_real/records.csv").exists()
