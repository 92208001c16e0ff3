"""Rule paper_table: one seed table, ours | paper | delta, with plots and the MLflow view of its runs."""

from fer.logs import log_to_file
from fer.papers import write_paper_table
from fer.report import Cell

with log_to_file(snakemake.log[0]):  # noqa: F821
    write_paper_table(
        snakemake.wildcards.table,  # noqa: F821
        [Cell(**cell) for cell in snakemake.params.cells],  # noqa: F821
        md_path=snakemake.output.md,  # noqa: F821
        csv_path=snakemake.output.csv,  # noqa: F821
        tex_path=snakemake.output.tex,  # noqa: F821
        plot_dir=snakemake.output.plots,  # noqa: F821
        tracking_uri=snakemake.params.tracking_uri,  # noqa: F821
        ui_url=snakemake.params.ui_url,  # noqa: F821
        title=snakemake.params.title,  # noqa: F821
    )
