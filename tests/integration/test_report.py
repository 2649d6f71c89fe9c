"""``cxprobe report`` on a week of runs (4 channels, every hour of the week, breaches,
refusals, misroutes, after-hours bots): the PDF renders to pages that are not blank, and the
figures it prints are the ones recomputed here from the store with plain SQL."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
import statistics
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
import yaml
from PIL import Image, ImageStat
from typer.testing import CliRunner, Result

from cxprobe.cli_evidence import evidence_app, report
from cxprobe.store.database import EvidenceStore
from probes import CHANNEL_TYPES
from probes.base import Sent
from scenarios.maintenance import MaintenanceMode, MaintenanceWindow
from scenarios.model import (
    AnswerVerdict,
    ContactMode,
    LanguageVerdict,
    Outcome,
    RubricItemResult,
    RubricKind,
)
from tests.evidence_support import (
    CHECKS,
    SECRETS,
    WEEK_START,
    load,
    new_result,
    populate,
    write_config,
)
from tests.support import require_binary

PERIODS = {"business": "business", "after_hours": "after hours", "holiday": "holiday"}


def cli(*args: str) -> Result:
    app = typer.Typer()
    app.command()(report)
    app.add_typer(evidence_app, name="evidence")
    return CliRunner().invoke(app, list(args), env={**SECRETS, "COLUMNS": "400"})


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("report")
    db_path = directory / "store.db"
    config = write_config(directory, db_path)

    async def build() -> None:
        async with EvidenceStore(load(config).monitor.store_url) as store:
            await populate(store, load(config), hours=7 * 24, every_hours=2)

    asyncio.run(build())
    yield config, db_path


def make_report(config: Path, out: Path) -> None:
    result = cli(
        "report",
        "-c",
        str(config),
        "--from",
        WEEK_START.isoformat(),
        "--to",
        "2025-03-10",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def pdf(week: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pdf") / "report.pdf"
    make_report(week[0], out)
    return out


def sql(db_path: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(query).fetchall()
    conn.close()
    return rows


def pct(part: object, whole: object) -> str:
    assert isinstance(part, int) and isinstance(whole, int)
    return "—" if whole == 0 else f"{part / whole * 100:.1f} %"


def test_every_page_renders_and_is_not_blank(pdf: Path, tmp_path: Path) -> None:
    subprocess.run(
        [require_binary("pdftoppm"), "-r", "50", "-png", str(pdf), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 5
    for page in pages:
        with Image.open(page) as image:
            grey = image.convert("L")
            stat = ImageStat.Stat(grey)
            # Mostly white paper with text and charts on it: bright on average, not uniform.
            assert 150 < stat.mean[0] < 254.5, page.name
            assert stat.stddev[0] > 8, f"{page.name} looks blank (stddev {stat.stddev[0]:.1f})"
            assert grey.getextrema()[0] < 80, f"{page.name} has no dark ink"


@pytest.fixture(scope="module")
def text(pdf: Path) -> str:
    found = subprocess.run(
        [require_binary("pdftotext"), "-layout", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return found


def test_compliance_figures_match_the_store(week: tuple[Path, Path], text: str) -> None:
    rows = sql(
        week[1],
        """SELECT target, channel, period, count(*),
                  sum(outcome = 'met'), sum(outcome = 'breached'), sum(outcome = 'failed'),
                  sum(outcome IN ('error', 'interrupted'))
           FROM runs WHERE status = 'closed' GROUP BY target, channel, period""",
    )
    assert len(rows) == 2 * len(CHECKS)  # business and after hours on every channel
    for target, channel, period, runs, met, breached, failed, not_run in rows:
        assert isinstance(met, int) and isinstance(breached, int) and isinstance(failed, int)
        expected = (
            rf"{target}\s+{channel}\s+{PERIODS[str(period)]}\s+{runs}\s+{met}\s+{breached}\s+"
            rf"{failed}\s+{not_run}\s+{re.escape(pct(met, met + breached + failed))}"
        )
        assert re.search(expected, text), f"no line for {channel} {period}: {expected}"
    [(met, judged, total)] = sql(
        week[1],
        "SELECT sum(outcome = 'met'), sum(outcome IN ('met', 'breached', 'failed')), count(*) "
        "FROM runs",
    )
    assert re.search(rf"overall compliance\s+{re.escape(pct(met, judged))} of {judged}", text)
    assert re.search(rf"runs\s+{total} \({total} finished, 0 still open\)", text)


def test_routing_and_after_hours_figures_match_the_store(
    week: tuple[Path, Path], text: str
) -> None:
    for channel, correct, wrong, unknown in sql(
        week[1],
        """SELECT channel, sum(routing = 'correct'), sum(routing = 'wrong'),
                  sum(routing = 'unknown')
           FROM runs WHERE sent_at IS NOT NULL AND expected_queue IS NOT NULL
           GROUP BY channel""",
    ):
        assert isinstance(correct, int) and isinstance(wrong, int)
        expected = (
            rf"acme\s+{channel}\s+billing-question\s+billing\s+{correct}\s+{wrong}\s+{unknown}"
            rf"\s+.*?{re.escape(pct(correct, correct + wrong))}"
        )
        assert re.search(expected, text), expected
    for channel, sent, met in sql(
        week[1],
        """SELECT channel, count(*), sum(outcome = 'met') FROM runs
           WHERE period != 'business' AND sent_at IS NOT NULL GROUP BY channel""",
    ):
        assert re.search(rf"acme\s+{channel}\s+{sent}\s+{met}\s", text), channel


def test_coverage_grids_match_the_store(week: tuple[Path, Path], text: str) -> None:
    """The hours of the week each target and channel was sampled in, recomputed from the sent
    times in the store (in the target's zone; holiday contacts count apart)."""
    zones = {
        target_id: target.business_hours.timezone
        for target_id, target in load(week[0]).targets.items()
    }
    sampled: dict[tuple[str, str], set[tuple[int, int]]] = {}
    for target, channel, sent_at, period in sql(
        week[1], "SELECT target, channel, sent_at, period FROM runs WHERE sent_at IS NOT NULL"
    ):
        assert isinstance(target, str) and isinstance(channel, str) and isinstance(sent_at, str)
        cells = sampled.setdefault((target, channel), set())
        if period != "holiday":
            local = (
                datetime.fromisoformat(sent_at)
                .replace(tzinfo=UTC)
                .astimezone(ZoneInfo(zones[target]))
            )
            cells.add((local.weekday(), local.hour))
    assert len(sampled) == len(CHECKS)
    assert "24/7 coverage" in text
    for (target, channel), cells in sampled.items():
        title = f"{target} · {channel} ({zones[target]}): {len(cells)} of 168 hours sampled"
        assert title in text, title
    # One day's row of the grid: a mark in each of the 24 hours.
    assert re.search(r"Mon(\s+[●H·]){24}", text)


def test_the_channel_measures_match_the_store(week: tuple[Path, Path], text: str) -> None:
    """Each target, channel, location and measure: the runs that took it and its p50 and p95,
    recomputed from ``run_measures`` with plain SQL; labels and methods from the channel."""
    rows = sql(
        week[1],
        """SELECT r.target, r.channel, r.location, m.name, m.seconds
           FROM run_measures m JOIN runs r ON r.run_id = m.run_id
           ORDER BY r.target, r.channel, r.location, m.name""",
    )
    grouped: dict[tuple[str, str, str, str], list[float]] = {}
    for target, channel, location, name, seconds in rows:
        assert isinstance(seconds, float)
        grouped.setdefault((str(target), str(channel), str(location), str(name)), []).append(
            seconds
        )
    kinds = {key[1] for key in grouped}
    assert grouped and kinds <= {kind for kind, t in CHANNEL_TYPES.items() if t.measures}
    for (target, channel, location, name), values in grouped.items():
        p50, p95 = (statistics.quantiles(values, n=100, method="inclusive")[i] for i in (49, 94))
        assert p95 < 600  # shown in seconds to the hundredth (longer ones as durations)
        label = CHANNEL_TYPES[channel].measures[name].label
        expected = (
            rf"{target}\s+{channel}\s+{location}\s+{re.escape(label)}\s+{len(values)}\s+"
            rf"{p50:.2f} s\s+{p95:.2f} s"
        )
        assert re.search(expected, text), f"no line for {name}: {expected}"
    flat = " ".join(text.split())
    for kind in kinds:
        channel_type = CHANNEL_TYPES[kind]
        assert channel_type.measures_heading in flat
        assert " ".join(channel_type.methodology.measures.split()) in flat


def test_the_report_explains_itself(text: str) -> None:
    for words in (
        "Hour of week",
        "After-hours availability",
        "Worst incidents",
        "Cross-channel comparison",
        "INTERNALDATE",
        "performance.now()",
        "partial speech",
        "date_sent",
        "No reply was received.",
        "Kind regards,",  # an excerpt of a misrouted reply
    ):
        assert words in text, words
    assert len(re.findall(r"acme · \w+: \d+ contact\(s\) sent", text)) == len(CHECKS)


def test_html_is_self_contained(week: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    make_report(week[0], out)
    html = out.read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == len(CHECKS)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html and "SLA compliance" in html


def test_the_report_lists_disclosure_skipped_slots_and_maintenance_hours(tmp_path: Path) -> None:
    """Skipped slots and excluded runs are in no compliance figure; the courtesy section counts
    them and lists each window's excluded hours and why."""
    db_path = tmp_path / "store.db"
    config = write_config(tmp_path, db_path)
    loaded = load(config)

    async def build() -> None:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            slot = WEEK_START + timedelta(hours=10)
            skipped = new_result(loaded, "acme-sms-billing", slot)
            excluded = new_result(loaded, "acme-sms-billing", slot + timedelta(hours=1))
            mystery = new_result(loaded, "acme-sms-billing", slot + timedelta(hours=2))
            mystery.contact_mode = ContactMode.MYSTERY
            excluded.slo_excluded = "desk upgrade (maintenance window, store #1)"
            for result in (skipped, excluded, mystery):
                await store.claim_slot(result)
            skipped.outcome = Outcome.SKIPPED
            skipped.reason = "skipped: maintenance: carrier migration (maintenance window, config)"
            await store.finish(skipped)
            for result in (excluded, mystery):
                contact = Sent(at=result.slot, external_id=f"<{result.run_id}@cxprobe.test>")
                await store.record_sent(result.run_id, contact, result.expected_queue)
                result.sent_at = contact.at
                result.outcome = Outcome.BREACHED
                await store.finish(result)
            await store.add_maintenance(
                MaintenanceWindow(
                    channel="sms",
                    reason="desk upgrade",
                    starts_at=WEEK_START + timedelta(hours=11),
                    ends_at=WEEK_START + timedelta(hours=14, minutes=30),
                    mode=MaintenanceMode.EXCLUDE_FROM_SLO,
                ),
                created_by="test",
            )

    asyncio.run(build())
    out = tmp_path / "report.html"
    make_report(config, out)
    text = " ".join(re.sub(r"<[^>]+>", " ", out.read_text(encoding="utf-8")).split())
    # declared 1 (the excluded run), mystery 1; skipped: opt_out 0, maintenance 1, rate_limit 0;
    # excluded 1
    # declared, mystery, skipped: opt_out, maintenance, rate_limit, budget; excluded from SLO
    assert re.search(r"acme sms 1 1 0 1 0 0 1", text), text
    assert re.search(r"store #1 all sms not in SLO 3\.5 desk upgrade", text), text
    # Only the mystery run is judged: the excluded breach and the skipped slot are not.
    assert re.search(r"acme sms business 1 0 1 0 0 0\.0 %", text), text


def test_the_report_shows_answer_verdicts_and_language_per_target_and_channel(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "store.db"
    config = write_config(tmp_path, db_path)
    loaded = load(config)
    judged = [
        (AnswerVerdict.CORRECT, True, LanguageVerdict.MATCH),
        (AnswerVerdict.CORRECT, False, LanguageVerdict.MATCH),
        (AnswerVerdict.WRONG, False, LanguageVerdict.MISMATCH),
        (AnswerVerdict.NONE, False, LanguageVerdict.UNKNOWN),
    ]

    async def build() -> None:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            for index, (answer, resolved, language) in enumerate(judged):
                slot = WEEK_START + timedelta(hours=10 + index)
                result = new_result(loaded, "acme-sms-billing", slot)
                await store.claim_slot(result)
                contact = Sent(at=result.slot, external_id=f"<{result.run_id}@cxprobe.test>")
                await store.record_sent(result.run_id, contact, result.expected_queue)
                result.sent_at = contact.at
                result.outcome = Outcome.MET
                result.answer, result.resolved, result.language = answer, resolved, language
                await store.finish(result)

    asyncio.run(build())
    out = tmp_path / "report.html"
    make_report(config, out)
    text = " ".join(re.sub(r"<[^>]+>", " ", out.read_text(encoding="utf-8")).split())
    assert "Answer quality and language" in text
    # correct 2, incomplete 0, wrong 1, none 1; 2 of 3 answered correct; 1 of 4 resolved;
    # language match 2, mismatch 1, unknown 1
    assert re.search(r"acme sms 2 0 1 1 66\.7 % 25\.0 % 2 1 1", text), text


def test_the_report_shows_rubric_scores_and_ranks_competitors(tmp_path: Path) -> None:
    db_path = tmp_path / "store.db"
    config = write_config(tmp_path, db_path)
    data = yaml.safe_load(config.read_text())
    rival = {
        **data["targets"]["acme"],
        "name": "Rival Telecom",
        "competitor": True,
        "contact_mode": "mystery",
        "mystery": {"reason": "quarterly competitor benchmark"},
    }
    data["targets"]["rival"] = rival
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    loaded = load(config)
    greeting = RubricItemResult("greeting", RubricKind.GREETING, 40, True, 40)
    no_greeting = RubricItemResult("greeting", RubricKind.GREETING, 40, False)
    sla = RubricItemResult("sla", RubricKind.SLA, 60, True, 60)
    no_sla = RubricItemResult("sla", RubricKind.SLA, 60, False)
    # (target, check, score, items, verdict, seconds to the human answer)
    runs = [
        ("acme", "acme-email-billing", 100.0, [greeting, sla], AnswerVerdict.CORRECT, 60.0),
        ("acme", "acme-sms-billing", 60.0, [no_greeting, sla], AnswerVerdict.CORRECT, 20.0),
        ("acme", "acme-sms-billing", 40.0, [greeting, no_sla], AnswerVerdict.WRONG, 40.0),
        ("rival", "acme-email-billing", 0.0, [no_greeting, no_sla], AnswerVerdict.WRONG, 90.0),
        ("rival", "acme-email-billing", 40.0, [greeting, no_sla], AnswerVerdict.CORRECT, 10.0),
    ]

    async def build() -> None:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            for index, (target, check, rubric, items, verdict, human) in enumerate(runs):
                slot = WEEK_START + timedelta(hours=10, minutes=index)
                result = dataclasses.replace(new_result(loaded, check, slot), target=target)
                if target == "rival":
                    result.contact_mode = ContactMode.MYSTERY
                await store.claim_slot(result)
                contact = Sent(at=result.slot, external_id=f"<{result.run_id}@cxprobe.test>")
                await store.record_sent(result.run_id, contact, result.expected_queue)
                result.sent_at = contact.at
                result.outcome = Outcome.MET
                result.first_human_seconds = human
                result.answer = verdict
                result.rubric_score, result.rubric_items = rubric, items
                await store.finish(result)

    asyncio.run(build())
    out = tmp_path / "report.html"
    make_report(config, out)
    text = " ".join(re.sub(r"<[^>]+>", " ", out.read_text(encoding="utf-8")).split())
    assert "Mystery-shopping rubric per target and channel" in text
    # target, channel, scored runs, mean, lowest, missed most (share met), low
    assert re.search(r"acme email 1 100\.0 100\.0 greeting \(100\.0 %\)", text), text
    assert re.search(r"acme sms 2 50\.0 40\.0 greeting \(50\.0 %\) low", text), text
    assert re.search(r"rival email 2 20\.0 0\.0 sla \(0\.0 %\) low", text), text
    # The same scenario on each channel: email, sms, spread.
    assert re.search(r"acme billing-question 100\.0 50\.0 50\.0", text), text
    assert re.search(r"rival billing-question 20\.0 — 0\.0", text), text
    # Ranking: acme (median of 60, 20, 40 s: 40 s; 2 of 3 correct; mean rubric 66.7) before
    # rival (median of 90 and 10 s: 50 s; 1 of 2 correct; mean 20); no after-hours runs.
    assert "Competitor ranking" in text
    assert re.search(
        r"1 Acme Telecom \(sandbox\) no declared 3 40\.0 s \(#1\) 66\.7 % \(#1\) 66\.7 \(#1\) — ",
        text,
    ), text
    assert re.search(
        r"2 Rival Telecom yes mystery 2 50\.0 s \(#2\) 50\.0 % \(#2\) 20\.0 \(#2\) — ", text
    ), text
