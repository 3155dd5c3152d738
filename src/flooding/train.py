"""The training engine: one run, from a validated config to metrics.parquet and run.json.

The whole dataset sits in device tensors; a mini-batch is an index slice of them (no
DataLoader, no per-sample Python), and evaluation runs in large batches under
torch.inference_mode(). Initialisation, batch order and augmentation each draw from their
own generator seeded from the run seed only, so runs that differ only in the flood level
see the same initial weights and the same batches: they are paired.

Read top to bottom: `Setup` is what a run does not change, `TrainState` what it does (and
its checkpoint), `train_epoch` one epoch (its row: flooding.evaluation.epoch_row), `fit`
the epochs, `train_run` = `prepare`, `fit`, `finish`: the one path from config to outputs
that `flooding train` and a sequential pack take (a vectorised pack shares `prepare` and
`finish`, flooding.vectorised).
"""

from __future__ import annotations

import math
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from flooding.augment import AugmentPlan, apply_plan, draw_plan
from flooding.checkpoint import EXIT_CHECKPOINTED, SignalFlag, load_checkpoint, remove_checkpoint
from flooding.config import (
    ConfigError,
    RunConfig,
    effective_batch_size,
    validate,
    validate_data,
)
from flooding.evaluation import SUMS, epoch_row, model_scores
from flooding.flood import flooded_loss
from flooding.metrics import (
    METRICS_FILE,
    RUN_FILE,
    now_iso,
    print_progress,
    write_metrics,
    write_run_json,
)
from flooding.optim import optimizer_step
from flooding.runtime import Runtime, describe_device, resolve_device, set_threads
from flooding.state import Setup, TrainState, batch_bounds, learning_rate

if TYPE_CHECKING:
    from flooding.data import DataBundle

__all__ = ["Runtime", "batch_bounds", "learning_rate", "resolve_device", "run", "train_run"]


# -- one epoch ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EpochDraw:
    """What an epoch draws: its batch order and augmentation, from generators restored to
    the epoch's start (a resumed epoch redraws the same), now past them."""

    order_rng: torch.Generator
    augment_rng: torch.Generator
    order: torch.Tensor
    plan: AugmentPlan | None

    def batch(self, setup: Setup, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, inputs) of mini-batch b, augmented as drawn."""
        lo, hi = setup.bounds[b]
        index = self.order[lo:hi]
        x = setup.x["train"][index]
        return index, (x if self.plan is None else apply_plan(x, self.plan, index))

    def generator_states(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The generators' states for the next epoch."""
        return self.order_rng.get_state(), self.augment_rng.get_state()


def start_epoch(setup: Setup, state: TrainState, optimizer: torch.optim.Optimizer) -> EpochDraw:
    """Begin epoch epochs_done + 1 of `state`: its learning rate, its draws."""
    cfg, data, device = setup.cfg, setup.data, setup.device
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(cfg, state.epochs_done + 1)
    order_rng = torch.Generator().set_state(state.order_rng)
    augment_rng = torch.Generator().set_state(state.augment_rng)
    n_train = len(data.y_train)
    order = torch.randperm(n_train, generator=order_rng).to(device)
    plan = None
    if cfg.augment:
        plan = draw_plan(n_train, data.input_shape[1], data.augmentation, augment_rng, device)
    return EpochDraw(order_rng, augment_rng, order, plan)


def train_epoch(setup: Setup, state: TrainState, stop: SignalFlag) -> bool:
    """Train the mini-batches of epoch epochs_done + 1 from batches_done on.

    Returns False when a signal asked to stop before the epoch's last batch: the state
    then holds the partial epoch, ready to be saved. On True the caller closes the epoch.
    """
    cfg, data, device = setup.cfg, setup.data, setup.device
    started = time.perf_counter() - state.epoch_seconds
    epoch = start_epoch(setup, state, state.optimizer)
    sums = {k: torch.zeros((), dtype=torch.float64, device=device) for k in SUMS}
    sums |= {k: v.to(device) for k, v in state.epoch_sums.items()}
    params = [p for group in state.optimizer.param_groups for p in group["params"]]
    for b in range(state.batches_done, len(setup.bounds)):
        index, x = epoch.batch(setup, b)
        with torch.autocast(device.type, torch.bfloat16, enabled=setup.bf16):
            logits = state.model(x)
        result = flooded_loss(logits, data.y_train[index], cfg.flood_method, cfg.flood_level)
        state.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        grads = [p.grad for p in params if p.grad is not None]
        sums["grad_norm"] += torch.nn.utils.get_total_norm(grads)
        optimizer_step(state.optimizer)
        sums["batch_loss"] += result.unflooded
        weight = len(index) if cfg.flood_method == "iflood" else 1
        sums["flooded"] += result.flooded_frac * weight
        state.epoch_sums, state.batches_done = sums, b + 1
        if stop.received is not None and b + 1 < len(setup.bounds):
            state.epoch_seconds = time.perf_counter() - started
            return False
    # The epoch is whole: the generators move on to the next one.
    state.order_rng, state.augment_rng = epoch.generator_states()
    state.epoch_seconds = time.perf_counter() - started
    return True


# -- the run --------------------------------------------------------------------------


def fit(setup: Setup, state: TrainState, stop: SignalFlag) -> tuple[str, str | None]:
    """Train to the end; returns (status, error), status also "interrupted"."""
    cfg = setup.cfg
    if not state.rows:
        started = time.perf_counter()
        row = epoch_row(setup, 0, None, model_scores(setup, state.model))
        state.rows.append(row | {"epoch_seconds": time.perf_counter() - started})
        print_progress(state.rows[-1], cfg.epochs)
    while state.epochs_done < cfg.epochs:
        epoch = state.epochs_done + 1
        if not train_epoch(setup, state, stop):
            state.save(setup)
            return "interrupted", None
        batch_loss = state.epoch_sums["batch_loss"].item() / len(setup.bounds)
        if not math.isfinite(batch_loss):
            return "diverged", f"training loss became {batch_loss} in epoch {epoch}"
        started = time.perf_counter() - state.epoch_seconds
        row = epoch_row(setup, epoch, state.epoch_sums, model_scores(setup, state.model))
        row["epoch_seconds"] = time.perf_counter() - started
        if not math.isfinite(row["train_loss"]):
            return "diverged", f"training-set loss became {row['train_loss']} in epoch {epoch}"
        state.rows.append(row)
        print_progress(row, cfg.epochs)
        state.epochs_done, state.batches_done = epoch, 0
        state.epoch_sums, state.epoch_seconds = {}, 0.0
        if epoch == cfg.epochs:
            break
        every = setup.runtime.checkpoint_every
        if stop.received is not None or (every > 0 and epoch % every == 0):
            state.save(setup)
            if stop.received is not None:
                return "interrupted", None
    return "completed", None


def final_sharpness(setup: Setup, state: TrainState) -> tuple[float, float]:
    """(sharpness, seconds) of the trained model on the training set it was trained on.

    Its directions come from a stream of their own, so measuring changes nothing that the
    runs paired by seed share."""
    from flooding.data.sampling import generator
    from flooding.flatness import sharpness

    return sharpness(
        state.model,
        setup.x["train"],
        setup.data.y_train,
        generator(setup.cfg.seed, "sharpness"),
        directions=setup.cfg.sharpness_directions,
    )


DataSource = Callable[[RunConfig], "DataBundle"]


def prepare(cfg: RunConfig, runtime: Runtime, load: DataSource) -> tuple[Setup, TrainState]:
    """Load the data, build the model, and resume the run's checkpoint if it has one."""
    out = runtime.out
    data = load(cfg)
    validate_data(cfg, data)
    setup = Setup.of(cfg, runtime, data, resolve_device(runtime.device))
    state = TrainState.start(setup)
    saved = load_checkpoint(out, state.config_hash)
    if saved is None:  # a fresh start: outputs of an earlier attempt are stale
        (out / RUN_FILE).unlink(missing_ok=True)
        (out / METRICS_FILE).unlink(missing_ok=True)
    else:
        state.restore(saved, setup)
    for partial in out.glob(".*.tmp"):  # left by a write that a kill cut short
        partial.unlink()
    return setup, state


def finish(
    cfg: RunConfig,
    runtime: Runtime,
    trained: tuple[Setup, TrainState] | None,
    status: str,
    error: str | None,
    started: str,
) -> None:
    """End of a run: measurements of the final model, then metrics, then run.json, whose
    presence means done. `trained` is None when the run failed before it could start."""
    out = runtime.out
    setup, state = trained if trained is not None else (None, None)
    measured = None
    if status == "completed" and cfg.sharpness_directions > 0:
        measured = final_sharpness(setup, state)
    data = setup.data if setup is not None else None
    bayes_error = data.bayes_error if data is not None else None
    rows = state.rows if state is not None else []
    write_metrics(out, rows, cfg, bayes_error)
    write_run_json(
        out,
        cfg,
        status=status,
        error=error,
        epochs_completed=max(len(rows) - 1, 0),
        bayes_error=bayes_error,
        device=describe_device(resolve_device(runtime.device)),
        started=state.started if state is not None else started,
        effective_batch_size=(
            effective_batch_size(cfg.batch_size, len(data.y_train)) if data is not None else None
        ),
        sharpness=measured,
    )
    if status != "failed":  # a failed run keeps its checkpoint: a rerun resumes it
        remove_checkpoint(out)


def train_run(cfg: RunConfig, runtime: Runtime, load: DataSource, stop: SignalFlag) -> int:
    """Train one validated run and write its outputs; returns the exit code.

    The one path for a run alone and a pack member. With runtime.record_failure an
    unexpected error (not a config error or a missing dataset: those need a person) is
    recorded as status "failed" and the exit code is 0, so the other runs carry on; the
    checkpoint stays, so a rerun resumes rather than restarts.
    """
    from flooding.data import DatasetMissingError

    runtime.out.mkdir(parents=True, exist_ok=True)
    started, trained = now_iso(), None
    try:
        trained = prepare(cfg, runtime, load)
        status, error = fit(*trained, stop)
    except (ConfigError, DatasetMissingError):
        raise
    except Exception as exc:
        if not runtime.record_failure:
            raise
        traceback.print_exc()
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    if status == "interrupted":
        report_interrupted(stop, runtime)
        return EXIT_CHECKPOINTED
    if status == "diverged":
        print(f"diverged: {error}", file=sys.stderr)
    finish(cfg, runtime, trained, status, error, started)
    return 0


def report_interrupted(stop: SignalFlag, runtime: Runtime) -> None:
    name = signal.Signals(stop.received).name
    print(
        f"{name}: checkpointed in {runtime.out}; rerun the same command to resume", file=sys.stderr
    )


def run(cfg: RunConfig, runtime: Runtime) -> int:
    """Validate, load the data, train; returns the process exit code."""
    from flooding.data import load_data

    validate(cfg)
    set_threads(runtime)
    device = resolve_device(runtime.device)
    with SignalFlag() as stop:
        return train_run(cfg, runtime, lambda c: load_data(c, runtime.data_root, device), stop)
