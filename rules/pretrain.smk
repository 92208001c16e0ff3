# Pretraining runs as a submitit job (local executor or Slurm, config `launcher`); this rule waits for it.
if config["launcher"]["executor"] == "slurm":

    localrules:
        pretrain,


rule pretrain:
    input:
        pretrain_lists,
    output:
        f"{RESULTS}/pretrain/{{name}}/pretrained.pth",
    log:
        f"{LOGS}/pretrain/{{name}}.log",
    benchmark:
        f"{LOGS}/pretrain/{{name}}.benchmark.tsv"
    conda:
        ENV
    resources:
        mem_mb=8000,
        runtime=config["launcher"].get("timeout_min", 60),
    params:
        cfg=lambda wildcards, input: W.pretrain_cfg(
            wildcards.name, input, f"{RESULTS}/pretrain/{wildcards.name}"
        ),
        launcher=config["launcher"],
    script:
        "../workflow_scripts/pretrain.py"
