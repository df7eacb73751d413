rule attack:
    input:
        data=lambda w: data_path(w.dataset),
        checkpoints=lambda w: checkpoint_paths(w.dataset, w.model, w.regime),
    output:
        "results/metrics/attack/dataset={dataset}/model={model}/regime={regime}/fgsm.parquet",
    log:
        "logs/attack/{dataset}/{model}-{regime}.log",
    benchmark:
        "benchmarks/attack/{dataset}/{model}-{regime}.tsv"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        model=lambda w: model_json(w.model, w.regime),
        regime=lambda w: regime_json(w.regime),
        job=lambda w: attack_job_json(
            w.dataset, run_attack(config, run_id(w.model, w.regime))
        ),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "attack --data {input.data} --job {params.job:q}"
            " --model {params.model:q} --regime {params.regime:q} --seeds {params.seeds}"
            " --checkpoints {input.checkpoints} --out {output} --threads {threads} --log {log}"
        )
