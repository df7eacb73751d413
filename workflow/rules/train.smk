rule train:
    input:
        data=lambda w: PLAN.data(w.dataset),
        sources=lambda w: PLAN.train_sources(w.dataset, w.model, w.regime),
    output:
        checkpoints=expand(PATHS["checkpoint"], seed=SEEDS, allow_missing=True),
        curves=PATHS["curves"],
    log:
        "logs/train/{dataset}/{model}-{regime}.log",
    benchmark:
        "benchmarks/train/{dataset}/{model}-{regime}.tsv"
    priority: lambda w: PLAN.priority(w.model, w.regime)
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=120,
    params:
        model=lambda w: PLAN.model_json(w.model, w.regime),
        regime=lambda w: PLAN.regime_json(w.regime),
        job=lambda w: PLAN.train_job_json(w.dataset),
        seeds=SEED_ARGS,
        members=1,
        priority=lambda w: PLAN.priority(w.model, w.regime),
    run:
        run_advbench(
            "train --data {input.data} --job {params.job:q} --members {params.members}"
            " --model {params.model:q} --regime {params.regime:q} --seeds {params.seeds}"
            " --checkpoints {output.checkpoints} --curves {output.curves} --sources {input.sources}"
            " --threads {threads} --priority {params.priority} --log {log}"
        )


# an ensemble run (members > 1): the same job, one checkpoint per seed and member
use rule train as train_members with:
    output:
        checkpoints=expand(
            PATHS["member"],
            seed=SEEDS,
            member=range(N_MEMBERS),
            allow_missing=True,
        ),
        curves=PATHS["member_curves"],
    log:
        "logs/train/{dataset}/{model}-{regime}-members.log",
    benchmark:
        "benchmarks/train/{dataset}/{model}-{regime}-members.tsv"
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=240,
    params:
        members=N_MEMBERS,
