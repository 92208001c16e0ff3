rule finetune:
    input:
        unpack(fold_annotations),
        pretrained=pretrained_checkpoint,
    output:
        f"{RESULTS}/finetune/{{experiment}}/fold{{fold}}/seed{{seed}}/metrics.json",
    log:
        f"{LOGS}/finetune/{{experiment}}.fold{{fold}}.seed{{seed}}.log",
    benchmark:
        f"{LOGS}/finetune/{{experiment}}.fold{{fold}}.seed{{seed}}.benchmark.tsv"
    conda:
        ENV
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=lambda wildcards: 1 if config.get("device") == "cuda" else 0,
    params:
        cfg=lambda wildcards, input: W.finetune_cfg(
            wildcards.experiment,
            int(wildcards.fold),
            int(wildcards.seed),
            annotation_dir=str(Path(input.train).parent),
            pretrained=input.pretrained[0] if input.pretrained else None,
            output_dir=f"{RESULTS}/finetune/{wildcards.experiment}/fold{wildcards.fold}/seed{wildcards.seed}",
        ),
    script:
        "../workflow_scripts/finetune.py"
