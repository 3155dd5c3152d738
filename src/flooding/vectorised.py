"""Vectorised packs: runs that differ only in flood level or method, trained as one model.

Such runs are paired by design: one seed, so the same initial weights, the same batches
and the same augmentation. torch.func stacks their models into one (stack_module_state,
batch-norm buffers included), runs the stack's forward with vmap over the members
(functional_call), and one optimiser steps the stacked parameters: SGD and Adam act
element by element, so that is each member's own optimiser. The stack is a Trainer of
flooding.train: the same loop trains it as a run alone, and each member keeps its flood
level and method, its sums, rows, checkpoint and outputs.

Epoch 1 matches the solo runs to float tolerance; later epochs drift apart by floating-point
reassociation (batched products sum in another order), so a vectorised member is not
bit-identical to its solo run, and a sequential pack is (`flooding train-pack
--no-vectorise`). A member is bit-identical to itself retrained in the same stack
(`flooding reproduce`, from run.json's float_path).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call, stack_module_state, vmap

from flooding.checkpoint import (
    PREVIOUS_CHECKPOINT_FILE,
    load_checkpoint,
    remove_checkpoint,
    rewind_checkpoint,
)
from flooding.config import RunConfig
from flooding.optim import build_optimizer
from flooding.runtime import stack_free_fields
from flooding.state import Setup, TrainState


def stack_key(cfg: RunConfig) -> tuple[tuple[str, Any], ...]:
    """Runs with equal keys share initial weights, batches and architecture: they stack."""
    free = stack_free_fields()
    return tuple((k, v) for k, v in cfg.to_dict().items() if k not in free)


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

    def member_logits(self, x: torch.Tensor) -> Sequence[torch.Tensor]:
        return self.forward(x).unbind(0)

    @property
    def module(self) -> torch.nn.Module:
        return self.base

    def grad_norms(self) -> torch.Tensor:
        """Each member's global L2 gradient norm, from the stacked gradients."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        squares = [g.flatten(1).float().pow(2).sum(1) for g in grads]
        return torch.stack(squares).sum(0).sqrt()

    def hand_back(self) -> None:
        """Each member's weights, copied from the stack into its own model."""
        with torch.no_grad():
            for m, state in enumerate(self.states):
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
