"""The report's HTML tables. Every value from the data passes through html.escape here.

Tables are plain HTML with a few classes (`better`, `significant`, `warn`) that the page's
stylesheet colours; nothing depends on a script.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flooding.report.stats import BLOCK_COLUMNS, SETTING_COLUMNS

RQ3_COLUMNS = ("weight_decay", "augment")
ERROR_CHARS = 2000


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""
    title: str = ""
    colspan: int = 1
    rowspan: int = 1


def _cell(tag: str, cell: Cell | str) -> str:
    if isinstance(cell, str):
        cell = Cell(cell)
    attrs = ""
    if cell.css:
        attrs += f' class="{html.escape(cell.css)}"'
    if cell.title:
        attrs += f' title="{html.escape(cell.title)}"'
    if cell.colspan > 1:
        attrs += f' colspan="{cell.colspan}"'
    if cell.rowspan > 1:
        attrs += f' rowspan="{cell.rowspan}"'
    return f"<{tag}{attrs}>{html.escape(cell.text)}</{tag}>"


def table(head: list[list[Cell | str]], body: list[list[Cell | str]], css: str = "") -> str:
    head_html = "".join("<tr>" + "".join(_cell("th", c) for c in row) + "</tr>" for row in head)
    body_html = "\n".join("<tr>" + "".join(_cell("td", c) for c in row) + "</tr>" for row in body)
    css_attr = f' class="{html.escape(css)}"' if css else ""
    return (
        f"<table{css_attr}>\n<thead>{head_html}</thead>\n<tbody>\n{body_html}\n</tbody>\n</table>"
    )


def value(v: object) -> str:
    """A config value as a reader would write it."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:g}"
    return str(v)


def label(column: str) -> str:
    return column.replace("_", " ")


def varying(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> list[str]:
    return [c for c in columns if frame[c].nunique(dropna=False) > 1]


def _block_settings(frame: pd.DataFrame) -> list[str]:
    inner = [c for c in SETTING_COLUMNS if c not in BLOCK_COLUMNS and c not in RQ3_COLUMNS]
    return varying(frame, inner)


def fixed_settings(frame: pd.DataFrame) -> str:
    """The settings that are the same in every row of `frame`, as one line of text."""
    inner = [c for c in SETTING_COLUMNS if c not in (*BLOCK_COLUMNS, *RQ3_COLUMNS)]
    same = [c for c in inner if frame[c].nunique(dropna=False) == 1]
    return ", ".join(f"{label(c)} {value(frame[c].iloc[0])}" for c in same)


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


def p_cell(p: float | None, note: str, alpha: float) -> Cell:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return Cell("n/a", css="muted", title=note)
    text = "<0.001" if p < 0.001 else f"{p:.3f}"
    if p < alpha:
        return Cell(text + " *", css="significant", title=f"p < {alpha:g}")
    return Cell(text)


def main_table(block: pd.DataFrame, alpha: float) -> str:
    """RQ1 and RQ3 for one dataset and architecture: b = 0 against b chosen per seed.

    `block` holds the rows of stats.compare() for one dataset and architecture.
    """
    methods = sorted(block["flood_method"].unique())
    settings = [*_block_settings(block), *RQ3_COLUMNS]
    head: list[list[Cell | str]] = [
        [Cell(label(c), rowspan=2) for c in settings]
        + [Cell("early stopping", rowspan=2), Cell("seeds", rowspan=2)]
        + [Cell("b = 0", title="ordinary training")]
        + [Cell(f"{m}, b chosen by validation", colspan=4) for m in methods],
        ["test acc. (%)"]
        + [c for _ in methods for c in ("test acc. (%)", "chosen b", "Δ (points)", "p")],
    ]
    body: list[list[Cell | str]] = []
    keys = [*settings, "early_stopping"]
    for key, rows in block.groupby(keys, sort=True):
        by_method = {r["flood_method"]: r for _, r in rows.iterrows()}
        first = rows.iloc[0]
        n, expected = int(first["n_pairs"]), int(first["n_expected"])
        seeds = Cell(str(n)) if n >= expected else Cell(f"{n} of {expected}", css="warn")
        means = {"b = 0": first["baseline_mean"]}
        for m, r in by_method.items():
            if r["has_flooding"]:
                means[m] = r["flooded_mean"]
        best = _best(means)
        row: list[Cell | str] = [value(v) for v in key[:-1]]
        row += ["on" if key[-1] else "off", seeds]
        row.append(
            Cell(
                accuracy(first["baseline_mean"], first["baseline_std"], n),
                css="better" if best == "b = 0" else "",
            )
        )
        for m in methods:
            row += _method_cells(by_method.get(m), best == m, alpha)
        body.append(row)
    return table(head, body, css="results")


def _best(means: dict[str, float]) -> str | None:
    known = {k: v for k, v in means.items() if not math.isnan(v)}
    if len(known) < 2 or len(set(known.values())) == 1:
        return None
    return max(known, key=lambda k: known[k])


def _method_cells(row: pd.Series | None, best: bool, alpha: float) -> list[Cell | str]:
    if row is None:
        return [Cell("not run", css="muted", colspan=4)]
    if not row["has_flooding"]:
        return [Cell("no completed run with b > 0", css="muted", colspan=4)]
    n = int(row["n_pairs"])
    diff = row["mean_difference"]
    return [
        Cell(accuracy(row["flooded_mean"], row["flooded_std"], n), css="better" if best else ""),
        levels_text(row["chosen_levels"]),
        Cell(f"{100 * diff:+.2f}", css="up" if diff > 0 else "down" if diff < 0 else ""),
        p_cell(row["p_value"], row["test_note"], alpha),
    ]


def chosen_level_table(chosen: pd.DataFrame, summary: pd.DataFrame) -> str:
    """RQ2: chosen b per dataset, architecture, method and label noise, with Bayes error."""
    keys = ["dataset", "arch", "flood_method", "label_noise"]
    bayes = summary.groupby(["dataset", "arch", "label_noise"])["bayes_error"].mean()
    head: list[list[Cell | str]] = [
        [
            *("dataset", "arch", "method", "label noise", "Bayes error (clean)"),
            *("chosen b, early stopping off", "chosen b, early stopping on", "settings × seeds"),
        ]
    ]
    body: list[list[Cell | str]] = []
    for key, rows in chosen.groupby(keys, sort=True):
        error = bayes.get((key[0], key[1], key[3]), math.nan)
        cells = [value(key[0]), value(key[1]), value(key[2]), value(float(key[3]))]
        cells.append(Cell("not recorded", css="muted") if math.isnan(error) else f"{error:.4f}")
        for stop in (False, True):
            levels = rows.loc[rows["early_stopping"] == stop, "flood_level"]
            cells.append(_spread(levels))
        cells.append(str(int((~rows["early_stopping"].astype(bool)).sum())))
        body.append(cells)
    return table(head, body)


def _spread(levels: pd.Series) -> str:
    if levels.empty:
        return "n/a"
    text = f"{levels.mean():.3g}"
    if len(levels) > 1:
        # Rounded first: identical levels must read 0, not a floating-point residue.
        spread = round(float(levels.std(ddof=1)), 9)
        text += f" ± {spread:.2g} (range {levels.min():g}–{levels.max():g})"
    return text


def unfinished_table(summary: pd.DataFrame) -> str:
    """Every run that did not complete, with its error."""
    rows = summary[summary["status"] != "completed"].sort_values(
        ["status", *BLOCK_COLUMNS, "flood_method", "flood_level", "seed"]
    )
    head: list[list[Cell | str]] = [
        ["status", "dataset", "arch", "method", "b", "seed", "epochs done", "error", "run"]
    ]
    body: list[list[Cell | str]] = []
    for _, r in rows.iterrows():
        error = "" if pd.isna(r["error"]) else str(r["error"])
        if len(error) > ERROR_CHARS:
            error = error[:ERROR_CHARS] + " […]"
        body.append(
            [
                Cell(str(r["status"]), css="warn"),
                value(r["dataset"]),
                value(r["arch"]),
                value(r["flood_method"]),
                value(float(r["flood_level"])),
                value(int(r["seed"])),
                f"{int(r['epochs_completed'])} of {int(r['epochs'])}",
                Cell(error, css="error"),
                value(r["run_dir"]),
            ]
        )
    return table(head, body)


def missing_table(missing: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Setting, method and b combinations without a completed run for some seeds."""
    head: list[list[Cell | str]] = [["dataset", "arch", "setting", "method", "b", "seeds missing"]]
    body: list[list[Cell | str]] = []
    for (dataset, arch), rows in missing.groupby(list(BLOCK_COLUMNS), sort=True):
        grid = summary[(summary["dataset"] == dataset) & (summary["arch"] == arch)]
        shown = [*_block_settings(grid), *varying(grid, RQ3_COLUMNS)]
        for _, r in rows.iterrows():
            setting = ", ".join(f"{label(c)} {value(r[c])}" for c in shown) or "the only one"
            body.append(
                [
                    value(dataset),
                    value(arch),
                    setting,
                    value(r["flood_method"]),
                    value(float(r["flood_level"])),
                    ", ".join(str(s) for s in r["missing"]),
                ]
            )
    return table(head, body)
