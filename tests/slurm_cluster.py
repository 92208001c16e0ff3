"""A real single-node Slurm cluster for the tests marked `slurm` (fixture `slurm_cluster`, session scope).

The cluster is the project's `.ci/slurm.sh`: Debian's Slurm with slurmdbd + MariaDB accounting (submitit and the
Snakemake Slurm plugin read job states with sacct), every file and socket under one folder, clients pointed at it
with SLURM_CONF. The fixture installs the packages when they are missing (apt-get, root only) and skips with the
reason when it cannot; it stops every daemon by PID at the end, also when a test or the start itself failed.
Every call here has a timeout: a Slurm that does not answer hangs silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".ci" / "slurm.sh"


@dataclass(frozen=True)
class SlurmCluster:
    folder: Path  # config, logs and state of this cluster
    conf: Path  # SLURM_CONF
    partition: str = "debug"

    def _call(self, cmd: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess:
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

    def run(self, *cmd: str, timeout: float = 30) -> str:
        """Run a Slurm client command against this cluster; its stdout, or an AssertionError with its stderr."""
        result = self._call(cmd, timeout)
        assert result.returncode == 0, f"{' '.join(cmd)} exited {result.returncode}: {result.stderr}"
        return result.stdout

    def state(self, job_id: str) -> str:
        """'<state> <reason>' from squeue while the job is pending, running or completing; '' once it ended."""
        result = self._call(("squeue", "-h", "-j", job_id, "-o", "%T %r"), timeout=30)
        if result.returncode != 0 and "Invalid job id" in result.stderr:  # ended more than MinJobAge ago
            return ""
        assert result.returncode == 0, f"squeue -j {job_id} exited {result.returncode}: {result.stderr}"
        return result.stdout.strip()

    def history(self, job_id: str) -> list[str]:
        """Every accounting record of the job, requeued runs included (sacct --duplicates), oldest first."""
        out = self.run("sacct", "-n", "-X", "-P", "--duplicates", "-j", job_id, "-o", "State")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def wait(self, predicate, timeout: float, what: str, poll: float = 0.5):
        """Poll `predicate()` until it returns something truthy; fail naming `what` and the daemon logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        out = []
        for path in sorted((self.folder / "log").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(out)


def _script(action: str, folder: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLURM_CI_DIR": str(folder), "ACCOUNTING": "1"}
    return subprocess.run(
        ["bash", str(SCRIPT), action], capture_output=True, text=True, timeout=timeout, env=env
    )


def _installed() -> bool:
    return all(
        shutil.which(cmd) for cmd in ("slurmctld", "slurmd", "slurmdbd", "sbatch", "munged", "mariadbd")
    )


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("the Slurm lane needs root: it installs Debian's Slurm with apt-get and runs its daemons")
    if not _installed():
        if shutil.which("apt-get") is None:
            pytest.skip("Slurm is not installed and there is no apt-get to install it (.ci/slurm.sh install)")
        try:
            result = _script("install", Path("/tmp/slurm-ci"), timeout=420)
        except subprocess.TimeoutExpired:
            pytest.skip("installing Slurm with apt-get took over 7 minutes (.ci/slurm.sh install)")
        if result.returncode != 0 or not _installed():
            pytest.skip(f"Slurm could not be installed (.ci/slurm.sh install): {result.stderr[-2000:]}")
    # a fixed folder: a later session's start stops what a killed session left running there (by PID)
    folder = Path(os.environ.get("SLURM_CI_DIR", "/tmp/slurm-ci"))
    cluster = SlurmCluster(folder=folder, conf=folder / "etc" / "slurm.conf")
    previous = os.environ.get("SLURM_CONF")
    try:
        try:
            result = _script("start", folder, timeout=240)
        except subprocess.TimeoutExpired as err:
            pytest.fail(f".ci/slurm.sh start timed out: {err.stderr}\n{cluster.logs()}")
        assert result.returncode == 0, f".ci/slurm.sh start failed:\n{result.stderr}\n{cluster.logs()}"
        # submitit and Snakemake call sbatch / sacct from this process
        os.environ["SLURM_CONF"] = str(cluster.conf)
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        stopped = _script("stop", folder, timeout=180)
        assert stopped.returncode == 0, f".ci/slurm.sh stop failed:\n{stopped.stderr}"
