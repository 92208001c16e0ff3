"""Two processes (torchrun-style env, gloo, CPU) train to the same weights as one process with the same global
batch, and evaluate to the same metrics (sharded evaluation gathered back in order)."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from engine_synthetic import TINY_VIT, write_expression

from fer.engine import finetune, resolve
from fer.engine.checkpoint import FINAL
from fer.io import load_checkpoint


def _cfg(root, out):
    # Per-sample augmentation is seeded by (seed, epoch, index), so crops and erasing do not depend on which
    # process loads a sample; no drop path and no mixup, whose draws are per process / per local batch.
    return resolve("mae_sfer_vit_tiny_finetune", {
        "model_kwargs": TINY_VIT, "input_size": 32, "global_batch_size": 8, "accum_iter": 1, "epochs": 2,
        "warmup_epochs": 1, "blr": 4e-3, "num_workers": 0, "aa": None, "reprob": 0.25, "mixup": 0.0, "cutmix": 0.0,
        "drop_path": 0.0, "log_every": 2,
        "data": {"train": str(root / "train.csv"), "val": str(root / "val.csv"), "test": str(root / "test.csv")},
        "classes": ["disc", "square", "bar"], "output_dir": str(root / out), "device": "cpu",
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db", "experiment": "ddp", "run_name": out,
                     "system_metrics": False},
    })  # fmt: skip


def _worker(rank, world, port, cfg_path):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), FER_NO_PROGRESS="1")  # fmt: skip
    torch.set_num_threads(1)
    with open(cfg_path) as f:
        metrics = finetune(json.load(f))
    with open(f"{cfg_path}.rank{rank}", "w") as f:
        json.dump(metrics, f)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    write_expression(tmp_path, "train", 16, seed=0)  # 48 images: 6 steps of 8 per epoch
    write_expression(tmp_path, "val", 3, seed=1)
    write_expression(tmp_path, "test", 5, seed=2)  # 15 images: uneven shards of 8 and 7

    cfg_path = tmp_path / "ddp.json"
    cfg_path.write_text(json.dumps(_cfg(tmp_path, "two")))
    mp.start_processes(
        _worker, args=(2, _free_port(), str(cfg_path)), nprocs=2, join=True, start_method="spawn"
    )

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = finetune(_cfg(tmp_path, "one"))
    finally:
        torch.set_num_threads(threads)

    one = load_checkpoint(tmp_path / "one" / FINAL)
    two = load_checkpoint(tmp_path / "two" / FINAL)
    assert one["step"] == two["step"] == 12
    for key, value in one["model"].items():
        assert torch.allclose(value, two["model"][key], rtol=1e-5, atol=1e-6), key
    ranks = [json.loads((tmp_path / f"ddp.json.rank{r}").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every process returns the gathered metrics
    for key in ("acc", "uar", "war", "confusion"):
        assert ranks[0][key] == single[key]
    assert sum(map(sum, single["confusion"])) == 15
    assert len(two["rng_per_rank"]) == 2 and not torch.equal(two["rng_per_rank"][0]["torch"],
                                                             two["rng_per_rank"][1]["torch"])  # fmt: skip
