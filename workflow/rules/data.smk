rule prepare_data:
    output:
        PATHS["data"],
    log:
        "logs/prepare_data/{dataset}.log",
    conda:
        "../envs/advbench.yaml"
    params:
        source=config["data"]["source"],
        data_dir=lambda w: config["data"]["dir"] or "",
        options=lambda w: PLAN.prepare_options(w.dataset),
    shell:
        "advbench prepare --dataset {wildcards.dataset} --out {output} --source {params.source}"
        " --data-dir={params.data_dir:q} {params.options} > {log} 2>&1"
