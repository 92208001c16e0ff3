"""Processes, devices and data order: torchrun / Slurm / submitit initialisation, samplers that resume mid-epoch.

Rank, world size and local rank come from torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), from a
submitit job (submitit.JobEnvironment) or from Slurm tasks started by srun (SLURM_PROCID, SLURM_STEP_NUM_TASKS,
SLURM_LOCALID), as facebookresearch/mae `util/misc.py:init_distributed_mode` reads them. gloo on CPU, nccl on GPU.

Determinism across resumes and process counts: the sampler yields (epoch, index) pairs and `SeededDataset` draws a
sample's augmentation from an RNG seeded by (seed, epoch, index), so the same sample gets the same crop, flip and
erasing whichever process, worker or resumed run loads it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler

log = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """The device or process layout asked for is not available here; the message says what to change."""


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    source: str = "single"  # single | torchrun | submitit | slurm
    owns_group: bool = False  # this module created the process group (and destroys it in `cleanup`)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> cuda if available else cpu; "cuda" on a machine without CUDA is an error saying so."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {name!r} was asked for, but CUDA is not available here (torch {torch.__version__}, "
            f"{torch.cuda.device_count()} GPUs visible). Set device: cpu, or device: auto to use a GPU only when "
            f"there is one."
        )
    return dev


def _first_slurm_host(nodelist: str) -> str:
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30
        )
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    m = re.match(r"([^\[,]+)(?:\[(\d+))?", nodelist)  # "node[01-04],gpu7" -> "node01"
    return (m.group(1) + (m.group(2) or "")) if m else "127.0.0.1"


def _port_from_job(job_id: str) -> str:
    digits = "".join(ch for ch in str(job_id) if ch.isdigit()) or "0"
    return str(20000 + int(digits[-4:]) % 20000)


def detect_env() -> tuple[int, int, int, str]:
    """(rank, world_size, local_rank, source) of this process; sets MASTER_ADDR/PORT where a launcher did not."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)), "torchrun"
    if env.get("SUBMITIT_EXECUTOR"):
        import submitit

        job = submitit.JobEnvironment()
        if job.num_tasks > 1:
            env.setdefault("MASTER_ADDR", job.hostnames[0])
            env.setdefault("MASTER_PORT", _port_from_job(job.job_id))
        return job.global_rank, job.num_tasks, job.local_rank, "submitit"
    if "SLURM_PROCID" in env:
        # Only tasks started by srun form a group: a batch script's single process sees SLURM_NTASKS too.
        world = int(env.get("SLURM_STEP_NUM_TASKS", 1))
        if world > 1:
            env.setdefault(
                "MASTER_ADDR", _first_slurm_host(env.get("SLURM_STEP_NODELIST", env["SLURM_NODELIST"]))
            )
            env.setdefault("MASTER_PORT", _port_from_job(env.get("SLURM_JOB_ID", "0")))
        return int(env["SLURM_PROCID"]), world, int(env.get("SLURM_LOCALID", 0)), "slurm"
    return 0, 1, 0, "single"


def init_distributed(device: str | torch.device = "auto") -> DistEnv:
    """Join the process group this process was launched into (if any) and pick its device."""
    dev = resolve_device(device)
    rank, world, local_rank, source = detect_env()
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"process with local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); start at "
                f"most one process per GPU (torchrun --nproc_per_node / Slurm --gpus-per-node)"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    owns = world > 1 and not dist.is_initialized()
    if owns:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
        log.info(
            "process %d/%d (%s, local rank %d) joined the %s group on %s",
            rank,
            world,
            source,
            local_rank,
            backend,
            dev,
        )
    return DistEnv(
        rank=rank, world_size=world, local_rank=local_rank, device=dev, source=source, owns_group=owns
    )


def cleanup(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def per_process_batch(
    batch_size: int, global_batch_size: int | None, accum_iter: int, world_size: int
) -> int:
    """Per-process batch: `batch_size`, or `global_batch_size` split over accum_iter x processes exactly."""
    if not global_batch_size:
        return int(batch_size)
    parts = accum_iter * world_size
    if global_batch_size % parts:
        divisors = [d for d in range(1, global_batch_size + 1) if global_batch_size % d == 0]
        raise DeviceError(
            f"global_batch_size {global_batch_size} does not divide across {world_size} processes x accum_iter "
            f"{accum_iter} (= {parts}); choose a global_batch_size that is a multiple of {parts}, or a process "
            f"count x accum_iter among {divisors}"
        )
    return global_batch_size // parts


# -- collectives (no-ops in a single process) ----------------------------------------------------------------
def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if is_dist():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_objects(obj) -> list:
    if not is_dist():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_dist():
        dist.barrier()


# -- deterministic data order and augmentation ---------------------------------------------------------------
class SeededDataset(Dataset):
    """Wraps a dataset; item (epoch, index) is loaded with torch / numpy / random seeded from (seed, epoch, index).

    The caller's RNG states are put back afterwards, so loading in the main process (num_workers=0) does not
    disturb the training RNG (dropout, masking, mixup). Plain integer indices (evaluation) load unseeded.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # labels, samples, ... of the wrapped dataset
        # never dunders: DataLoader would call a wrapped Subset's __getitems__ with (epoch, index) pairs
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, item):
        if not isinstance(item, tuple):
            return self.dataset[item]
        epoch, index = item
        seed = np.random.SeedSequence([self.seed, int(epoch), int(index)]).generate_state(1)[0]
        torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
        try:
            torch.random.default_generator.manual_seed(int(seed))
            np.random.seed(int(seed))
            random.seed(int(seed))
            return self.dataset[index]
        finally:
            torch.set_rng_state(torch_state)
            np.random.set_state(np_state)
            random.setstate(py_state)


class ResumableSampler(Sampler):
    """DistributedSampler over a dataset that yields (epoch, index) and can start part-way into an epoch.

    Shuffling uses DistributedSampler's own generator (seed + epoch), so the order depends on neither the
    global RNG nor how many batches an earlier, interrupted run consumed. drop_last=True keeps every process
    at the same number of batches.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True):
        self.inner = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True
        )
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Start epoch `epoch`, leaving out its first `skip` samples (already trained on before a resume)."""
        self.inner.set_epoch(epoch)
        self.epoch, self.skip = int(epoch), int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in islice(iter(self.inner), self.skip, None):
            yield self.epoch, index

    def __len__(self) -> int:
        return len(self.inner) - self.skip


class ShardSampler(Sampler):
    """Evaluation shard of one process: indices rank, rank + world, ... (no padding, no duplicates)."""

    def __init__(self, length: int, num_replicas: int, rank: int):
        self.indices = list(range(rank, length, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
