localrules:
    report,
    figures,


rule report:
    input:
        all_results(),
    output:
        comparison=report(
            multiext("results/tables/paper_comparison", ".md", ".csv", ".tex"),
            caption="../report/paper_comparison.rst",
            category="Paper vs reproduced",
        ),
        summary=report(
            multiext("results/tables/attack_summary", ".md", ".csv", ".tex"),
            caption="../report/attack_summary.rst",
            category="FGSM",
        ),
        experiments=report(
            expand(
                "results/tables/{table}.{ext}",
                table=EXPERIMENT_TABLES,
                ext=["md", "csv", "tex"],
            ),
            caption="../report/experiment_tables.rst",
            category="Tables",
        ),
    log:
        "logs/report/report.log",
    conda:
        "../envs/advbench.yaml"
    shell:
        "advbench report --results {input} --out-dir results/tables > {log} 2>&1"


rule figures:
    input:
        results=all_results(),
        data=data_path(DATASET),
        checkpoints=figure_checkpoints(),
    output:
        eps=report(
            "results/figures/fgsm_vs_eps.png",
            caption="../report/fgsm_vs_eps.rst",
            category="FGSM",
            labels={"figure": "error and confidence vs eps"},
        ),
        transfer=report(
            "results/figures/transfer_matrix.png",
            caption="../report/transfer_matrix.rst",
            category="Transfer",
            labels={"figure": "transfer matrix"},
        ),
        curves=report(
            "results/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            labels={"figure": "training curves"},
        ),
        weights=report(
            "results/figures/first_layer_weights.png",
            caption="../report/first_layer_weights.rst",
            category="Training",
            labels={"figure": "first-layer weights (Fig. 3)"},
        ),
        examples=report(
            "results/figures/adversarial_examples.png",
            caption="../report/adversarial_examples.rst",
            category="FGSM",
            labels={"figure": "adversarial examples"},
        ),
        pdfs=multiext(
            "results/figures/",
            "fgsm_vs_eps.pdf",
            "transfer_matrix.pdf",
            "training_curves.pdf",
            "first_layer_weights.pdf",
            "adversarial_examples.pdf",
        ),
    log:
        "logs/report/figures.log",
    conda:
        "../envs/advbench.yaml"
    params:
        job=figure_job_json(),
    shell:
        "advbench figures --results {input.results} --data {input.data} --job {params.job:q}"
        " --out-dir results/figures > {log} 2>&1"
