"""Rule paper_probe_split: FMAE-IAT's identity probing split (same subjects in train and test, by image)."""

from pathlib import Path

from fer.id_probe import write_probe_split
from fer.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821
    summary = write_probe_split(
        snakemake.input,  # noqa: F821
        Path(snakemake.output.summary).parent,  # noqa: F821
        **snakemake.params.options,  # noqa: F821
    )
    print({k: v for k, v in summary.items() if k != "subjects"})
