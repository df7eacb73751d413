# advbench bench: speed against torchattacks, ART and the physical floors (docs/performance.md).
# Not part of `rule all`: run `snakemake --profile workflow/profiles/default bench` after a default run,
# whose log and benchmarks/ it reads. It claims every core so that nothing else runs while it measures.


rule bench:
    input:
        data=PLAN.data(DATASET),
    output:
        parquet="results/bench/bench.parquet",
        table="results/bench/bench.md",
        summary="results/bench/summary.csv",
        summary_table="results/bench/summary.md",
    log:
        "logs/bench/bench.log",
    benchmark:
        "benchmarks/bench/bench.tsv"
    conda:
        "../envs/bench.yaml"
    threads: workflow.cores
    resources:
        ray=RAY_SLOT,
        mem_mb=6000,
        runtime=30,
    shell:
        "advbench bench --data {input.data} --out-dir results/bench --workflow-dir . > {log} 2>&1"
