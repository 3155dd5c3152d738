#!/usr/bin/env bash
# Snakemake runs this once, inside the new environment, from the directory it was started
# in: the repository root, as in the README's commands. It adds the flooding package (and
# its `flooding` command) to the environment; the dependencies are already there.
set -euo pipefail
python -m pip install --no-deps --editable .
