"""The declared constraints: what they accept, how they word a refusal, their JSON Schema."""

from __future__ import annotations

import math

import pytest

from flooding.validation import Choice, ConfigError, Range, resolve_size, split_sizes


@pytest.mark.parametrize(
    ("constraint", "accepted"),
    [
        (Range(), "a finite number"),
        (Range(integer=True, minimum=1), "an integer >= 1"),
        (Range(minimum=0), "a finite number >= 0"),
        (Range(exclusive_minimum=0), "a finite number > 0"),
        (Range(minimum=0, exclusive_maximum=1), "a number with 0 <= value < 1"),
        (Range(exclusive_minimum=0, exclusive_maximum=1), "a number with 0 < value < 1"),
        (Range(minimum=0, text="zero or more"), "zero or more"),
        (Choice(("sgd", "adam")), "sgd, adam"),
    ],
)
def test_refusals_say_what_is_accepted(constraint, accepted):
    assert constraint.accepted() == accepted


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        (Range(), [-1e9, 0.0, 3.5], [math.inf, -math.inf, math.nan]),
        (Range(minimum=0), [0.0, 2.0], [-1e-12, math.nan, math.inf]),
        (Range(exclusive_minimum=0, exclusive_maximum=1), [1e-9, 0.5], [0.0, 1.0, -1.0]),
        (Range(integer=True, minimum=0, exclusive_maximum=2**63), [0, 2**63 - 1], [-1, 2**63]),
        (Choice(("a", "b")), ["a", "b"], ["c", ""]),
    ],
)
def test_bounds_are_inclusive_or_exclusive_as_declared(constraint, good, bad):
    for value in good:
        constraint.check("x", value)
    for value in bad:
        with pytest.raises(ConfigError) as caught:
            constraint.check("x", value)
        assert caught.value.field == "x" and caught.value.value is value


def test_schema_keywords_mirror_the_bounds():
    assert Range(integer=True, minimum=1).schema() == {"type": "integer", "minimum": 1}
    assert Range(exclusive_minimum=0, exclusive_maximum=1).schema() == {
        "type": "number",
        "exclusiveMinimum": 0,
        "exclusiveMaximum": 1,
    }
    assert Choice(("flood", "iflood")).schema() == {"enum": ["flood", "iflood"]}


def test_sizes_default_to_the_dataset_and_stay_within_real_data():
    assert resolve_size("train_size", 0, 1000, None, "spiral") == 1000  # generated: default
    assert resolve_size("train_size", 0, 0, 1438, "digits") == 1438  # real: all of it
    assert resolve_size("train_size", 500, 0, 1438, "digits") == 500
    with pytest.raises(ConfigError, match="at most 1438 for digits"):
        resolve_size("train_size", 1439, 0, 1438, "digits")
    with pytest.raises(ConfigError, match="has no samples"):
        resolve_size("test_size", 0, 0, 0, "empty")


def test_both_splits_must_be_non_empty():
    assert split_sizes(1000, 0.2, 0) == (800, 200)
    with pytest.raises(ConfigError, match=r"2 samples give 2 and 0") as caught:
        split_sizes(2, 0.2, 2)
    assert caught.value.field == "train_size"
