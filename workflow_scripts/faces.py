"""Rule faces: detect, landmark and align every image / video frame; failures go to the manifest."""

from pathlib import Path

from fer.datasets.records import read_records
from fer.faces import align_records, summarize
from fer.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821
    manifest = align_records(
        read_records(snakemake.input[0]),  # noqa: F821
        Path(snakemake.output[0]).parent,  # noqa: F821
        backend=snakemake.params.backend,  # noqa: F821
        size=snakemake.params.size,  # noqa: F821
        workers=snakemake.threads,  # noqa: F821
        device=snakemake.params.device,  # noqa: F821
    )
    print(summarize(manifest))
