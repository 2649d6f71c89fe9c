"""The audit report as PDF, with ReportLab (pure Python: nothing to install beyond pip).

A4 landscape, so the 24-hour heatmaps and the wide compliance table fit a page. Text is set
in DejaVu Sans (shipped with matplotlib), which covers the accents and symbols in reply
excerpts that the PDF base fonts cannot show.
"""

from __future__ import annotations

import io
from html import escape
from pathlib import Path
from typing import Any

import matplotlib
from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.enums import TA_RIGHT  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4, landscape  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from cxprobe.report.model import Chart, Incident, Report, TableBlock, Text

PAGE = landscape(A4)
MARGIN = 14 * mm
WIDTH = PAGE[0] - 2 * MARGIN
INK = colors.HexColor("#1f2933")
ACCENT = colors.HexColor("#1d4e89")
RULE = colors.HexColor("#c5ccd3")
HEADER_FILL = colors.HexColor("#e8eef5")
STRIPE = colors.HexColor("#f6f8fa")
EXCERPT_FILL = colors.HexColor("#f3f4f6")

_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _register_fonts() -> tuple[str, str, str]:
    """(regular, bold, mono) font names; DejaVu when available, else the PDF base fonts."""
    names = {
        "CxSans": "DejaVuSans.ttf",
        "CxSans-Bold": "DejaVuSans-Bold.ttf",
        "CxMono": "DejaVuSansMono.ttf",
    }
    try:
        for name, file in names.items():
            if name not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(name, str(_FONTS / file)))
    except Exception:  # a matplotlib without its fonts: the base fonts still work
        return "Helvetica", "Helvetica-Bold", "Courier"
    return "CxSans", "CxSans-Bold", "CxMono"


class _Styles:
    def __init__(self) -> None:
        regular, bold, mono = _register_fonts()
        self.bold = bold
        self.title = ParagraphStyle(
            "title", fontName=bold, fontSize=20, leading=24, textColor=ACCENT, spaceAfter=4 * mm
        )
        self.heading = ParagraphStyle(
            "heading",
            fontName=bold,
            fontSize=13,
            leading=16,
            textColor=ACCENT,
            spaceBefore=3 * mm,
            spaceAfter=2.5 * mm,
        )
        self.subheading = ParagraphStyle(
            "subheading", fontName=bold, fontSize=10, leading=13, textColor=INK, spaceAfter=1.5 * mm
        )
        self.body = ParagraphStyle(
            "body", fontName=regular, fontSize=8.5, leading=11.5, textColor=INK, spaceAfter=2 * mm
        )
        self.note = ParagraphStyle(
            "note", parent=self.body, fontSize=7.5, textColor=colors.HexColor("#52606d")
        )
        self.cell = ParagraphStyle("cell", fontName=regular, fontSize=7.5, leading=9.5)
        self.cell_number = ParagraphStyle("cell_number", parent=self.cell, alignment=TA_RIGHT)
        self.cell_head = ParagraphStyle("cell_head", parent=self.cell, fontName=bold)
        self.cell_head_number = ParagraphStyle(
            "cell_head_number", parent=self.cell_head, alignment=TA_RIGHT
        )
        self.mono = ParagraphStyle("mono", fontName=mono, fontSize=7.5, leading=9.5)


def _widths(block: TableBlock, styles: _Styles, total: float) -> list[float]:
    """Natural column widths (longest cell; a header may wrap at spaces), shrinking the widest
    columns when they do not fit and sharing any slack in proportion."""
    padding = 14.0  # the cell padding (6 + 6) and a little air

    def width(text: str, bold: bool = False) -> float:
        font = styles.bold if bold else styles.cell.fontName
        return float(pdfmetrics.stringWidth(text, font, styles.cell.fontSize))

    natural = []
    for index, column in enumerate(block.columns):
        head = max(width(word, bold=True) for word in column.split() or [""])
        cells = [width(row[index]) for row in block.rows]
        natural.append(max([head, *cells]) + padding)
    if sum(natural) <= total:
        scale = total / sum(natural)
        return [w * scale for w in natural]
    # Cap the widest columns at a common limit found by bisection, so they wrap instead.
    low, high = 0.0, max(natural)
    for _ in range(40):
        middle = (low + high) / 2
        if sum(min(w, middle) for w in natural) > total:
            high = middle
        else:
            low = middle
    return [min(w, low) for w in natural]


def _table(block: TableBlock, styles: _Styles, total: float = WIDTH) -> Table:
    def style(index: int, head: bool) -> ParagraphStyle:
        number = block.numeric(index)
        if head:
            return styles.cell_head_number if number else styles.cell_head
        return styles.cell_number if number else styles.cell

    data = [[Paragraph(escape(c), style(i, True)) for i, c in enumerate(block.columns)]]
    data += [
        [Paragraph(escape(c), style(i, False)) for i, c in enumerate(row)] for row in block.rows
    ]
    table = Table(data, colWidths=_widths(block, styles, total), repeatRows=1, hAlign="LEFT")
    commands: list[tuple[Any, ...]] = [
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, ACCENT),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]
    commands += [("BACKGROUND", (0, r), (-1, r), STRIPE) for r in range(2, len(data), 2)]
    table.setStyle(TableStyle(commands))
    return table


def _facts(facts: tuple[tuple[str, str], ...], styles: _Styles, total: float) -> Table:
    data = [
        [Paragraph(escape(name), styles.cell_head), Paragraph(escape(value), styles.cell)]
        for name, value in facts
    ]
    table = Table(data, colWidths=[total * 0.22, total * 0.78], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _incident(incident: Incident, styles: _Styles) -> KeepTogether:
    excerpt = Table(
        [[Paragraph("<br/>".join(escape(line) for line in incident.excerpt), styles.mono)]],
        colWidths=[WIDTH * 0.6],
        hAlign="LEFT",
    )
    excerpt.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), EXCERPT_FILL),
                ("LINEBEFORE", (0, 0), (0, -1), 2, ACCENT),
                ("LEFTPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    return KeepTogether(
        [
            Paragraph(escape(incident.title), styles.subheading),
            _facts(incident.facts, styles, WIDTH * 0.8),
            Spacer(1, 1.5 * mm),
            excerpt,
            Spacer(1, 4 * mm),
        ]
    )


def _footer(title: str, font: str) -> Any:
    def draw(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.setFillColor(colors.HexColor("#7b8794"))
        canvas.drawString(MARGIN, 8 * mm, title)
        canvas.drawRightString(PAGE[0] - MARGIN, 8 * mm, f"page {document.page}")
        canvas.restoreState()

    return draw


def render_pdf(report: Report) -> bytes:
    styles = _Styles()
    story: list[Any] = [
        Paragraph(escape(report.title), styles.title),
        _facts(report.facts, styles, WIDTH * 0.75),
    ]
    for index, section in enumerate(report.sections):
        story.append(PageBreak() if index in (1, len(report.sections) - 1) else Spacer(1, 6 * mm))
        story.append(Paragraph(escape(section.title), styles.heading))
        for block in section.blocks:
            if isinstance(block, TableBlock):
                parts: list[Any] = []
                if block.title:
                    parts.append(Paragraph(escape(block.title), styles.subheading))
                parts.append(_table(block, styles))
                if block.note:
                    parts.append(Paragraph(escape(block.note), styles.note))
                parts.append(Spacer(1, 3 * mm))
                story.append(KeepTogether(parts) if len(block.rows) < 25 else parts[0])
                if len(block.rows) >= 25:
                    story.extend(parts[1:])
            elif isinstance(block, Chart):
                story.append(
                    KeepTogether(
                        [
                            Image(
                                io.BytesIO(block.png),
                                width=WIDTH,
                                height=WIDTH / block.width_ratio,
                            ),
                            Paragraph(escape(block.caption), styles.note),
                        ]
                    )
                )
            elif isinstance(block, Incident):
                story.append(_incident(block, styles))
            elif isinstance(block, Text):
                story.extend(Paragraph(escape(p), styles.body) for p in block.paragraphs)
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 2 * mm,
        title=report.title,
        author="cxprobe",
    )
    footer = _footer(report.title, styles.bold)
    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
