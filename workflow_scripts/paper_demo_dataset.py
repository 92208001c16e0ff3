"""Rule paper_demo_dataset: a miniature dataset of a family only the paper tables use, in its real layout."""

from fer.io import write_json
from fer.logs import log_to_file
from fer.report_demo import generate_family

with log_to_file(snakemake.log[0]):  # noqa: F821
    root = generate_family(snakemake.params.family, snakemake.params.root)  # noqa: F821
    write_json(snakemake.output[0], {"family": snakemake.params.family, "root": str(root)})  # noqa: F821
