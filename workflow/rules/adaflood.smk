# AdaFlood's auxiliary models (docs/adaflood.md): one job per setting and seed, one
# process training each fold's model of the setting's b = 0 run on the other folds, which
# scores its held-out fold, then gathering the folds' losses into the one file that the
# setting's adaflood runs read. The folder names what the models depend on but gamma;
# every other setting reaches the job through params.options, so changing epochs
# retrains them and changing gamma does not.
rule train_aux:
    input:
        data=aux_data_input,
    output:
        "results/aux/{aux}/losses.parquet",
    log:
        "results/aux/{aux}/train.log",
    conda:
        "../../envs/flooding.yaml"
    threads: aux_resource("threads")
    resources:
        mem_mb=aux_resource("mem_mb"),
        runtime=aux_resource("runtime"),
        gpu=aux_resource("gpu"),
    params:
        options=aux_options,
        data_root=data_root_option,
    shell:
        "flooding train-aux {params.options} {params.data_root}"
        " --out results/aux/{wildcards.aux} --threads {threads} > {log} 2>&1"


# Every setting's held-out losses in one table, for the report's figure of AdaFlood's
# levels (empty where the grid has no adaflood run).
rule aux_table:
    input:
        aux_gathered(),
    output:
        "results/aux_losses.parquet",
    log:
        "results/logs/aux_table.log",
    localrule: True
    run:
        from flooding.adaflood import aux_table

        Path(log[0]).write_text(aux_table(aux_configs(), Path(output[0])))
