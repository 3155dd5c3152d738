"""bench/bench_drift.py's runs: the default's noisy Gaussians at the levels it is given.

The default searches its Gaussians' levels (levels: auto), so its grid lists only b = 0
and AdaFlood's runs; a bench that took the grid's runs as they are would measure b = 0
alone, and fail on AdaFlood's runs, which need their auxiliary models first.
"""

from __future__ import annotations

import dataclasses

from bench_scripts import load_bench


def test_drift_bench_trains_the_given_levels_of_each_seed_with_flood_only() -> None:
    bench = load_bench("bench_drift")
    configs = bench.default_configs(0.2, [0, 2], [0.0, 0.3, 0.6])

    assert sorted((c.seed, c.flood_level) for c in configs) == [
        (0, 0.0),
        (0, 0.3),
        (0, 0.6),
        (2, 0.0),
        (2, 0.3),
        (2, 0.6),
    ]
    assert {c.flood_method for c in configs} == {"flood"}
    assert {(c.dataset, c.label_noise) for c in configs} == {("gaussians", 0.2)}
    # Only the level and the seed differ: everything else is the default's setting.
    settings = {dataclasses.replace(c, flood_level=0.0, seed=0) for c in configs}
    assert len(settings) == 1
