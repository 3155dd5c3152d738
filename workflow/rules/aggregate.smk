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
    params:
        runs=run_dirs(),
    run:
        from flooding.aggregate import aggregate_runs

        configs, cores = grid_configs(), local_cores()
        # output: metrics, then summary
        account = aggregate_runs(params.runs, *output, configs, cores)
        Path(log[0]).write_text(account + "\n")
