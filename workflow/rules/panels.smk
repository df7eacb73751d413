"""The image figures' data: one light job reads the first seed's checkpoint of every run an image figure shows
(and the test sets of the FGSM examples) and writes it as Parquet under results/panels/ (advbench/jobs/panels.py),
so that the figures rule reads Parquet only."""


localrules:
    panels,


rule panels:
    input:
        checkpoints=[PLAN.run_checkpoints(r)[0] for r in report_plan.panel_runs(PLAN)],
        data=[PLAN.data(ds) for ds in report_plan.panel_datasets(PLAN)],
    output:
        **report_plan.panel_paths(),
    log:
        "logs/panels/panels.log",
    conda:
        "../envs/advbench.yaml"
    params:
        job=report_plan.panels_job(PLAN),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    shell:
        "advbench panels --job {params.job:q} --out-dir {params.out_dir} > {log} 2>&1"
