"""AdaFlood: the per-sample levels and loss against a hand computation, the folds'
isolation, and the held-out losses in the order and with the labels of the training split."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from flooding.adaflood import (
    aux_config,
    aux_setting,
    fold_assignment,
    fold_indices,
    gather,
    read_aux_losses,
    write_losses,
)
from flooding.config import ConfigError, RunConfig, validate
from flooding.flood import adaflood_levels, flooded_loss
from flooding.methods import METHODS


def test_level_against_a_hand_computation():
    cfg = RunConfig(
        flood_method="adaflood", adaflood_gamma=0.3, adaflood_alpha=2.0, adaflood_beta=0.1
    )
    for loss in (0.0, 0.05, 0.7, 3.0):
        hand = -math.log((1 - 0.3) * math.exp(-(2.0 * loss + 0.1)) + 0.3)
        got = adaflood_levels(torch.tensor([loss], dtype=torch.float64), cfg).item()
        assert got == pytest.approx(hand, rel=1e-12)


def test_gamma_zero_gives_the_scaled_auxiliary_loss_and_levels_grow_with_it():
    aux = torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64)
    levels = adaflood_levels(aux, RunConfig(adaflood_gamma=0.0, adaflood_beta=0.2))
    torch.testing.assert_close(levels, aux + 0.2)
    levels = adaflood_levels(aux, RunConfig(adaflood_gamma=0.5))
    assert bool((levels[1:] > levels[:-1]).all())  # a harder sample gets a higher level
    assert bool((levels < -math.log(0.5)).all())  # bounded by -log(gamma)


def test_loss_is_the_mean_of_each_samples_flood_at_its_own_level():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 3, generator=gen, requires_grad=True)
    targets = torch.randint(0, 3, (8,), generator=gen)
    aux = torch.rand(8, generator=gen) * 2
    cfg = RunConfig(flood_method="adaflood", adaflood_gamma=0.2)
    result = flooded_loss(logits, targets, cfg, aux)
    losses = F.cross_entropy(logits.detach(), targets, reduction="none")
    hand = [
        abs(li - bi) + bi
        for li, bi in zip(
            losses.tolist(),
            [-math.log(0.8 * math.exp(-a) + 0.2) for a in aux.tolist()],
            strict=True,
        )
    ]
    assert result.loss.item() == pytest.approx(sum(hand) / 8, rel=1e-6)
    levels = adaflood_levels(aux, cfg)
    assert result.flooded_frac.item() == pytest.approx((losses < levels).float().mean().item())
    assert result.unflooded.item() == pytest.approx(losses.mean().item())
    # Below its level a sample's gradient flips sign; above, it is ordinary descent.
    result.loss.backward()
    reference = logits.detach().clone().requires_grad_(True)
    each = F.cross_entropy(reference, targets, reduction="none")
    (torch.where(each.detach() < levels, -1.0, 1.0) * each).mean().backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_adaflood_without_auxiliary_losses_fails():
    logits, targets = torch.zeros(2, 2), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="auxiliary losses"):
        flooded_loss(logits, targets, RunConfig(flood_method="adaflood"))


def test_the_method_declares_what_it_varies_and_needs():
    assert METHODS["adaflood"].auxiliary and not METHODS["adaflood"].takes_level
    assert METHODS["adaflood"].varies == "adaflood_gamma"
    assert METHODS["flood"].takes_level and METHODS["iflood"].takes_level


def test_folds_partition_the_split_evenly_and_depend_on_the_seed_only():
    fold = fold_assignment(101, 3, seed=7)
    assert sorted(torch.bincount(fold).tolist()) == [33, 34, 34]
    assert torch.equal(fold, fold_assignment(101, 3, seed=7))
    assert not torch.equal(fold, fold_assignment(101, 3, seed=8))


def test_a_fold_model_never_trains_on_the_samples_it_scores():
    cfg = RunConfig(flood_method="adaflood", adaflood_folds=3, seed=4)
    held_all = []
    for k in range(3):
        trained, held = fold_indices(cfg, 50, k)
        assert not set(trained.tolist()) & set(held.tolist())
        assert len(trained) + len(held) == 50
        held_all += held.tolist()
    assert sorted(held_all) == list(range(50))  # each sample held out exactly once


def test_auxiliary_models_are_the_b0_run_of_the_setting_whatever_gamma():
    a = RunConfig(flood_method="adaflood", adaflood_gamma=0.2, epochs=30)
    b = RunConfig(flood_method="adaflood", adaflood_gamma=0.7, adaflood_beta=0.5, epochs=30)
    assert aux_setting(a) == aux_setting(b)
    assert aux_config(a) == aux_config(b)
    assert aux_config(a).flood_method == "flood" and aux_config(a).flood_level == 0
    assert aux_config(a).epochs == 30
    assert aux_config(RunConfig(adaflood_aux_epochs=5, epochs=30)).epochs == 5


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"adaflood_gamma": 1.0}, "adaflood_gamma"),
        ({"adaflood_gamma": -0.1}, "adaflood_gamma"),
        ({"adaflood_folds": 1}, "adaflood_folds"),
        ({"adaflood_folds": 41, "train_size": 100}, "adaflood_folds"),
    ],
)
def test_bad_adaflood_settings_name_their_key(values, key):
    cfg = RunConfig(dataset="gaussians", flood_method="adaflood", **values)
    with pytest.raises(ConfigError, match=key):
        validate(cfg)


def test_gather_orders_by_index_and_read_checks_the_labels(tmp_path):
    import pandas as pd

    def part(index, fold):
        return pd.DataFrame(
            {
                "index": index,
                "label": [i % 2 for i in index],
                "clean_label": [0] * len(index),
                "loss": [i / 10 for i in index],
                "fold": fold,
            }
        )

    write_losses(tmp_path / "f0.parquet", part([3, 0], 0))
    write_losses(tmp_path / "f1.parquet", part([1, 2], 1))
    frame = gather([tmp_path / "f0.parquet", tmp_path / "f1.parquet"])
    assert frame["index"].tolist() == [0, 1, 2, 3]
    write_losses(tmp_path / "all.parquet", frame)

    class Data:
        y_train = torch.tensor([0, 1, 0, 1])

    loss = read_aux_losses(tmp_path / "all.parquet", Data())
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.1, 0.2, 0.3]))
    Data.y_train = torch.tensor([0, 1, 1, 1])  # another label order: not this split's
    with pytest.raises(ConfigError, match="aux_losses"):
        read_aux_losses(tmp_path / "all.parquet", Data())
    with pytest.raises(ConfigError, match="aux_losses"):
        gather([tmp_path / "f0.parquet"])  # a fold missing


def grid_of(**training):
    from test_workflow_config import filled

    from flooding.grid import expand_grid

    return expand_grid(
        filled(
            {
                "datasets": [{"name": "gaussians", "label_noise": [0.2]}],
                "training": {"train_size": 100, "epochs": 2, **training},
                "flood": {
                    "methods": ["flood", "iflood", "adaflood"],
                    "levels": [0.0, 0.1],
                    "gammas": [0.3, 0.6],
                },
            }
        )
    )


def test_the_grid_gives_all_gammas_of_a_setting_one_set_of_auxiliary_models():
    grid = grid_of()
    assert list(grid.aux) == ["gaussians-noise0.2/mlp/wd0-aug0/seed0-folds2"]
    (aux,) = grid.aux.values()
    # Its job's options, the rerun triggers, carry the default gamma whatever the runs'.
    assert aux.folds == [0, 1] and "--adaflood-gamma 0.5 " in aux.options
    ada = {r.path: r for r in grid.runs if r.config.flood_method == "adaflood"}
    assert sorted(ada) == [
        "gaussians-noise0.2/mlp/wd0-aug0/adaflood0.3/seed0",
        "gaussians-noise0.2/mlp/wd0-aug0/adaflood0.6/seed0",
    ]
    assert {r.aux_losses for r in ada.values()} == {f"results/aux/{aux.path}/losses.parquet"}
    assert all(r.aux is None for r in grid.runs if r.config.flood_method != "adaflood")


def test_adaflood_settings_leave_the_other_methods_runs_as_they_were():
    before, after = grid_of(), grid_of(adaflood_aux_epochs=1, adaflood_beta=0.2)
    others = [r.path for r in before.runs if r.config.flood_method != "adaflood"]
    assert len(others) == 3
    for path in others:
        assert before.by_path[path].options == after.by_path[path].options
    (aux_before,), (aux_after,) = before.aux.values(), after.aux.values()
    assert aux_before.options != aux_after.options  # the auxiliary epochs: retrained
    gammas = [r for r in after.runs if r.config.flood_method == "adaflood"]
    assert {r.config.adaflood_beta for r in gammas} == {0.2}
