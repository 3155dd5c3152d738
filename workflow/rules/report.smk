# The HTML report: the paper's four questions answered from the two tables.
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
    shell:
        "flooding report --metrics {input.metrics} --summary {input.summary} --out {output}"
        " --title {params.title:q} > {log} 2>&1"
