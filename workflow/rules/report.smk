# The HTML report: the paper's four questions answered from the two tables, what changed
# since the last report and, after a cluster run, what its jobs used. The summary it was
# built from is kept for the next one, as an output flagged `update`: Snakemake does not
# delete it before the job, which first compares with the kept summary, then replaces it
# (and restores it if the job fails).
rule report:
    input:
        metrics="results/metrics.parquet",
        summary="results/summary.parquet",
        search="results/search.parquet",
        aux="results/aux_losses.parquet",
        efficiency=efficiency_input,
    output:
        page=report(
            "reports/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
        previous=update("results/summary.previous.parquet"),
    log:
        "results/logs/report.log",
    localrule: True
    conda:
        "../../envs/flooding.yaml"
    params:
        title=report_title(),
        efficiency=efficiency_option,
    shell:
        "flooding report --metrics {input.metrics} --summary {input.summary}"
        " --search {input.search} --aux-losses {input.aux} --out {output.page} {params.title}"
        " {params.efficiency} --previous {output.previous} > {log} 2>&1"
