# All runs into two tables, and the share of the cores' time that training used. Run
# in-process (not through a shell command) because a large grid's run list would exceed
# the kernel's limit on one command-line argument.
rule aggregate:
    input:
        run_outputs(),
    output:
        metrics="results/metrics.parquet",
        summary="results/summary.parquet",
    log:
        "results/logs/aggregate.log",
    localrule: True
    run:
        aggregate(output.metrics, output.summary, log[0])
