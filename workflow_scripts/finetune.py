"""Rule finetune: finetune one fold and seed from the pretrained checkpoint, evaluate, write metrics.json."""

from fer.engine import finetune
from fer.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821
    metrics = finetune(snakemake.params.cfg)  # noqa: F821
    print({k: v for k, v in metrics.items() if k != "confusion"})
