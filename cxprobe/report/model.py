"""The audit report as a document: sections of tables, charts, text and incidents.

:mod:`cxprobe.report.build` fills it from the store; :mod:`cxprobe.report.pdf` and
:mod:`cxprobe.report.html` render the same document, so the PDF and the HTML always say the
same thing, and every figure is formatted once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scenarios.durations import format_duration


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal (``87.5 %``); ``—`` when there is no data."""
    return "—" if value is None else f"{value * 100:.1f} %"


def seconds(value: float | None) -> str:
    """A duration for people: ``12.3 s`` below a minute, else ``4m5s``; ``—`` when none."""
    if value is None:
        return "—"
    return f"{value:.1f} s" if value < 60 else format_duration(value)


@dataclass(frozen=True)
class Text:
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class TableBlock:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str = ""
    note: str = ""
    #: Columns from this index on are right-aligned numbers, except ``text_columns``.
    numbers_from: int = 1
    text_columns: tuple[int, ...] = ()

    def numeric(self, index: int) -> bool:
        return index >= self.numbers_from and index not in self.text_columns


@dataclass(frozen=True)
class Chart:
    png: bytes
    caption: str
    width_ratio: float  # width / height of the image


@dataclass(frozen=True)
class Incident:
    title: str
    facts: tuple[tuple[str, str], ...]
    excerpt: tuple[str, ...]  # a few lines of the reply, or what happened instead


Block = Text | TableBlock | Chart | Incident


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    facts: tuple[tuple[str, str], ...]  # the cover's key figures and provenance
    sections: tuple[Section, ...] = field(default_factory=tuple)
