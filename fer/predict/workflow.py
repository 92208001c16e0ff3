"""What rules/predict.smk needs from config.yaml's `predict` section, without importing torch at parse time.

Keys: inputs (files or folders), and either checkpoint (a file, ours or a released one) or experiment (+ fold,
seed: that finetuning run's checkpoint); model, recipe, classes for released checkpoints; batch_size; out (the
folder under results_dir).
"""

from __future__ import annotations

EXAMPLE = (
    "predict:\n  inputs: [my_videos/]\n  experiment: rafdb_vit_tiny_demo  # or checkpoint: path/to/model.pth"
)


def predict_section(config: dict) -> dict:
    """config["predict"], or a ValueError that shows what to add."""
    section = config.get("predict")
    if not section:
        raise ValueError(f"the `predict` target needs a `predict` section in config.yaml, e.g.\n{EXAMPLE}")
    if not section.get("inputs"):
        raise ValueError(f"config `predict` needs `inputs` (image / video files or folders), e.g.\n{EXAMPLE}")
    return section


def predict_checkpoint(config: dict, results: str, workflow_config) -> str:
    """The checkpoint file, or the finetuning run of an experiment: its metrics.json (it names the checkpoint,
    and as the finetune rule's output it puts that rule upstream in the DAG)."""
    section = predict_section(config)
    if section.get("experiment"):
        name = section["experiment"]
        workflow_config.experiment(name)  # a clear error for an unknown experiment
        fold, seed = section.get("fold", 1), section.get("seed", 0)
        return f"{results}/finetune/{name}/fold{fold}/seed{seed}/metrics.json"
    if section.get("checkpoint"):
        return str(section["checkpoint"])
    raise ValueError("config `predict` needs `checkpoint` (a file) or `experiment` (a key of `experiments`)")
