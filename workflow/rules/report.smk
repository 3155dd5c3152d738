# The HTML report: the paper's four questions answered from the two tables, and what
# changed since the last report. The summary it was built from is kept for the next one
# (not an output: Snakemake would delete it before the job runs).
rule report:
    input:
        metrics="results/metrics.parquet",
        summary="results/summary.parquet",
    output:
        report(
            "reports/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        "results/logs/report.log",
    localrule: True
    conda:
        "../../envs/flooding.yaml"
    params:
        title=config["title"],
        previous="results/summary.previous.parquet",
    shell:
        "flooding report --metrics {input.metrics} --summary {input.summary} --out {output}"
        " --title {params.title:q} --previous {params.previous} > {log} 2>&1"
