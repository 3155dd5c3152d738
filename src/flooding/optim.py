"""The optimiser, built and stepped without importing torch._dynamo.

torch.optim's public entry points (the constructor's add_param_group, zero_grad, step,
state_dict) import torch._dynamo on first use, only to mark themselves as not to be
compiled. That import costs about 1.7 s, several times the training of a small run. This
engine never compiles, so it calls the undecorated functions, which do the same
arithmetic (test_optim checks the parameters match torch's own step bit for bit). Adam's
inner loop imports torch._dynamo by itself: adam runs pay the import, sgd runs do not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from flooding.config import RunConfig

# co_qualname of the wrapper torch._compile._disable_dynamo puts around a function.
_DYNAMO_WRAPPER = "_disable_dynamo.<locals>.inner"


def _undecorated(function: Callable[..., Any]) -> Callable[..., Any]:
    while hasattr(function, "__wrapped__"):
        function = function.__wrapped__
    return function


def _skip_dynamo_wrappers(cls: type) -> None:
    """Make each dynamo-disabling wrapper of cls call its function directly.

    The wrapper caches its disabled function in the function's `__dynamo_disable`
    attribute and imports torch._dynamo only while the cache is empty; caching the plain
    function is what it would do when no compiler runs.
    """
    for klass in cls.__mro__:
        for value in vars(klass).values():
            code = getattr(value, "__code__", None)
            if getattr(code, "co_qualname", "") == _DYNAMO_WRAPPER:
                inner = value.__wrapped__
                if getattr(inner, "__dynamo_disable", None) is None:
                    inner.__dynamo_disable = inner


def build_optimizer(cfg: RunConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        _skip_dynamo_wrappers(torch.optim.SGD)
        # foreach, which torch picks by itself only on CUDA: on the CPU too it updates every
        # tensor in one call, with the same arithmetic per element (test_optim), where a
        # small model spends more on the per-tensor loop than on the update.
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True
        )
    _skip_dynamo_wrappers(torch.optim.Adam)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """optimizer.step() without its wrappers: no step hooks and no profiler record here,
    and no gradient tracking, which is what the wrapper sets for a non-differentiable
    optimiser."""
    _undecorated(type(optimizer).step)(optimizer)
