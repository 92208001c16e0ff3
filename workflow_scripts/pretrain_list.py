"""Rule pretrain_list: every aligned face (or clip) of a dataset, dummy label 0, for self-supervised pretraining."""

from fer.data.annotations import write_pretrain_list
from fer.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821
    n = write_pretrain_list(snakemake.input.records, snakemake.input.manifest, snakemake.output[0])  # noqa: F821
    print(f"{n} samples")
