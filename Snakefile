from snakemake.utils import min_version

min_version("9.0")


# The workflow's own settings, found next to this file: a run may work in a folder of its own (--directory)
# and give its changes as --configfile.
configfile: f"{workflow.basedir}/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/panels.smk"
include: "workflow/rules/bench.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.figures.output,
