"""The audit report as one self-contained HTML file: styles inline, charts as data URIs,
no script and no external request (it opens offline and can be mailed or archived as is)."""

from __future__ import annotations

import base64
from html import escape

from cxprobe.report.model import Chart, Incident, Report, TableBlock, Text

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933;
       max-width: 1200px; margin: 2em auto; padding: 0 1.5em; }
h1 { color: #1d4e89; font-size: 1.8em; margin-bottom: .4em; }
h2 { color: #1d4e89; border-bottom: 2px solid #1d4e89; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 .4em; }
table { border-collapse: collapse; margin: .4em 0 .6em; font-size: .86em; }
th, td { padding: .3em .6em; border-bottom: 1px solid #c5ccd3; vertical-align: top;
         text-align: left; }
th { background: #e8eef5; border-bottom: 2px solid #1d4e89; }
tbody tr:nth-child(even) { background: #f6f8fa; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { background: none; border-bottom: 1px solid #c5ccd3; width: 14em; }
.note { color: #52606d; font-size: .82em; }
figure { margin: .8em 0 1.2em; }
figure img { width: 100%; height: auto; }
figcaption { color: #52606d; font-size: .82em; }
pre { background: #f3f4f6; border-left: 3px solid #1d4e89; padding: .5em .8em;
      white-space: pre-wrap; font-size: .85em; }
"""


def _table(block: TableBlock) -> str:
    def cell(tag: str, index: int, text: str) -> str:
        numeric = ' class="n"' if block.numeric(index) else ""
        return f"<{tag}{numeric}>{escape(text)}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(block.columns))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
        for row in block.rows
    )
    parts = [f"<h3>{escape(block.title)}</h3>"] if block.title else []
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    if block.note:
        parts.append(f'<p class="note">{escape(block.note)}</p>')
    return "\n".join(parts)


def _facts(facts: tuple[tuple[str, str], ...]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    return f'<table class="facts">{rows}</table>'


def render_html(report: Report) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(report.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        _facts(report.facts),
    ]
    for section in report.sections:
        parts.append(f"<h2>{escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, TableBlock):
                parts.append(_table(block))
            elif isinstance(block, Chart):
                data = base64.b64encode(block.png).decode("ascii")
                parts.append(
                    f'<figure><img alt="{escape(block.caption)}" '
                    f'src="data:image/png;base64,{data}">'
                    f"<figcaption>{escape(block.caption)}</figcaption></figure>"
                )
            elif isinstance(block, Incident):
                parts.append(f"<h3>{escape(block.title)}</h3>")
                parts.append(_facts(block.facts))
                parts.append(f"<pre>{escape(chr(10).join(block.excerpt))}</pre>")
            elif isinstance(block, Text):
                parts.extend(f"<p>{escape(p)}</p>" for p in block.paragraphs)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
