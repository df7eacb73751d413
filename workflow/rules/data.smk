rule prepare_data:
    output:
        "resources/data/{dataset}.npz",
    log:
        "logs/prepare_data/{dataset}.log",
    conda:
        "../envs/advbench.yaml"
    params:
        source=config["data"]["source"],
        data_dir=lambda w: config["data"]["dir"] or "",
    shell:
        "advbench prepare --out {output} --source {params.source} --data-dir={params.data_dir:q} > {log} 2>&1"
