"""Launch environments (torchrun, Slurm, submitit), deterministic per-sample augmentation, resumable samplers."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, Subset

from fer.engine.distributed import (
    ResumableSampler,
    SeededDataset,
    ShardSampler,
    _first_slurm_host,
    detect_env,
)
from fer.engine.finetune import class_balanced

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SUBMITIT_EXECUTOR")


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("SLURM_") or key in _LAUNCH_VARS:
            monkeypatch.delenv(key)
    return monkeypatch


def test_single_process_and_torchrun(clean_env):
    assert detect_env() == (0, 1, 0, "single")
    clean_env.setenv("RANK", "3")
    clean_env.setenv("WORLD_SIZE", "4")
    clean_env.setenv("LOCAL_RANK", "1")
    assert detect_env() == (3, 4, 1, "torchrun")


def test_slurm_tasks_started_by_srun(clean_env):
    import os

    for key, value in dict(SLURM_PROCID="1", SLURM_STEP_NUM_TASKS="2", SLURM_LOCALID="1", SLURM_NTASKS="2",
                           SLURM_NODELIST="node[03-04]", SLURM_JOB_ID="123456").items():  # fmt: skip
        clean_env.setenv(key, value)
    assert detect_env() == (1, 2, 1, "slurm")
    assert os.environ["MASTER_ADDR"] == "node03" and 20000 <= int(os.environ["MASTER_PORT"]) < 40000


def test_a_batch_script_process_is_not_a_group(clean_env):
    clean_env.setenv("SLURM_PROCID", "0")
    clean_env.setenv("SLURM_NTASKS", "4")  # sbatch --ntasks=4, but python started once without srun
    clean_env.setenv("SLURM_NODELIST", "node01")
    assert detect_env() == (0, 1, 0, "slurm")


def test_submitit_job_environment(clean_env):
    import os

    for key, value in dict(SUBMITIT_EXECUTOR="slurm", SLURM_JOB_ID="77", SLURM_NTASKS="2", SLURM_PROCID="1",
                           SLURM_LOCALID="1", SLURM_NODEID="0", SLURM_JOB_NUM_NODES="1",
                           SLURM_JOB_NODELIST="gpu[1-2]").items():  # fmt: skip
        clean_env.setenv(key, value)
    assert detect_env() == (1, 2, 1, "submitit")
    assert os.environ["MASTER_ADDR"] == "gpu1"


def test_first_slurm_host_parsing():
    assert _first_slurm_host("node[01-04],gpu7") == "node01"
    assert _first_slurm_host("gpu7") == "gpu7"


class _Noisy(Dataset):
    """Draws from all three RNGs, as timm / torchvision transforms do."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        import random

        return torch.rand(3).tolist() + [np.random.rand(), random.random(), index]


def test_seeded_dataset_draws_depend_only_on_seed_epoch_and_index():
    data = SeededDataset(_Noisy(), seed=7)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = data[(2, 5)]
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left as it was
    torch.manual_seed(123)
    np.random.seed(5)
    assert data[(2, 5)] == a  # whatever the global state
    assert data[(3, 5)] != a and data[(2, 6)][:3] != a[:3]
    assert SeededDataset(_Noisy(), seed=8)[(2, 5)] != a
    assert data[5][-1] == 5  # plain indices (evaluation) pass through


def test_resumable_sampler_skips_what_was_trained_and_splits_ranks():
    data = list(range(40))
    full = ResumableSampler(data, num_replicas=1, rank=0, seed=3)
    full.set_epoch(2)
    order = list(full)
    assert sorted(i for _, i in order) == data and {e for e, _ in order} == {2}
    full.set_epoch(2, skip=12)
    assert list(full) == order[12:] and len(full) == 28
    ranks = [ResumableSampler(data, 2, r, seed=3) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    zero, one = ([i for _, i in r] for r in ranks)
    assert sorted(zero + one) == data and not set(zero) & set(one)
    # a global batch of 8 on one process = the union of the two processes' batches of 4
    assert sorted(i for _, i in order[:8]) == sorted(zero[:4] + one[:4])


def test_shard_sampler_covers_every_index_once():
    shards = [list(ShardSampler(15, 2, r)) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(15)) and len(shards[0]) == 8


class _Labelled(Dataset):
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return index, self.labels[index]


def test_class_balanced_repeats_rare_classes_as_mmcls():
    labels = [0] * 80 + [1] * 15 + [2] * 5  # f = 0.8, 0.15, 0.05
    subset = class_balanced(_Labelled(labels), 0.15)
    counts = np.bincount([labels[i] for i in subset.indices])
    # r(c) = max(1, sqrt(0.15 / f)): 1, 1, sqrt(3) -> ceil 2
    assert counts.tolist() == [80, 15, 10]
    assert isinstance(subset, Subset)
    seeded = SeededDataset(subset, seed=0)  # (epoch, index) items through a Subset
    assert subset.indices[95:99] == [95, 95, 96, 96] and seeded[(0, 99)] == (97, 2)


def test_loader_workers_do_not_change_the_result(tmp_path):
    from engine_synthetic import TINY_VIT, write_expression

    from fer.engine import finetune, resolve
    from fer.io import load_checkpoint

    write_expression(tmp_path, "train", 8, seed=0)

    def run(workers):
        cfg = resolve("mae_sfer_vit_tiny_finetune", {
            "model_kwargs": TINY_VIT, "input_size": 32, "batch_size": 4, "epochs": 2, "warmup_epochs": 1,
            "num_workers": workers, "aa": None, "reprob": 0.5, "mixup": 0.0, "cutmix": 0.0,
            "data": {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "train.csv")}, "classes": ["a", "b", "c"],
            "output_dir": str(tmp_path / f"w{workers}"),
            "tracking": {"uri": f"sqlite:///{tmp_path}/m.db", "system_metrics": False},
        })  # fmt: skip
        finetune(cfg)
        return load_checkpoint(tmp_path / f"w{workers}" / "checkpoint-final.pth")["model"]

    single, workers = run(0), run(2)
    assert all(torch.equal(single[k], workers[k]) for k in single)
