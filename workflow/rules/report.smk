"""Tables and figures, and their place in `snakemake --report`: one category per experiment of the paper,
a figures and a tables subcategory in each, labels naming the figure or table and the runs it shows.
"""


include: "report_common.smk"


localrules:
    report,
    figures,


rule report:
    input:
        all_results(),
    output:
        **table_outputs(),
    log:
        "logs/report/report.log",
    conda:
        "../envs/advbench.yaml"
    shell:
        "advbench report --results {input} --out-dir results/tables > {log} 2>&1"


rule figures:
    input:
        results=all_results(),
        data=data_path(DATASET),
        checkpoints=[run_checkpoints(dataset_of(r), r)[0] for r in report_figure_runs()],
    output:
        **figure_outputs(),
    log:
        "logs/report/figures.log",
    conda:
        "../envs/advbench.yaml"
    params:
        job=report_figure_job(),
    shell:
        "advbench figures --results {input.results} --data {input.data} --job {params.job:q}"
        " --out-dir results/figures > {log} 2>&1"
