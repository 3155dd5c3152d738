"""The pieces of the page that the template renders: sections, parts, figures."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from flooding.report import plots
from flooding.report.tables import Table


@dataclass(frozen=True)
class Figure:
    src: str  # a data: URL
    width: int
    height: int
    alt: str
    caption: str


@dataclass(frozen=True)
class Part:
    """A run of content in a section: optional heading, paragraphs, facts, tables, figures."""

    heading: str = ""
    anchor: str = ""  # an id for links to this part
    paragraphs: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    anchor: str
    short: str  # its name in the contents line
    title: str
    parts: list[Part]
    intro: list[str] = field(default_factory=list)  # before the answers and parts
    answers: tuple = ()  # claims.Answer, for the answers section


def figure(plot: plots.Plot, caption: str) -> Figure:
    data = base64.b64encode(plot.png).decode("ascii")
    return Figure(f"data:image/png;base64,{data}", plot.width, plot.height, plot.alt, caption)
