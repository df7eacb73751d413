rule transfer:
    input:
        data=lambda w: data_path(w.dataset),
        source=lambda w: run_checkpoints(w.dataset, w.source),
        target=lambda w: run_checkpoints(w.dataset, w.target),
    output:
        "results/metrics/transfer/dataset={dataset}/source={source}/target={target}/fgsm.parquet",
    log:
        "logs/transfer/{dataset}/{source}--{target}.log",
    benchmark:
        "benchmarks/transfer/{dataset}/{source}--{target}.tsv"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        source_model=lambda w: model_json(*split_run_id(w.source)),
        source_regime=lambda w: regime_json(split_run_id(w.source)[1]),
        target_model=lambda w: model_json(*split_run_id(w.target)),
        target_regime=lambda w: regime_json(split_run_id(w.target)[1]),
        job=lambda w: attack_job_json(
            w.dataset, {**config["attack"], "eps": config["transfer"]["eps"]}
        ),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "transfer --data {input.data} --job {params.job:q} --seeds {params.seeds}"
            " --source-model {params.source_model:q} --source-regime {params.source_regime:q}"
            " --source-checkpoints {input.source}"
            " --target-model {params.target_model:q} --target-regime {params.target_regime:q}"
            " --target-checkpoints {input.target} --out {output} --threads {threads} --log {log}"
        )
