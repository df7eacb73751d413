"""Model records, tables and figures, and their place in `snakemake --report`: one category per
experiment of the paper, a figures and a tables subcategory in each, labels naming the figure or table and
the runs it shows; the lists are advbench.plan.report's."""


localrules:
    records,
    report,
    figures,


rule records:
    input:
        attack=PLAN.attack_outputs(),
        curves=PLAN.run_curves_outputs(),
    output:
        directory(PATHS["records"]),
    log:
        "logs/report/records.log",
    conda:
        "../envs/advbench.yaml"
    params:
        job=report_plan.records_job(PLAN),
    shell:
        "advbench records --attack {input.attack} --curves {input.curves} --job {params.job:q}"
        " --out-dir {output} > {log} 2>&1"


rule report:
    input:
        results=PLAN.all_results(),
        budgets=BUDGETS,
        records=rules.records.output,
    output:
        **table_outputs(),
    log:
        "logs/report/report.log",
    conda:
        "../envs/advbench.yaml"
    params:
        notes=PLAN.run_notes,
        budgets=f"--budgets {shlex.quote(BUDGETS[0])}" if BUDGETS else "",
        out_dir=lambda w, output: os.path.dirname(output[0]),
    shell:
        "advbench report --results {input.results} --out-dir {params.out_dir} "
        "--run-notes {params.notes} {params.budgets} --records {input.records} > {log} 2>&1"


rule figures:
    input:
        results=PLAN.all_results(),
        panels=list(report_plan.panel_paths().values()),
    output:
        **figure_outputs(),
    log:
        "logs/report/figures.log",
    conda:
        "../envs/advbench.yaml"
    params:
        job=report_plan.figures_job(PLAN),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    shell:
        "advbench figures --results {input.results} {input.panels} --job {params.job:q}"
        " --out-dir {params.out_dir} > {log} 2>&1"
