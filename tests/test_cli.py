"""The `flooding` command: options, YAML configs, errors, datasets end to end, dispatch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from fixtures_formats import write_dataset

from flooding.cli import main, parse_train_args
from flooding.config import RunConfig

TINY = ["--train-size", "100", "--test-size", "50", "--mlp-depth", "1", "--mlp-width", "8"]
FAST = ["--epochs", "1", "--batch-size", "20", "--threads", "1", "--device", "cpu"]


def test_help_lists_every_field_with_its_default_and_imports_no_torch():
    code = (
        "import sys\n"
        "from flooding.cli import main\n"
        "assert main(['--help']) == 0\n"
        "try:\n"
        "    main(['train', '--help'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0\n"
        "assert 'torch' not in sys.modules, 'help imported torch'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for command in ("train", "download", "aggregate", "report"):
        assert f" {command} " in text
    for f in dataclasses.fields(RunConfig):
        option = "--" + f.name.replace("_", "-")
        assert option in text
    assert "--no-augment" in text and "(default: --no-augment)" in text
    assert "(default: 0.01)" in text and "svhn (default: spiral)" in text
    for option in ("--out", "--config", "--device", "--threads", "--data-root"):
        assert option in text
    for option in ("--checkpoint-every", "--no-bf16", "--no-channels-last", "--record-failure"):
        assert option in text


def test_yaml_config_with_command_line_overrides(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: gaussians\nflood_level: 0.1\nepochs: 7\nlabel_noise: 0.2\n")
    cfg, runtime = parse_train_args(
        ["--config", str(config), "--epochs", "3", "--no-mlp-batchnorm", "--out", "o"]
    )
    expected = RunConfig(
        dataset="gaussians", flood_level=0.1, epochs=3, label_noise=0.2, mlp_batchnorm=False
    )
    assert cfg == expected
    assert runtime.out == Path("o") and runtime.checkpoint_every == 10
    assert runtime.bf16 and runtime.channels_last and not runtime.record_failure


def test_runtime_options(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODING_DATA_ROOT", str(tmp_path / "shared"))
    argv = ["--out", "o", "--threads", "2", "--checkpoint-every", "0", "--no-bf16"]
    _, runtime = parse_train_args([*argv, "--no-channels-last", "--record-failure"])
    assert runtime.data_root == tmp_path / "shared"
    assert (runtime.threads, runtime.checkpoint_every) == (2, 0)
    assert not runtime.bf16 and not runtime.channels_last and runtime.record_failure
    _, runtime = parse_train_args(["--out", "o", "--data-root", "elsewhere"])
    assert runtime.data_root == Path("elsewhere")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--flood-levle", "0.1"], "option: invalid value '--flood-levle'; accepted: "),
        (["--flood-level", "-0.5"], "flood_level: invalid value -0.5; accepted: "),
        (["--dataset", "imagenet"], "dataset: invalid value 'imagenet'; accepted: cifar10"),
        (["--arch", "vgg-ish"], "arch: invalid value 'vgg-ish'; accepted: mlp"),
        (["--augment"], "augment: invalid value True"),
        (["--batch-size", "0"], "batch_size: invalid value 0; accepted: an integer >= 1"),
        (["--threads", "-1"], "threads: invalid value -1"),
        (["--checkpoint-every", "-2"], "checkpoint_every: invalid value -2"),
        (["--device", "tpu"], "device: invalid value 'tpu'"),
    ],
)
def test_errors_exit_2_with_one_message(tmp_path, capsys, argv, message):
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flooding train: error: ") and message in err
    assert not (tmp_path / "run").exists()


def test_an_unknown_option_lists_the_accepted_ones(tmp_path, capsys):
    main(["train", "--seeed", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "--seed" in err and "--flood-level" in err and "--no-augment" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flood_levl: 0.1\n", "flood_levl: invalid value 0.1; accepted: no such field"),
        ("- 1\n- 2\n", "accepted: a YAML mapping"),
        ("epochs: many\n", "epochs: invalid value 'many'; accepted: an integer"),
    ],
)
def test_bad_yaml_files_exit_2(tmp_path, capsys, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 2
    assert "accepted: an existing YAML file" in capsys.readouterr().err


def test_argparse_type_errors_exit_2(tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["train", "--lr", "fast", "--out", str(tmp_path)])
    assert caught.value.code == 2


def test_a_missing_dataset_says_how_to_download_it(tmp_path, capsys):
    argv = ["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--out", str(tmp_path)]
    assert main([*argv, "--device", "cpu"]) == 2
    assert f"flooding download mnist --root {tmp_path}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("dataset", "arch", "extra"),
    [
        ("spiral", "mlp", []),
        ("digits", "resnet_tiny", ["--augment"]),
        ("mnist", "mlp", ["--label-noise", "0.2"]),
        ("cifar10", "resnet_tiny", ["--augment"]),
    ],
)
def test_train_end_to_end(tmp_path, dataset, arch, extra):
    if dataset in ("mnist", "cifar10"):
        write_dataset(dataset, tmp_path / "data", n_train=100, n_test=50)
    out = tmp_path / "run"
    argv = ["train", "--dataset", dataset, "--arch", arch, *TINY, *FAST, *extra]
    assert main([*argv, "--data-root", str(tmp_path / "data"), "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["config"]["arch"] == arch
    frame = pd.read_parquet(out / "metrics.parquet")
    assert list(frame["epoch"]) == [0, 1] and (frame["dataset"] == dataset).all()


def test_download_dispatches_to_the_data_package(tmp_path, monkeypatch):
    import flooding.data

    calls = []
    monkeypatch.setattr(flooding.data, "download_dataset", lambda *a: calls.append(a))
    assert main(["download", "cifar10", "--root", str(tmp_path)]) == 0
    assert calls == [("cifar10", tmp_path)]


@pytest.mark.parametrize("command", ["aggregate", "report"])
def test_aggregate_and_report_dispatch_to_their_modules(monkeypatch, command):
    calls = []
    fake = types.ModuleType(f"flooding.{command}")
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, f"flooding.{command}", fake)
    assert main([command, "--x", "1"]) == 0
    assert calls == [["--x", "1"]]


def test_unknown_and_missing_commands_exit_2(capsys):
    assert main(["trian"]) == 2
    error = capsys.readouterr().err
    assert "command: invalid value 'trian'; accepted: train, train-pack, download" in error
    assert main([]) == 2
