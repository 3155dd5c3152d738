"""The report page: one self-contained HTML file, rendered from a Jinja2 template.

Nothing is loaded from anywhere: the style sheet is inline, figures are base64 SVG data
URLs, there is no script, and a Content-Security-Policy forbids every other source so
that a browser refuses (and reports) anything that would reach the network. The template
(templates/report.html.j2) escapes every value; this module only gathers them.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from functools import cache

import jinja2
import pandas as pd

from flooding.report.analysis import Analysis
from flooding.report.sections import sections
from flooding.report.tables import footnoted

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1400px; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
.lead { font-size: 1.1rem; background: #f3f6fa; padding: 0.8rem 1rem; border-radius: 6px; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.6rem 0 1.2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
table.results td { white-space: nowrap; }
th { background: #f5f5f5; }
/* The first column stays in view while a wide table scrolls sideways. */
tbody tr > :first-child, thead tr:first-child > :first-child {
  position: sticky; left: 0; background: #fff; z-index: 1; }
thead tr:first-child > :first-child { background: #f5f5f5; }
td.setting { min-width: 14rem; }
td.better { font-weight: bold; background: #e6f4ea; }
td.significant { font-weight: bold; }
td.up { color: #1a7f37; } td.down { color: #c62828; }
td.warn { background: #fff4e5; } td.muted { color: #777; }
td.error { font-family: ui-monospace, monospace; white-space: pre-wrap; min-width: 20rem; }
figure { margin: 1rem 0 2rem; } figcaption { color: #555; font-size: 0.9rem; }
.panels { display: grid; gap: 0.5rem;
          grid-template-columns: repeat(auto-fill, minmax(min(100%, 440px), 1fr)); }
.panels img { width: 100%; height: auto; max-width: 560px; }
.note { color: #555; font-size: 0.9rem; }
.answer { border-left: 4px solid #ccc; padding: 0 0 0 0.8rem; margin: 1rem 0; }
.verdict { font-weight: bold; padding: 0 0.4rem; border-radius: 4px; white-space: nowrap; }
.verdict.supports { background: #e6f4ea; color: #1a7f37; }
.verdict.contradicts { background: #fdecea; color: #c62828; }
.verdict.inconclusive { background: #fff4e5; color: #8a5300; }
.verdict.not-tested { background: #eee; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dd { margin: 0; overflow-wrap: anywhere; } dt { font-weight: bold; }
"""


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("flooding.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    return environment.get_template("report.html.j2")


def render(
    metrics: pd.DataFrame,
    summary: pd.DataFrame,
    title: str,
    built_at: datetime,
    previous: pd.DataFrame | None = None,
    aux: pd.DataFrame | None = None,
    search: pd.DataFrame | None = None,
    efficiency: pd.DataFrame | None = None,
) -> str:
    """The page for these tables; `previous`, an earlier summary, adds what changed; `aux`,
    AdaFlood's held-out losses (results/aux_losses.parquet), its levels' figure; `search`,
    the workflow's search table, the rounds of each search for b; `efficiency`, a cluster
    run's account (flooding.efficiency), what its jobs used."""
    analysis = Analysis.of(metrics, summary, previous, aux, search, efficiency)
    shown = [
        dataclasses.replace(
            section,
            parts=[
                dataclasses.replace(part, tables=[footnoted(t) for t in part.tables])
                for part in section.parts
            ],
        )
        for section in sections(analysis, built_at)
    ]
    return _template().render(policy=POLICY, style=STYLE, title=title, sections=shown)
