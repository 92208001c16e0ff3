"""Rule demo_dataset: generate a miniature dataset in its real on-disk layout (no download)."""

from fer.datasets.demo import generate_family
from fer.io import write_json
from fer.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821 (snakemake is injected by the script directive)
    root = generate_family(
        snakemake.params.family,  # noqa: F821
        snakemake.params.root,  # noqa: F821
        sizes=snakemake.params.sizes,  # noqa: F821
    )
    write_json(snakemake.output[0], {"family": snakemake.params.family, "root": str(root)})  # noqa: F821
