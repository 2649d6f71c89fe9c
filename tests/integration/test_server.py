"""The HTTP server on a real socket: /metrics passes the real ``promtool check metrics``,
/healthz maps the monitor's health to 200/503, and extra routes mount on the same port."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from bench.metrics import PROMETHEUS_ACCEPT, filled_metrics
from cxprobe.server import HttpServer, accepts_gzip
from exporters.metrics import CheckSeries, MonitorMetrics
from probes.base import Responder
from scenarios.model import (
    ObservedReply,
    Outcome,
    Period,
    RoutingResult,
    RubricItemResult,
    RubricKind,
    RunResult,
    Thresholds,
)
from tests.support import require_binary

THRESHOLDS = Thresholds(
    first_response=900, human_response=3600, after_hours_response=900, deadline=14400
)
SENT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
LOGGER = logging.getLogger("cxprobe.test.http")


def finished_run(period: Period, outcome: Outcome, *firsts: tuple[float, Responder]) -> RunResult:
    return RunResult(
        run_id=f"run-{period}-{outcome}",
        check_id="acme-email-billing",
        target="acme",
        channel="email",
        scenario="billing-question",
        location="default",
        slot=SENT,
        token="CXP-0123456789",
        period=period,
        thresholds=THRESHOLDS,
        outcome=outcome,
        sent_at=SENT,
        routing=RoutingResult.CORRECT,
        replies=[
            ObservedReply(
                arrived_at=SENT + timedelta(seconds=seconds),
                observed_at=SENT + timedelta(seconds=seconds),
                seconds=seconds,
                responder=responder,
                sender="desk@acme.test",
                queue="billing",
                late=False,
            )
            for seconds, responder in firsts
        ],
        finished_at=SENT + timedelta(hours=1),
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    metrics = MonitorMetrics(registry, "0.0.0-test")
    metrics.declare_checks(
        [
            CheckSeries(
                check_id="acme-email-billing",
                target="acme",
                channel="email",
                scenario="billing-question",
                location="default",
                thresholds=THRESHOLDS,
                objective=0.95,
                rubric_items=("greeting", "sla"),
            )
        ]
    )
    metrics.config_reloaded(True)
    business = finished_run(
        Period.BUSINESS, Outcome.MET, (3, Responder.AUTO), (1200, Responder.HUMAN)
    )
    # A scored run: the rubric's series are linted with the rest.
    business.rubric_score = 40.0
    business.rubric_items = [
        RubricItemResult("greeting", RubricKind.GREETING, 60, False),
        RubricItemResult("sla", RubricKind.SLA, 40, True, 40),
    ]
    metrics.record_run(business, [("first_response", True), ("human_response", True)])
    after_hours = finished_run(Period.AFTER_HOURS, Outcome.BREACHED, (2000, Responder.BOT))
    metrics.record_run(after_hours, [("after_hours_response", False)])
    metrics.observe_scheduler_lag(0.003)
    with metrics.in_flight("email"):
        pass
    return registry


def healthy() -> Mapping[str, Any]:
    return {"status": "ok", "checks": 1, "since": SENT}


async def promtool_check_metrics(exposition: bytes) -> tuple[int, str]:
    promtool = require_binary("promtool")  # fails, never skips, when Prometheus is missing
    process = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(exposition), timeout=30)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_metrics_pass_promtool_and_health_is_ok(registry: CollectorRegistry) -> None:
    server = HttpServer(host="127.0.0.1", port=0, registry=registry, health=healthy, logger=LOGGER)
    async with server, aiohttp.ClientSession() as session:
        assert server.port != 0
        async with session.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = await response.read()
        async with session.get(f"{server.url}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {
                "status": "ok",
                "checks": 1,
                "since": "2026-01-05 10:00:00+00:00",
            }
        async with session.get(f"{server.url}/") as response:
            index = await response.text()
            assert "/metrics" in index and "/healthz" in index

    text = body.decode()
    assert (
        'cxprobe_runs_total{channel="email",location="default",outcome="met",'
        'period="business",scenario="billing-question",target="acme"} 1.0' in text
    )
    assert "cxprobe_first_response_seconds_bucket{" in text
    assert 'cxprobe_slo_events_total{channel="email",result="bad"' in text
    returncode, lint = await promtool_check_metrics(body)
    assert (returncode, lint) == (0, "")


async def test_openmetrics_on_request(registry: CollectorRegistry) -> None:
    server = HttpServer(port=0, registry=registry, health=healthy, logger=LOGGER)
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    async with server, aiohttp.ClientSession() as session:
        assert server.host == "127.0.0.1"  # loopback unless configured otherwise
        async with session.get(f"{server.url}/metrics", headers={"Accept": accept}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            body = await response.text()
    assert body.endswith("# EOF\n")
    assert "# TYPE cxprobe_runs counter" in body


@pytest.mark.parametrize(
    "health",
    [
        lambda: {"status": "starting", "scheduler_running": False},
        lambda: {"checks": 1},
        lambda: 1 / 0,
    ],
    ids=["starting", "no-status", "health-check-raises"],
)
async def test_unhealthy_is_503(
    registry: CollectorRegistry, health: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = HttpServer(port=0, registry=registry, health=health, logger=LOGGER)
    async with server, aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/healthz") as response:
            assert response.status == 503
            state = await response.json()
        # Metrics keep being served while unhealthy: that is when they matter most.
        async with session.get(f"{server.url}/metrics") as response:
            assert response.status == 200
    assert state.get("status") != "ok"


async def test_added_routes_share_the_port_and_only_before_start(
    registry: CollectorRegistry,
) -> None:
    async def webhook(request: web.Request) -> web.Response:
        return web.Response(text=f"got {await request.text()}")

    server = HttpServer(port=0, registry=registry, health=healthy, logger=LOGGER)
    server.add_routes([web.post("/webhooks/test", webhook)])
    async with server, aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/webhooks/test", data="ping") as response:
            assert (response.status, await response.text()) == (200, "got ping")
        with pytest.raises(RuntimeError, match="before the HTTP server starts"):
            server.add_routes([web.post("/late", webhook)])


async def test_access_log_is_debug_only(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    async def fetch(path: str) -> None:
        # A fresh connection each time: aiohttp decides per connection whether to log.
        async with aiohttp.ClientSession() as session, session.get(server.url + path) as got:
            await got.read()

    server = HttpServer(port=0, registry=registry, health=healthy, logger=LOGGER)
    async with server:
        with caplog.at_level(logging.INFO, logger=LOGGER.name):
            await fetch("/metrics")
        assert not [r for r in caplog.records if r.name.endswith(".access")]
        with caplog.at_level(logging.DEBUG, logger=LOGGER.name):
            await fetch("/healthz")
    access = [r for r in caplog.records if r.name.endswith(".access")]
    assert access and access[-1].levelno == logging.DEBUG
    assert getattr(access[-1], "path", None) == "/healthz"


async def test_busy_port_fails_loudly(registry: CollectorRegistry) -> None:
    first = HttpServer(port=0, registry=registry, health=healthy, logger=LOGGER)
    async with first:
        second = HttpServer(port=first.port, registry=registry, health=healthy, logger=LOGGER)
        with pytest.raises(OSError):
            await second.__aenter__()


async def test_a_large_scrape_gzipped_is_the_registry_and_passes_promtool() -> None:
    registry = filled_metrics(12)  # over a thousand series: histograms, _created, last runs
    server = HttpServer(port=0, registry=registry, health=healthy, logger=LOGGER)
    async with server, aiohttp.ClientSession(auto_decompress=False) as session:
        url = f"{server.url}/metrics"
        async with session.get(url, headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Vary"] == "Accept-Encoding"
            gzipped = await response.read()
        async with session.get(url, headers={"Accept-Encoding": "gzip;q=0, br"}) as response:
            assert "Content-Encoding" not in response.headers
            plain = await response.read()
        prometheus = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
        async with session.get(url, headers=prometheus) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            openmetrics_body = gzip.decompress(await response.read())
    assert gzip.decompress(gzipped) == plain == generate_latest(registry)
    assert openmetrics_body == openmetrics_latest(registry)
    returncode, lint = await promtool_check_metrics(plain)
    assert (returncode, lint) == (0, "")


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("*", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip;q=0.0, *", False),  # the explicit refusal wins over the wildcard
        ("*;q=0", False),
        ("gzip;q=bad", False),
    ],
)
def test_gzip_only_when_accepted(accept_encoding: str, gzipped: bool) -> None:
    assert accepts_gzip(accept_encoding) is gzipped
