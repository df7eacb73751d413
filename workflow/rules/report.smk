localrules:
    report,


rule report:
    input:
        attack=attack_outputs(),
        transfer=transfer_outputs(),
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
    log:
        "logs/report/report.log",
    conda:
        "../envs/advbench.yaml"
    shell:
        "advbench report --attack {input.attack} --transfer {input.transfer}"
        " --out-dir results/tables > {log} 2>&1"
