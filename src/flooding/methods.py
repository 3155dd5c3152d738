"""The flood methods: each declared once, here; the config, the schema, the loss and the
report read this table.

A method says how the flood `|loss - b| + b` meets the cross-entropy: on the mini-batch
mean (the paper) or on each sample's loss before the mean (iFlood). Nothing here imports
torch, so the workflow and `--help` read it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FloodMethod:
    name: str
    help: str
    # True: the flood applies to each sample's loss, and the flooded fraction counts
    # samples; False: to the mini-batch mean, and it counts mini-batches.
    per_sample: bool
    # Whether the method floods at a level b (flood_level): the grid's levels, and the
    # search for b, apply to it.
    takes_level: bool = True


METHODS = {
    method.name: method
    for method in (
        FloodMethod("flood", "mini-batch mean, the paper", per_sample=False),
        FloodMethod("iflood", "per sample, Xie et al. 2022", per_sample=True),
    )
}


def describe_methods() -> str:
    """e.g. "flood (mini-batch mean, the paper) or iflood (per sample, ...)"."""
    parts = [f"{m.name} ({m.help})" for m in METHODS.values()]
    return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]


def flooded_weight(method: str, batch_size: int) -> int:
    """How much one mini-batch's flooded fraction counts in the epoch's: its samples for a
    per-sample method, one for a batch-level one. The epoch's flooded fraction is the sum
    of weighted fractions over the sum of weights (flooding.evaluation)."""
    return batch_size if METHODS[method].per_sample else 1
