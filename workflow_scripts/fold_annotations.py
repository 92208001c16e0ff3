"""Rule fold_annotations: train / val / test annotation files of one fold, plus a summary of counts."""

from fer.data.annotations import write_fold_annotations
from fer.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821
    summary = write_fold_annotations(
        family=snakemake.params.family,  # noqa: F821
        records_csv=snakemake.input.records,  # noqa: F821
        manifest_csv=snakemake.input.manifest,  # noqa: F821
        fold=int(snakemake.wildcards.fold),  # noqa: F821
        out_dir=snakemake.output.summary.rsplit("/", 1)[0],  # noqa: F821
    )
    print(summary)
