"""Every query of the committed dashboards returns data from a real Prometheus.

A real monitor (``open_monitor`` with its HTTP server on a free port) probes the sandbox on SMS
(the Twilio sandbox), on the phone (a second Twilio sandbox line whose far end is real audio,
heard over a media stream to the monitor: the phone audio measures) and on the generic messaging
channel (two generic peers), a second monitor
at another location probes two generic peers of its own with the checks the configuration does
not limit to the first location, and a real Prometheus scrapes both every second. The runs
cover what the panels show: met, correctly routed runs with bot and human answers (acme on
SMS); misrouted runs (acme on the generic platform ``social``, whose agents always answer for
the wrong team); runs judged at a deadline shorter than the agents take, whose human answer
then arrives late (slowco on ``social``); and after-hours runs started by the monitor's own
scheduler (nightowl, closed all week, on the platform ``night``), which also give the
scheduler-lag histogram its observations. Acme's phone line is called twice, one call after the
other, so every audio measure's histogram moves after Prometheus first saw it (``rate()`` needs
that). The second location runs acme's generic check and
nightowl's, so the Locations dashboard has every figure for both locations side by side.

Then each dashboard is resolved as Grafana would: template variables from their
``label_values(…)`` queries (multi-value and "All" variables formatted as Grafana formats them
for Prometheus), ``$__interval`` / ``$__rate_interval`` from the panel's minimum interval and
the scrape interval, ``$__range`` from the time range. Every panel target's ``expr`` is run
through ``/api/v1/query`` and must return at least one finite value: a NaN-only answer draws
nothing, so it counts as no data. On the Locations dashboard, every query must also answer for
both locations.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import yaml

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import LIBRARY_DIR, load_config
from probes import CHANNEL_TYPES
from sandbox.clock import WeeklyHours
from sandbox.generic.peer import GenericPeer
from sandbox.profile import PROFILES_DIR, Profile
from sandbox.twilio.audio import Voicebox
from sandbox.twilio.server import TwilioSandbox
from tests.support import (
    PHONE_AUTH_TOKEN,
    SUPPORT_LINE,
    generic_platform,
    heard_line,
    listen_on_stream,
    phone_channel,
    require_binary,
    weekly,
)

# Two real-time phone calls, two locations' runs, every panel's queries.
pytestmark = pytest.mark.timeout(240)

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
SCRAPE_SECONDS = 1
#: The dashboards are looked at over the last five minutes (the test takes well under that).
RANGE_SECONDS = 300
#: Grafana's panel width in data points: $__interval is at least range / this.
MAX_DATA_POINTS = 1000
PROBE_NUMBER = "+15005550006"
#: Where the two monitors probe from; checks limited to the first run there only.
LOCATION = "test"
ELSEWHERE = "second"
RUNS_PER_CHECK = 3
#: The agents on the generic platform ``social`` answer after this long, slowco's runs are
#: judged before that (a late reply each run).
SOCIAL_AGENT_SECONDS = 1.0
SLOWCO_DEADLINE = "600ms"
#: The scheduler starts nightowl's check this often; its runs end with the bot's answer.
NIGHTOWL_EVERY = "2s"
#: The channels with measures of their own, and their panels on the target drill-down.
MEASURED = {kind: t for kind, t in CHANNEL_TYPES.items() if t.measures}
MEASURE_PANELS = [
    title
    for t in MEASURED.values()
    for title in (
        f"{t.measures_heading} over the range",
        *(f"{t.measures_heading} (p{q})" for q in (50, 95)),
    )
]
#: Queries that are right to return nothing for one value of a single-value variable, and why.
#: Each must return data for another selection, and each entry must still be needed.
EMPTY_BY_DESIGN = {
    ("target.json", "Time since last success", "target", "slowco"): (
        "every slowco run is breached (judged before its agents answer), so no run in the range "
        "met its expectations; the panel shows 'none in range'"
    ),
    **{
        ("target.json", title, "target", other): f"{other} has no phone line"
        for title in MEASURE_PANELS
        for other in ("slowco", "nightowl")
    },
}
#: Acme's phone line is called this many times (one call after the other).
PHONE_CALLS = 2
#: A schedule that never fires during a test: these runs are started by the test itself.
NEVER = {"cron": "0 0 1 1 *", "misfire_grace": "1s"}


# -- Prometheus --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusProcess:
    """``prometheus`` in a temp dir on 127.0.0.1, scraping its targets every second."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None

    def start(self, *scrape_targets: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_SECONDS}s",
                "evaluation_interval": f"{SCRAPE_SECONDS}s",
            },
            "scrape_configs": [
                {"job_name": "cxprobe", "static_configs": [{"targets": list(scrape_targets)}]}
            ],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self._log = (self.workdir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        self.started_at = time.time()

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it does not exit within 10 s."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log}")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusProcess]:
    server = PrometheusProcess(require_binary("prometheus"), tmp_path / "prometheus")
    try:
        yield server
    finally:
        server.stop()


class PrometheusApi:
    def __init__(self, session: aiohttp.ClientSession, server: PrometheusProcess) -> None:
        self.session = session
        self.server = server

    async def get(self, path: str, params: list[tuple[str, str]]) -> Any:
        async with self.session.get(f"{self.server.url}{path}", params=params) as response:
            body = await response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    async def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = await self.get("/api/v1/query", [("query", expr), ("time", f"{at:.3f}")])
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        assert isinstance(result, list)
        return result

    async def scalar(self, expr: str) -> float | None:
        """The single value of ``expr`` now, or None while it has none."""
        result = await self.query(expr, time.time())
        return float(result[0]["value"][1]) if result else None

    async def label_values(self, label: str, match: str | None, start: float, end: float) -> Any:
        params = [("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
        if match:
            params.append(("match[]", match))
        return await self.get(f"/api/v1/label/{label}/values", params)

    async def wait_until(
        self, expr: str, wanted: float | Callable[[], float], within: float = 20
    ) -> None:
        """Until ``expr`` evaluates to ``wanted`` (Prometheus has scraped that state): a scrape
        is not an event a client can await, so this polls, against a deadline. A callable
        ``wanted`` is read again at each poll (a monitor's own figure that may still move)."""
        deadline = time.monotonic() + within
        value = target = None
        while time.monotonic() < deadline:
            self.server.alive()
            target = wanted() if callable(wanted) else wanted
            with suppress(aiohttp.ClientError):
                value = await self.scalar(expr)
                if value == target:
                    return
            await asyncio.sleep(0.25)
        raise AssertionError(f"{expr} is {value}, not {target}, after {within}s")


# -- the sandbox and the monitor -----------------------------------------------------------------


def load_profile() -> Profile:
    raw: dict[str, Any] = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    return Profile.model_validate(raw)


def slow_misrouting_peer() -> Profile:
    """Every contact is answered by the wrong team, after slowco's deadline."""
    raw: dict[str, Any] = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    raw["generic_peer"]["misroute_rate"] = 1.0
    for queue in raw["generic_peer"]["queues"].values():
        queue["latency"] = {"distribution": "fixed", "seconds": SOCIAL_AGENT_SECONDS}
    return Profile.model_validate(raw)


def target(open_now: bool, channels: dict[str, Any], slas: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "Sandbox brand",
        "business_hours": {"timezone": "UTC", "weekly": weekly(open_now)},
        "channels": channels,
        "queues": {
            "billing": {"match": [{"text": "Acme Billing"}]},
            "tech": {"match": [{"text": "Acme Technical Support"}]},
            "sales": {"match": [{"text": "Acme Sales"}]},
        },
        "responders": [
            {"responder": "bot", "match": {"text": "automated assistant"}},
            {"responder": "bot", "match": {"text": "will reply when we reopen"}},
        ],
        "slas": slas,
        "rate_limit": {"max_contacts_per_hour": 1000},
    }


@dataclass(frozen=True)
class LocationPeers:
    """The generic platforms a location's monitor probes (each posts its webhooks to one
    monitor)."""

    social: GenericPeer
    night: GenericPeer

    def point_at(self, monitor: Monitor) -> None:
        assert monitor.server is not None
        self.social.set_webhook_url(f"{monitor.server.url}/webhooks/generic/social")
        self.night.set_webhook_url(f"{monitor.server.url}/webhooks/generic/night")


def billing_question() -> dict[str, Any]:
    """The library scenario ``billing-question``, as data."""
    data: dict[str, Any] = yaml.safe_load((LIBRARY_DIR / "billing-question.yaml").read_text())
    return data


@dataclass(frozen=True)
class Lines:
    """The Twilio sandboxes: SMS on the default profile's account, and a phone line whose far
    end is heard over a media stream."""

    messaging: TwilioSandbox
    phone: TwilioSandbox


def write_config(
    tmp_path: Path, lines: Lines, profile: Profile, peers: LocationPeers, location: str
) -> Path:
    """The configuration of the monitor at ``location`` (on a port of its own, which its media
    stream URL names): the same targets and checks at both locations, but acme's SMS and phone
    and slowco's checks run at :data:`LOCATION` only."""
    assert profile.twilio is not None and profile.messaging is not None
    social, night = peers.social, peers.night
    page = social.settings.page_id
    port = free_port()
    phone = phone_channel(lines.phone.base_url)
    phone_line: dict[str, Any] = {"number": SUPPORT_LINE}
    listen_on_stream(phone, phone_line, f"ws://127.0.0.1:{port}")
    document: dict[str, Any] = {
        "version": 1,
        "monitor": {
            "location": location,
            "store_url": f"sqlite+aiosqlite:///{tmp_path / f'cxprobe-{location}.db'}",
            "http": {"host": "127.0.0.1", "port": port},
            "log_format": "json",
        },
        "locations": {LOCATION: {}, ELSEWHERE: {}},
        # The library's billing question, scored with the library rubric as well: the Answer
        # quality dashboard's rubric panels need scores.
        "scenarios": {"billing-question": {**billing_question(), "rubric": "mystery-shopper"}},
        "channels": {
            "sms": {
                "twilio": {
                    "account_sid": profile.twilio.account_sid,
                    "auth_token": profile.twilio.auth_token,
                    "api_base_url": lines.messaging.base_url,
                },
                "from_numbers": [PROBE_NUMBER],
                "receiving": {"mode": "webhook"},
                "status_wait": 10,
            },
            "phone": phone,
            "generic": {
                "platforms": {"social": generic_platform(social), "night": generic_platform(night)}
            },
        },
        "targets": {
            "acme": target(
                True,
                {
                    "sms": {"to": str(profile.messaging.sms.address)},
                    "generic": {"platform": "social", "recipient": page, "sender": "cust-1"},
                    "phone": phone_line,
                },
                {
                    "sms": {"first_response": "5s", "human_response": "10s", "deadline": "12s"},
                    "phone": {"first_response": "10s", "human_response": "20s", "deadline": "25s"},
                    "generic": {"first_response": "5s", "human_response": "10s", "objective": 0.9},
                },
            ),
            "slowco": target(
                True,
                {"generic": {"platform": "social", "recipient": page, "sender": "cust-3"}},
                {
                    "generic": {
                        "first_response": "1s",
                        "human_response": "500ms",
                        "deadline": SLOWCO_DEADLINE,
                    }
                },
            ),
            "nightowl": target(
                False,
                {"generic": {"platform": "night", "recipient": page, "sender": "cust-2"}},
                {"generic": {"after_hours_response": "5s", "human_response": "10s"}},
            ),
        },
        "checks": [
            {
                "id": "acme-sms",
                "target": "acme",
                "channel": "sms",
                "scenario": "billing-question",
                "schedule": NEVER,
                "locations": [LOCATION],
            },
            {
                "id": "acme-phone",
                "target": "acme",
                "channel": "phone",
                "scenario": "billing-question",
                "schedule": NEVER,
                "locations": [LOCATION],
            },
            {
                "id": "acme-generic",
                "target": "acme",
                "channel": "generic",
                "scenario": "billing-question",
                "schedule": NEVER,
            },
            {
                "id": "slowco-generic",
                "target": "slowco",
                "channel": "generic",
                "scenario": "billing-question",
                "schedule": NEVER,
                "locations": [LOCATION],
            },
            {
                "id": "nightowl-generic",
                "target": "nightowl",
                "channel": "generic",
                "scenario": "billing-question",
                "schedule": {"every": NIGHTOWL_EVERY},
            },
        ],
    }
    path = tmp_path / f"cxprobe-{location}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def location_peers(stack: AsyncExitStack, workdir: Path) -> LocationPeers:
    """A slow misrouting platform (open) and a closed one, for one location's monitor."""
    profile = load_profile()
    slow = slow_misrouting_peer()
    assert profile.generic_peer is not None and slow.generic_peer is not None
    social = await stack.enter_async_context(
        GenericPeer(slow.generic_peer, workdir=workdir / "social")
    )
    night = await stack.enter_async_context(
        GenericPeer(
            profile.generic_peer,
            workdir=workdir / "night",
            hours=WeeklyHours.model_validate(weekly(False)),
        )
    )
    return LocationPeers(social, night)


@asynccontextmanager
async def sandbox(
    tmp_path: Path,
) -> AsyncIterator[tuple[Lines, Profile, dict[str, LocationPeers]]]:
    profile = load_profile()
    assert profile.twilio is not None
    open_all_week = WeeklyHours.model_validate(weekly(True))
    async with AsyncExitStack() as stack:
        messaging = await stack.enter_async_context(
            TwilioSandbox(
                profile.twilio,
                workdir=tmp_path / "lines",
                hours=open_all_week,
                messaging=profile.messaging,
            )
        )
        phone = await stack.enter_async_context(
            TwilioSandbox(
                heard_line(),
                workdir=tmp_path / "phone",
                hours=open_all_week,
                voicebox=Voicebox(),
            )
        )
        peers = {
            location: await location_peers(stack, tmp_path / location)
            for location in (LOCATION, ELSEWHERE)
        }
        yield Lines(messaging, phone), profile, peers
        assert phone.violations == [], phone.violations


def sample(monitor: Monitor, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples in the monitor's registry matching ``labels``."""
    total = 0.0
    for family in monitor.registry.collect():
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


async def until(condition: Callable[[], bool], what: str, within: float = 20) -> None:
    """Until ``condition`` holds: the registry's counters have no change notification."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run_checks(monitor: Monitor) -> None:
    """The test-started checks' runs (those the monitor's location has), one check's after the
    other (a conversation per customer id at a time); a slowco run ends at its deadline, and
    the next waits for its late answer."""
    checks = {check.id: check for check in monitor.config.checks_here()}
    start = datetime.now(UTC)

    async def runs_of(check_id: str, *, late: bool = False, count: int = RUNS_PER_CHECK) -> None:
        for number in range(count):
            await monitor.runner.execute(checks[check_id], start + timedelta(seconds=number))
            if late:
                await until(
                    lambda n=number: sample(monitor, "cxprobe_late_replies_total") >= n + 1,
                    f"the late reply of {check_id}'s run {number + 1}",
                )

    async with asyncio.TaskGroup() as runs:
        for check_id, late in (
            ("acme-sms", False),
            ("acme-generic", False),
            ("slowco-generic", True),
        ):
            if check_id in checks:
                runs.create_task(runs_of(check_id, late=late))
        if "acme-phone" in checks:
            runs.create_task(runs_of("acme-phone", count=PHONE_CALLS))


# -- resolving dashboards as Grafana does ---------------------------------------------------------

_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> float:
    found = _DURATION.match(duration)
    assert found, duration
    return int(found[1]) * _UNIT_SECONDS[found[2]]


def regex_escape(value: str) -> str:
    """Grafana's escaping of one of a multi-value's values for a Prometheus regex inside a
    PromQL string (``prometheusRegularEscape``; label values here have no backslashes)."""
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m[0], value)


def substitute(text: str, variables: dict[str, str]) -> str:
    for name in sorted(variables, key=len, reverse=True):  # $__rate_interval before $__range
        text = text.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    return text


@dataclass
class Selection:
    """One choice of a dashboard's variables (values as they appear in queries)."""

    values: dict[str, str]

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


async def selections(
    api: PrometheusApi, board: dict[str, Any], start: float, end: float
) -> list[Selection]:
    """Every combination of the single-value variables' options; multi-value ones are "All"."""
    chosen: list[dict[str, str]] = [{}]
    for variable in board["templating"]["list"]:
        if variable["type"] == "datasource":
            continue
        assert variable["type"] == "query", variable
        expanded: list[dict[str, str]] = []
        for values in chosen:
            found = _LABEL_VALUES.match(substitute(variable["query"], values))
            assert found, variable["query"]
            options = await api.label_values(found["label"], found["match"], start, end)
            assert options, f"variable {variable['name']}: {variable['query']} has no values"
            if variable.get("multi") or variable.get("includeAll"):
                everything = "|".join(regex_escape(option) for option in options)
                expanded.append({**values, variable["name"]: f"({everything})"})
            else:
                expanded += [{**values, variable["name"]: option} for option in options]
        chosen = expanded
    return [Selection(values) for values in chosen]


def intervals(panel: dict[str, Any]) -> dict[str, str]:
    """$__interval and $__rate_interval as Grafana computes them for this panel."""
    interval = max(
        seconds(panel.get("interval", f"{SCRAPE_SECONDS}s")), RANGE_SECONDS / MAX_DATA_POINTS
    )
    rate_interval = max(interval + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)
    return {
        "__interval": f"{math.ceil(interval)}s",
        "__rate_interval": f"{math.ceil(rate_interval)}s",
        "__range": f"{RANGE_SECONDS}s",
    }


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield from panel.get("panels", [])
        if panel["type"] != "row":
            yield panel


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


def finite_locations(result: list[dict[str, Any]]) -> set[str]:
    """The locations of the series with a finite value."""
    return {
        series["metric"].get("location", "")
        for series in result
        if math.isfinite(float(series["value"][1]))
    }


# -- the test -------------------------------------------------------------------------------------

#: Lines (target, channel, location) of the Locations dashboard's comparison the runs produce:
#: acme's generic check runs at both locations, acme's SMS and slowco's at the first only.
COMPARED = {
    ("acme", "sms", LOCATION),
    ("acme", "phone", LOCATION),
    ("acme", "generic", LOCATION),
    ("acme", "generic", ELSEWHERE),
    ("slowco", "generic", LOCATION),
    ("nightowl", "generic", LOCATION),
    ("nightowl", "generic", ELSEWHERE),
}


async def produce_runs(monitors: dict[str, Monitor], api: PrometheusApi) -> None:
    """Every location's runs, until Prometheus has scraped their final counts."""
    monitor = monitors[LOCATION]
    for each in monitors.values():
        each.scheduler.start()
    async with asyncio.TaskGroup() as locations:
        for each in monitors.values():
            locations.create_task(run_checks(each))
    await until(
        lambda: (
            all(
                sample(each, "cxprobe_runs_total", target="nightowl") >= RUNS_PER_CHECK
                for each in monitors.values()
            )
            and sample(monitor, "cxprobe_scheduler_lag_seconds_count") >= 2
        ),
        "nightowl's scheduled runs",
    )
    for each in monitors.values():
        await each.scheduler.stop()
    await until(
        lambda: all(sample(each, "cxprobe_open_runs") == 0 for each in monitors.values()),
        "the last scheduled run to finish",
    )
    # The runs produced what the panels are for, not just zero-valued series.
    for name, labels in [
        ("cxprobe_runs_total", {"outcome": "met"}),
        ("cxprobe_runs_total", {"outcome": "breached"}),
        ("cxprobe_runs_total", {"period": "after_hours"}),
        ("cxprobe_routing_total", {"result": "correct"}),
        ("cxprobe_routing_total", {"result": "wrong"}),
        ("cxprobe_slo_events_total", {"slo": "after_hours_response"}),
        ("cxprobe_slo_events_total", {"result": "bad"}),
        ("cxprobe_first_response_seconds_count", {"responder": "human"}),
        ("cxprobe_first_response_seconds_count", {"responder": "bot"}),
        ("cxprobe_late_replies_total", {}),
        ("cxprobe_scheduler_lag_seconds_count", {}),
        ("cxprobe_rubric_score_count", {"target": "acme"}),
        ("cxprobe_answer_verdicts_total", {"target": "acme"}),
    ]:
        assert sample(monitor, name, **labels) > 0, (name, labels)
    # Every call was heard: each measure of the audio has an observation per call.
    for kind, channel_type in MEASURED.items():
        for name in channel_type.measures:
            metric = f"cxprobe_{kind}_{name}_seconds_count"
            assert sample(monitor, metric, target="acme") == PHONE_CALLS, metric
    elsewhere = monitors[ELSEWHERE]
    for name, labels in [
        ("cxprobe_runs_total", {"target": "acme", "outcome": "met"}),
        ("cxprobe_runs_total", {"target": "nightowl", "period": "after_hours"}),
        ("cxprobe_first_response_seconds_count", {"responder": "human"}),
    ]:
        assert sample(elsewhere, name, **labels) > 0, (ELSEWHERE, name, labels)
    # The monitors' own totals, read at each poll: a run or a late reply that a monitor counts
    # after the scheduler stopped (seen under load) moves the figure Prometheus must reach.
    await api.wait_until(
        "sum(cxprobe_runs_total)",
        lambda: sum(sample(each, "cxprobe_runs_total") for each in monitors.values()),
    )
    await api.wait_until(
        "sum(cxprobe_late_replies_total)", lambda: sample(monitor, "cxprobe_late_replies_total")
    )


@dataclass
class Answers:
    """What every panel query answered, over every selection."""

    failures: list[str]
    answered: set[tuple[str, str, str]]
    excused: set[tuple[str, str, str]]
    used: set[tuple[str, str, str, str]]
    #: (dashboard, panel, refId) -> the locations with a finite value, for each selection.
    locations: dict[tuple[str, str, str], list[set[str]]]
    #: (target, channel, location) of the Locations comparison's run counts.
    compared: set[tuple[str, str, str]]


async def query_every_panel(api: PrometheusApi, boards: dict[str, dict[str, Any]]) -> Answers:
    now = time.time()
    start = now - RANGE_SECONDS
    answers = Answers([], set(), set(), set(), {}, set())
    for name, board in boards.items():
        for selection in await selections(api, board, start, now):
            for panel in panels(board):
                variables = {**selection.values, **intervals(panel)}
                for query in panel["targets"]:
                    expr = substitute(query["expr"], variables)
                    assert "$" not in expr, f"{name} {panel['title']}: {expr}"
                    result = await api.query(expr, now)
                    key = (name, panel["title"], query["refId"])
                    answers.locations.setdefault(key, []).append(finite_locations(result))
                    if key == ("locations.json", "Locations side by side", "A"):
                        answers.compared |= {
                            (s["metric"]["target"], s["metric"]["channel"], s["metric"]["location"])
                            for s in result
                        }
                    if finite(result):
                        answers.answered.add(key)
                        continue
                    allowed = [
                        entry
                        for entry in EMPTY_BY_DESIGN
                        if entry[:2] == key[:2] and selection.values.get(entry[2]) == entry[3]
                    ]
                    if allowed:
                        answers.used.update(allowed)
                        answers.excused.add(key)
                    else:
                        answers.failures.append(
                            f"{' / '.join(key)} [{selection.describe()}]: {expr} -> {result}"
                        )
    return answers


async def test_every_dashboard_query_returns_data(
    tmp_path: Path, prometheus: PrometheusProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXPROBE_TEST_TWILIO_TOKEN", PHONE_AUTH_TOKEN)
    boards = {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}
    assert set(boards) == {
        "overview.json",
        "target.json",
        "monitor.json",
        "locations.json",
        "quality.json",
    }
    logger = logging.getLogger("cxprobe.test")
    async with sandbox(tmp_path) as (lines, profile, peers):
        configs = {
            location: load_config(write_config(tmp_path, lines, profile, peers[location], location))
            for location in (LOCATION, ELSEWHERE)
        }
        async with (
            open_monitor(configs[LOCATION], logger) as monitor,
            open_monitor(configs[ELSEWHERE], logger) as elsewhere,
            aiohttp.ClientSession() as session,
        ):
            monitors = {LOCATION: monitor, ELSEWHERE: elsewhere}
            assert monitor.server is not None and elsewhere.server is not None
            lines.messaging.messaging.set_inbound_webhook(
                PROBE_NUMBER, f"{monitor.server.url}/webhooks/twilio/sms"
            )
            for location, each in monitors.items():
                peers[location].point_at(each)
            api = PrometheusApi(session, prometheus)
            prometheus.start(
                *(each.server.url.removeprefix("http://") for each in monitors.values())
            )
            # The zero-valued series must be scraped before the first run counts, or
            # increase() would miss it.
            await api.wait_until('sum(up{job="cxprobe"})', 2)
            await api.wait_until("count(cxprobe_check_info)", 5 + 2)
            await produce_runs(monitors, api)
            answers = await query_every_panel(api, boards)
    assert answers.failures == [], "\n".join(answers.failures)
    assert answers.excused <= answers.answered, (
        f"no data for any selection: {answers.excused - answers.answered}"
    )
    assert answers.used == set(EMPTY_BY_DESIGN), (
        f"not needed: {set(EMPTY_BY_DESIGN) - answers.used}"
    )
    # The Locations dashboard (no single-value variable: one selection, all) compares both.
    compared = {
        key: found for key, found in answers.locations.items() if key[0] == "locations.json"
    }
    assert compared
    for key, found in compared.items():
        assert found == [{LOCATION, ELSEWHERE}], f"{' / '.join(key)}: {found}"
    assert answers.compared == COMPARED
