"""Rule records: verify a dataset root and parse its labels into the records table."""

from fer.datasets.records import prepare_records
from fer.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821
    records = prepare_records(
        snakemake.params.family,  # noqa: F821
        snakemake.params.root,  # noqa: F821
        snakemake.output.records,  # noqa: F821
        options=snakemake.params.options,  # noqa: F821
        check_counts=snakemake.params.check_counts,  # noqa: F821
    )
    print(f"{len(records)} records")
