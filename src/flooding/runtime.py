"""How a run runs (device, threads, checkpoint cadence): nothing here changes its results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flooding.config import ConfigError, RunConfig, pack_axes
from flooding.methods import METHODS, method_fields


@dataclass(frozen=True)
class Runtime:
    """How to run (not what): none of this changes the results, so none is in the hash."""

    out: Path
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    data_root: Path = Path("data")
    checkpoint_every: int = 10  # epochs; 0 = only when a signal asks for one
    bf16: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True  # channels-last images and convolutions, CUDA only
    record_failure: bool = False  # on an unexpected error, write status "failed", exit 0
    # adaflood: the training split's held-out auxiliary losses (flooding.adaflood). Their
    # values follow from the run's config, which is why the path is no part of the hash.
    aux_losses: Path | None = None


def resolve_device(name: str) -> torch.device:
    accepted = "auto, cpu, cuda or cuda:N"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError("device", name, accepted) from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError("device", name, accepted)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "auto or cpu (no CUDA device is available)")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"


def set_threads(runtime: Runtime) -> None:
    if runtime.threads > 0:
        torch.set_num_threads(runtime.threads)


def stack_free_fields() -> tuple[str, ...]:
    """The fields in which the members of one stacked model may differ: the flood axes and
    the fields a method alone reads (none of them touches data, batches or weights)."""
    return pack_axes()["flood"]


def stack_fields(cfg: RunConfig) -> dict[str, Any]:
    """A member's stack-free fields, less those of methods other than its own (a flood
    run's record does not list AdaFlood's defaults)."""
    own = METHODS[cfg.flood_method].fields
    others = set(method_fields()) - set(own)
    return {name: getattr(cfg, name) for name in stack_free_fields() if name not in others}


def float_path(jobs: list[tuple[RunConfig, Runtime]], position: int) -> dict:
    """What decides the floating-point arithmetic of member `position` of runs trained
    together (run.json's `float_path`): a run is reproducible bit for bit along it only."""
    stack = [stack_fields(cfg) for cfg, _ in jobs]
    runtime = jobs[position][1]
    device = resolve_device(runtime.device)
    return {
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "bf16": runtime.bf16 and device.type == "cuda",
        "channels_last": runtime.channels_last and device.type == "cuda",
        "stack": stack,
        "stack_position": position,
    }


def stack_configs(cfg: RunConfig, path: dict[str, Any]) -> list[RunConfig]:
    """The configs of the stack a run trained in, from its config and its float path."""
    return [RunConfig.from_dict({**cfg.to_dict(), **member}) for member in path["stack"]]
