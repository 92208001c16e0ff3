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
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str((base / uri[len(prefix) :]).resolve())
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
                raise ConfigError(
                    f"datasets.{name}.options: {unknown} not accepted by {ds['family']} "
                    f"(valid: {sorted(accepted)})"
                )
            bad = sorted(set(ds.get("folds", module.FOLDS)) - set(module.FOLDS))
            if bad:
                raise ConfigError(
                    f"datasets.{name}.folds: {bad} not among {ds['family']}'s folds {list(module.FOLDS)}"
                )
        for name, pre in self.config["pretrain"].items():
            for ds in pre["datasets"]:
                if ds not in datasets:
                    raise ConfigError(f"pretrain.{name}.datasets: {ds!r} is not a key of `datasets`")
            resolve(pre["recipe"], pre.get("overrides", {}), where=f"pretrain.{name}")
        for name, exp in self.config["experiments"].items():
            if exp["dataset"] not in datasets:
                raise ConfigError(
                    f"experiments.{name}.dataset: {exp['dataset']!r} is not a key of `datasets`"
                )
            pre = exp.get("pretrain")
            if pre is not None and pre not in self.config["pretrain"]:
                raise ConfigError(f"experiments.{name}.pretrain: {pre!r} is not a key of `pretrain`")
            if pre is not None and exp.get("checkpoint"):
                raise ConfigError(f"experiments.{name}: give `pretrain` or `checkpoint`, not both")
            recipe = resolve(exp["recipe"], exp.get("overrides", {}), where=f"experiments.{name}")
            family = datasets[exp["dataset"]]["family"]
            task = get_dataset(family).TASK
            if (
                recipe["kind"] == "au"
                and task != "au"
                or recipe["kind"] == "finetune"
                and task != "expression"
            ):
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

    def finetune_cfg(
        self, name: str, fold: int, seed: int, annotation_dir: str, pretrained: str | None, output_dir: str
    ) -> dict:
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

    def all_metrics(self) -> list[str]:
        """Every experiment's fold / seed metrics: targets in their own right, so a deleted one is rebuilt."""
        return [path for name in self.config["experiments"] for path in self.finetune_metrics(name)]

    def tables(self) -> list[str]:
        return [
            f"{self.results}/tables/{name}.{ext}"
            for name in self.config["experiments"]
            for ext in ("md", "csv")
        ]

    # ================================================================================================ paper tables
    # Config `tables` (optional): the seeds' tables regenerated as named targets `table_<name>` (rules/report.smk).
    # Each table lists *cells*: one experiment each (dataset, recipe, pretrain or checkpoint, folds, seeds,
    # overrides; `defaults` of the table are merged under every cell). Their runs live under
    # results/papers/<table>/runs/<cell>/fold<k>/seed<s>/ and log to the MLflow experiment table_<table>. They are
    # not `experiments`, so the default target `all` never runs them. Checked on first use (report.smk, at parse).
    _CELL_KEYS = (
        "dataset",
        "recipe",
        "pretrain",
        "checkpoint",
        "finetuned",
        "seeds",
        "folds",
        "overrides",
        "probe",
    )

    def paper_tables(self) -> list[str]:
        """The configured paper tables, checked (every cross-reference, recipe and fold) on the first call."""
        if not getattr(self, "_tables_checked", False):
            self._check_tables()
            self._tables_checked = True
        return list((self.config.get("tables") or {}).get("papers") or {})

    def paper_ui_url(self) -> str:
        from fer.report_mlflow import DEFAULT_UI

        return (self.config.get("tables") or {}).get("mlflow_ui") or DEFAULT_UI

    def paper_cells(self, table: str) -> dict[str, dict]:
        """{cell id: resolved cell} of a table, in the config's order; a cell id names its runs' folder."""
        cache = self.__dict__.setdefault("_paper_cells", {})
        if table in cache:
            return cache[table]
        spec = self.config["tables"]["papers"][table]
        defaults = spec.get("defaults") or {}
        out = {}
        for i, raw in enumerate(spec.get("cells") or []):
            cell = {
                **defaults,
                **raw,
                "overrides": _merged(defaults.get("overrides") or {}, raw.get("overrides") or {}),
            }
            cell_id = self._cell_id(cell)
            cell.update(id=cell_id, table=table, index=i, where=f"tables.papers.{table}.cells[{i}]")
            for key in ("row", "dataset", "recipe"):
                if not cell.get(key):
                    raise ConfigError(
                        f"{cell['where']}: `{key}` missing (give it in the cell or the table's defaults)"
                    )
            if cell["dataset"] not in self.config["datasets"]:
                raise ConfigError(f"{cell['where']}.dataset: {cell['dataset']!r} is not a key of `datasets`")
            recipe = self._recipe(cell)
            cell["folds"] = [int(f) for f in cell.get("folds") or self.folds(cell["dataset"])]
            if recipe["kind"] == "id_probe":
                cell["folds"] = [
                    1
                ]  # one per-subject image split (fer.id_probe), whatever the dataset's folds
            cell["seeds"] = [
                int(s) for s in cell.get("seeds") or recipe.get("seeds") or [0]
            ]  # the recipe's seeds
            out[cell_id] = cell
        cache[table] = out
        return out

    @staticmethod
    def _cell_id(cell: dict) -> str:
        import re

        slug = lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("_")  # noqa: E731
        return slug(cell.get("row", "")) + (f"__{slug(cell['column'])}" if cell.get("column") else "")

    def paper_cell(self, table: str, cell: str) -> dict:
        return self.paper_cells(table)[cell]

    def _recipe(self, cell: dict) -> dict:
        from fer.engine.recipes import resolve

        return resolve(cell["recipe"], cell.get("overrides") or {}, where=cell.get("where", "tables"))

    def _recipe_kind(self, cell: dict) -> str:
        return self._recipe(cell)["kind"]

    def paper_run_dir(self, table: str, cell: str, fold: int, seed: int) -> str:
        return f"{self.results}/papers/{table}/runs/{cell}/fold{fold}/seed{seed}"

    def paper_metrics(self, table: str) -> list[str]:
        return [
            f"{self.paper_run_dir(table, cid, fold, seed)}/metrics.json"
            for cid, cell in self.paper_cells(table).items()
            for fold in cell["folds"]
            for seed in cell["seeds"]
        ]

    def paper_outputs(self, table: str) -> list[str]:
        base = f"{self.results}/papers/{table}"
        return [f"{base}.md", f"{base}.csv", f"{base}.tex", f"{base}/plots"]

    def paper_table_cells(self, table: str) -> list[dict]:
        """What the table step needs of each cell: row, column, id and its metrics.json files."""
        return [
            {"row": c["row"], "column": c.get("column"), "name": cid,
             "metrics_files": [f"{self.paper_run_dir(table, cid, f, s)}/metrics.json" for f in c["folds"]
                               for s in c["seeds"]]}
            for cid, c in self.paper_cells(table).items()
        ]  # fmt: skip

    def paper_annotations(self, table: str, cell: str, fold: int) -> dict[str, str]:
        c = self.paper_cell(table, cell)
        if self._recipe_kind(c) == "id_probe":
            folder = f"{self.results}/papers/{table}/probe/{cell}"
        else:
            folder = f"{self.results}/annotations/{c['dataset']}/fold{fold}"
        return {split: f"{folder}/{split}.csv" for split in ("train", "val", "test")}

    def paper_probe_sources(self, table: str, cell: str) -> list[str]:
        """The fold annotation files whose frames the identity probe re-splits (fold `probe.fold`, default 1)."""
        c = self.paper_cell(table, cell)
        fold = int((c.get("probe") or {}).get("fold", self.folds(c["dataset"])[0]))
        return [
            f"{self.results}/annotations/{c['dataset']}/fold{fold}/{s}.csv" for s in ("train", "val", "test")
        ]

    def paper_probe_options(self, table: str, cell: str) -> dict:
        probe = dict(self.paper_cell(table, cell).get("probe") or {})
        probe.pop("fold", None)
        return probe

    def paper_pretrained(self, table: str, cell: str) -> list[str]:
        """The weights a cell starts from: a pretraining run, or the final checkpoint of a finetuned cell."""
        from fer.engine.checkpoint import FINAL

        c = self.paper_cell(table, cell)
        if c.get("pretrain"):
            return [f"{self.results}/pretrain/{c['pretrain']}/pretrained.pth"]
        if c.get("finetuned"):
            src = c["finetuned"]
            source_table = src.get("table", table)
            source = self._find_cell(source_table, src["row"], src.get("column"), c["where"])
            fold, seed = int(src.get("fold", source["folds"][0])), int(src.get("seed", source["seeds"][0]))
            return [f"{self.paper_run_dir(source_table, source['id'], fold, seed)}/{FINAL}"]
        return []

    def paper_finetune_cfg(self, table: str, cell: str, fold: int, seed: int, annotation_dir: str,
                           pretrained: str | None, output_dir: str) -> dict:  # fmt: skip
        """finetune_cfg of the cell's experiment, logging to the MLflow experiment of the table."""
        import copy

        from fer.report_mlflow import experiment_name

        c = self.paper_cell(table, cell)
        name = f"{table}/{cell}"
        view = copy.copy(self)  # finetune_cfg reads the experiment from config["experiments"]
        keys = ("dataset", "recipe", "checkpoint", "seeds", "overrides")
        view.config = {**self.config, "experiments": {name: {k: c[k] for k in keys if c.get(k) is not None}}}
        cfg = WorkflowConfig.finetune_cfg(view, name, fold, seed, annotation_dir, pretrained, output_dir)
        label = " / ".join(str(p) for p in (c["row"], c.get("column")) if p)
        tags = {**cfg["tracking"]["tags"], "table": table, "row": c["row"], "column": c.get("column") or "",
                "cell": cell}  # fmt: skip
        cfg["tracking"] = {**cfg["tracking"], "experiment": experiment_name(table),
                           "run_name": f"{label} / fold{fold}-seed{seed}", "tags": tags}  # fmt: skip
        return cfg

    def paper_demo_datasets(self) -> list[str]:
        """Demo datasets whose family only fer.report_demo generates (rule paper_demo_dataset)."""
        from fer.report_demo import BUILDERS

        return [n for n in self.demo_datasets() if self.dataset(n)["family"] in BUILDERS]

    def _find_cell(self, table: str, row: str, column: str | None, where: str) -> dict:
        if table not in ((self.config.get("tables") or {}).get("papers") or {}):
            raise ConfigError(f"{where}.finetuned.table: {table!r} is not a key of tables.papers")
        for cell in self.paper_cells(table).values():
            if cell["row"] == row and (column is None or cell.get("column") == column):
                return cell
        raise ConfigError(f"{where}.finetuned: no cell with row {row!r}" + (f", column {column!r}" if column else "")
                          + f" in table {table!r}")  # fmt: skip

    def _check_tables(self) -> None:
        from fer.engine.recipes import resolve
        from fer.report import LAYOUTS

        papers = (self.config.get("tables") or {}).get("papers") or {}
        for table, spec in papers.items():
            if table not in LAYOUTS:
                raise ConfigError(f"tables.papers.{table}: no such paper table; tables: {', '.join(LAYOUTS)}")
            kind = LAYOUTS[table].kind
            unknown = sorted(set(spec.get("defaults") or {}) - set(self._CELL_KEYS) - {"row", "column"})
            if unknown:
                raise ConfigError(f"tables.papers.{table}.defaults: unknown keys {unknown}")
            ids = [self._cell_id(raw) for raw in spec.get("cells") or []]
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ConfigError(
                    f"tables.papers.{table}.cells: two cells with the same row and column ({twice})"
                )
            for cid, c in self.paper_cells(table).items():
                where = c["where"]
                if (kind == "datasets") != bool(c.get("column")):
                    need = (
                        "needs a `column` (a dataset of the table)"
                        if kind == "datasets"
                        else ("takes no `column`: its folds / AUs are the table's columns")
                    )
                    raise ConfigError(f"{where}: table {table!r} ({kind} layout) {need}")
                given = [k for k in ("pretrain", "checkpoint", "finetuned") if c.get(k)]
                if len(given) > 1:
                    raise ConfigError(f"{where}: give one of pretrain / checkpoint / finetuned, not {given}")
                if c.get("pretrain") and c["pretrain"] not in self.config["pretrain"]:
                    raise ConfigError(f"{where}.pretrain: {c['pretrain']!r} is not a key of `pretrain`")
                bad = sorted(set(c["folds"]) - set(self.folds(c["dataset"])))
                if bad:
                    raise ConfigError(f"{where}.folds: {bad} not configured for dataset {c['dataset']!r} "
                                      f"(folds {self.folds(c['dataset'])})")  # fmt: skip
                recipe = resolve(c["recipe"], c["overrides"], where=where)
                task = get_dataset(self.dataset(c["dataset"])["family"]).TASK
                fits = {"finetune": "expression", "au": "au", "id_probe": "au"}.get(recipe["kind"])
                if fits != task:
                    raise ConfigError(f"{where}: recipe {c['recipe']!r} ({recipe['kind']}) does not fit dataset "
                                      f"{c['dataset']!r} (task {task})")  # fmt: skip
                if (kind == "aus") != (recipe["kind"] == "au"):
                    raise ConfigError(
                        f"{where}: table {table!r} ({kind} layout) cannot show a {recipe['kind']} run"
                    )
                if recipe["kind"] == "id_probe" and not c.get("finetuned"):
                    raise ConfigError(
                        f"{where}: an identity probe needs `finetuned` (the cell whose encoder it probes)"
                    )
                if c.get("finetuned"):
                    src = c["finetuned"]
                    source = self._find_cell(
                        src.get("table", table), src.get("row"), src.get("column"), where
                    )
                    if int(src.get("fold", source["folds"][0])) not in source["folds"] or int(
                        src.get("seed", source["seeds"][0])) not in source["seeds"]:  # fmt: skip
                        raise ConfigError(f"{where}.finetuned: fold / seed not among the runs of that cell")
                    if source["table"] == table and source["id"] == cid:
                        raise ConfigError(f"{where}.finetuned: a cell cannot start from itself")


def _merged(base: dict, top: dict) -> dict:
    """Nested dict update: `top` wins, dicts merge key by key (table defaults under a cell's overrides)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = (
            _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out
