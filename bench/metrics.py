"""One ``/metrics`` scrape of a monitor with many series: cxprobe's MonitorMetrics, filled as
a running monitor fills it, rendered by prometheus_client and served by cxprobe's HTTP server.

Checks are declared (``declare_checks``: the runs, routing, threshold and SLO series at zero)
and each records three runs (a met business-hours run answered by an auto-acknowledgement and
a human, a met after-hours run answered by the auto-acknowledgement, a breached run), so that
the first-response histograms and the last-run gauges exist too. Enough checks are declared
for at least ``series`` samples in the exposition; every sample line is a series Prometheus
stores.

Timed: ``generate_latest`` on the registry (the classic text format), and GET ``/metrics``
through :class:`cxprobe.server.HttpServer` on loopback, once as a plain client asks (text, no
compression) and once as Prometheus asks (OpenMetrics preferred, gzip).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest

from bench.stats import summary_ms
from cxprobe.server import HttpServer
from exporters.metrics import CheckSeries, MonitorMetrics
from probes.base import Responder
from scenarios.model import ObservedReply, Outcome, Period, RunResult, Thresholds

#: The Accept header Prometheus 2.x/3.x sends when scraping.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
THRESHOLDS = Thresholds(
    first_response=900, human_response=3600, after_hours_response=900, deadline=14400
)
SENT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
#: Series counts the render time is also measured at, to show how it grows.
SCALING_SIZES = (1000, 2500, 5000)


def fleet_check(index: int) -> CheckSeries:
    # A target per ten checks, three channels: label values as varied as a real fleet's.
    return CheckSeries(
        check_id=f"check-{index:05d}",
        target=f"target-{index // 10:04d}",
        channel=("email", "webchat", "sms")[index % 3],
        scenario=f"scenario-{index % 10}",
        location="london",
        thresholds=THRESHOLDS,
        objective=0.95,
    )


def _reply(seconds: float, responder: Responder) -> ObservedReply:
    at = SENT + timedelta(seconds=seconds)
    return ObservedReply(at, at, seconds, responder, "desk@acme.test", None, False)


def runs_of(check: CheckSeries) -> list[RunResult]:
    """A met business run (auto + human), a met after-hours run (auto), a breached run."""
    base = RunResult(
        run_id=f"{check.check_id}-1",
        check_id=check.check_id,
        target=check.target,
        channel=check.channel,
        scenario=check.scenario,
        location=check.location,
        slot=SENT,
        token="CXP-0000000001",
        period=Period.BUSINESS,
        thresholds=THRESHOLDS,
        outcome=Outcome.MET,
        sent_at=SENT,
        replies=[_reply(30, Responder.AUTO), _reply(1200, Responder.HUMAN)],
        finished_at=SENT + timedelta(hours=1),
    )
    after_hours = replace(
        base, period=Period.AFTER_HOURS, replies=[_reply(40, Responder.AUTO)], run_id="2"
    )
    breached = replace(base, outcome=Outcome.BREACHED, replies=[], run_id="3")
    return [base, after_hours, breached]


def filled_metrics(checks: int) -> CollectorRegistry:
    """A registry as a monitor with ``checks`` checks that each ran three times leaves it."""
    registry = CollectorRegistry(auto_describe=True)
    metrics = MonitorMetrics(registry, "bench")
    declared = [fleet_check(index) for index in range(checks)]
    metrics.declare_checks(declared)
    for check in declared:
        for result in runs_of(check):
            metrics.record_run(result, [("first_response", result.outcome is Outcome.MET)])
    metrics.observe_scheduler_lag(0.002)
    return registry


def count_series(exposition: bytes) -> int:
    """Sample lines of a text exposition: each is one series."""
    return sum(1 for line in exposition.splitlines() if line and not line.startswith(b"#"))


def series_by_kind(exposition: bytes) -> dict[str, int]:
    """Sample lines by what they are: histogram buckets, ``_created`` timestamps, the rest."""
    kinds = {"histogram_buckets": 0, "created_timestamps": 0, "other": 0}
    for line in exposition.splitlines():
        if not line or line.startswith(b"#"):
            continue
        name = line.split(b"{", 1)[0].split(b" ", 1)[0]
        if name.endswith(b"_bucket"):
            kinds["histogram_buckets"] += 1
        elif name.endswith(b"_created"):
            kinds["created_timestamps"] += 1
        else:
            kinds["other"] += 1
    return kinds


def render_scaling(sizes: tuple[int, ...], renders: int = 10) -> dict[str, float]:
    """p50 milliseconds of ``generate_latest`` per series count: how the cost grows."""
    scaling = {}
    for size in sizes:
        registry = filled_metrics(checks_for(size))
        series = count_series(generate_latest(registry))
        scaling[str(series)] = summary_ms(_time_renders(registry, renders))["p50_ms"]
    return scaling


def checks_for(series: int) -> int:
    """The fewest checks that give at least ``series`` series (estimated from ten checks,
    then stepped up: targets are shared by ten checks, so the cost per check varies)."""
    empty = count_series(generate_latest(filled_metrics(0)))
    per_check = (count_series(generate_latest(filled_metrics(10))) - empty) / 10
    checks = max(1, math.floor((series - empty) / per_check))
    while count_series(generate_latest(filled_metrics(checks))) < series:
        checks += 1
    return checks


def _time_renders(registry: CollectorRegistry, scrapes: int) -> list[float]:
    durations = []
    for _ in range(scrapes):
        started = time.perf_counter()
        generate_latest(registry)
        durations.append(time.perf_counter() - started)
    return durations


async def _time_http(
    url: str, scrapes: int, headers: dict[str, str]
) -> tuple[list[float], int, str]:
    """Seconds per GET (until the body is read), the bytes on the wire, the content type."""
    durations = []
    wire = 0
    content_type = ""
    # auto_decompress off: the wire size is what Prometheus transfers; it inflates itself.
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for _ in range(scrapes):
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                response.raise_for_status()
            durations.append(time.perf_counter() - started)
            wire = len(body)
            content_type = response.headers.get("Content-Type", "")
    return durations, wire, content_type


async def _scrape_over_http(registry: CollectorRegistry, scrapes: int) -> dict[str, Any]:
    logger = logging.getLogger("bench.metrics")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    server = HttpServer(registry=registry, health=lambda: {"status": "ok"}, logger=logger, port=0)
    figures: dict[str, Any] = {}
    async with server:
        url = f"{server.url}/metrics"
        for name, headers in [
            ("plain_text", {"Accept-Encoding": "identity"}),
            ("prometheus", {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}),
        ]:
            durations, wire, content_type = await _time_http(url, scrapes, headers)
            figures[name] = {
                "content_type": content_type.split(";")[0],
                "bytes_on_the_wire": wire,
                **summary_ms(durations),
            }
    return figures


async def measure(series: int = 10_000, scrapes: int = 50) -> dict[str, Any]:
    checks = checks_for(series)
    started = time.perf_counter()
    registry = filled_metrics(checks)
    fill_seconds = time.perf_counter() - started
    exposition = generate_latest(registry)
    generate_latest(registry)  # warm: the first render pays for imports and caches
    render = summary_ms(_time_renders(registry, scrapes))
    http = await _scrape_over_http(registry, scrapes)
    scaling = render_scaling(SCALING_SIZES)
    worst_p95 = max(render["p95_ms"], *(figures["p95_ms"] for figures in http.values()))
    return {
        "checks": checks,
        "series": count_series(exposition),
        "series_by_kind": series_by_kind(exposition),
        "bytes": len(exposition),
        "declare_and_record_seconds": round(fill_seconds, 3),
        "generate_latest": render,
        "http": http,
        "generate_latest_p50_ms_by_series": scaling,
        "goal": {"scrape_ms_max": 50},
        "passed": worst_p95 <= 50,
    }
