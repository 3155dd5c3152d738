# Torchvision datasets are fetched once, ahead of training, on the submitting node: cluster
# compute nodes usually have no internet. The marker file records a finished download.
rule download:
    output:
        touch(download_marker("{dataset}")),
    log:
        "results/logs/download/{dataset}.log",
    localrule: True
    conda:
        "../../envs/flooding.yaml"
    params:
        root=download_root,
    shell:
        "flooding download {wildcards.dataset} --root {params.root} > {log} 2>&1"
