rule fold_annotations:
    input:
        records=f"{RESULTS}/data/{{dataset}}/records.csv",
        manifest=f"{RESULTS}/faces/{{dataset}}/manifest.csv",
    output:
        train=f"{RESULTS}/annotations/{{dataset}}/fold{{fold}}/train.csv",
        val=f"{RESULTS}/annotations/{{dataset}}/fold{{fold}}/val.csv",
        test=f"{RESULTS}/annotations/{{dataset}}/fold{{fold}}/test.csv",
        summary=f"{RESULTS}/annotations/{{dataset}}/fold{{fold}}/summary.json",
    log:
        f"{LOGS}/annotations/{{dataset}}.fold{{fold}}.log",
    benchmark:
        f"{LOGS}/annotations/{{dataset}}.fold{{fold}}.benchmark.tsv"
    conda:
        ENV
    params:
        family=lambda wildcards: W.dataset(wildcards.dataset)["family"],
    script:
        "../workflow_scripts/fold_annotations.py"


rule pretrain_list:
    input:
        records=f"{RESULTS}/data/{{dataset}}/records.csv",
        manifest=f"{RESULTS}/faces/{{dataset}}/manifest.csv",
    output:
        f"{RESULTS}/annotations/{{dataset}}/pretrain.csv",
    log:
        f"{LOGS}/annotations/{{dataset}}.pretrain.log",
    benchmark:
        f"{LOGS}/annotations/{{dataset}}.pretrain.benchmark.tsv"
    conda:
        ENV
    params:
        family=lambda wildcards: W.dataset(wildcards.dataset)["family"],
    script:
        "../workflow_scripts/pretrain_list.py"
