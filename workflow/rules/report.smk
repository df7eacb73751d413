"""Tables and figures, and their place in `snakemake --report`: one category per experiment of the paper,
a figures and a tables subcategory in each, labels naming the figure or table and the runs it shows.
"""


localrules:
    report,
    figures,


rule report:
    input:
        results=all_results(),
        budgets=BUDGETS,
    output:
        **table_outputs(),
    log:
        "logs/report/report.log",
    conda:
        "../envs/advbench.yaml"
    params:
        notes=RUN_NOTES,
        budgets=f"--budgets {shlex.quote(BUDGETS[0])}" if BUDGETS else "",
    shell:
        "advbench report --results {input.results} --out-dir results/tables "
        "--run-notes {params.notes} {params.budgets} > {log} 2>&1"


rule figures:
    input:
        results=all_results(),
        panels=list(PANEL_TABLES.values()),
    output:
        **figure_outputs(),
    log:
        "logs/report/figures.log",
    conda:
        "../envs/advbench.yaml"
    params:
        job=figures_job(),
    shell:
        "advbench figures --results {input.results} {input.panels} --job {params.job:q}"
        " --out-dir results/figures > {log} 2>&1"
