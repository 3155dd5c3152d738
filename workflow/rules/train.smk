# One job per run. Every RunConfig value reaches the job through params.options, so a
# changed setting reruns exactly the runs it touches; threads, device and the data root
# are runtime settings and are not rerun triggers.
rule train:
    input:
        train_input,
    output:
        metrics="results/runs/{run}/metrics.parquet",
        record="results/runs/{run}/run.json",
    log:
        "results/runs/{run}/train.log",
    conda:
        "../../envs/flooding.yaml"
    threads: train_resource("threads")
    resources:
        mem_mb=train_resource("mem_mb"),
        runtime=train_resource("runtime"),
        gpu=train_resource("gpu"),
    params:
        options=train_options,
        data_root=data_root_option,
    shell:
        "flooding train {params.options} {params.data_root} --out results/runs/{wildcards.run}"
        " --threads {threads} --record-failure > {log} 2>&1"
