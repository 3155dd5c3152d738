"""The flood methods: each declared once, here; the config, the schema, the loss and the
report read this table.

A method says how the flood `|loss - b| + b` meets the cross-entropy: on the mini-batch
mean (the paper), on each sample's loss before the mean (iFlood), or on each sample's loss
with a level of its own, from the loss an auxiliary model that never trained on the
sample gives it (AdaFlood, flooding.adaflood). Nothing here imports torch, so the workflow
and `--help` read it cheaply.
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
    # The RunConfig field a user varies for this method (a grid axis of the flood block):
    # the flood level b, or AdaFlood's gamma. Its other method's fields stay at their
    # defaults in the method's runs (flooding.grid), so they never retrain it.
    varies: str = "flood_level"
    # Needs each training sample's loss under a held-out auxiliary model (runtime.aux_losses).
    auxiliary: bool = False
    # The RunConfig fields only this method reads: other methods' runs keep their defaults.
    fields: tuple[str, ...] = ()

    @property
    def takes_level(self) -> bool:
        """Whether the method's runs take a flood level b (a search over b applies)."""
        return self.varies == "flood_level"


METHODS = {
    method.name: method
    for method in (
        FloodMethod("flood", "mini-batch mean, the paper", per_sample=False),
        FloodMethod("iflood", "per sample, Xie et al. 2022", per_sample=True),
        FloodMethod(
            "adaflood",
            "per sample, each its own level from held-out auxiliary models, Bae et al. 2024",
            per_sample=True,
            varies="adaflood_gamma",
            auxiliary=True,
            fields=(
                "adaflood_gamma",
                "adaflood_alpha",
                "adaflood_beta",
                "adaflood_folds",
                "adaflood_aux_epochs",
            ),
        ),
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


def method_fields() -> tuple[str, ...]:
    """The fields of every method's own (they shape the loss only, not data or weights)."""
    return tuple(name for m in METHODS.values() for name in m.fields)
