"""The training engine: runs, from validated configs to metrics.parquet and run.json.

The whole dataset sits in device tensors; a mini-batch is an index slice of them (no
DataLoader, no per-sample Python), and evaluation runs in large batches under
torch.inference_mode(). Initialisation, batch order and augmentation each draw from their
own generator seeded from the run seed only, so runs that differ only in the flood level
see the same initial weights and the same batches: they are paired.

One loop trains every run. What it trains is a `Trainer`: the models of one or more runs
that share their data, batches and architecture, with one forward giving logits
[members, n, classes] and one optimiser. A run alone is a `Single` (its own model and
optimiser, the arithmetic of a plain PyTorch loop); runs that differ only in flood level or
method can train as one stacked model (flooding.vectorised.Stack). The loop does the rest
once for all: the flooded loss of each member, its sums, divergence, checkpoints.

Read top to bottom: `Single`, then one epoch (`train_epoch`, its row:
flooding.evaluation.epoch_row), then the epochs (`fit`), then a run's start and end
(`prepare`, `finish`), then `train_runs`: the one path from configs to outputs that
`flooding train` (one run) and a pack (flooding.pack) take.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from flooding.augment import AugmentPlan, apply_plan, draw_plan
from flooding.checkpoint import EXIT_CHECKPOINTED, SignalFlag, load_checkpoint, remove_checkpoint
from flooding.config import ConfigError, RunConfig, effective_batch_size, validate, validate_data
from flooding.evaluation import SUMS, Forward, Scores, epoch_row, scores
from flooding.flood import flooded_loss
from flooding.methods import METHODS, flooded_weight
from flooding.metrics import (
    METRICS_FILE,
    RUN_FILE,
    now_iso,
    print_progress,
    write_metrics,
    write_run_json,
)
from flooding.optim import optimizer_step
from flooding.runtime import Runtime, describe_device, float_path, resolve_device, set_threads
from flooding.state import Setup, TrainState, learning_rate

if TYPE_CHECKING:
    from flooding.data import DataBundle

DataSource = Callable[[RunConfig], "DataBundle"]
Log = Callable[[int], AbstractContextManager[Any]]  # member index -> where its progress is written
Done = Callable[[int, str, str | None], None]  # member index, status, error: write outputs
# Called with a member's trained model as it completes, before its run.json says done.
Completed = Callable[[int, Setup, TrainState], None]


# -- what is trained -----------------------------------------------------------------


class Trainer(Protocol):
    """The models of one or more runs trained together by the loop below."""

    setups: list[Setup]
    states: list[TrainState]
    optimizer: torch.optim.Optimizer
    module: torch.nn.Module  # switched between train and eval mode by the loop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [members, n, classes] of inputs x shared by every member."""
        ...

    def member_logits(self, x: torch.Tensor) -> Sequence[torch.Tensor]:
        """The same logits as one [n, classes] tensor per member, for training: a run
        alone then backpropagates through no stacking view."""
        ...

    def grad_norms(self) -> torch.Tensor:
        """Each member's global L2 norm of its gradients, [members]."""
        ...

    def hand_back(self) -> None:
        """Put the trained weights into each member's own model (its state)."""
        ...

    def save(self, members: list[int]) -> None:
        """Checkpoint these members, each in its own folder."""
        ...


@dataclass(eq=False)
class Single:
    """One run: its own model and optimiser, as a plain PyTorch loop would train them."""

    setups: list[Setup]
    states: list[TrainState]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.states[0].optimizer

    @property
    def module(self) -> torch.nn.Module:
        return self.states[0].model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).unsqueeze(0)

    def member_logits(self, x: torch.Tensor) -> Sequence[torch.Tensor]:
        return [self.module(x)]

    @functools.cached_property
    def params(self) -> list[torch.Tensor]:
        """The optimised parameters, listed once rather than every batch."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def grad_norms(self) -> torch.Tensor:
        grads = [p.grad for p in self.params if p.grad is not None]
        # What torch.nn.utils.get_total_norm computes for one device and dtype, without
        # its grouping of the tensors by both, which costs more than the norms of a
        # small model.
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).reshape(1)

    def hand_back(self) -> None:
        pass  # the state's model is the one trained

    def save(self, members: list[int]) -> None:
        self.states[0].save(self.setups[0])


def member_scores(trainer: Trainer) -> list[Scores]:
    """Every split's scores for each member, in eval mode."""
    trainer.module.eval()
    try:
        forward: Forward = trainer.forward
        return scores(trainer.setups[0], forward)
    finally:
        trainer.module.train()


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


def train_epoch(trainer: Trainer, stop: SignalFlag) -> bool:
    """Train the mini-batches of the members' next epoch from batches_done on.

    Returns False when a signal asked to stop before the epoch's last batch: the states
    then hold the partial epoch, ready to be saved. On True the caller closes the epoch.
    """
    setups, states = trainer.setups, trainer.states
    setup, lead = setups[0], states[0]
    data, device = setup.data, setup.device
    configs = [s.cfg for s in setups]
    started = time.perf_counter() - sum(s.epoch_seconds for s in states)
    epoch = start_epoch(setup, lead, trainer.optimizer)
    sums = {k: torch.zeros(len(states), dtype=torch.float64, device=device) for k in SUMS}
    if lead.epoch_sums:  # resumed part-way through the epoch
        sums = {k: torch.stack([s.epoch_sums[k] for s in states]).to(device) for k in SUMS}
    for b in range(lead.batches_done, len(setup.bounds)):
        index, x = epoch.batch(setup, b)
        with setup.autocast():
            logits = trainer.member_logits(x)
        y = data.y_train[index]
        aux = [None if s.aux_loss is None else s.aux_loss[index] for s in setups]
        results = [flooded_loss(logits[m], y, c, aux[m]) for m, c in enumerate(configs)]
        pairs = list(zip(results, configs, strict=True))
        trainer.optimizer.zero_grad(set_to_none=True)
        # The members' parameters are disjoint: the gradient of the sum is each one's own.
        total(per_member([r.loss for r in results])).backward()
        sums["grad_norm"] += trainer.grad_norms()
        optimizer_step(trainer.optimizer)
        sums["batch_loss"] += per_member([r.unflooded for r in results])
        flooded = [r.flooded_frac * flooded_weight(c.flood_method, len(index)) for r, c in pairs]
        sums["flooded"] += per_member(flooded)
        if stop.received is not None and b + 1 < len(setup.bounds):
            hand_back(trainer, sums, b + 1, time.perf_counter() - started)
            return False
    for state in states:  # the epoch is whole: the generators move on
        state.order_rng, state.augment_rng = epoch.generator_states()
    hand_back(trainer, sums, len(setup.bounds), time.perf_counter() - started)
    return True


def per_member(values: list[torch.Tensor]) -> torch.Tensor:
    """One value per member, [members]; a single member's as it is (a sum of shape [1]
    adds it by broadcasting), which spares a run alone a stack kernel a batch."""
    return values[0] if len(values) == 1 else torch.stack(values)


def total(losses: torch.Tensor) -> torch.Tensor:
    """The sum to backpropagate: a run alone's loss as it is, without a sum node."""
    return losses if losses.dim() == 0 else losses.sum()


def hand_back(
    trainer: Trainer, sums: dict[str, torch.Tensor], batches: int, seconds: float
) -> None:
    """Each member's share of the epoch so far, and its weights, in its own state."""
    for m, state in enumerate(trainer.states):
        state.epoch_sums = {k: v[m] for k, v in sums.items()}
        state.batches_done, state.epoch_seconds = batches, seconds / len(trainer.states)
    trainer.hand_back()


# -- the epochs -----------------------------------------------------------------------


def fit(trainer: Trainer, stop: SignalFlag, log: Log, done: Done) -> bool:
    """Train every member to its last epoch; False when a signal stopped it (the members
    still training have checkpointed).

    `done` is called as each member ends. A member that diverges ends there (its outputs
    are written at once) while the others train on; in a stack its part keeps computing,
    untouched by the others, and unrecorded.
    """
    setups, states = trainer.setups, trainer.states
    active = list(range(len(states)))
    epochs = setups[0].cfg.epochs
    if not states[0].rows:
        started = time.perf_counter()
        all_scores = member_scores(trainer)
        seconds = (time.perf_counter() - started) / len(states)
        for m in active:
            row = epoch_row(setups[m], 0, None, all_scores[m]) | {"epoch_seconds": seconds}
            states[m].rows.append(row)
            with log(m):
                print_progress(row, epochs)
    while active and states[active[0]].epochs_done < epochs:
        epoch = states[active[0]].epochs_done + 1
        if not train_epoch(trainer, stop):
            trainer.save(active)
            return False
        started = time.perf_counter()
        all_scores = member_scores(trainer)
        evaluation = (time.perf_counter() - started) / len(active)
        for m in list(active):
            state = states[m]
            batch_loss = state.epoch_sums["batch_loss"].item() / len(setups[m].bounds)
            row = epoch_row(setups[m], epoch, state.epoch_sums, all_scores[m])
            row["epoch_seconds"] = state.epoch_seconds + evaluation
            if not math.isfinite(batch_loss):
                error = f"training loss became {batch_loss} in epoch {epoch}"
            elif not math.isfinite(row["train_loss"]):
                error = f"training-set loss became {row['train_loss']} in epoch {epoch}"
            else:
                state.rows.append(row)
                with log(m):
                    print_progress(row, epochs)
                state.epochs_done, state.batches_done = epoch, 0
                state.epoch_sums, state.epoch_seconds = {}, 0.0
                continue
            active.remove(m)
            done(m, "diverged", error)
        every = setups[0].runtime.checkpoint_every
        if (
            active
            and epoch < epochs
            and (stop.received is not None or (every > 0 and epoch % every == 0))
        ):
            trainer.save(active)
            if stop.received is not None:
                return False
    for m in active:
        done(m, "completed", None)
    return True


# -- a run's start and end ------------------------------------------------------------


def prepare(cfg: RunConfig, runtime: Runtime, load: DataSource) -> tuple[Setup, TrainState]:
    """Load the data, build the model, and resume the run's checkpoint if it has one."""
    out = runtime.out
    data = load(cfg)
    validate_data(cfg, data)
    setup = Setup.of(cfg, runtime, data, resolve_device(runtime.device))
    if METHODS[cfg.flood_method].auxiliary:
        from flooding.adaflood import read_aux_losses

        setup = dataclasses.replace(setup, aux_loss=read_aux_losses(runtime.aux_losses, data))
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


def finish(
    cfg: RunConfig,
    runtime: Runtime,
    trained: tuple[Setup, TrainState] | None,
    status: str,
    error: str | None,
    started: str,
    path: dict[str, Any],
) -> None:
    """End of a run: measurements of the final model, then metrics, then run.json, whose
    presence means done. `trained` is None when the run failed before it could start;
    `path` is the float path it trained on (flooding.runtime.float_path)."""
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
        float_path=path,
    )
    if status != "failed":  # a failed run keeps its checkpoint: a rerun resumes it
        remove_checkpoint(out)


def report_interrupted(stop: SignalFlag, runtime: Runtime) -> None:
    name = signal.Signals(stop.received).name
    print(
        f"{name}: checkpointed in {runtime.out}; rerun the same command to resume", file=sys.stderr
    )


# -- runs to outputs ------------------------------------------------------------------


def trainer_for(prepared: list[tuple[Setup, TrainState]]) -> Trainer | None:
    """The trainer of prepared runs: a Single for one, a Stack for several that stand at
    one point (after rewinding a killed stack); None when they cannot train together."""
    setups, states = [p[0] for p in prepared], [p[1] for p in prepared]
    if len(prepared) == 1:
        return Single(setups, states)
    from flooding.vectorised import Stack, can_stack

    if not can_stack(states):
        return None
    print(f"pack: {len(prepared)} runs trained as one stacked model", flush=True)
    return Stack.of(setups, states)


def no_log(m: int) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


def train_runs(
    jobs: list[tuple[RunConfig, Runtime]],
    load: DataSource,
    stop: SignalFlag,
    log: Log = no_log,
    completed: Completed | None = None,
) -> list[int] | None:
    """Train validated runs together and write each one's outputs; their exit codes.

    One run trains alone; several must differ only in flood level or method (the pack
    groups them so) and train as one stack, or None is returned when they stand at
    different points (some resumed from other epochs than the rest) and must train one by
    one. With runtime.record_failure an unexpected error (not a config error or a missing
    dataset: those need a person) is recorded as status "failed" in every member that has
    not ended, and the exit codes are 0, so the other runs carry on; the checkpoints stay,
    so a rerun resumes rather than restarts. Without it, the error propagates.
    `completed` sees each member's trained model before its outputs say it is done (an
    auxiliary model scores its held-out fold there, flooding.adaflood).
    """
    from flooding.data import DatasetMissingError

    started, prepared, ended = now_iso(), [], set()
    members = len(jobs)

    def done(m: int, status: str, error: str | None) -> None:
        trained = prepared[m] if m < len(prepared) else None
        if status == "completed" and completed is not None and trained is not None:
            with log(m):
                completed(m, *trained)  # an error here is the member's: recorded failed
        ended.add(m)
        cfg, runtime = jobs[m]
        with log(m):
            if error is not None:
                print(f"{status}: {error}", file=sys.stderr)
            finish(cfg, runtime, trained, status, error, started, float_path(jobs, m))

    try:
        for m, (cfg, runtime) in enumerate(jobs):
            runtime.out.mkdir(parents=True, exist_ok=True)
            with log(m):
                prepared.append(prepare(cfg, runtime, load))
        if members > 1:
            from flooding.vectorised import rewind_to_common_point

            prepared = rewind_to_common_point(prepared)
        trainer = trainer_for(prepared)
        if trainer is None:
            return None
        if not fit(trainer, stop, log, done):
            for m, (_, runtime) in enumerate(jobs):
                with log(m):
                    report_interrupted(stop, runtime)
            return [EXIT_CHECKPOINTED] * members
    except (ConfigError, DatasetMissingError):
        raise
    except Exception as exc:
        if not jobs[0][1].record_failure:
            raise
        for m in range(members):
            if m not in ended:
                with log(m):
                    traceback.print_exc()
                done(m, "failed", f"{type(exc).__name__}: {exc}")
    return [0] * members


def train_run(cfg: RunConfig, runtime: Runtime, load: DataSource, stop: SignalFlag) -> int:
    """Train one validated run and write its outputs; returns the exit code."""
    (code,) = train_runs([(cfg, runtime)], load, stop) or [1]
    return code


def run(cfg: RunConfig, runtime: Runtime) -> int:
    """Validate, load the data, train; returns the process exit code."""
    from flooding.data import load_data

    validate(cfg)
    set_threads(runtime)
    device = resolve_device(runtime.device)
    with SignalFlag() as stop:
        return train_run(cfg, runtime, lambda c: load_data(c, runtime.data_root, device), stop)
