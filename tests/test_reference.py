"""The generated reference pages in docs/: up to date, and complete against real outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import test_train

from flooding.aggregate import VERSION_PREFIX, aggregate
from flooding.config import RunConfig
from flooding.metrics import RUN_FILE, RUN_RECORD_DOCS, write_run_json
from flooding.reference import main as docs_main
from flooding.reference import summary_columns
from flooding.runtime import Runtime
from flooding.train import run

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def test_committed_pages_are_what_the_code_generates() -> None:
    # On failure: run `flooding docs` and commit docs/.
    assert docs_main(["--check", "--out", str(ROOT / "docs"), "--schema", str(SCHEMA)]) == 0


def test_check_fails_on_a_stale_page_and_writing_fixes_it(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--schema", str(SCHEMA)]
    assert docs_main(["--check", *args]) == 1  # nothing written yet
    assert docs_main(args) == 0
    assert docs_main(["--check", *args]) == 0
    (tmp_path / "config.md").write_text("edited by hand\n")
    assert docs_main(["--check", *args]) == 1


def test_every_run_json_key_is_documented(tmp_path: Path) -> None:
    write_run_json(
        tmp_path,
        RunConfig(),
        status="completed",
        error=None,
        epochs_completed=3,
        bayes_error=None,
        device="cpu (1 thread)",
        started="2026-01-01T00:00:00+00:00",
    )
    record = json.loads((tmp_path / RUN_FILE).read_text())
    assert list(record) == list(RUN_RECORD_DOCS)


def test_every_summary_column_is_documented(tmp_path: Path) -> None:
    run(dataclasses.replace(test_train.TINY, epochs=1), Runtime(out=tmp_path, threads=1))
    _, summary = aggregate([str(tmp_path)])
    documented = [name for name, _ in summary_columns()]
    versions = [c for c in summary.columns if c.startswith(VERSION_PREFIX)]
    actual = [c for c in summary.columns if c not in versions]
    assert versions and actual == [c for c in documented if not c.startswith(VERSION_PREFIX)]
