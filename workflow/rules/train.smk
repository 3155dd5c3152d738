# One job per run. Every RunConfig value reaches the job through params.options, so a
# changed setting reruns exactly the runs it touches; threads, device and the data root
# are runtime settings and are not rerun triggers.
rule train:
    input:
        data=train_input,
        aux=train_aux_input,
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
        aux=aux_option,
    shell:
        "flooding train {params.options} {params.data_root} {params.aux}"
        " --out results/runs/{wildcards.run}"
        " --threads {threads} --record-failure > {log} 2>&1"


# A pack's spec (every member's folder and config), rendered here in-process rather than
# echoed into the shell command, so that a failed pack job prints a short command.
rule pack_spec:
    input:
        # ancient: a checkout that touches the template must not make every pack a new job.
        ancient("workflow/templates/pack_spec.json.j2"),
    output:
        "results/packs/{pack}.json",
    log:
        "results/packs/{pack}.spec.log",
    localrule: True
    params:
        spec=pack_spec,
    template_engine:
        "jinja2"


# One job per pack: several runs trained by one process (see the config's `pack`); those
# that differ only in flood level or method train as one stacked model unless the
# config's `pack: vectorise` is false (docs/packs.md).
# The pack's name ends in a digest of its members' folders and configs, so a changed
# member set is a new job; the engine skips members already finished with the same
# config, so only new or changed runs train. The output is a marker, not the members'
# files: Snakemake deletes a job's existing outputs before running it, which would throw
# away finished members.
rule train_pack:
    input:
        spec="results/packs/{pack}.json",
        data=pack_input,
        aux=pack_aux_input,
    output:
        touch("results/packs/{pack}.done"),
    log:
        "results/packs/{pack}.log",
    conda:
        "../../envs/flooding.yaml"
    threads: pack_resource("threads")
    resources:
        mem_mb=pack_resource("mem_mb"),
        runtime=pack_resource("runtime"),
        gpu=pack_resource("gpu"),
    params:
        data_root=data_root_option,
        vectorise=pack_vectorise_option,
    shell:
        "flooding train-pack --spec {input.spec} {params.data_root} {params.vectorise}"
        " --threads {threads}"
        " --record-failure > {log} 2>&1"
