"""`flooding reproduce`: a finished run retrained along its recorded float path is
bit-identical, a member of a vectorised pack included (its stack is rebuilt)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from flooding.cli import main
from flooding.config import RunConfig
from flooding.pack import Member, run_pack
from flooding.reproduce import compare
from flooding.runtime import Runtime

BASE = RunConfig(
    dataset="gaussians",
    train_size=300,
    test_size=200,
    label_noise=0.2,
    mlp_depth=2,
    mlp_width=32,
    epochs=6,
    batch_size=50,
    sharpness_directions=2,
)
LEVELS = (0.0, 0.3, 0.5)


def pack(tmp_path) -> list[Member]:
    members = [
        Member(tmp_path / f"b{b}", RunConfig(**{**BASE.to_dict(), "flood_level": b}))
        for b in LEVELS
    ]
    members.append(
        Member(
            tmp_path / "iflood",
            RunConfig(**{**BASE.to_dict(), "flood_method": "iflood", "flood_level": 0.5}),
        )
    )
    assert run_pack(members, Runtime(out=tmp_path, threads=1), vectorise=True) == 0
    return members


def test_a_stacked_member_is_retrained_bit_for_bit(tmp_path):
    members = pack(tmp_path / "pack")
    target = members[1].out
    path = json.loads((target / "run.json").read_text())["float_path"]
    assert path["stack_position"] == 1 and path["threads"] == 1
    assert path["stack"] == [
        {"flood_method": "flood", "flood_level": 0.0},
        {"flood_method": "flood", "flood_level": 0.3},
        {"flood_method": "flood", "flood_level": 0.5},
        {"flood_method": "iflood", "flood_level": 0.5},
    ]
    again = tmp_path / "again"
    assert main(["reproduce", str(target), "--out", str(again)]) == 0
    original = pd.read_parquet(target / "metrics.parquet").drop(columns="epoch_seconds")
    retrained = pd.read_parquet(again / "metrics.parquet").drop(columns="epoch_seconds")
    pd.testing.assert_frame_equal(original, retrained, check_exact=True)
    assert sorted(p.name for p in (again / "stack").iterdir()) == [
        "0-flood0",
        "2-flood0.5",
        "3-iflood0.5",
    ]


def test_a_solo_run_is_a_stack_of_one(tmp_path):
    out = tmp_path / "solo"
    args = ["--dataset", "spiral", "--train-size", "200", "--test-size", "100", "--epochs", "3"]
    args += ["--mlp-width", "16", "--batch-size", "40", "--flood-level", "0.2"]
    assert main(["train", *args, "--out", str(out)]) == 0
    path = json.loads((out / "run.json").read_text())["float_path"]
    assert path["stack"] == [{"flood_method": "flood", "flood_level": 0.2}]
    assert main(["reproduce", str(out), "--out", str(tmp_path / "again")]) == 0


def test_compare_says_where_two_runs_part(tmp_path):
    rows = pd.DataFrame({"epoch": [0, 1, 2], "test_acc": [0.5, 0.6, 0.7], "epoch_seconds": 1.0})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rows.to_parquet(tmp_path / "a" / "metrics.parquet")
    rows.assign(epoch_seconds=2.0).to_parquet(tmp_path / "b" / "metrics.parquet")
    assert compare(tmp_path / "a", tmp_path / "b") is None  # timing is not a result
    rows.assign(test_acc=[0.5, 0.6, 0.71]).to_parquet(tmp_path / "b" / "metrics.parquet")
    assert compare(tmp_path / "a", tmp_path / "b") == "test_acc differs from epoch 2 on"


@pytest.mark.parametrize("record", [None, {"config": BASE.to_dict(), "float_path": None}])
def test_a_run_without_a_float_path_is_refused_in_one_line(tmp_path, capsys, record):
    if record is not None:
        (tmp_path / "run.json").write_text(json.dumps(record))
    assert main(["reproduce", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
