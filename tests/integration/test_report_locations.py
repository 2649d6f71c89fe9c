"""``cxprobe report`` on runs from two locations sharing one store: a "Locations" section
compares each target and channel across the locations, with the figures recomputed here from
the store with plain SQL, in the HTML and the PDF. On SQLite and on PostgreSQL (that one
location gives no such section is tests/unit/test_report_locations.py's)."""

from __future__ import annotations

import asyncio
import html
import re
import statistics
import subprocess
from pathlib import Path

from cxprobe.report.model import pct, seconds
from cxprobe.store.database import EvidenceStore
from tests.evidence_support import CHECKS, load, populate
from tests.integration.test_evidence_retention import write_backend_config
from tests.integration.test_report import make_report
from tests.stores import StoreBackend
from tests.support import require_binary

#: The sandbox config's monitor location, and a second one whose runs share its store.
HERE = "local"
ELSEWHERE = "us-east"
HOURS = 24
JUDGED = "outcome IN ('met', 'breached', 'failed')"


def section_rows(document: str, title: str) -> list[tuple[str, ...]]:
    """The body rows of the first table after the heading ``title``."""
    start = document.index(f"<h2>{title}</h2>")
    body = document[start:].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        tuple(html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row))
        for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


def p(values: list[float], q: float) -> float | None:
    """The ``q`` quantile as the statistics module computes it (inclusive, i.e. linear)."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def expected_rows(backend: StoreBackend) -> list[tuple[str, ...]]:
    """The Locations table recomputed from the store's rows."""
    counts = await backend.query(
        f"""SELECT target, channel, location, count(*),
                   count(*) FILTER (WHERE outcome = 'met'),
                   count(*) FILTER (WHERE {JUDGED}),
                   count(*) FILTER (WHERE routing = 'correct'),
                   count(*) FILTER (WHERE routing IN ('correct', 'wrong')),
                   count(*) FILTER (WHERE period != 'business' AND sent_at IS NOT NULL
                                    AND outcome = 'met'),
                   count(*) FILTER (WHERE period != 'business' AND sent_at IS NOT NULL
                                    AND {JUDGED})
            FROM runs WHERE status = 'closed'
            GROUP BY target, channel, location ORDER BY target, channel, location"""
    )
    timings = await backend.query(
        "SELECT target, channel, location, first_response_seconds, first_human_seconds "
        "FROM runs WHERE status = 'closed'"
    )
    rows = []
    for target, channel, location, runs, met, judged, correct, routed, ah_met, ah_judged in counts:
        mine = [row[3:] for row in timings if row[:3] == (target, channel, location)]
        first = [row[0] for row in mine if row[0] is not None]
        human = [row[1] for row in mine if row[1] is not None]
        rows.append(
            (
                target,
                channel,
                location,
                str(runs),
                str(met),
                pct(met / judged if judged else None),
                seconds(p(first, 0.5)),
                seconds(p(first, 0.95)),
                seconds(p(human, 0.95)),
                pct(correct / routed if routed else None),
                pct(ah_met / ah_judged if ah_judged else None),
            )
        )
    return rows


def test_locations_section_compares_each_target_and_channel(
    tmp_path: Path, store_backend: StoreBackend
) -> None:
    config_path = write_backend_config(tmp_path, store_backend)
    config = load(config_path)
    assert config.monitor.location == HERE

    async def fill(location: str, seed: int) -> None:
        async with EvidenceStore(config.monitor.store_url) as store:
            await populate(store, config, hours=HOURS, seed=seed, location=location)

    asyncio.run(fill(HERE, 7))
    asyncio.run(fill(ELSEWHERE, 11))  # other outcomes and timings, the same slots
    make_report(config_path, tmp_path / "report.html")
    document = (tmp_path / "report.html").read_text(encoding="utf-8")
    rows = section_rows(document, "Locations")
    assert rows == asyncio.run(expected_rows(store_backend))
    # Every target and channel, a line per location, side by side.
    assert len(rows) == 2 * len(CHECKS)
    assert [row[2] for row in rows] == [HERE, ELSEWHERE] * len(CHECKS)
    assert any(here[3:] != there[3:] for here, there in zip(rows[::2], rows[1::2], strict=True))

    make_report(config_path, tmp_path / "report.pdf")
    text = subprocess.run(
        [require_binary("pdftotext"), "-layout", str(tmp_path / "report.pdf"), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for target, channel, location, runs, met, compliance, *_ in rows:
        line = rf"{target}\s+{channel}\s+{location}\s+{runs}\s+{met}\s+{re.escape(compliance)}"
        assert re.search(line, text), line
