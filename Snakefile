# The fer workflow: data -> faces -> annotations -> pretrain -> finetune -> report.
# Every rule is thin: its work is one function of the `fer` package, called from workflow_scripts/.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "rules/config.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/faces.smk"
include: "rules/annotations.smk"
include: "rules/pretrain.smk"
include: "rules/finetune.smk"
include: "rules/predict.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        W.all_metrics(),
        W.tables(),
