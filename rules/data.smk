rule demo_dataset:
    output:
        f"{RESULTS}/data/{{dataset}}/demo.json",
    log:
        f"{LOGS}/data/{{dataset}}.demo.log",
    benchmark:
        f"{LOGS}/data/{{dataset}}.demo.benchmark.tsv"
    conda:
        ENV
    params:
        family=lambda wildcards: W.dataset(wildcards.dataset)["family"],
        root=lambda wildcards: str(W.dataset_root(wildcards.dataset)),
        sizes=lambda wildcards: W.dataset(wildcards.dataset).get("demo_sizes", {}),
    script:
        "../workflow_scripts/demo_dataset.py"


rule records:
    input:
        demo_flag,
    output:
        records=f"{RESULTS}/data/{{dataset}}/records.csv",
        dropped=f"{RESULTS}/data/{{dataset}}/dropped.csv",
    log:
        f"{LOGS}/data/{{dataset}}.records.log",
    benchmark:
        f"{LOGS}/data/{{dataset}}.records.benchmark.tsv"
    conda:
        ENV
    params:
        family=lambda wildcards: W.dataset(wildcards.dataset)["family"],
        root=lambda wildcards: str(W.dataset_root(wildcards.dataset)),
        options=lambda wildcards: W.dataset(wildcards.dataset).get("options", {}),
        check_counts=lambda wildcards: W.dataset(wildcards.dataset).get(
            "check_counts", True
        )
        and not W.dataset(wildcards.dataset).get("demo", False),
    script:
        "../workflow_scripts/records.py"
