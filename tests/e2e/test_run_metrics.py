"""`cxprobe run` against the sandbox for about a minute: /metrics is scraped, the expected
series are present with plausible values, and `promtool check metrics` is clean."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from tests.e2e.monitor_process import MonitorProcess, free_port, wait_until
from tests.support import desk_profile, monitor_config, require_binary

RUN_SECONDS = 60
CHECKS = [
    {
        "id": f"acme-email-{scenario}",
        "target": "acme",
        "channel": "email",
        "scenario": scenario,
        "schedule": {"every": "10s", "jitter": "2s"},
        **({"expected_queue": "sales"} if scenario == "cancellation" else {}),
    }
    for scenario in ("billing-question", "technical-fault", "cancellation")
]


@pytest.fixture(autouse=True)
def _peers() -> None:
    require_binary("dovecot")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def total(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lbl), v in found.items() if n == name and wanted <= lbl)


async def test_run_for_a_minute_and_scrape(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    profile = desk_profile()
    profile["mail"]["misroute_rate"] = 0.3
    port = free_port()
    async with MailDesk(Profile.model_validate(profile), tmp_path / "desk") as desk:
        config = monitor_config(
            tmp_path,
            smtp_port=desk.smtp_port,
            imap_port=desk.imap_port,
            http_port=port,
            checks=CHECKS,
        )
        monitor = MonitorProcess(
            config, tmp_path / "monitor.log", {"CXPROBE_TEST_IMAP_PASSWORD": "probe-secret"}
        )
        try:
            monitor.start()
            await wait_until(lambda: monitor.alive() and _healthy(port), 30, "/healthz to be 200")
            await asyncio.sleep(RUN_SECONDS)
            body = await asyncio.to_thread(scrape, port)
            health = await asyncio.to_thread(_health, port)
            assert monitor.terminate() == 0, monitor.log
        finally:
            monitor.ensure_stopped()
        sent = [e for e in desk.ground_truth() if e["event"] == "received"]

    lint = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    lint_output, _ = await lint.communicate(body.encode())
    assert lint.returncode == 0 and not lint_output.strip(), lint_output.decode()
    found = samples(body)
    runs = total(found, "cxprobe_runs_total")
    # 3 checks every 10 s for a minute: about 18 runs, each answered in ~1.5 s.
    assert 9 <= runs <= 24, runs
    assert runs <= len(sent)
    for check in CHECKS:
        assert total(found, "cxprobe_runs_total", scenario=check["scenario"], outcome="met") >= 2
    assert total(found, "cxprobe_runs_total", outcome="error") == 0
    assert total(found, "cxprobe_first_response_seconds_count", responder="auto") >= 9
    human_count = total(found, "cxprobe_first_response_seconds_count", responder="human")
    human_sum = total(found, "cxprobe_first_response_seconds_sum", responder="human")
    assert human_count >= 9 and 0.5 < human_sum / human_count < 5  # desk answers in 1.5 s
    assert total(found, "cxprobe_routing_total", result="correct") >= 3
    assert total(found, "cxprobe_routing_total", result="wrong") >= 1  # misroute_rate 0.3
    assert total(found, "cxprobe_slo_events_total", slo="human_response", result="good") >= 9
    assert total(found, "cxprobe_last_run_success") == 3
    assert total(found, "cxprobe_build_info") == 1
    assert total(found, "cxprobe_config_last_reload_successful") == 1
    assert "probe-secret" not in body and "probe-secret" not in monitor.log
    assert "cxprobe stopped" in monitor.log
    # One IMAP watcher for the probe mailbox, connected and idling, whatever the open runs.
    assert health["channels"]["email"]["mailboxes"]["probe"] | {"registered": 0} == {
        "connected": True,
        "idle": True,
        "registered": 0,
    }


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        health: dict[str, Any] = json.load(response)
        return health
