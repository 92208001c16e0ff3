"""Submit pretraining through submitit (local executor or Slurm), wait for it, fail clearly.

The job is `Checkpointable`. Slurm sends submitit's signal (USR2, `--signal=USR2@<delay>`) before the time limit,
and `job._interrupt()` sends it to simulate preemption. `PretrainJob` routes that signal to the engine's graceful
stop (the engine's SIGUSR1 handler: save at the next optimizer step, raise `Preempted`), then lets submitit call
`checkpoint`, which resubmits the same config with `resume: true`, and `scontrol requeue`. Without this the job
would be requeued at once, losing the steps since the last periodic checkpoint. A job that Slurm itself kills and
requeues (`scontrol requeue`, preemption with PreemptMode=REQUEUE) gets SIGTERM; the engine saves, exits
non-zero, and the rerun resumes from that checkpoint because `resume` is true by default.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import submitit

from fer.io import atomic_path

log = logging.getLogger(__name__)

# submitit's checkpoint signal; submitit reads the same variable (submitit/core/job_environment.py)
_SUBMITIT_SIGNAL = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
# what Slurm clients the submitit Slurm executor calls: submit, watch (sacct), cancel, requeue, launch steps
_SLURM_COMMANDS = ("sbatch", "sacct", "scancel", "scontrol", "srun")


class LaunchError(RuntimeError):
    pass


class _RequeueOnStop:
    """While installed, submitit's checkpoint signal asks the engine to stop at the next step boundary.

    `requeue()` then runs submitit's own handler (checkpoint + `scontrol requeue` + exit), so submitit's
    bookkeeping (timeout countdown, the pickled resubmission) stays its own.
    """

    def __init__(self) -> None:
        self.signum = getattr(signal, _SUBMITIT_SIGNAL)
        self.submitit_handler = signal.getsignal(self.signum)
        self.requested = False
        self._pid = os.getpid()

    @property
    def active(self) -> bool:  # only under submitit, which installs a bound method of its SignalHandler
        return callable(self.submitit_handler) and hasattr(self.submitit_handler, "__self__")

    def __enter__(self) -> _RequeueOnStop:
        if self.active:
            signal.signal(self.signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            signal.signal(self.signum, self.submitit_handler)

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:  # a forked data-loader worker inherited the handler: not ours to act on
            return
        self.requested = True
        engine_stop = signal.getsignal(signal.SIGUSR1)
        if callable(engine_stop):  # the training loop is running: save at the next step, then requeue()
            log.warning("received %s: stopping at the next step to checkpoint and requeue", _SUBMITIT_SIGNAL)
            engine_stop(signum, frame)
        else:  # not training (loading data, writing the final checkpoint): nothing unsaved, requeue now
            self.submitit_handler(signum, frame)

    def requeue(self) -> None:
        self.submitit_handler(self.signum, None)

    def linger(self, seconds: float = 2.0) -> None:
        """Wait briefly for submitit's signal after a SIGTERM stop.

        Preemption brings SIGTERM and submitit's signal together (`job._interrupt()`, Slurm's
        PreemptParameters=send_user_signal) in either order; once the engine's stop handler is gone, a late
        signal goes straight to submitit's handler, which requeues and exits from inside this sleep.
        """
        if self.active:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(0.05)


class PretrainJob(submitit.helpers.Checkpointable):
    """A pickled callable submitit runs on the worker: the engine's pretraining loop."""

    def __call__(self, cfg: dict) -> str:
        from fer.engine import Preempted, pretrain

        # the job's stderr is what LaunchError shows: give it the engine's progress and resume messages
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        with _RequeueOnStop() as stop:
            try:
                return str(pretrain(cfg))
            except Preempted as err:
                if not stop.requested:  # SIGTERM / SIGUSR1: cancelled, or Slurm requeues the job itself
                    log.warning("%s; exiting (a job Slurm requeued resumes from there)", err)
                    stop.linger()  # unless submitit's signal follows (preemption sends both), then requeue
                    raise
                log.warning("%s; requeueing through submitit", err)
                stop.requeue()  # exits (SystemExit) once requeued; raises if submitit will not requeue
                raise

    def checkpoint(self, cfg: dict) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(type(self)(), {**cfg, "resume": True})


def _check_slurm_commands() -> None:
    missing = [cmd for cmd in _SLURM_COMMANDS if shutil.which(cmd) is None]
    if missing:
        raise LaunchError(
            f"launcher.executor is 'slurm' but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
            f"on PATH ({os.environ.get('PATH', '')}). Run the workflow on a Slurm login node (or load the "
            "cluster's Slurm module first), or set launcher.executor: local in config.yaml."
        )


def make_executor(launcher: dict, folder: str | os.PathLike) -> submitit.Executor:
    """A submitit executor from the `launcher` section of config.yaml."""
    timeout = int(launcher.get("timeout_min", 60))
    gpus = int(launcher.get("gpus_per_node", 0))
    if launcher["executor"] == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=timeout, gpus_per_node=gpus, tasks_per_node=max(gpus, 1))
        return executor
    if launcher["executor"] == "slurm":
        _check_slurm_commands()
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


def _final_state(job: submitit.Job) -> str:
    """', state TIMEOUT' (OUT_OF_MEMORY, CANCELLED ...) once the scheduler has ended the job, else ''."""
    try:
        state = job.state  # sacct on Slurm
    except Exception:  # a hint for the message, never a reason to hide the failure
        return ""
    # submitit's in-progress states (core.py is_done), and the local executor's uninformative FINISHED
    not_final = {"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED", "FINISHED"}
    return "" if state.upper() in not_final else f", state {state}"


def wait_for(job: submitit.Job) -> str:
    """The job's result, or a LaunchError naming the job id, its state, log files and their last lines."""
    try:
        return job.result()
    except Exception as err:
        raise LaunchError(
            f"pretraining job {job.job_id} failed ({type(err).__name__}{_final_state(job)}).\n"
            f"stdout: {job.paths.stdout}\nstderr: {job.paths.stderr}\n"
            f"--- last lines of stderr ---\n{_tail(job.paths.stderr)}"
        ) from err


def launch_pretrain(cfg: dict, launcher: dict, output_path: str | os.PathLike) -> Path:
    """Run the pretraining job, then copy its final checkpoint to `output_path` (what finetuning reads)."""
    folder = Path(cfg["output_dir"]) / "submitit"
    executor = make_executor(launcher, folder)
    executor.update_parameters(name=f"pretrain-{Path(cfg['output_dir']).name}")
    job = executor.submit(PretrainJob(), cfg)
    log.info(
        "submitted pretraining job %s (%s executor); logs in %s", job.job_id, launcher["executor"], folder
    )
    checkpoint = Path(wait_for(job))
    with atomic_path(output_path) as tmp:
        shutil.copyfile(checkpoint, tmp)
    log.info("pretrained checkpoint: %s", output_path)
    return Path(output_path)
