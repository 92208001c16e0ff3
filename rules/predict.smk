# `snakemake predict`: fer predict over the files and folders named in config["predict"] (issue 10), with the
# faces stage's backend and face size; on the Slurm profile it is one GPU job like finetuning.


def _predict_section():
    if not config.get("predict"):
        raise ValueError(
            "the `predict` target needs a `predict` section in config.yaml, e.g.\n"
            "predict:\n  inputs: [my_videos/]\n  experiment: rafdb_vit_tiny_demo"
            "  # or checkpoint: path/to/model.pth"
        )
    return config["predict"]


def predict_checkpoint(wildcards):
    """A checkpoint file, or the finetuning run of an experiment (its metrics.json names the checkpoint)."""
    section = _predict_section()
    if section.get("experiment"):
        name = section["experiment"]
        W.experiment(name)  # a clear error for an unknown experiment
        fold, seed = section.get("fold", 1), section.get("seed", 0)
        return f"{RESULTS}/finetune/{name}/fold{fold}/seed{seed}/metrics.json"
    if section.get("checkpoint"):
        return section["checkpoint"]
    raise ValueError(
        "config `predict` needs `checkpoint` (a file) or `experiment` (a key of `experiments`)"
    )


rule predict:
    input:
        checkpoint=predict_checkpoint,
        inputs=lambda wildcards: _predict_section()["inputs"],
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
        inputs=lambda wildcards: _predict_section()["inputs"],
        model=lambda wildcards: _predict_section().get("model"),
        recipe=lambda wildcards: _predict_section().get("recipe"),
        classes=lambda wildcards: _predict_section().get("classes"),
        batch_size=lambda wildcards: _predict_section().get("batch_size", 32),
        face_backend=config["faces"]["backend"],
        face_size=config["faces"]["size"],
        device=config.get("device", "auto"),
    script:
        "../workflow_scripts/predict.py"
