rule agreement:
    input:
        data=lambda w: PLAN.data(w.dataset),
        checkpoints=lambda w: PLAN.experiment_inputs(
            [config["agreement"]["source"], *config["agreement"]["observers"]]
        ),
    output:
        PATHS["agreement"],
    log:
        "logs/agreement/{dataset}/{source}.log",
    benchmark:
        "benchmarks/agreement/{dataset}/{source}.tsv"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda w: PLAN.experiment_job_json(
            w.dataset,
            PLAN.seed_runs([w.source, *config["agreement"]["observers"]]),
            source=w.source,
            eps=config["agreement"]["eps"],
        ),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "experiment agreement --data {input.data} --job {params.job:q} --seeds {params.seeds}"
            " --out agreement={output} --threads {threads} --log {log}"
        )


rule sweep:
    input:
        data=lambda w: PLAN.data(w.dataset),
        checkpoints=lambda w: PLAN.experiment_inputs([w.run]),
    output:
        PATHS["sweep"],
    log:
        "logs/sweep/{dataset}/{run}.log",
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=2000,
        runtime=10,
    params:
        job=lambda w: PLAN.experiment_job_json(
            w.dataset,
            PLAN.seed_runs([w.run]),
            **{k: config["sweep"][k] for k in ("label", "eps_max", "steps")},
        ),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "experiment sweep --data {input.data} --job {params.job:q} --seeds {params.seeds}"
            " --out sweep={output} --threads {threads} --log {log}"
        )


rule ensemble:
    input:
        data=lambda w: PLAN.data(w.dataset),
        checkpoints=lambda w: PLAN.run_members(w.run),
    output:
        PATHS["ensemble"],
    log:
        "logs/ensemble/{dataset}/{run}.log",
    benchmark:
        "benchmarks/ensemble/{dataset}/{run}.tsv"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda w: PLAN.experiment_job_json(
            w.dataset, PLAN.ensemble_runs(), eps=config["ensemble"]["eps"]
        ),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "experiment ensemble --data {input.data} --job {params.job:q} --seeds {params.seeds}"
            " --out ensemble={output} --threads {threads} --log {log}"
        )


rule rubbish:
    input:
        checkpoints=lambda w: PLAN.experiment_inputs(config["rubbish"]["runs"]),
    output:
        summary=PATHS["rubbish"],
        classes=PATHS["rubbish_classes"],
    log:
        "logs/rubbish/rubbish.log",
    benchmark:
        "benchmarks/rubbish/rubbish.tsv"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda w: PLAN.experiment_job_json(
            None,
            PLAN.seed_runs(config["rubbish"]["runs"]),
            **{k: config["rubbish"][k] for k in ("n", "n_by_dataset", "threshold")},
        ),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "experiment rubbish --job {params.job:q} --seeds {params.seeds}"
            " --out rubbish={output.summary} rubbish_classes={output.classes} --threads {threads} --log {log}"
        )


rule rotation:
    input:
        data=lambda w: PLAN.data(w.dataset),
        checkpoints=lambda w: PLAN.experiment_inputs(PLAN.rotation_runs()),
    output:
        PATHS["rotation"],
    log:
        "logs/rotation/{dataset}/rotation.log",
    benchmark:
        "benchmarks/rotation/{dataset}/rotation.tsv"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda w: PLAN.experiment_job_json(
            w.dataset,
            PLAN.seed_runs(PLAN.rotation_runs()),
            angles=config["rotation"]["angles"],
        ),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "experiment rotation --data {input.data} --job {params.job:q} --seeds {params.seeds}"
            " --out rotation={output} --threads {threads} --log {log}"
        )


rule saliency:
    input:
        data=lambda w: PLAN.data(w.dataset),
        checkpoints=lambda w: PLAN.experiment_inputs(PLAN.saliency_runs(w.dataset)),
    output:
        PATHS["saliency"],
    log:
        "logs/saliency/{dataset}/saliency.log",
    benchmark:
        "benchmarks/saliency/{dataset}/saliency.tsv"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda w: PLAN.experiment_job_json(
            w.dataset,
            PLAN.seed_runs(PLAN.saliency_runs(w.dataset)),
            **{k: config["saliency"][k] for k in ("n", "samples", "noise")},
        ),
        seeds=SEED_ARGS,
    run:
        run_advbench(
            "experiment saliency --data {input.data} --job {params.job:q} --seeds {params.seeds}"
            " --out saliency={output} --threads {threads} --log {log}"
        )
