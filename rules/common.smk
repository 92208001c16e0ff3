# Shared names and input functions; the checks of config.yaml that a schema cannot express live in fer.config.
from pathlib import Path

from fer.config import WorkflowConfig

W = WorkflowConfig(config)
RESULTS = W.results
LOGS = W.logs
ENV = "../envs/fer.yaml"


wildcard_constraints:
    dataset="|".join(config["datasets"]) or "^$",
    experiment="|".join(config["experiments"]) or "^$",
    name="|".join(config["pretrain"]) or "^$",
    fold=r"\d+",
    seed=r"\d+",


def demo_flag(wildcards):
    if W.dataset(wildcards.dataset).get("demo"):
        return [f"{RESULTS}/data/{wildcards.dataset}/demo.json"]
    return []


def pretrain_lists(wildcards):
    return [
        f"{RESULTS}/annotations/{dataset}/pretrain.csv"
        for dataset in config["pretrain"][wildcards.name]["datasets"]
    ]


def fold_annotations(wildcards):
    dataset = W.experiment(wildcards.experiment)["dataset"]
    folder = f"{RESULTS}/annotations/{dataset}/fold{wildcards.fold}"
    return {split: f"{folder}/{split}.csv" for split in ("train", "val", "test")}


def pretrained_checkpoint(wildcards):
    name = W.experiment(wildcards.experiment).get("pretrain")
    return [f"{RESULTS}/pretrain/{name}/pretrained.pth"] if name else []
