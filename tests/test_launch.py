"""submitit launching (local executor): results come back, failures name the job and show its log."""

import pytest

from fer.launch import LaunchError, make_executor, wait_for


def test_local_job_result(tmp_path):
    executor = make_executor({"executor": "local", "timeout_min": 5}, tmp_path)
    job = executor.submit(lambda x: x * 2, 21)
    assert wait_for(job) == 42


def test_failing_job_names_id_log_and_last_lines(tmp_path):
    def crash():
        print("loading data ...", flush=True)
        raise RuntimeError("loss is NaN at step 7")

    executor = make_executor({"executor": "local", "timeout_min": 5}, tmp_path)
    job = executor.submit(crash)
    with pytest.raises(LaunchError) as err:
        wait_for(job)
    message = str(err.value)
    assert f"job {job.job_id} failed" in message
    assert str(job.paths.stderr) in message
    assert "loss is NaN at step 7" in message


def test_unknown_executor_is_refused(tmp_path):
    with pytest.raises(LaunchError, match="'local' or 'slurm'"):
        make_executor({"executor": "kubernetes"}, tmp_path)
