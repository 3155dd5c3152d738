"""The optimiser steps as torch's own, without importing torch._dynamo (SGD)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from flooding.config import RunConfig
from flooding.optim import build_optimizer, optimizer_step


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_the_step_equals_torchs_step(name: str) -> None:
    cfg = RunConfig(optimizer=name, lr=0.1, momentum=0.9, weight_decay=1e-3)
    results = []
    for step in (optimizer_step, lambda optimizer: optimizer.step()):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        optimizer = build_optimizer(cfg, model.parameters())
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            model(torch.randn(5, 3)).square().sum().backward()
            step(optimizer)
        results.append([p.detach().clone() for p in model.parameters()])
    for ours, theirs in zip(*results, strict=True):
        assert torch.equal(ours, theirs)


def test_sgd_updates_all_tensors_at_once_bit_for_bit_as_one_by_one() -> None:
    """The engine's SGD steps every tensor in one foreach call, also on the CPU, where
    torch's default is a loop over the tensors: the parameters stay bit-identical."""
    cfg = RunConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3)
    results = []
    for build in (
        lambda params: build_optimizer(cfg, params),
        lambda params: torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=False
        ),
    ):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        optimizer = build(model.parameters())
        for _ in range(20):
            optimizer.zero_grad(set_to_none=True)
            model(torch.randn(5, 3)).square().sum().backward()
            optimizer_step(optimizer)
        results.append(([p.detach().clone() for p in model.parameters()], optimizer))
    (ours, optimizer), (theirs, _) = results
    assert optimizer.param_groups[0]["foreach"] is True
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_an_sgd_run_does_not_import_dynamo(tmp_path) -> None:
    code = (
        "import sys; from pathlib import Path; from flooding.config import RunConfig\n"
        "from flooding.runtime import Runtime\nfrom flooding.train import run\n"
        "cfg = RunConfig(train_size=100, test_size=50, mlp_width=8, epochs=2, batch_size=20)\n"
        "assert run(cfg, Runtime(out=Path(sys.argv[1]), device='cpu', threads=1, "
        "checkpoint_every=1)) == 0\n"
        "print('torch._dynamo' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]
