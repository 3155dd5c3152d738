# `snakemake calibrate` (with --profile slurm: on the cluster) times the shapes of the grid
# that neither a finished run nor an earlier calibration has measured, for `flooding plan`:
# one short job per shape, asking what that shape's runs ask for (GPUs included), then a
# local job gathers their timings into results/calibration.json. Not part of the default
# target. With nothing left to time it wants the cache alone, and so plans nothing.
rule calibrate:
    input:
        calibration_target,


# A few timed epochs of one shape's first run, the data cut down (flooding.calibrate).
# Its outcome, timed or why not, is gathered below and then removed.
rule calibrate_shape:
    input:
        data=calibration_data,
    output:
        temp("results/calibration/{shape}.json"),
    log:
        "results/calibration/{shape}.log",
    wildcard_constraints:
        shape=r"[^/]+",
    conda:
        "../../envs/flooding.yaml"
    threads: calibration_resource("threads")
    resources:
        mem_mb=calibration_resource("mem_mb"),
        runtime=calibration_resource("runtime"),
        gpu=calibration_resource("gpu"),
    params:
        options=calibration_options,
        device=calibration_device,
        data_root=data_root_option,
    shell:
        "flooding calibrate-shape {params.options} --device {params.device}"
        " {params.data_root} --threads {threads} --out {output} > {log} 2>&1"


# Run here, in-process: it also times a dry run of one job, the start-up of a job's own
# Snakemake. The cache is not an output, which Snakemake would delete before the job:
# the shapes calibrated earlier are kept in it.
rule gather_calibration:
    input:
        calibration_files,
    output:
        touch("results/calibration/gathered.done"),
    log:
        "results/logs/calibration.log",
    localrule: True
    run:
        gather_timings(input, log[0])
