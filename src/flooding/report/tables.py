"""The report's tables as data: rows of cells that the page template renders (escaped).

Cells carry a few classes (`better`, `significant`, `warn`) that the page's stylesheet
colours, and an explanation that the page shows as a numbered note under the table (never
only on hover, which a phone cannot do); nothing depends on a script.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from flooding.report import settings, verdicts
from flooding.report.inference import ALPHA
from flooding.report.settings import RQ3_COLUMNS, describe, label, value
from flooding.report.stats import BLOCK_COLUMNS

ERROR_CHARS = 2000
# Columns per flooding method in the RQ1 table.
METHOD_COLUMNS = 6


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""
    title: str = ""  # an explanation, shown as a numbered note under the table
    colspan: int = 1
    rowspan: int = 1
    mark: str = ""  # the note's number, set by footnoted()


Row = list[Cell]


@dataclass(frozen=True)
class Table:
    head: list[Row]
    body: list[Row]
    css: str = ""
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def footnoted(table: Table) -> Table:
    """The table with each cell's explanation as a numbered note under it, one number per
    distinct text: readable on a phone, where nothing can be hovered."""
    notes: list[str] = []

    def marked(cell: Cell) -> Cell:
        if not cell.title:
            return cell
        if cell.title not in notes:
            notes.append(cell.title)
        return dataclasses.replace(cell, title="", mark=str(notes.index(cell.title) + 1))

    head = [[marked(c) for c in row] for row in table.head]
    body = [[marked(c) for c in row] for row in table.body]
    return dataclasses.replace(table, head=head, body=body, notes=[*table.notes, *notes])


def cells(*texts: Cell | str) -> Row:
    return [t if isinstance(t, Cell) else Cell(t) for t in texts]


def accuracy(mean: float, std: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return "n/a"
    if n == 1 or math.isnan(std):
        return f"{100 * mean:.2f} (1 seed)"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def levels_text(levels: tuple[float, ...]) -> str:
    counts = sorted(Counter(levels).items())
    if len(counts) == 1:
        return f"{counts[0][0]:g}"
    return ", ".join(f"{b:g} ×{n}" for b, n in counts)


def p_cell(p: object, adjusted: object, note: str) -> Cell:
    """ "p / Holm p", starred when the adjusted p is below ALPHA; the note when untested."""
    if p is None or pd.isna(p):
        return Cell("n/a", css="muted", title=note)
    text = f"{_p(p)} / {_p(adjusted)}"
    if adjusted is not None and adjusted < ALPHA:
        return Cell(text + " *", css="significant", title=f"Holm-adjusted p < {ALPHA:g}")
    return Cell(text)


def _p(p: object) -> str:
    if p is None or pd.isna(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def difference(row: pd.Series) -> Cell:
    """Mean paired difference in points, with its 95 % interval."""
    diff = row["mean_difference"]
    text = f"{100 * diff:+.2f}"
    if not pd.isna(row["ci_low"]):
        text += f" [{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}]"
    return Cell(text, css="up" if diff > 0 else "down" if diff < 0 else "")


def needed(row: pd.Series) -> Cell:
    n = row["seeds_needed"]
    if n is None or pd.isna(n):
        return Cell("n/a", css="muted", title="no effect, no spread, or more than 1000 seeds")
    return Cell(f"{int(n)}", title="seeds for 80 % power at the observed effect and spread")


def main_table(block: pd.DataFrame, edges: pd.DataFrame) -> Table:
    """RQ1 and RQ3 for one dataset and architecture: b = 0 against b chosen per seed.

    `block` holds the rows of stats.compare() for one dataset and architecture, `edges`
    those of diagnostics.edge_of_grid() (flagged chosen-b cells).
    """
    methods = sorted(block["flood_method"].unique())
    shown = [*settings.varying(block), *(c for c in RQ3_COLUMNS if settings.applies(block, c))]
    head = [
        [Cell(label(c), rowspan=2) for c in shown]
        + [Cell("early stopping", rowspan=2), Cell("seeds", rowspan=2)]
        + [Cell("b = 0", title="ordinary training")]
        + [Cell(f"{m}, b chosen by validation", colspan=METHOD_COLUMNS) for m in methods],
        cells("test acc. (%)")
        + [
            c
            for _ in methods
            for c in cells(
                "test acc. (%)",
                "chosen b",
                "Δ (points) [95 % interval]",
                "p / Holm p",
                "answer",
                "seeds for 80 % power",
            )
        ],
    ]
    flagged = {
        tuple(r[c] for c in (*shown, "flood_method", "early_stopping")): r["advice"]
        for _, r in edges.iterrows()
    }
    body: list[Row] = []
    for key, rows in block.groupby([*shown, "early_stopping"], sort=True):
        by_method = {r["flood_method"]: r for _, r in rows.iterrows()}
        first = rows.iloc[0]
        n, expected = int(first["n_pairs"]), int(first["n_expected"])
        seeds = Cell(str(n)) if n >= expected else Cell(f"{n} of {expected}", css="warn")
        means = {"b = 0": first["baseline_mean"]}
        for m, r in by_method.items():
            if r["has_flooding"]:
                means[m] = r["flooded_mean"]
        best = _best(means)
        dataset = str(block["dataset"].iloc[0])
        row = [Cell(value(v, c, dataset)) for v, c in zip(key[:-1], shown, strict=True)]
        row += cells("on" if key[-1] else "off", seeds)
        baseline = accuracy(first["baseline_mean"], first["baseline_std"], n)
        row.append(Cell(baseline, css="better" if best == "b = 0" else ""))
        for m in methods:
            advice = flagged.get((*key[:-1], m, key[-1]), "")
            row += _method_cells(by_method.get(m), best == m, advice)
        body.append(row)
    return Table(head, body, css="results", caption="Same in every row: " + settings.fixed(block))


def _best(means: dict[str, float]) -> str | None:
    known = {k: v for k, v in means.items() if not math.isnan(v)}
    if len(known) < 2 or len(set(known.values())) == 1:
        return None
    return max(known, key=lambda k: known[k])


def _method_cells(row: pd.Series | None, best: bool, edge: str) -> Row:
    if row is None:
        return [Cell("not run", css="muted", colspan=METHOD_COLUMNS)]
    if not row["has_flooding"]:
        return [Cell("no completed run with b > 0", css="muted", colspan=METHOD_COLUMNS)]
    n = int(row["n_pairs"])
    levels = levels_text(row["chosen_levels"])
    return [
        Cell(accuracy(row["flooded_mean"], row["flooded_std"], n), css="better" if best else ""),
        Cell(levels + " ⚠", css="warn", title="on the grid's edge: " + edge)
        if edge
        else Cell(levels),
        difference(row),
        p_cell(row["p_value"], row["p_holm"], row["test_note"]),
        category_cell(
            verdicts.category(row["p_holm"], row["mean_difference"], row["chosen_levels"])
        ),
        needed(row),
    ]


def category_cell(category: str) -> Cell:
    """A comparison's category (verdicts.category), coloured by its direction."""
    return Cell(category, css={verdicts.GAIN: "up", verdicts.LOSS: "down"}.get(category, ""))


def unfinished_table(summary: pd.DataFrame) -> Table:
    """Every run that did not complete, with its error."""
    rows = summary[summary["status"] != "completed"].sort_values(
        ["status", *BLOCK_COLUMNS, "flood_method", "flood_level", "seed"]
    )
    head = [
        cells("status", "dataset", "arch", "method", "b", "seed", "epochs done", "error", "run")
    ]
    body: list[Row] = []
    for _, r in rows.iterrows():
        error = "" if pd.isna(r["error"]) else str(r["error"])
        if len(error) > ERROR_CHARS:
            error = error[:ERROR_CHARS] + " […]"
        body.append(
            cells(
                Cell(str(r["status"]), css="warn"),
                value(r["dataset"]),
                value(r["arch"]),
                value(r["flood_method"]),
                value(float(r["flood_level"])),
                value(int(r["seed"])),
                f"{int(r['epochs_completed'])} of {int(r['epochs'])}",
                Cell(error, css="error"),
                value(r["run_dir"]),
            )
        )
    return Table(head, body)


def missing_table(missing: pd.DataFrame, summary: pd.DataFrame) -> Table:
    """Setting, method and b combinations without a completed run for some seeds."""
    head = [cells("dataset", "arch", "setting", "method", "b", "seeds missing")]
    body: list[Row] = []
    for (dataset, arch), rows in missing.groupby(list(BLOCK_COLUMNS), sort=True):
        grid = summary[(summary["dataset"] == dataset) & (summary["arch"] == arch)]
        shown = settings.varying(grid, skip=BLOCK_COLUMNS)
        for _, r in rows.iterrows():
            setting = describe(r, shown) or "the only one"
            body.append(
                cells(
                    value(dataset),
                    value(arch),
                    setting,
                    value(r["flood_method"]),
                    value(float(r["flood_level"])),
                    ", ".join(str(s) for s in r["missing"]),
                )
            )
    return Table(head, body)
