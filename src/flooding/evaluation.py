"""Scoring a model and turning an epoch into its metrics row.

`evaluate` scores a forward whose output is logits [members, n, classes]: one member for a
run alone, several for a vectorised pack, with the same sums either way. Every
split is scored in batches of EVAL_BATCH under torch.inference_mode(), and the noisy and
clean labels share one forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from flooding.methods import flooded_weight
from flooding.state import Setup, learning_rate

EVAL_BATCH = 1024
# The per-epoch sums of training, one value per run: mean unflooded batch loss, gradient
# norm, and how often the loss was below b (each batch's flooded fraction times its
# weight, flooding.methods.flooded_weight).
SUMS = ("batch_loss", "grad_norm", "flooded")

Forward = Callable[[torch.Tensor], torch.Tensor]  # inputs -> logits [members, n, classes]
Scores = dict[str, list[tuple[float, float]]]  # split -> (loss, accuracy) per label set


@torch.inference_mode()
def evaluate(
    setup: Setup, forward: Forward, x: torch.Tensor, labels: list[torch.Tensor]
) -> list[list[tuple[float, float]]]:
    """(mean loss, accuracy) for each label set, for each member of the forward's output
    (one for a run, several for a vectorised pack); one forward pass serves every set."""
    device = setup.device
    loss: list[list[torch.Tensor]] = []
    correct: list[list[torch.Tensor]] = []
    for start in range(0, len(x), EVAL_BATCH):
        end = start + EVAL_BATCH
        with setup.autocast():
            logits = forward(x[start:end])
        # cross_entropy is nll_loss of log_softmax: taken once, it serves every label set.
        log_probs = F.log_softmax(logits.float(), dim=2)
        predicted = log_probs.argmax(dim=2)
        if not loss:  # the sums start here, once the number of members is known
            zero_loss = torch.zeros((), dtype=torch.float64, device=device)
            zero_count = torch.zeros((), dtype=torch.int64, device=device)
            loss = [[zero_loss] * len(labels) for _ in logits]
            correct = [[zero_count] * len(labels) for _ in logits]
        for m, member_log_probs in enumerate(log_probs):
            for i, y in enumerate(labels):
                batch = y[start:end]
                loss[m][i] = loss[m][i] + F.nll_loss(member_log_probs, batch, reduction="sum")
                correct[m][i] = correct[m][i] + (predicted[m] == batch).sum()
    n = len(x)
    return [
        [(s.item() / n, c.item() / n) for s, c in zip(ls, cs, strict=True)]
        for ls, cs in zip(loss, correct, strict=True)
    ]


def scores(setup: Setup, forward: Forward) -> list[Scores]:
    """Every split's scores, per member of the forward (in eval mode: the caller's job)."""
    d, x = setup.data, setup.x
    train = _noisy_and_clean(setup, forward, x["train"], d.y_train, d.y_train_clean)
    val = _noisy_and_clean(setup, forward, x["val"], d.y_val, d.y_val_clean)
    test = evaluate(setup, forward, x["test"], [d.y_test])
    return [{"train": t, "val": v, "test": e} for t, v, e in zip(train, val, test, strict=True)]


def _noisy_and_clean(
    setup: Setup, forward: Forward, x: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor
) -> list[list[tuple[float, float]]]:
    """The scores on the noisy and the clean labels; without label noise they are the same
    labels, scored once."""
    if noisy is clean or torch.equal(noisy, clean):
        return [scored * 2 for scored in evaluate(setup, forward, x, [noisy])]
    return evaluate(setup, forward, x, [noisy, clean])


def epoch_row(
    setup: Setup, epoch: int, sums: dict[str, torch.Tensor] | None, score: Scores
) -> dict[str, float]:
    """The metrics row of `epoch` (0: before training, no sums), epoch_seconds excluded."""
    (train, train_clean), (val, val_clean), ((test_loss, test_acc),) = (
        score["train"],
        score["val"],
        score["test"],
    )
    row: dict[str, float] = {"epoch": epoch}
    for prefix, suffix, (loss, acc) in (
        ("train", "", train),
        ("train", "_clean", train_clean),
        ("val", "", val),
        ("val", "_clean", val_clean),
        ("test", "", (test_loss, test_acc)),
    ):
        row[f"{prefix}_loss{suffix}"], row[f"{prefix}_acc{suffix}"] = loss, acc
    batches = len(setup.bounds)
    if sums is None:
        row |= {"batch_loss": math.nan, "grad_norm": math.nan, "flooded_frac": math.nan}
    else:
        method = setup.cfg.flood_method
        weights = sum(flooded_weight(method, hi - lo) for lo, hi in setup.bounds)
        row["batch_loss"] = sums["batch_loss"].item() / batches
        row["grad_norm"] = sums["grad_norm"].item() / batches
        row["flooded_frac"] = sums["flooded"].item() / weights
    row["epoch_lr"] = learning_rate(setup.cfg, max(epoch, 1))
    return row
