rule attack:
    input:
        data=lambda w: PLAN.data(w.dataset),
        checkpoints=lambda w: PLAN.checkpoints(w.dataset, w.model, w.regime),
    output:
        PATHS["attack"],
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
        model=lambda w: PLAN.model_json(w.model, w.regime),
        regime=lambda w: PLAN.regime_json(w.regime),
        job=lambda w: PLAN.run_attack_json(w.dataset, w.model, w.regime),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "attack --data {input.data} --job {params.job:q}"
            " --model {params.model:q} --regime {params.regime:q} --seeds {params.seeds}"
            " --checkpoints {input.checkpoints} --out {output} --threads {threads} --log {log}"
        )
