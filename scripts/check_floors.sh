#!/usr/bin/env bash
# Install the lowest versions pyproject.toml allows into a throwaway virtual environment
# and run the fast tests there: do the dependency floors (">=") still hold?
#
#     bash scripts/check_floors.sh [VENV_DIR]     # default: a new temporary folder
#
# Every `name>=X` of the dependencies and of the dev extra is pinned to the lowest release
# on the index that satisfies it (`pip index versions`); the packages' own dependencies
# are resolved by pip as usual. Needs network access to the
# package index; the venv is left in place (its path is printed) for a look afterwards.
#
# FLOORS_OVERRIDE replaces pins, e.g. where a floor is too costly to fetch:
#     FLOORS_OVERRIDE="torch==2.13.0 torchvision==0.28.0" bash scripts/check_floors.sh
# (torch's floor from PyPI brings several GB of CUDA libraries.) The pins actually used
# are printed first.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${1:-$(mktemp -d -t flooding-floors.XXXXXX)}"
PINS="$VENV/floors.txt"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" - "$PINS" ${FLOORS_OVERRIDE:-} <<'PY'
import re
import subprocess
import sys
import tomllib

from pip._vendor.packaging.version import Version

pins_file, *overrides = sys.argv[1:]
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
requirements = project["dependencies"] + project["optional-dependencies"]["dev"]


def lowest_release(name, floor):
    """The lowest release on the index that the floor allows (1.0 may be first out as
    1.0.3, 0.0.2 as 0.0.2.post1)."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", name],
        capture_output=True, text=True, check=True,
    ).stdout
    line = next(line for line in listing.splitlines() if line.startswith("Available versions:"))
    versions = [Version(v.strip()) for v in line.split(":", 1)[1].split(",")]
    allowed = [v for v in versions if v >= Version(floor) and not v.is_prerelease]
    if not allowed:
        sys.exit(f"check_floors: no release of {name} satisfies >={floor}")
    return min(allowed)


pins = {}
for requirement in requirements:
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([^,;\s]+)", requirement)
    if match is None:
        sys.exit(f"check_floors: no plain `name>=version` floor: {requirement!r}")
    pins[match[1].lower()] = f"{match[1]}=={lowest_release(match[1], match[2])}"
for override in overrides:
    name = re.split(r"[<>=!~ ]", override, maxsplit=1)[0].lower()
    pins[name] = override
with open(pins_file, "w") as f:
    f.write("\n".join(pins.values()) + "\n")
PY
echo "[check_floors] venv: $VENV; pins:"
sed 's/^/  /' "$PINS"
"$VENV/bin/python" -m pip install -q -c "$PINS" -e '.[dev]'
echo "[check_floors] installed:"
"$VENV/bin/python" -m pip list --format=freeze | grep -iE \
    '^(torch|torchvision|timm|numpy|pandas|pyarrow|snakemake|snakemake-interface-[a-z-]+|submitit|scipy|matplotlib|seaborn|scikit-learn|jsonschema|pyyaml|mnist1d)==' \
    | sed 's/^/  /'
# The installed package, not the source tree on PYTHONPATH; the fast tests only. The
# suite turns warnings into errors; an old release meeting today's versions of its own
# dependencies warns of deprecations (matplotlib 3.8 under pyparsing 3.3, timm 1.0.3 under
# a newer torch), which is no failure of the floor, so deprecation warnings (and
# FutureWarning, torch's kind) are shown, not raised, here. The opt-in test of the
# SLURM tests runs a pytest of its own, without these settings: it is left out.
cd "$VENV" && OMP_NUM_THREADS=1 PATH="$VENV/bin:$PATH" PYTHONPATH= \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not slurm and not slow and not browser" \
    -W "default::DeprecationWarning" -W "default::FutureWarning" \
    -k "not test_slurm_tests_are_skipped_unless_asked_for" \
    --rootdir "$OLDPWD" -c "$OLDPWD/pyproject.toml" "$OLDPWD/tests"
