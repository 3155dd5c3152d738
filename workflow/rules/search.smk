# The search for the flood level b (flooding.search, docs/search.md): one decision per
# round of each searched setting, made from the runs of the rounds before it. A
# checkpoint: once a decision is written Snakemake evaluates the workflow again, so the
# round's runs (ordinary runs and packs, through the rules of train.smk) appear then.
#
# The search itself (its plan, methods, seeds and b = 0 runs) is a file rendered here,
# which the decisions read in a `flooding` process of their own: a `run:` job would load
# this whole workflow again in a new Snakemake process, each round. A change of plan,
# methods or seeds rewrites the file and so decides again.
rule search_spec:
    input:
        # ancient: a checkout that touches the template must not decide every search again.
        ancient("workflow/templates/search.json.j2"),
    output:
        "results/search/{search}/search.json",
    log:
        "results/search/{search}/search.log",
    wildcard_constraints:
        search="[^/]+/[^/]+/[^/]+",
    localrule: True
    params:
        spec=search_spec,
    template_engine:
        "jinja2"


checkpoint search_round:
    input:
        search="results/search/{search}/search.json",
        runs=search_round_input,
    output:
        "results/search/{search}/round{round}.json",
    log:
        "results/search/{search}/round{round}.log",
    wildcard_constraints:
        search="[^/]+/[^/]+/[^/]+",
        round="[0-9]+",
    localrule: True
    conda:
        "../../envs/flooding.yaml"
    shell:
        "flooding search-round --search {input.search} --round {wildcards.round} > {log} 2>&1"


# A finished search: its rounds as a table, once its last decision is written (one rule
# a search, so that the searches' rounds run side by side).
rule search_rounds:
    input:
        search="results/search/{search}/search.json",
        decisions=search_outputs,
    output:
        "results/search/{search}/rounds.parquet",
    log:
        "results/search/{search}/rounds.log",
    wildcard_constraints:
        search="[^/]+/[^/]+/[^/]+",
    localrule: True
    conda:
        "../../envs/flooding.yaml"
    shell:
        "flooding search-rounds --search {input.search} --out {output} > {log} 2>&1"


# Every search's rounds as one table, for the report (empty when nothing is searched).
rule search_table:
    input:
        search_tables(),
    output:
        "results/search.parquet",
    log:
        "results/logs/search.log",
    localrule: True
    conda:
        "../../envs/flooding.yaml"
    shell:
        "flooding search-table {input} --out {output} > {log} 2>&1"
