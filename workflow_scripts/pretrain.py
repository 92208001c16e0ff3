"""Rule pretrain: submit the pretraining job through submitit (local or Slurm), wait, keep its checkpoint."""

from fer.launch import launch_pretrain
from fer.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821
    launch_pretrain(snakemake.params.cfg, snakemake.params.launcher, snakemake.output[0])  # noqa: F821
