"""What a run reads (`Setup`) and what it changes while training (`TrainState`, which is
also its checkpoint), with the schedule and batching both depend on."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from flooding.checkpoint import save_checkpoint, to_cpu
from flooding.config import RunConfig, config_hash
from flooding.data.sampling import generator, stream_seed
from flooding.metrics import now_iso, write_metrics
from flooding.models import build_model
from flooding.optim import build_optimizer
from flooding.runtime import Runtime

if TYPE_CHECKING:
    from flooding.data import DataBundle


def learning_rate(cfg: RunConfig, epoch: int) -> float:
    """Learning rate during `epoch` (1-based)."""
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / cfg.epochs))
    if cfg.lr_schedule == "step":
        milestones = (round(0.5 * cfg.epochs), round(0.75 * cfg.epochs))
        return cfg.lr * 0.1 ** sum(epoch > m for m in milestones)
    return cfg.lr


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of each mini-batch of an epoch, the last one possibly smaller."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if batch_size > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()  # batch norm cannot normalise a single sample in training mode
    return bounds


@dataclass(frozen=True, eq=False)
class Setup:
    """What a run reads and never changes: config, data in the training layout, device."""

    cfg: RunConfig
    runtime: Runtime
    data: DataBundle
    device: torch.device
    x: dict[str, torch.Tensor]  # inputs per split, in the memory format trained on
    memory_format: torch.memory_format
    bounds: list[tuple[int, int]]
    bf16: bool
    # adaflood: each training sample's held-out auxiliary loss, [n_train]; else None.
    aux_loss: torch.Tensor | None = None

    @classmethod
    def of(cls, cfg: RunConfig, runtime: Runtime, data: DataBundle, device: torch.device) -> Setup:
        cuda = device.type == "cuda"
        images = len(data.input_shape) == 3
        layout = torch.contiguous_format
        if runtime.channels_last and cuda and images:
            layout = torch.channels_last
        x = {
            split: getattr(data, f"x_{split}").contiguous(memory_format=layout)
            for split in ("train", "val", "test")
        }
        bounds = batch_bounds(len(data.y_train), cfg.batch_size)
        return cls(cfg, runtime, data, device, x, layout, bounds, runtime.bf16 and cuda)

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """bf16 autocast where the run uses it; otherwise no context at all, which spares
        each batch entering and leaving a disabled one."""
        if self.bf16:
            return torch.autocast(self.device.type, torch.bfloat16)
        return contextlib.nullcontext()


@dataclass(eq=False)
class TrainState:
    """Everything a run changes while it trains. Saved field by field, it is the checkpoint.

    The generator states are those at the start of epoch epochs_done + 1: resuming redraws
    that epoch's batch order and augmentation, then skips the batches_done already trained.
    """

    config_hash: str
    started: str  # ISO time the run first started, kept across restarts
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    order_rng: torch.Tensor
    augment_rng: torch.Tensor
    torch_rng: torch.Tensor  # the global generators' states when last saved
    cuda_rng: torch.Tensor | None
    epochs_done: int = 0
    batches_done: int = 0  # of epoch epochs_done + 1
    epoch_sums: dict[str, torch.Tensor] = field(default_factory=dict)  # of the partial epoch
    epoch_seconds: float = 0.0  # of the partial epoch
    rows: list[dict[str, float]] = field(default_factory=list)  # one per epoch done, and 0

    @classmethod
    def start(cls, setup: Setup) -> TrainState:
        cfg, data = setup.cfg, setup.data
        # Build on the CPU from the init stream only: the weights depend on the seed, not
        # on the device or on anything drawn before.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(cfg.seed, "init"))
            model = build_model(cfg, tuple(data.input_shape), data.num_classes)
        model = model.to(device=setup.device, memory_format=setup.memory_format)
        optimizer = build_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
        torch.manual_seed(stream_seed(cfg.seed, "global"))
        return cls(
            config_hash=config_hash(cfg),
            started=now_iso(),
            model=model,
            optimizer=optimizer,
            order_rng=generator(cfg.seed, "batch_order").get_state(),
            augment_rng=generator(cfg.seed, "augment").get_state(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=_cuda_rng(setup.device),
        )

    def save(self, setup: Setup, keep_previous: bool = False) -> None:
        self.torch_rng, self.cuda_rng = torch.get_rng_state(), _cuda_rng(setup.device)
        snapshot = {k: _snapshot(v) for k, v in vars(self).items()}
        save_checkpoint(setup.runtime.out, snapshot, keep_previous)
        write_metrics(setup.runtime.out, self.rows, setup.cfg, setup.data.bayes_error)

    def restore(self, saved: dict[str, object], setup: Setup) -> None:
        for name, value in saved.items():
            current = getattr(self, name)
            if isinstance(current, (torch.nn.Module, torch.optim.Optimizer)):
                current.load_state_dict(value)
            else:
                setattr(self, name, value)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None and setup.device.type == "cuda":
            torch.cuda.set_rng_state(self.cuda_rng, setup.device)


def _cuda_rng(device: torch.device) -> torch.Tensor | None:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _snapshot(value: object) -> object:
    """A checkpointable copy: state dicts for live objects, every tensor on the CPU."""
    if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
        value = value.state_dict()
    return to_cpu(value)
