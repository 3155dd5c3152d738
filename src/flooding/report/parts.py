"""The pieces of the page that the template renders: sections, parts, figures."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from flooding.report import plots
from flooding.report.tables import Table


@dataclass(frozen=True)
class Image:
    src: str  # a data: URL
    width: int
    height: int
    alt: str


@dataclass(frozen=True)
class Figure:
    """Panels laid out side by side where there is room, one per row on a phone."""

    panels: list[Image]
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


def figure(panels: list[plots.Plot], caption: str) -> Figure:
    images = [
        Image(
            "data:image/svg+xml;base64," + base64.b64encode(p.svg).decode("ascii"),
            p.width,
            p.height,
            p.alt,
        )
        for p in panels
    ]
    return Figure(images, caption)
