rule table:
    input:
        lambda wildcards: W.finetune_metrics(wildcards.experiment),
    output:
        md=f"{RESULTS}/tables/{{experiment}}.md",
        csv=f"{RESULTS}/tables/{{experiment}}.csv",
    log:
        f"{LOGS}/report/{{experiment}}.log",
    benchmark:
        f"{LOGS}/report/{{experiment}}.benchmark.tsv"
    conda:
        ENV
    params:
        dataset=lambda wildcards: W.experiment(wildcards.experiment)["dataset"],
    script:
        "../workflow_scripts/table.py"


# ---------------------------------------------------------------------------------------------- paper tables
# Config `tables.papers`: one named target per seed table, `snakemake table_<name>`, running everything it needs
# (demo data, faces, annotations, pretraining, the cells' finetunes) and writing results/papers/<name>.{md,csv,tex}
# and its plots. None of this is part of `all`. The cells' runs log to the MLflow experiment table_<name>.
import re

PAPERS = W.paper_tables()
PAPER_DEMO = W.paper_demo_datasets()
# wildcard patterns: exactly the configured names (or nothing)
PAPERS_RE = "|".join(re.escape(n) for n in PAPERS) or "^$"
CELLS_RE = (
    "|".join(
        re.escape(c) for c in sorted({c for t in PAPERS for c in W.paper_cells(t)})
    )
    or "^$"
)
DEMO_RE = "|".join(re.escape(n) for n in PAPER_DEMO) or "^$"


if PAPER_DEMO:

    # datasets only the tables use (AffectNet, FER+, MAFW, FERV39k, BP4D+, DISFA): fer.report_demo renders them
    rule paper_demo_dataset:
        output:
            f"{RESULTS}/data/{{dataset}}/demo.json",
        log:
            f"{LOGS}/data/{{dataset}}.demo.log",
        benchmark:
            f"{LOGS}/data/{{dataset}}.demo.benchmark.tsv"
        wildcard_constraints:
            dataset=DEMO_RE,
        conda:
            ENV
        params:
            family=lambda wildcards: W.dataset(wildcards.dataset)["family"],
            root=lambda wildcards: str(W.dataset_root(wildcards.dataset)),
        script:
            "../workflow_scripts/paper_demo_dataset.py"

    ruleorder: paper_demo_dataset > demo_dataset


rule paper_probe_split:
    input:
        lambda wildcards: W.paper_probe_sources(wildcards.table, wildcards.cell),
    output:
        train=f"{RESULTS}/papers/{{table}}/probe/{{cell}}/train.csv",
        val=f"{RESULTS}/papers/{{table}}/probe/{{cell}}/val.csv",
        test=f"{RESULTS}/papers/{{table}}/probe/{{cell}}/test.csv",
        summary=f"{RESULTS}/papers/{{table}}/probe/{{cell}}/summary.json",
    log:
        f"{LOGS}/papers/{{table}}.{{cell}}.probe.log",
    wildcard_constraints:
        table=PAPERS_RE,
        cell=CELLS_RE,
    conda:
        ENV
    params:
        options=lambda wildcards: W.paper_probe_options(wildcards.table, wildcards.cell),
    script:
        "../workflow_scripts/paper_probe_split.py"


rule paper_finetune:
    input:
        unpack(
            lambda wildcards: W.paper_annotations(
                wildcards.table, wildcards.cell, int(wildcards.fold)
            )
        ),
        pretrained=lambda wildcards: W.paper_pretrained(wildcards.table, wildcards.cell),
    output:
        metrics=f"{RESULTS}/papers/{{table}}/runs/{{cell}}/fold{{fold}}/seed{{seed}}/metrics.json",
        checkpoint=f"{RESULTS}/papers/{{table}}/runs/{{cell}}/fold{{fold}}/seed{{seed}}/checkpoint-final.pth",
    log:
        f"{LOGS}/papers/{{table}}.{{cell}}.fold{{fold}}.seed{{seed}}.log",
    benchmark:
        f"{LOGS}/papers/{{table}}.{{cell}}.fold{{fold}}.seed{{seed}}.benchmark.tsv"
    wildcard_constraints:
        table=PAPERS_RE,
        cell=CELLS_RE,
    conda:
        ENV
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=lambda wildcards: 1 if config.get("device") == "cuda" else 0,
    params:
        cfg=lambda wildcards, input: W.paper_finetune_cfg(
            wildcards.table,
            wildcards.cell,
            int(wildcards.fold),
            int(wildcards.seed),
            annotation_dir=str(Path(input.train).parent),
            pretrained=input.pretrained[0] if input.pretrained else None,
            output_dir=W.paper_run_dir(
                wildcards.table, wildcards.cell, wildcards.fold, wildcards.seed
            ),
        ),
    script:
        "../workflow_scripts/finetune.py"


rule paper_table:
    input:
        lambda wildcards: W.paper_metrics(wildcards.table),
    output:
        md=report(
            f"{RESULTS}/papers/{{table}}.md",
            category="Paper tables",
            subcategory="{table}",
            labels={"table": "{table}", "file": "Markdown"},
        ),
        csv=report(
            f"{RESULTS}/papers/{{table}}.csv",
            category="Paper tables",
            subcategory="{table}",
            labels={"table": "{table}", "file": "CSV (every run, fold and cell)"},
        ),
        tex=f"{RESULTS}/papers/{{table}}.tex",
        plots=report(
            directory(f"{RESULTS}/papers/{{table}}/plots"),
            patterns=["{name}.png"],
            category="Paper tables",
            subcategory="{table}",
            labels={"table": "{table}", "file": "{name}"},
        ),
    log:
        f"{LOGS}/papers/{{table}}.log",
    benchmark:
        f"{LOGS}/papers/{{table}}.benchmark.tsv"
    wildcard_constraints:
        table=PAPERS_RE,
    conda:
        ENV
    params:
        cells=lambda wildcards: W.paper_table_cells(wildcards.table),
        title=lambda wildcards: config["tables"]["papers"][wildcards.table].get("title"),
        tracking_uri=W.tracking_uri,
        ui_url=W.paper_ui_url(),
    script:
        "../workflow_scripts/paper_table.py"


for _paper in PAPERS:

    rule:
        name:
            f"table_{_paper}"
        input:
            W.paper_outputs(_paper),


rule paper_tables:
    input:
        [path for _paper in PAPERS for path in W.paper_outputs(_paper)],
