# All runs into two tables. Run in-process (not through a shell command) because a large
# grid's run list would exceed the kernel's limit on one command-line argument.
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

        # The grid's configs name a run whose run.json is damaged in the summary.
        configs = {
            f"results/runs/{run.path}": run.config.to_dict() for run in GRID.runs
        }
        Path(log[0]).write_text(
            aggregate_runs(params.runs, output.metrics, output.summary, configs)
            + "\n"
        )
