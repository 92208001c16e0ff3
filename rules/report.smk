rule table:
    input:
        lambda wildcards: W.finetune_metrics(wildcards.experiment),
    output:
        md=f"{RESULTS}/tables/{{experiment}}.md",
        csv=f"{RESULTS}/tables/{{experiment}}.csv",
    params:
        dataset=lambda wildcards: W.experiment(wildcards.experiment)["dataset"],
    log:
        f"{LOGS}/report/{{experiment}}.log",
    benchmark:
        f"{LOGS}/report/{{experiment}}.benchmark.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/table.py"
