# `snakemake predict`: fer predict over the files and folders named in config["predict"] (issue 10), with the
# faces stage's backend and face size; on the Slurm profile it is one GPU job like finetuning.
from fer.predict.workflow import predict_checkpoint, predict_section


rule predict:
    input:
        checkpoint=lambda wildcards: predict_checkpoint(config, RESULTS, W),
        inputs=lambda wildcards: predict_section(config)["inputs"],
    output:
        csv=f"{RESULTS}/{config.get('predict', {}).get('out', 'predict')}/predictions.csv",
    log:
        f"{LOGS}/predict.log",
    benchmark:
        f"{LOGS}/predict.benchmark.tsv"
    conda:
        ENV
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=lambda wildcards: 1 if config.get("device") == "cuda" else 0,
    params:
        inputs=lambda wildcards: predict_section(config)["inputs"],
        model=lambda wildcards: predict_section(config).get("model"),
        recipe=lambda wildcards: predict_section(config).get("recipe"),
        classes=lambda wildcards: predict_section(config).get("classes"),
        batch_size=lambda wildcards: predict_section(config).get("batch_size", 32),
        face_backend=config["faces"]["backend"],
        face_size=config["faces"]["size"],
        device=config.get("device", "auto"),
    script:
        "../workflow_scripts/predict.py"
