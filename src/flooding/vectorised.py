"""Vectorised packs: runs that differ only in flood level or method, trained as one model.

Such runs are paired by design: one seed, so the same initial weights, the same batches
and the same augmentation. torch.func stacks their models into one (stack_module_state,
batch-norm buffers included), runs the stack's forward with vmap over the members
(functional_call), and one optimiser steps the stacked parameters: SGD and Adam act
element by element, so that is each member's own optimiser. Each member keeps its flood
level and method, its sums, rows, checkpoint and outputs, written by the engine's code.

Epoch 1 matches the solo runs to float tolerance; later epochs drift apart by floating-point
reassociation (batched products sum in another order), so a vectorised member is not
bit-identical to its solo run, and a sequential pack is (`flooding train-pack
--no-vectorise`).

`epoch_seconds` of a member is its share of the stack's time (the stack's wall time over
the members trained), so that summing them still gives the time spent training.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call, stack_module_state, vmap

from flooding.checkpoint import (
    PREVIOUS_CHECKPOINT_FILE,
    SignalFlag,
    load_checkpoint,
    remove_checkpoint,
    rewind_checkpoint,
)
from flooding.config import RunConfig
from flooding.evaluation import SUMS, epoch_row, scores
from flooding.flood import flooded_loss
from flooding.metrics import print_progress
from flooding.optim import build_optimizer, optimizer_step
from flooding.state import Setup, TrainState
from flooding.train import start_epoch

# The fields in which the members of one stack may differ.
STACK_FREE = ("flood_level", "flood_method")


def stack_key(cfg: RunConfig) -> tuple[tuple[str, Any], ...]:
    """Runs with equal keys share initial weights, batches and architecture: they stack."""
    return tuple((k, v) for k, v in cfg.to_dict().items() if k not in STACK_FREE)


def point(state: TrainState) -> tuple[int, int, int]:
    """Where a run stands: epochs done, batches of the next, metric rows."""
    return state.epochs_done, state.batches_done, len(state.rows)


def can_stack(states: list[TrainState]) -> bool:
    """Members stack when they stand at the same point: all fresh, or all resumed from
    checkpoints of the same epoch and batch (as a stopped stack leaves them)."""
    return len(states) > 1 and len({point(s) for s in states}) == 1


def rewind_to_common_point(
    prepared: list[tuple[Setup, TrainState]],
) -> list[tuple[Setup, TrainState]]:
    """The members of a killed stack, all standing at one point again where they can.

    A stack saves its members one after another, so a kill between two saves leaves the
    first members one checkpoint ahead of the rest. Each of them kept its previous
    checkpoint (or had none, when the kill fell in the first save), which stands where the
    rest do: resumed from it, the stack trains on as one, bit for bit as if never killed,
    instead of one by one. (A member ahead of fresh ones without an earlier checkpoint
    starts afresh with them: the epochs it had are trained again, within the stack.)
    """
    behind = min(point(state) for _, state in prepared)
    rewound = []
    for setup, state in prepared:
        if point(state) != behind:
            earlier = load_checkpoint(
                setup.runtime.out, state.config_hash, PREVIOUS_CHECKPOINT_FILE
            )
            # The files go back with the state: a kill after the next save must find the
            # common point again as the previous checkpoint.
            if earlier is not None and _saved_point(earlier) == behind:
                state.restore(earlier, setup)
                rewind_checkpoint(setup.runtime.out)
            elif earlier is None and behind == (0, 0, 0):
                state = TrainState.start(setup)
                remove_checkpoint(setup.runtime.out)
        rewound.append((setup, state))
    return rewound


def _saved_point(saved: dict[str, Any]) -> tuple[int, int, int]:
    return saved["epochs_done"], saved["batches_done"], len(saved["rows"])


@dataclass(eq=False)
class Stack:
    """The members' models as one: stacked parameters and buffers, one optimiser."""

    setups: list[Setup]
    states: list[TrainState]
    base: torch.nn.Module  # the architecture, on the meta device: functional_call fills it
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer

    @classmethod
    def of(cls, setups: list[Setup], states: list[TrainState]) -> Stack:
        models = [state.model for state in states]
        params, buffers = stack_module_state(models)
        optimizer = build_optimizer(setups[0].cfg, list(params.values()))
        member_states = [state.optimizer.state_dict() for state in states]
        optimizer.load_state_dict(_stacked(member_states))
        base = copy.deepcopy(models[0]).to("meta")
        return cls(setups, states, base, params, buffers, optimizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [members, n, classes] of inputs x shared by every member."""

        def member(params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (params, buffers), (x,))

        return vmap(member, in_dims=(0, 0, None))(self.params, self.buffers, x)

    def scores(self) -> list[dict[str, list[tuple[float, float]]]]:
        self.base.eval()
        try:
            return scores(self.setups[0], self.forward)
        finally:
            self.base.train()

    def train_epoch(self, stop: SignalFlag) -> bool:
        """train_epoch of flooding.train for every member at once; False when a signal
        stopped it part-way (the members' states then hold the partial epoch)."""
        setup, lead = self.setups[0], self.states[0]
        data, device = setup.data, setup.device
        configs = [s.cfg for s in self.setups]
        started = time.perf_counter() - sum(s.epoch_seconds for s in self.states)
        epoch = start_epoch(setup, lead, self.optimizer)
        members = len(self.states)
        sums = {k: torch.zeros(members, dtype=torch.float64, device=device) for k in SUMS}
        if lead.epoch_sums:  # resumed part-way through the epoch
            sums = {k: torch.stack([s.epoch_sums[k] for s in self.states]).to(device) for k in SUMS}
        params = list(self.params.values())
        # iflood counts flooded samples, flood counts flooded batches (as epoch_row reads).
        per_sample = torch.tensor([c.flood_method == "iflood" for c in configs], device=device)
        for b in range(lead.batches_done, len(setup.bounds)):
            index, x = epoch.batch(setup, b)
            with torch.autocast(device.type, torch.bfloat16, enabled=setup.bf16):
                logits = self.forward(x)
            y = data.y_train[index]
            results = [
                flooded_loss(logits[m], y, c.flood_method, c.flood_level)
                for m, c in enumerate(configs)
            ]
            self.optimizer.zero_grad(set_to_none=True)
            torch.stack([r.loss for r in results]).sum().backward()
            sums["grad_norm"] += member_grad_norms(params)
            optimizer_step(self.optimizer)
            sums["batch_loss"] += torch.stack([r.unflooded for r in results])
            frac = torch.stack([r.flooded_frac for r in results])
            sums["flooded"] += torch.where(per_sample, frac * len(index), frac)
            if stop.received is not None and b + 1 < len(setup.bounds):
                self._hand_back(sums, b + 1, time.perf_counter() - started)
                return False
        for state in self.states:  # the epoch is whole: the generators move on
            state.order_rng, state.augment_rng = epoch.generator_states()
        self._hand_back(sums, len(setup.bounds), time.perf_counter() - started)
        return True

    def _hand_back(self, sums: dict[str, torch.Tensor], batches: int, seconds: float) -> None:
        """Each member's share of the epoch so far, and its weights, in its own state."""
        with torch.no_grad():
            for m, state in enumerate(self.states):
                state.epoch_sums = {k: v[m] for k, v in sums.items()}
                state.batches_done, state.epoch_seconds = batches, seconds / len(self.states)
                for name, p in state.model.named_parameters():
                    p.copy_(self.params[name][m])
                for name, buffer in state.model.named_buffers():
                    buffer.copy_(self.buffers[name][m])

    def save(self, members: list[int]) -> None:
        """Checkpoint the given members, each in its own folder, as a solo run would, and
        keep their previous checkpoints (see rewind_to_common_point)."""
        stacked = self.optimizer.state_dict()
        shapes = [p.shape for p in self.params.values()]
        for m in members:
            self.states[m].optimizer.load_state_dict(_member(stacked, m, shapes))
            self.states[m].save(self.setups[m], keep_previous=True)


def member_grad_norms(params: list[torch.Tensor]) -> torch.Tensor:
    """Each member's global L2 gradient norm, from the stacked gradients."""
    squares = [p.grad.flatten(1).float().pow(2).sum(1) for p in params if p.grad is not None]
    return torch.stack(squares).sum(0).sqrt()


def _stacked(member_states: list[dict[str, Any]]) -> dict[str, Any]:
    """One optimiser state from the members': per-parameter tensors stacked; scalars
    (Adam's step count, equal for all) taken from the first."""
    first = member_states[0]
    state = {
        index: {
            key: torch.stack([s["state"][index][key] for s in member_states])
            if torch.is_tensor(value) and value.ndim > 0
            else value
            for key, value in entry.items()
        }
        for index, entry in first["state"].items()
    }
    return {"state": state, "param_groups": first["param_groups"]}


def _member(stacked: dict[str, Any], m: int, shapes: list[torch.Size]) -> dict[str, Any]:
    """Member m's optimiser state, from the stacked one (the inverse of _stacked)."""
    state = {
        index: {
            key: value[m].clone()
            if torch.is_tensor(value) and value.shape == shapes[index]
            else value
            for key, value in entry.items()
        }
        for index, entry in stacked["state"].items()
    }
    return {"state": state, "param_groups": stacked["param_groups"]}


Log = Callable[[int], Any]  # member index -> a context that sends output to its train.log
Done = Callable[[int, str, str | None], None]  # member index, status, error: write outputs


def fit_stack(stack: Stack, stop: SignalFlag, log: Log, done: Done) -> bool:
    """`fit` of flooding.train for every member of the stack; False when a signal stopped
    it (the members still training have checkpointed).

    `done` is called as each member ends: a member that diverges ends there (its outputs
    are written at once) while the others train on; its part of the stack keeps
    computing, untouched by the others, and unrecorded.
    """
    setups, states = stack.setups, stack.states
    active = list(range(len(states)))
    epochs = setups[0].cfg.epochs
    if not states[0].rows:
        started = time.perf_counter()
        all_scores = stack.scores()
        seconds = (time.perf_counter() - started) / len(states)
        for m in active:
            row = epoch_row(setups[m], 0, None, all_scores[m]) | {"epoch_seconds": seconds}
            states[m].rows.append(row)
            with log(m):
                print_progress(row, epochs)
    while active and states[active[0]].epochs_done < epochs:
        epoch = states[active[0]].epochs_done + 1
        if not stack.train_epoch(stop):
            stack.save(active)
            return False
        started = time.perf_counter()
        all_scores = stack.scores()
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
            stack.save(active)
            if stop.received is not None:
                return False
    for m in active:
        done(m, "completed", None)
    return True
