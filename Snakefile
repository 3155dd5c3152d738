# The flooding benchmark: one training job per point of the grid in the config, then one
# table of every epoch, one row per run, and an HTML report answering the paper's questions.
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/adaflood.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/calibrate.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


# After a cluster run: the efficiency account of its jobs (none for local runs), also
# when some failed (what an out-of-memory job used is worth knowing).
onsuccess:
    efficiency_account()


onerror:
    efficiency_account()
