"""Rule table: one row per fold and seed plus the mean, as Markdown and CSV."""

from fer.logs import log_to_file
from fer.report import write_experiment_table

with log_to_file(snakemake.log[0]):  # noqa: F821
    write_experiment_table(
        snakemake.wildcards.experiment,  # noqa: F821
        snakemake.input,  # noqa: F821
        md_path=snakemake.output.md,  # noqa: F821
        csv_path=snakemake.output.csv,  # noqa: F821
    )
