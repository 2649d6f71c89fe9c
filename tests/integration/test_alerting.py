"""Alerting with real peers: prometheus/alertmanager.yml in a real Alertmanager (it loads, its
receiver examples are valid, it routes and inhibits), and end to end: a monitor probing the
sandbox's generic messaging platform during an outage, a real Prometheus evaluating the rules
generated for this test's config, the real Alertmanager, and a local webhook that receives the
page firing, then resolved once the outage ends.

Every process binds 127.0.0.1 on a free port, keeps its data under the test's temp dir and is
stopped by its PID when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from cxprobe.app import Monitor, open_monitor
from cxprobe.cli import rule_checks
from cxprobe.rules.generate import RuleOptions, generate_rules
from cxprobe.settings import Check, load_config
from sandbox.clock import WeeklyHours
from sandbox.generic.peer import GenericPeer
from tests.support import generic_channels, messaging_profile, require_binary, weekly

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_YML = ROOT / "prometheus" / "alertmanager.yml"
LOGGER = logging.getLogger("cxprobe.test.alerting")
#: The SLO windows shrink 60-fold (1h -> 1m, 5m -> 5s): the rules react in seconds.
WINDOW_SCALE = 1 / 60
#: A commented example line of alertmanager.yml: `# key: value` or `# - key: value`.
_EXAMPLE_LINE = re.compile(r"^(\s*)# ((?:- )?[a-z_]+:.*)$")

Alert = dict[str, Any]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def daemon(argv: list[str], log: Path, ready_url: str) -> AsyncIterator[None]:
    """``argv`` in the foreground until the block ends; ready when ``ready_url`` answers 200.
    Stopped by its PID (SIGTERM, then SIGKILL); fails with its log if it exits early."""
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
        try:
            await _until_ready(process, ready_url, log)
            yield
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _until_ready(process: asyncio.subprocess.Process, url: str, log: Path) -> None:
    # A readiness endpoint is all these daemons offer: poll it against a deadline.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        async with asyncio.timeout(30):
            while process.returncode is None:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
    output = await asyncio.to_thread(log.read_text)
    raise AssertionError(f"{url} never got ready: it exited with {process.returncode}:\n{output}")


@dataclass
class Webhook:
    """The receiving end of Alertmanager's webhooks: one path per receiver."""

    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    url: str = ""

    async def receive(self, request: web.Request) -> web.Response:
        payload = await request.json()
        async with self._arrived:
            self.notifications.append((request.match_info["receiver"], payload))
            self._arrived.notify_all()
        return web.Response()

    def alerts(self) -> list[tuple[str, Alert]]:
        """Every alert of every notification, with the receiver it was sent to."""
        return [(name, alert) for name, body in self.notifications for alert in body["alerts"]]

    async def wait_for(self, wanted: Callable[[str, Alert], bool], seconds: float) -> Alert:
        async with asyncio.timeout(seconds), self._arrived:
            while True:
                for receiver, alert in self.alerts():
                    if wanted(receiver, alert):
                        return alert
                await self._arrived.wait()


@asynccontextmanager
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/alerts/{receiver}", hook.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/alerts"
    try:
        yield hook
    finally:
        await runner.cleanup()


def alertmanager_config(hook: Webhook) -> dict[str, Any]:
    """prometheus/alertmanager.yml with every webhook sent to ``hook`` (by receiver name) and
    its waits cut to a second: the routing and inhibition are the committed ones."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_YML.read_text())
    config["route"] |= {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
    for receiver in config["receivers"]:
        for webhook_config in receiver.get("webhook_configs", []):
            webhook_config["url"] = f"{hook.url}/{receiver['name']}"
    return config


@asynccontextmanager
async def alertmanager(tmp_path: Path, config_text: str) -> AsyncIterator[str]:
    """A real Alertmanager with ``config_text``; yields its base URL."""
    binary = require_binary("prometheus-alertmanager")
    workdir = tmp_path / "alertmanager"
    workdir.mkdir()
    (workdir / "alertmanager.yml").write_text(config_text)
    port = free_port()
    argv = [
        binary,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    async with daemon(argv, workdir / "alertmanager.log", f"{url}/-/ready"):
        yield url


# -- Alertmanager ---------------------------------------------------------------------------


async def test_the_committed_alertmanager_config_loads(tmp_path: Path) -> None:
    async with (
        alertmanager(tmp_path, ALERTMANAGER_YML.read_text()) as url,
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/v2/status") as response,
    ):
        status = await response.json()
    assert "inhibit_rules" in status["config"]["original"]


async def test_the_commented_receiver_examples_are_valid_when_uncommented(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    lines = []
    for line in ALERTMANAGER_YML.read_text().splitlines():
        if match := _EXAMPLE_LINE.match(line):
            line = match.group(1) + match.group(2)
            for path in re.findall(r"/etc/alertmanager/secrets/[\w.-]+", line):
                (secrets / Path(path).name).write_text("not-a-secret\n")
                line = line.replace(path, str(secrets / Path(path).name))
        lines.append(line)
    text = "\n".join(lines)
    for example in ("pagerduty_configs", "slack_configs", "email_configs", "smtp_smarthost"):
        assert f"# {example}" not in text and example in text
    async with alertmanager(tmp_path, text):
        pass


def posted(name: str, **labels: str) -> Alert:
    starts = datetime.now(UTC)
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} test"},
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(minutes=5)).isoformat(),
    }


async def test_alertmanager_routes_by_severity_and_target_and_inhibits(tmp_path: Path) -> None:
    burn = "CxprobeErrorBudgetBurn"
    sms = {"target": "acme", "channel": "sms", "slo": "first_response"}
    beta_email = {"target": "beta", "channel": "email"}
    alerts = [
        posted(burn, severity="page", window="1h", **sms),
        posted(burn, severity="ticket", window="1d", **sms),  # the page covers it
        posted("CxprobeCheckStale", severity="warning", check="beta-email", **beta_email),
        posted(burn, severity="page", window="1h", slo="human_response", **beta_email),  # blind
        posted(burn, severity="ticket", window="1d", target="beta", channel="sms", slo="x"),
    ]
    async with webhook() as hook:
        text = yaml.safe_dump(alertmanager_config(hook))
        async with alertmanager(tmp_path, text) as url, aiohttp.ClientSession() as session:
            async with session.post(f"{url}/api/v2/alerts", json=alerts) as response:
                assert response.status == 200, await response.text()
            for receiver in ("acme-oncall", "cxprobe-operators", "cxprobe-tickets"):
                await hook.wait_for(lambda name, _, r=receiver: name == r, seconds=20)
            async with session.get(f"{url}/api/v2/alerts") as response:
                states = await response.json()
    inhibited = {
        (a["labels"]["target"], a["labels"]["channel"], a["labels"]["severity"])
        for a in states
        if a["status"]["inhibitedBy"]
    }
    assert inhibited == {("acme", "sms", "ticket"), ("beta", "email", "page")}
    delivered = {
        (receiver, alert["labels"]["alertname"], alert["labels"]["target"])
        for receiver, alert in hook.alerts()
    }
    assert delivered == {
        ("acme-oncall", burn, "acme"),
        ("cxprobe-operators", "CxprobeCheckStale", "beta"),
        ("cxprobe-tickets", burn, "beta"),
    }


# -- end to end -----------------------------------------------------------------------------


def monitor_config(tmp_path: Path, peer: GenericPeer, channels: dict[str, Any]) -> Path:
    """One generic-channel check; a run is judged 2s after its contact at the latest."""
    assert peer.settings is not None
    document = {
        "version": 1,
        "monitor": {
            "location": "test",
            "store_url": f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}",
            "http": {"host": "127.0.0.1", "port": 0},
            "log_format": "json",
        },
        "locations": {"test": {}},
        "channels": channels,
        "targets": {
            "acme": {
                "name": "Acme (sandbox)",
                "business_hours": {"timezone": "UTC", "weekly": weekly(True)},
                "channels": {
                    "generic": {
                        "platform": "social",
                        "recipient": peer.settings.page_id,
                        "sender": "customer-4711",
                    }
                },
                "queues": {"billing": {"match": [{"text": "Acme Billing"}]}},
                "responders": [{"responder": "bot", "match": {"text": "automated assistant"}}],
                "slas": {
                    "generic": {
                        "first_response": "1s",
                        "human_response": "1500ms",
                        "after_hours_response": "1s",
                        "deadline": "2s",
                    }
                },
                "rate_limit": {"max_contacts_per_hour": 100_000},
            }
        },
        "checks": [
            {
                "id": "acme-social",
                "target": "acme",
                "channel": "generic",
                "scenario": "billing-question",
                "schedule": {"every": "2s"},  # the rules' thresholds; the test drives the runs
            }
        ],
    }
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def keep_probing(monitor: Monitor, check: Check, stop: asyncio.Event) -> int:
    """Run ``check`` back to back until ``stop``; returns how many runs finished. One at a time:
    the platform allows one open conversation per customer and page (more would wait)."""
    finished = 0
    while not stop.is_set():
        result = await monitor.runner.execute(check, datetime.now(UTC))
        assert result is not None and result.outcome is not None
        assert result.outcome.value in ("met", "breached"), result.reason
        finished += 1
    return finished


@asynccontextmanager
async def prometheus(
    tmp_path: Path, rules: str, scrape_port: int, alertmanager_url: str
) -> AsyncIterator[str]:
    binary = require_binary("prometheus")
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    (workdir / "rules.yml").write_text(rules)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}
            ]
        },
        "scrape_configs": [
            {"job_name": "cxprobe", "static_configs": [{"targets": [f"127.0.0.1:{scrape_port}"]}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    async with daemon(argv, workdir / "prometheus.log", f"{url}/-/ready"):
        yield url


async def diagnosis(prometheus_url: str, hook: Webhook) -> str:
    """What Prometheus holds and what reached the webhook, for a test that waited in vain."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{prometheus_url}/api/v1/alerts") as response,
    ):
        alerts = (await response.json())["data"]["alerts"]
    held = [(a["labels"], a["state"], a["value"]) for a in alerts]
    sent = [(receiver, a["status"], a["labels"]) for receiver, a in hook.alerts()]
    return f"no such notification.\nPrometheus alerts: {held}\nwebhook received: {sent}"


def is_page(status: str) -> Callable[[str, Alert], bool]:
    def wanted(receiver: str, alert: Alert) -> bool:
        labels = alert["labels"]
        return (
            alert["status"] == status
            and labels["alertname"] == "CxprobeErrorBudgetBurn"
            and labels.get("window") == "1h"
            and labels.get("slo") == "human_response"
        )

    return wanted


async def test_an_outage_pages_and_the_page_resolves_when_it_ends(tmp_path: Path) -> None:
    loaded = messaging_profile(outage=True)
    assert loaded.generic_peer is not None
    hours = WeeklyHours.model_validate(weekly(True))
    async with (
        GenericPeer(loaded.generic_peer, workdir=tmp_path / "peer", hours=hours) as peer,
        webhook() as hook,
        alertmanager(tmp_path, yaml.safe_dump(alertmanager_config(hook))) as alertmanager_url,
    ):
        path = monitor_config(tmp_path, peer, generic_channels(peer))
        config = load_config(path)
        generated = generate_rules(
            rule_checks(config),
            RuleOptions(window_scale=WINDOW_SCALE),
            source=str(path),
            command="(generated by tests/integration/test_alerting.py)",
        )
        async with open_monitor(config, LOGGER, serve_http=True) as monitor:
            assert monitor.server is not None
            peer.set_webhook_url(f"{monitor.server.url}/webhooks/generic/social")
            async with prometheus(
                tmp_path, generated.text, monitor.server.port, alertmanager_url
            ) as prometheus_url:
                stop = asyncio.Event()
                probing = asyncio.create_task(keep_probing(monitor, config.checks[0], stop))
                try:
                    firing = await hook.wait_for(is_page("firing"), seconds=60)
                    peer.set_outage(False)
                    resolved = await hook.wait_for(is_page("resolved"), seconds=60)
                except TimeoutError:
                    raise AssertionError(await diagnosis(prometheus_url, hook)) from None
                finally:
                    stop.set()
                    runs = await probing
    assert firing["labels"] | resolved["labels"] == firing["labels"]
    assert {k: firing["labels"][k] for k in ("severity", "target", "channel", "slo")} == {
        "severity": "page",
        "target": "acme",
        "channel": "generic",
        "slo": "human_response",
    }
    assert firing["annotations"]["runbook_url"] == "docs/alerting.md#cxprobeerrorbudgetburn"
    assert "100%" in firing["annotations"]["description"]
    # Pages for acme go to its own receiver; the probe-health alerts never fired.
    assert {receiver for receiver, alert in hook.alerts() if alert is firing} == {"acme-oncall"}
    assert {alert["labels"]["alertname"] for _, alert in hook.alerts()} <= {
        "CxprobeErrorBudgetBurn"
    }
    assert runs >= 4  # at least 3 bad probes to page, and a good one to resolve
