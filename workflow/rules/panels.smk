"""The image figures' data: one light job reads the first seed's checkpoint of every run an image figure shows
(and the test sets of the FGSM examples) and writes it as Parquet under results/panels/ (advbench/jobs/panels.py),
so that the figures rule reads Parquet only. Helpers in report_common.smk."""


localrules:
    panels,


rule panels:
    input:
        checkpoints=[run_checkpoints(dataset_of(r), r)[0] for r in panel_runs()],
        data=[data_path(ds) for ds in panel_datasets()],
    output:
        **PANEL_TABLES,
    log:
        "logs/panels/panels.log",
    conda:
        "../envs/advbench.yaml"
    params:
        job=panels_job(),
    shell:
        "advbench panels --job {params.job:q} --out-dir results/panels > {log} 2>&1"
