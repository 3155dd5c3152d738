"""The training engine: one run, from a validated config to metrics.parquet and run.json.

The whole dataset sits in device tensors; a mini-batch is an index slice of them (no
DataLoader, no per-sample Python), and evaluation runs in large batches under
torch.inference_mode(). Initialisation, batch order and augmentation each draw from their
own generator seeded from the run seed only, so runs that differ only in the flood level
see the same initial weights and the same batches: they are paired.
"""

from __future__ import annotations

import hashlib
import math
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from flooding.augment import AugmentPlan, apply_plan, draw_plan
from flooding.checkpoint import (
    EXIT_CHECKPOINTED,
    Checkpoint,
    SignalFlag,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
    to_cpu,
)
from flooding.config import (
    ConfigError,
    RunConfig,
    config_hash,
    effective_batch_size,
    validate,
    validate_data,
)
from flooding.flood import flooded_loss
from flooding.metrics import (
    METRICS_FILE,
    RUN_FILE,
    now_iso,
    print_progress,
    write_metrics,
    write_run_json,
)
from flooding.models import build_model

EVAL_BATCH = 1024
SUMS = ("batch_loss", "grad_norm", "flooded")


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


def stream_seed(seed: int, stream: str) -> int:
    """Seed of one random stream (init, batch order, ...), independent of the others."""
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def seeded_generator(seed: int, stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, stream))


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


class Trainer:
    """Model, optimiser, generators and metric rows of one run."""

    def __init__(self, cfg: RunConfig, runtime: Runtime, data: Any, device: torch.device):
        self.cfg, self.runtime, self.data, self.device = cfg, runtime, data, device
        self.hash = config_hash(cfg)
        self.started = now_iso()
        self.rows: list[dict[str, float]] = []
        cuda = device.type == "cuda"
        self.bf16 = runtime.bf16 and cuda
        images = len(data.input_shape) == 3
        self.memory_format = (
            torch.channels_last
            if runtime.channels_last and cuda and images
            else torch.contiguous_format
        )
        self.x = {
            split: getattr(data, f"x_{split}").contiguous(memory_format=self.memory_format)
            for split in ("train", "val", "test")
        }
        # Build on the CPU from the init stream only: the weights depend on the seed, not
        # on the device or on anything drawn before.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(cfg.seed, "init"))
            model = build_model(cfg, tuple(data.input_shape), data.num_classes)
        self.model = model.to(device=device, memory_format=self.memory_format)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                self.params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.order_rng = seeded_generator(cfg.seed, "batch_order")
        self.augment_rng = seeded_generator(cfg.seed, "augment")
        torch.manual_seed(stream_seed(cfg.seed, "global"))
        self.bounds = batch_bounds(len(data.y_train), cfg.batch_size)

    # -- checkpoints ------------------------------------------------------------------

    def save(self, epochs_done: int, batches_done: int, rng: tuple, sums: dict, seconds: float):
        save_checkpoint(
            self.runtime.out,
            Checkpoint(
                config_hash=self.hash,
                started=self.started,
                epochs_done=epochs_done,
                batches_done=batches_done,
                model=to_cpu(self.model.state_dict()),
                optimizer=to_cpu(self.optimizer.state_dict()),
                order_rng=rng[0],
                augment_rng=rng[1],
                torch_rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state(self.device)
                if self.device.type == "cuda"
                else None,
                epoch_sums=to_cpu(sums),
                epoch_seconds=seconds,
                rows=list(self.rows),
            ),
        )
        write_metrics(self.runtime.out, self.rows, self.cfg, self.data.bayes_error)

    def restore(self, ckpt: Checkpoint) -> None:
        self.started = ckpt.started
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.order_rng.set_state(ckpt.order_rng)
        self.augment_rng.set_state(ckpt.augment_rng)
        torch.set_rng_state(ckpt.torch_rng)
        if ckpt.cuda_rng is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt.cuda_rng, self.device)
        self.rows = list(ckpt.rows)

    # -- evaluation -------------------------------------------------------------------

    @torch.inference_mode()
    def evaluate(self, x: torch.Tensor, labels: list[torch.Tensor]) -> list[tuple[float, float]]:
        """(mean loss, accuracy) for each label set; one forward pass serves them all."""
        self.model.eval()
        loss = [torch.zeros((), dtype=torch.float64, device=self.device) for _ in labels]
        correct = [torch.zeros((), dtype=torch.int64, device=self.device) for _ in labels]
        for start in range(0, len(x), EVAL_BATCH):
            end = start + EVAL_BATCH
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
                logits = self.model(x[start:end])
            logits = logits.float()
            predicted = logits.argmax(dim=1)
            for i, y in enumerate(labels):
                loss[i] += F.cross_entropy(logits, y[start:end], reduction="sum").double()
                correct[i] += (predicted == y[start:end]).sum()
        self.model.train()
        n = len(x)
        return [(s.item() / n, c.item() / n) for s, c in zip(loss, correct, strict=True)]

    def evaluation_row(self) -> dict[str, float]:
        d = self.data
        (train, train_clean) = self.evaluate(self.x["train"], [d.y_train, d.y_train_clean])
        (val, val_clean) = self.evaluate(self.x["val"], [d.y_val, d.y_val_clean])
        (test,) = self.evaluate(self.x["test"], [d.y_test])
        row: dict[str, float] = {}
        for prefix, suffix, (loss, acc) in (
            ("train", "", train),
            ("train", "_clean", train_clean),
            ("val", "", val),
            ("val", "_clean", val_clean),
            ("test", "", test),
        ):
            row[f"{prefix}_loss{suffix}"] = loss
            row[f"{prefix}_acc{suffix}"] = acc
        return row

    # -- training ---------------------------------------------------------------------

    def step(self, index: torch.Tensor, plan: AugmentPlan | None, sums: dict) -> None:
        x = self.x["train"][index]
        if plan is not None:
            x = apply_plan(x, plan, index)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            logits = self.model(x)
        result = flooded_loss(
            logits, self.data.y_train[index], self.cfg.flood_method, self.cfg.flood_level
        )
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        grads = [p.grad for p in self.params if p.grad is not None]
        sums["grad_norm"] += torch.nn.utils.get_total_norm(grads)
        self.optimizer.step()
        sums["batch_loss"] += result.unflooded
        weight = len(index) if self.cfg.flood_method == "iflood" else 1
        sums["flooded"] += result.flooded_frac * weight

    def fit(self, stop: SignalFlag, resume: Checkpoint | None) -> tuple[str, str | None]:
        """Train to the end; returns (status, error), status also "interrupted"."""
        cfg = self.cfg
        first_epoch, first_batch, carried = 1, 0, 0.0
        resumed_sums = None
        if resume is not None:
            self.restore(resume)
            first_epoch, first_batch = resume.epochs_done + 1, resume.batches_done
            if resume.batches_done > 0:  # stopped mid-epoch: continue its partial sums
                resumed_sums, carried = resume.epoch_sums, resume.epoch_seconds
        else:
            start = time.perf_counter()
            row = {"epoch": 0, **self.evaluation_row()}
            nan = math.nan
            row |= {"batch_loss": nan, "grad_norm": nan, "flooded_frac": nan}
            row |= {"epoch_lr": learning_rate(cfg, 1), "epoch_seconds": time.perf_counter() - start}
            self.rows.append(row)
            print_progress(row, cfg.epochs)
        n_train = len(self.data.y_train)
        iflood = cfg.flood_method == "iflood"
        for epoch in range(first_epoch, cfg.epochs + 1):
            start = time.perf_counter() - carried
            rng = (self.order_rng.get_state(), self.augment_rng.get_state())
            lr = learning_rate(cfg, epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            order = torch.randperm(n_train, generator=self.order_rng).to(self.device)
            plan = None
            if cfg.augment:
                height = self.data.input_shape[1]
                plan = draw_plan(
                    n_train, height, self.data.augmentation, self.augment_rng, self.device
                )
            sums = {k: torch.zeros((), dtype=torch.float64, device=self.device) for k in SUMS}
            if resumed_sums is not None:
                sums = {k: v.to(self.device) for k, v in resumed_sums.items()}
            for b in range(first_batch, len(self.bounds)):
                lo, hi = self.bounds[b]
                self.step(order[lo:hi], plan, sums)
                if stop.received is not None and b + 1 < len(self.bounds):
                    self.save(epoch - 1, b + 1, rng, sums, time.perf_counter() - start)
                    return "interrupted", None
            first_batch, carried, resumed_sums = 0, 0.0, None
            batch_loss = sums["batch_loss"].item() / len(self.bounds)
            if not math.isfinite(batch_loss):
                return "diverged", f"training loss became {batch_loss} in epoch {epoch}"
            samples = sum(hi - lo for lo, hi in self.bounds)
            row = {"epoch": epoch, **self.evaluation_row(), "batch_loss": batch_loss}
            row["grad_norm"] = sums["grad_norm"].item() / len(self.bounds)
            row["flooded_frac"] = sums["flooded"].item() / (samples if iflood else len(self.bounds))
            row |= {"epoch_lr": lr, "epoch_seconds": time.perf_counter() - start}
            if not math.isfinite(row["train_loss"]):
                return "diverged", f"training-set loss became {row['train_loss']} in epoch {epoch}"
            self.rows.append(row)
            print_progress(row, cfg.epochs)
            if epoch == cfg.epochs:
                break
            every = self.runtime.checkpoint_every
            if stop.received is not None or (every > 0 and epoch % every == 0):
                rng = (self.order_rng.get_state(), self.augment_rng.get_state())
                self.save(epoch, 0, rng, {}, 0.0)
                if stop.received is not None:
                    return "interrupted", None
        return "completed", None

    def finish(self, status: str, error: str | None) -> None:
        """Write the final outputs: metrics first, then run.json, whose presence means done."""
        out = self.runtime.out
        write_metrics(out, self.rows, self.cfg, self.data.bayes_error)
        write_run_json(
            out,
            self.cfg,
            status=status,
            error=error,
            epochs_completed=len(self.rows) - 1 if self.rows else 0,
            bayes_error=self.data.bayes_error,
            device=describe_device(self.device),
            started=self.started,
            effective_batch_size=effective_batch_size(self.cfg.batch_size, len(self.data.y_train)),
        )
        if status != "failed":  # a failed run keeps its checkpoint: a rerun resumes it
            remove_checkpoint(out)


def run_on_data(cfg: RunConfig, runtime: Runtime, data: Any, device: torch.device) -> int:
    """Train on already-loaded data and write the outputs; returns the exit code."""
    validate_data(cfg, data)
    out = runtime.out
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, runtime, data, device)
    resume = load_checkpoint(out, trainer.hash)
    if resume is None:  # a fresh start: outputs of an earlier attempt are stale
        (out / RUN_FILE).unlink(missing_ok=True)
        (out / METRICS_FILE).unlink(missing_ok=True)
    for partial in out.glob(".*.tmp"):  # left by a write that a kill cut short
        partial.unlink()
    with SignalFlag() as stop:
        try:
            status, error = trainer.fit(stop, resume)
        except Exception as exc:
            if not runtime.record_failure:
                raise
            traceback.print_exc()
            trainer.finish("failed", f"{type(exc).__name__}: {exc}")
            return 0
    if status == "interrupted":
        name = signal.Signals(stop.received).name
        print(f"{name}: checkpointed in {out}; rerun the same command to resume", file=sys.stderr)
        return EXIT_CHECKPOINTED
    if error is not None:
        print(f"diverged: {error}", file=sys.stderr)
    trainer.finish(status, error)
    return 0


def run(cfg: RunConfig, runtime: Runtime) -> int:
    """Validate, load the data, train; returns the process exit code.

    With runtime.record_failure, an unexpected error (not a config error, a missing dataset
    : those need a person) is recorded as status "failed" and the
    exit code is 0, so a workflow carries on with the other runs.
    """
    validate(cfg)
    if runtime.threads > 0:
        torch.set_num_threads(runtime.threads)
    device = resolve_device(runtime.device)
    from flooding.data import DatasetMissingError, load_data

    started = now_iso()
    try:
        return run_on_data(cfg, runtime, load_data(cfg, runtime.data_root, device), device)
    except (ConfigError, DatasetMissingError):
        raise
    except Exception as exc:
        if not runtime.record_failure:
            raise
        # Failed before training started (loading, building): no epochs to keep.
        traceback.print_exc()
        write_metrics(runtime.out, [], cfg, None)
        write_run_json(
            runtime.out,
            cfg,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            epochs_completed=0,
            bayes_error=None,
            device=describe_device(device),
            started=started,
        )
        return 0
