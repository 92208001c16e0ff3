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
