rule demo_dataset:
    output:
        f"{RESULTS}/data/{{dataset}}/demo.json",
    params:
        family=lambda wildcards: W.dataset(wildcards.dataset)["family"],
        root=lambda wildcards: str(W.dataset_root(wildcards.dataset)),
    log:
        f"{LOGS}/data/{{dataset}}.demo.log",
    benchmark:
        f"{LOGS}/data/{{dataset}}.demo.benchmark.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/demo_dataset.py"


rule records:
    input:
        demo_flag,
    output:
        f"{RESULTS}/data/{{dataset}}/records.csv",
    params:
        family=lambda wildcards: W.dataset(wildcards.dataset)["family"],
        root=lambda wildcards: str(W.dataset_root(wildcards.dataset)),
    log:
        f"{LOGS}/data/{{dataset}}.records.log",
    benchmark:
        f"{LOGS}/data/{{dataset}}.records.benchmark.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/records.py"
