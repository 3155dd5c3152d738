"""How a comparison is counted and how a claim of the paper is judged: the rules, once.

docs/report.md states the same rules in words; a test reads them back from there.

A comparison (flooded minus a baseline, paired over seeds, Holm-adjusted) falls in one
category, checked in this order:

- B0_MOSTLY: more than half of the paired seeds chose b = 0, so the "flooded" result is
  mostly ordinary training again and says little about flooding;
- GAIN or LOSS: Holm p < ALPHA, by the sign of the mean difference;
- NO_EVIDENCE: anything else, untested comparisons (too few seeds, no spread) included.

A claim with a direction ("flooding raises test accuracy") gets:

- SUPPORTS: at least one comparison significant in the claimed direction, none against;
- CONTRADICTS: at least one significant against, none in the claimed direction;
- INCONCLUSIVE: none significant, or some each way (mixed);
- NOT_TESTED: the grid has no comparison that gave a p value for it.

A claim that something can happen (a double descent, memorisation) gets SUPPORTS when the
grid shows it at least once, and INCONCLUSIVE otherwise: its absence from a small grid
does not show that it cannot happen.
"""

from __future__ import annotations

import math

from flooding.report.inference import ALPHA

B0_MOSTLY = "b = 0 chosen by most seeds"
GAIN = "significant gain"
LOSS = "significant loss"
NO_EVIDENCE = "no evidence"
CATEGORIES = (GAIN, LOSS, NO_EVIDENCE, B0_MOSTLY)

SUPPORTS = "supports"
CONTRADICTS = "contradicts"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested"
VERDICTS = (SUPPORTS, CONTRADICTS, INCONCLUSIVE, NOT_TESTED)


def _tested(p_holm: object) -> bool:
    return p_holm is not None and not (isinstance(p_holm, float) and math.isnan(p_holm))


def category(p_holm: object, difference: float, chosen_levels: tuple[float, ...]) -> str:
    """The category of one comparison (see the module text)."""
    if chosen_levels and sum(b == 0 for b in chosen_levels) * 2 > len(chosen_levels):
        return B0_MOSTLY
    if _tested(p_holm) and float(p_holm) < ALPHA:  # type: ignore[arg-type]
        return GAIN if difference > 0 else LOSS
    return NO_EVIDENCE


def directional(categories: list[str], tested: int, claimed: str = GAIN) -> str:
    """The verdict on a claim that flooding moves a measure the `claimed` way.

    `categories` of the comparisons that bear on the claim; `tested`: how many of them
    gave a p value.
    """
    against = LOSS if claimed == GAIN else GAIN
    if tested == 0:
        return NOT_TESTED
    found, opposed = claimed in categories, against in categories
    if found and not opposed:
        return SUPPORTS
    if opposed and not found:
        return CONTRADICTS
    return INCONCLUSIVE


def existence(seen: int, looked: int) -> str:
    """The verdict on a claim that something can happen: seen in `seen` of `looked`."""
    if looked == 0:
        return NOT_TESTED
    return SUPPORTS if seen > 0 else INCONCLUSIVE


# The rules in words, as the page and docs/report.md state them (a test holds the docs to
# these). Categories first, in the order they are checked, then the verdicts.
CATEGORY_RULES = (
    (B0_MOSTLY, "more than half of the paired seeds chose b = 0"),
    (GAIN, f"Holm p < {ALPHA:g} and the flooded mean is higher"),
    (LOSS, f"Holm p < {ALPHA:g} and the flooded mean is lower"),
    (NO_EVIDENCE, "anything else, comparisons without a p value included"),
)
VERDICT_RULES = (
    (
        SUPPORTS,
        "at least one comparison significant in the claimed direction and none against it; "
        "for a claim that something can happen, seen at least once",
    ),
    (CONTRADICTS, "at least one comparison significant against the claim and none for it"),
    (
        INCONCLUSIVE,
        "no significant comparison, or significant ones both ways; for a claim that "
        "something can happen, not seen",
    ),
    (NOT_TESTED, "the grid has no comparison with a p value that bears on the claim"),
)
