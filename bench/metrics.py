"""One ``/metrics`` scrape of a monitor with many series: cxprobe's MonitorMetrics, filled as
a running monitor fills it, rendered and served by cxprobe's HTTP server, beside
prometheus_client's own rendering (what cxprobe served before ``exporters.exposition``).

Checks are declared (``declare_checks``: the runs, routing, threshold and SLO series at zero)
and each records three runs (a met business-hours run answered by an auto-acknowledgement and
a human, a met after-hours run answered by the auto-acknowledgement, a breached run), so that
the first-response histograms and the last-run gauges exist too. Enough checks are declared
for at least ``series`` samples in the exposition; every sample line is a series Prometheus
stores.

Timed, the old way and the new in the same run (ratios old/new): the render of the registry
(classic text and OpenMetrics: prometheus_client's encoders against
:class:`exporters.exposition.Exposition`), and GET ``/metrics`` on loopback through
:class:`cxprobe.server.HttpServer` and through the same server with the previous handler
(prometheus_client's encoder in a worker thread, aiohttp's gzip), once as a plain client asks
(text, no compression) and once as Prometheus asks (OpenMetrics preferred, gzip). While
Prometheus-style scrapes run back to back, ``/healthz`` is fetched back to back on a second
connection: its latency is how long a scrape holds up the event loop (against ``/healthz``
with no scrape running).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from bench.stats import summary_ms
from cxprobe.server import HttpServer
from exporters.exposition import Exposition, Format
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


#: The requests timed over HTTP: as a plain client asks, and as Prometheus does.
REQUESTS = {
    "plain_text": {"Accept-Encoding": "identity"},
    "prometheus": {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
}
_Render = Callable[[CollectorRegistry], bytes]


def renderers(registry: CollectorRegistry) -> dict[str, tuple[_Render, _Render]]:
    """Per format, prometheus_client's render of ``registry`` and cxprobe's (old, new)."""
    exposition = Exposition(registry)
    return {
        "text": (generate_latest, lambda _: exposition.render_format(Format.TEXT)),
        "openmetrics": (
            openmetrics_latest,
            lambda _: exposition.render_format(Format.OPENMETRICS),
        ),
    }


def render_scaling(sizes: tuple[int, ...], renders: int = 10) -> dict[str, dict[str, float]]:
    """p50 milliseconds of the text render, old and new, per series count: how they grow."""
    scaling = {}
    for size in sizes:
        registry = filled_metrics(checks_for(size))
        series = count_series(generate_latest(registry))
        old, new = renderers(registry)["text"]
        new(registry)  # the templates are made by the first render
        scaling[str(series)] = {
            "old_p50_ms": summary_ms(_time_renders(old, registry, renders))["p50_ms"],
            "new_p50_ms": summary_ms(_time_renders(new, registry, renders))["p50_ms"],
        }
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


def _time_renders(render: _Render, registry: CollectorRegistry, renders: int) -> list[float]:
    durations = []
    for _ in range(renders):
        started = time.perf_counter()
        render(registry)
        durations.append(time.perf_counter() - started)
    return durations


def compare_renders(registry: CollectorRegistry, renders: int) -> dict[str, Any]:
    """Old and new render of each format, interleaved so that load hits both alike."""
    figures: dict[str, Any] = {}
    for fmt, (old, new) in renderers(registry).items():
        assert old(registry) == new(registry), f"{fmt}: the new render differs"  # and warms
        old_times: list[float] = []
        new_times: list[float] = []
        for _ in range(renders):
            old_times += _time_renders(old, registry, 1)
            new_times += _time_renders(new, registry, 1)
        figures[fmt] = _old_and_new(old_times, new_times)
    _, new = renderers(registry)["text"]
    new(registry)  # the templates
    changed = []
    for _ in range(renders):
        change_every_series(registry)
        changed += _time_renders(new, registry, 1)
    figures["text"]["new_every_series_changed"] = summary_ms(changed)
    return figures


def change_every_series(registry: CollectorRegistry) -> None:
    """A new value in every series: the worst case for the exposition's reuse of lines (a
    monitor's scrape normally follows a few finished runs, not a change everywhere)."""
    for collector in list(registry._collector_to_names):
        if not isinstance(collector, Counter | Gauge | Histogram):
            continue
        children: list[Any] = (
            list(collector._metrics.values()) if collector._labelnames else [collector]
        )
        for child in children:
            if isinstance(child, Histogram):
                child.observe(1.0)
            else:
                child.inc()


def _old_and_new(old: list[float], new: list[float]) -> dict[str, Any]:
    old_ms, new_ms = summary_ms(old), summary_ms(new)
    return {
        "old": old_ms,
        "new": new_ms,
        "ratio_p50": round(old_ms["p50_ms"] / new_ms["p50_ms"], 1),
        "ratio_p95": round(old_ms["p95_ms"] / new_ms["p95_ms"], 1),
    }


class LibraryRenderingServer(HttpServer):
    """cxprobe's HTTP server with its previous ``/metrics`` handler: prometheus_client's
    encoder in a worker thread, gzip by aiohttp (level 6), for the old side of the figures."""

    def __init__(self, registry: CollectorRegistry, **options: Any) -> None:
        super().__init__(registry=registry, **options)
        self._library_registry = registry

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.to_thread(encoder, self._library_registry)
        response = web.Response(body=body, headers={"Content-Type": content_type})
        response.enable_compression()
        return response


async def _time_http(
    session: aiohttp.ClientSession, url: str, scrapes: int, headers: dict[str, str]
) -> tuple[list[float], int, str]:
    """Seconds per GET (until the body is read), the bytes on the wire, the content type."""
    durations = []
    wire = 0
    content_type = ""
    for _ in range(scrapes):
        started = time.perf_counter()
        async with session.get(url, headers=headers) as response:
            body = await response.read()
            response.raise_for_status()
        durations.append(time.perf_counter() - started)
        wire = len(body)
        content_type = response.headers.get("Content-Type", "")
    return durations, wire, content_type


async def _health_during(
    session: aiohttp.ClientSession, url: str, scraping: asyncio.Task[Any]
) -> list[float]:
    """Seconds per GET ``/healthz``, back to back, until ``scraping`` is done."""
    durations = []
    while not scraping.done():
        started = time.perf_counter()
        async with session.get(f"{url}/healthz") as response:
            await response.read()
        durations.append(time.perf_counter() - started)
    return durations


async def _compare_scrapes(
    session: aiohttp.ClientSession, servers: dict[str, HttpServer], scrapes: int, request: str
) -> dict[str, Any]:
    """GET /metrics as ``request`` asks from the old server and the new, alternately."""
    headers = REQUESTS[request]
    first: dict[str, float] = {}
    wire: dict[str, int] = {}
    durations: dict[str, list[float]] = {side: [] for side in servers}
    content_type = ""
    for side, server in servers.items():
        # The first scrape of a format makes the new exposition's templates: timed apart.
        seconds, _, _ = await _time_http(session, f"{server.url}/metrics", 1, headers)
        first[side] = round(seconds[0] * 1000, 3)
    for _ in range(scrapes):
        for side, server in servers.items():
            seconds, wire[side], content_type = await _time_http(
                session, f"{server.url}/metrics", 1, headers
            )
            durations[side] += seconds
    return {
        "content_type": content_type.split(";")[0],
        "bytes_on_the_wire": wire,
        "first_scrape_ms": first,
        **_old_and_new(durations["old"], durations["new"]),
    }


async def _health_figures(
    scraper: aiohttp.ClientSession, checker: aiohttp.ClientSession, url: str, scrapes: int
) -> dict[str, dict[str, float]]:
    """/healthz back to back for half a second alone, then during Prometheus scrapes."""
    idle = asyncio.create_task(asyncio.sleep(0.5))
    alone = await _health_during(checker, url, idle)
    scraping = asyncio.create_task(
        _time_http(scraper, f"{url}/metrics", scrapes, REQUESTS["prometheus"])
    )
    during = await _health_during(checker, url, scraping)
    await scraping
    return {"idle": summary_ms(alone), "during_scrapes": summary_ms(during)}


async def compare_http(registry: CollectorRegistry, scrapes: int) -> dict[str, Any]:
    """Scrapes of the old server and the new (ratios old/new), and /healthz on each."""
    logger = logging.getLogger("bench.metrics")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    options: dict[str, Any] = {"health": lambda: {"status": "ok"}, "logger": logger, "port": 0}
    servers = {
        "old": LibraryRenderingServer(registry, **options),
        "new": HttpServer(registry=registry, **options),
    }
    figures: dict[str, Any] = {}
    # auto_decompress off: the wire size is what Prometheus transfers; it inflates itself.
    async with (
        servers["old"],
        servers["new"],
        aiohttp.ClientSession(auto_decompress=False) as scraper,
        aiohttp.ClientSession() as checker,
    ):
        for request in REQUESTS:
            figures[request] = await _compare_scrapes(scraper, servers, scrapes, request)
        health = {
            side: await _health_figures(scraper, checker, server.url, scrapes)
            for side, server in servers.items()
        }
    for when in ("idle", "during_scrapes"):
        figures[f"healthz_{when}"] = {side: health[side][when] for side in servers}
    return figures


async def measure(series: int = 10_000, scrapes: int = 50) -> dict[str, Any]:
    checks = checks_for(series)
    started = time.perf_counter()
    registry = filled_metrics(checks)
    fill_seconds = time.perf_counter() - started
    exposition = generate_latest(registry)
    generate_latest(registry)  # warm: the first render pays for imports and caches
    render = compare_renders(registry, scrapes)
    http = await compare_http(registry, scrapes)
    scaling = render_scaling(SCALING_SIZES)
    scrape_p95s = [render[fmt]["new"]["p95_ms"] for fmt in render]
    scrape_p95s += [http[name]["new"]["p95_ms"] for name in REQUESTS]
    return {
        "checks": checks,
        "series": count_series(exposition),
        "series_by_kind": series_by_kind(exposition),
        "bytes": len(exposition),
        "declare_and_record_seconds": round(fill_seconds, 3),
        "render": render,
        "http": http,
        "text_render_p50_ms_by_series": scaling,
        "goal": {"scrape_ms_max": 50},
        "passed": max(scrape_p95s) <= 50,
    }
