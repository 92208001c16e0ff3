"""The workflow's view of config.yaml: cross-references checked, recipes resolved, output paths named.

The Snakefile validates types and keys against rules/config.schema.yaml; this module checks what a schema cannot
(an experiment naming a dataset that is not configured, a fold the dataset does not have, an override key the
recipe does not know) so that every such mistake fails before any job starts, naming the key.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fer.datasets import get_dataset


class ConfigError(ValueError):
    pass


def _absolute_tracking_uri(uri: str, base: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str((base / uri[len(prefix):]).resolve())
    return uri


class WorkflowConfig:
    def __init__(self, config: dict[str, Any], base_dir: str | Path | None = None):
        """`base_dir`: where relative paths of config.yaml start, the workflow's working directory by default."""
        self.config = config
        self.base = Path(base_dir or Path.cwd()).resolve()
        self.results = config["results_dir"]
        self.logs = config["logs_dir"]
        self.tracking_uri = _absolute_tracking_uri(config["tracking"]["uri"], self.base)
        self._check()

    # -- checks -------------------------------------------------------------------------------------------
    def _check(self) -> None:
        from fer.engine.recipes import resolve  # engine import kept out of module import time

        datasets = self.config["datasets"]
        for name, ds in datasets.items():
            module = get_dataset(ds["family"])
            accepted = set(inspect.signature(module.load_records).parameters) - {"root", "dropped"}
            unknown = sorted(set(ds.get("options", {})) - accepted)
            if unknown:
                raise ConfigError(f"datasets.{name}.options: {unknown} not accepted by {ds['family']} "
                                  f"(valid: {sorted(accepted)})")
            bad = sorted(set(ds.get("folds", module.FOLDS)) - set(module.FOLDS))
            if bad:
                raise ConfigError(f"datasets.{name}.folds: {bad} not among {ds['family']}'s folds {list(module.FOLDS)}")
        for name, pre in self.config["pretrain"].items():
            for ds in pre["datasets"]:
                if ds not in datasets:
                    raise ConfigError(f"pretrain.{name}.datasets: {ds!r} is not a key of `datasets`")
            resolve(pre["recipe"], pre.get("overrides", {}), where=f"pretrain.{name}")
        for name, exp in self.config["experiments"].items():
            if exp["dataset"] not in datasets:
                raise ConfigError(f"experiments.{name}.dataset: {exp['dataset']!r} is not a key of `datasets`")
            pre = exp.get("pretrain")
            if pre is not None and pre not in self.config["pretrain"]:
                raise ConfigError(f"experiments.{name}.pretrain: {pre!r} is not a key of `pretrain`")
            if pre is not None and exp.get("checkpoint"):
                raise ConfigError(f"experiments.{name}: give `pretrain` or `checkpoint`, not both")
            recipe = resolve(exp["recipe"], exp.get("overrides", {}), where=f"experiments.{name}")
            family = datasets[exp["dataset"]]["family"]
            task = get_dataset(family).TASK
            if recipe["kind"] == "au" and task != "au" or recipe["kind"] == "finetune" and task != "expression":
                raise ConfigError(
                    f"experiments.{name}: recipe {exp['recipe']!r} ({recipe['kind']}) does not fit dataset "
                    f"{exp['dataset']!r} ({family}, task {task})"
                )

    # -- lookups ------------------------------------------------------------------------------------------
    def dataset(self, name: str) -> dict:
        return self.config["datasets"][name]

    def folds(self, dataset: str) -> list[int]:
        ds = self.dataset(dataset)
        return list(ds.get("folds", get_dataset(ds["family"]).FOLDS))

    def demo_datasets(self) -> list[str]:
        return [n for n, d in self.config["datasets"].items() if d.get("demo")]

    def dataset_root(self, name: str) -> Path:
        return (self.base / self.dataset(name)["root"]).resolve()

    def experiment(self, name: str) -> dict:
        return self.config["experiments"][name]

    def pretrain_cfg(self, name: str, annotation_files: list[str], output_dir: str) -> dict:
        from fer.engine.recipes import resolve

        pre = self.config["pretrain"][name]
        cfg = resolve(pre["recipe"], pre.get("overrides", {}), where=f"pretrain.{name}")
        cfg.update(
            data={"train": [str(Path(p).resolve()) for p in annotation_files]},
            output_dir=str(Path(output_dir).resolve()),
            device=self.config.get("device", "auto"),
            tracking={"uri": self.tracking_uri, "experiment": f"pretrain/{name}", "run_name": name},
        )
        return cfg

    def finetune_cfg(self, name: str, fold: int, seed: int, annotation_dir: str, pretrained: str | None,
                     output_dir: str) -> dict:
        from fer.engine.recipes import resolve

        exp = self.experiment(name)
        cfg = resolve(exp["recipe"], exp.get("overrides", {}), where=f"experiments.{name}")
        annotation_dir = Path(annotation_dir).resolve()
        dataset = self.dataset(exp["dataset"])
        module = get_dataset(dataset["family"])
        checkpoint = pretrained or exp.get("checkpoint")
        cfg.update(
            data={split: str(annotation_dir / f"{split}.csv") for split in ("train", "val", "test")},
            pretrained=str((self.base / checkpoint).resolve()) if checkpoint else None,
            output_dir=str(Path(output_dir).resolve()),
            seed=seed,
            device=self.config.get("device", "auto"),
            tracking={
                "uri": self.tracking_uri,
                "experiment": name,
                "run_name": f"fold{fold}-seed{seed}",
                "tags": {"dataset": exp["dataset"], "fold": fold, "seed": seed, "recipe": exp["recipe"]},
            },
        )
        if module.TASK == "au":
            cfg["aus"] = list(module.AUS)
        else:
            cfg["classes"] = list(module.CLASSES)
        return cfg

    # -- targets ------------------------------------------------------------------------------------------
    def finetune_metrics(self, name: str) -> list[str]:
        exp = self.experiment(name)
        return [
            f"{self.results}/finetune/{name}/fold{fold}/seed{seed}/metrics.json"
            for fold in self.folds(exp["dataset"])
            for seed in exp.get("seeds", [0])
        ]

    def tables(self) -> list[str]:
        return [f"{self.results}/tables/{name}.{ext}" for name in self.config["experiments"] for ext in ("md", "csv")]
