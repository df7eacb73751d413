rule transfer:
    input:
        data=lambda w: PLAN.data(w.dataset),
        source=lambda w: PLAN.run_checkpoints(w.source),
        target=lambda w: PLAN.run_checkpoints(w.target),
    output:
        PATHS["transfer"],
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
        source_model=lambda w: PLAN.run_model_json(w.source),
        source_regime=lambda w: PLAN.run_regime_json(w.source),
        target_model=lambda w: PLAN.run_model_json(w.target),
        target_regime=lambda w: PLAN.run_regime_json(w.target),
        job=lambda w: PLAN.transfer_job_json(w.dataset),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "transfer --data {input.data} --job {params.job:q} --seeds {params.seeds}"
            " --source-model {params.source_model:q} --source-regime {params.source_regime:q}"
            " --source-checkpoints {input.source}"
            " --target-model {params.target_model:q} --target-regime {params.target_regime:q}"
            " --target-checkpoints {input.target} --out {output} --threads {threads} --log {log}"
        )
