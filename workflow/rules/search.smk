# The search for the flood level b (flooding.search, docs/search.md): one decision per
# round of each searched setting, made from the runs of the rounds before it. A
# checkpoint: once a decision is written Snakemake evaluates the workflow again, so the
# round's runs (ordinary runs and packs, through the rules of train.smk) appear then.
checkpoint search_round:
    input:
        search_round_input,
    output:
        "results/search/{search}/round{round}.json",
    log:
        "results/search/{search}/round{round}.log",
    wildcard_constraints:
        search="[^/]+/[^/]+/[^/]+",
        round="[0-9]+",
    localrule: True
    params:
        settings=search_settings,
    run:
        decide(wildcards.search, int(wildcards.round), output[0], log[0])


# A finished search: its rounds as a table, once its last decision is written (one rule
# a search, so that the searches' rounds run side by side).
rule search_rounds:
    input:
        search_outputs,
    output:
        "results/search/{search}/rounds.parquet",
    log:
        "results/search/{search}/rounds.log",
    wildcard_constraints:
        search="[^/]+/[^/]+/[^/]+",
    localrule: True
    run:
        search_rounds(wildcards.search, output[0], log[0])


# Every search's rounds as one table, for the report (empty when nothing is searched).
rule search_table:
    input:
        search_tables(),
    output:
        "results/search.parquet",
    log:
        "results/logs/search.log",
    localrule: True
    run:
        search_table(output[0], log[0])
