"""Rule predict: `fer predict` over the configured inputs -> predictions.csv, annotated copies, timelines."""

import json
from pathlib import Path

from fer.logs import log_to_file
from fer.predict import predict

with log_to_file(snakemake.log[0]):  # noqa: F821
    checkpoint = Path(snakemake.input.checkpoint)  # noqa: F821
    if checkpoint.name == "metrics.json":  # an experiment's finetuning run: metrics.json names its checkpoint
        checkpoint = json.loads(checkpoint.read_text())["checkpoint"]
    result = predict(
        snakemake.params.inputs,  # noqa: F821
        checkpoint,
        out_dir=Path(snakemake.output.csv).parent,  # noqa: F821
        device=snakemake.params.device,  # noqa: F821
        model=snakemake.params.model,  # noqa: F821
        recipe=snakemake.params.recipe,  # noqa: F821
        classes=snakemake.params.classes,  # noqa: F821
        batch_size=snakemake.params.batch_size,  # noqa: F821
        face_backend=snakemake.params.face_backend,  # noqa: F821
        face_size=snakemake.params.face_size,  # noqa: F821
    )
    print(result.summary)
