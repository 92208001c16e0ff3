"""Submit pretraining through submitit (local executor or Slurm), wait for it, fail clearly.

The job is `Checkpointable`: on preemption or time limit submitit calls `checkpoint`, which resubmits the same
config with `resume: true`, and the engine continues from its last checkpoint in the output folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import submitit

from fer.io import atomic_path

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    pass


class PretrainJob(submitit.helpers.Checkpointable):
    """A pickled callable submitit runs on the worker: the engine's pretraining loop."""

    def __call__(self, cfg: dict) -> str:
        from fer.engine import pretrain

        return str(pretrain(cfg))

    def checkpoint(self, cfg: dict) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(type(self)(), {**cfg, "resume": True})


def make_executor(launcher: dict, folder: str | os.PathLike) -> submitit.Executor:
    """A submitit executor from the `launcher` section of config.yaml."""
    timeout = int(launcher.get("timeout_min", 60))
    gpus = int(launcher.get("gpus_per_node", 0))
    if launcher["executor"] == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=timeout, gpus_per_node=gpus, tasks_per_node=max(gpus, 1))
        return executor
    if launcher["executor"] == "slurm":
        executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
        params = dict(
            timeout_min=timeout,
            nodes=int(launcher.get("nodes", 1)),
            tasks_per_node=max(gpus, 1),
            gpus_per_node=gpus,
            cpus_per_task=int(launcher.get("cpus_per_task", 2)),
            mem_gb=float(launcher.get("mem_gb", 8)),
            slurm_signal_delay_s=120,
        )
        if launcher.get("slurm_partition"):
            params["slurm_partition"] = launcher["slurm_partition"]
        executor.update_parameters(**params)
        return executor
    raise LaunchError(f"launcher.executor must be 'local' or 'slurm', got {launcher['executor']!r}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "".join(Path(path).read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return f"(no log at {path})"


def wait_for(job: submitit.Job) -> str:
    """The job's result, or a LaunchError naming the job id, its log files and their last lines."""
    try:
        return job.result()
    except Exception as err:
        raise LaunchError(
            f"pretraining job {job.job_id} failed ({type(err).__name__}).\n"
            f"stdout: {job.paths.stdout}\nstderr: {job.paths.stderr}\n"
            f"--- last lines of stderr ---\n{_tail(job.paths.stderr)}"
        ) from err


def launch_pretrain(cfg: dict, launcher: dict, output_path: str | os.PathLike) -> Path:
    """Run the pretraining job, then copy its final checkpoint to `output_path` (what finetuning reads)."""
    folder = Path(cfg["output_dir"]) / "submitit"
    executor = make_executor(launcher, folder)
    executor.update_parameters(name=f"pretrain-{Path(cfg['output_dir']).name}")
    job = executor.submit(PretrainJob(), cfg)
    log.info("submitted pretraining job %s (%s executor); logs in %s", job.job_id, launcher["executor"], folder)
    checkpoint = Path(wait_for(job))
    with atomic_path(output_path) as tmp:
        shutil.copyfile(checkpoint, tmp)
    log.info("pretrained checkpoint: %s", output_path)
    return Path(output_path)
