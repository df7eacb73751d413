rule agreement:
    input:
        data=data_path(DATASET),
        checkpoints=lambda w: experiment_inputs(
            [config["agreement"]["source"], *config["agreement"]["observers"]]
        ),
    output:
        "results/metrics/agreement/dataset={dataset}/source={source}/agreement.parquet",
    log:
        "logs/agreement/{dataset}/{source}.log",
    benchmark:
        "benchmarks/agreement/{dataset}/{source}.tsv"
    conda:
        "../envs/advbench.yaml"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda w: experiment_job_json(
            "agreement",
            seed_runs([w.source, *config["agreement"]["observers"]]),
            source=w.source,
            eps=config["agreement"]["eps"],
        ),
        seeds=SEED_ARGS,
    shell:
        "advbench experiment agreement --data {input.data} --job {params.job:q} --seeds {params.seeds}"
        " --out agreement={output} --threads {threads} > {log} 2>&1"


rule sweep:
    input:
        data=data_path(DATASET),
        checkpoints=lambda w: experiment_inputs([w.run]),
    output:
        "results/metrics/sweep/dataset={dataset}/run={run}/sweep.parquet",
    log:
        "logs/sweep/{dataset}/{run}.log",
    conda:
        "../envs/advbench.yaml"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=2000,
        runtime=10,
    params:
        job=lambda w: experiment_job_json(
            "sweep",
            seed_runs([w.run]),
            **{k: config["sweep"][k] for k in ("label", "eps_max", "steps")},
        ),
        seeds=SEED_ARGS,
    shell:
        "advbench experiment sweep --data {input.data} --job {params.job:q} --seeds {params.seeds}"
        " --out sweep={output} --threads {threads} > {log} 2>&1"


rule ensemble:
    input:
        data=data_path(DATASET),
        checkpoints=lambda w: member_paths(DATASET, *split_run_id(w.run)),
    output:
        "results/metrics/ensemble/dataset={dataset}/run={run}/ensemble.parquet",
    log:
        "logs/ensemble/{dataset}/{run}.log",
    benchmark:
        "benchmarks/ensemble/{dataset}/{run}.tsv"
    conda:
        "../envs/advbench.yaml"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda w: experiment_job_json(
            "ensemble", ensemble_runs(), eps=config["ensemble"]["eps"]
        ),
        seeds=SEED_ARGS,
    shell:
        "advbench experiment ensemble --data {input.data} --job {params.job:q} --seeds {params.seeds}"
        " --out ensemble={output} --threads {threads} > {log} 2>&1"


rule rubbish:
    input:
        data=data_path(DATASET),
        checkpoints=lambda w: experiment_inputs(config["rubbish"]["runs"]),
    output:
        summary="results/metrics/rubbish/dataset={dataset}/rubbish.parquet",
        classes="results/metrics/rubbish/dataset={dataset}/rubbish_classes.parquet",
    log:
        "logs/rubbish/{dataset}.log",
    benchmark:
        "benchmarks/rubbish/{dataset}.tsv"
    conda:
        "../envs/advbench.yaml"
    threads: RAY_THREADS
    resources:
        ray=RAY_SLOT,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda w: experiment_job_json(
            "rubbish",
            seed_runs(config["rubbish"]["runs"]),
            n=config["rubbish"]["n"],
            threshold=config["rubbish"]["threshold"],
        ),
        seeds=SEED_ARGS,
    shell:
        "advbench experiment rubbish --data {input.data} --job {params.job:q} --seeds {params.seeds}"
        " --out rubbish={output.summary} rubbish_classes={output.classes} --threads {threads} > {log} 2>&1"
