"""`make demo`'s script end to end: sandbox, monitor, Alertmanager and Prometheus start, runs
finish, Prometheus scrapes the monitor, has loaded the SLA rules of prometheus/rules/cxprobe.yml
(through prometheus/prometheus-demo.yml) and knows the Alertmanager, which runs
prometheus/alertmanager.yml, and everything stops cleanly by itself when DEMO_SECONDS passes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import urllib.request
from asyncio.subprocess import PIPE, STDOUT
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"


async def test_demo_runs_and_stops_by_itself(tmp_path: Path) -> None:
    require_binary("dovecot")
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    shutil.rmtree(ROOT / "data" / "demo", ignore_errors=True)
    env = {
        **os.environ,
        "DEMO_SECONDS": "45",  # a sandbox call reaches its agent in 20-30 s
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    process = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "demo.sh"), stdout=PIPE, stderr=STDOUT, env=env, cwd=ROOT
    )
    async with asyncio.timeout(120):
        finished = asyncio.create_task(process.communicate())
        view = await asyncio.to_thread(_demo_view)
        output, _ = await finished
    text = output.decode(errors="replace")
    assert view.scrape == "1", text  # up{job="cxprobe"}: Prometheus scrapes the monitor
    assert view.alertmanagers == ["http://127.0.0.1:9093/api/v2/alerts"], text
    _assert_repository_alerting(view, text)
    assert "SLA alerts   http://127.0.0.1:9090/alerts" in text
    assert process.returncode == 0, text
    assert "cxprobe demo is running" in text
    assert "run finished" in text and "outcome=met" in text
    # Both channels of the demo ran: the email desk and the chat site (in its iframe).
    finished = [line for line in text.splitlines() if "run finished" in line]
    assert any("check=acme-email-" in line for line in finished), text
    assert any("check=acme-chat-" in line and "outcome=met" in line for line in finished), text
    assert any("check=acme-phone-" in line and "outcome=met" in line for line in finished), text
    for messaging in ("acme-sms-", "acme-whatsapp-", "acme-social-"):
        assert any(f"check={messaging}" in line and "outcome=met" in line for line in finished), (
            messaging,
            text,
        )
    # The demo's profile injects misroutes and after-hours answers, never errors (README,
    # "What the demo injects on purpose").
    errors = [line for line in finished if "outcome=error" in line]
    assert not errors, "\n".join(errors)
    assert "cxprobe stopped" in text and "demo stopped" in text
    assert "probe-secret" not in text
    assert "sandbox-auth-token" not in text and "sandbox-peer" not in text
    prometheus_log = (ROOT / "data" / "demo" / "prometheus.log").read_text()
    assert "Server is ready to receive web requests" in prometheus_log


def _assert_repository_alerting(view: DemoView, text: str) -> None:
    """Prometheus loaded the generated SLA rules from the repository's file, and Alertmanager
    runs the repository's configuration (its receivers), not one of the script's own."""
    rules_file = ROOT / "prometheus" / "rules" / "cxprobe.yml"
    expected_groups = {group["name"] for group in yaml.safe_load(rules_file.read_text())["groups"]}
    assert expected_groups and set(view.rule_groups) == expected_groups, text
    loaded_from = {(ROOT / file).resolve() for file in view.rule_files}  # the script runs in ROOT
    assert loaded_from == {rules_file}, view.rule_files
    receivers = yaml.safe_load((ROOT / "prometheus" / "alertmanager.yml").read_text())["receivers"]
    assert view.receivers == sorted(receiver["name"] for receiver in receivers), text


@dataclass
class DemoView:
    scrape: str | None = None  # up{job="cxprobe"}
    alertmanagers: list[str] = field(default_factory=list)
    rule_groups: list[str] = field(default_factory=list)
    rule_files: set[str] = field(default_factory=set)
    receivers: list[str] = field(default_factory=list)  # Alertmanager's, from its own API

    def complete(self) -> bool:
        return self.scrape == "1" and bool(self.alertmanagers and self.rule_groups)


def _demo_view(wait_seconds: float = 30) -> DemoView:
    """What Prometheus and Alertmanager report, once Prometheus scrapes, has its rules and knows
    its Alertmanager (or the time is up)."""
    deadline = time.monotonic() + wait_seconds
    view = DemoView()
    while time.monotonic() < deadline and not view.complete():
        time.sleep(0.5)
        try:
            up = _get(PROMETHEUS, '/api/v1/query?query=up{job="cxprobe"}')["data"]["result"]
            view.scrape = up[0]["value"][1] if up else None
            active = _get(PROMETHEUS, "/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
            view.alertmanagers = [entry["url"] for entry in active]
            groups = _get(PROMETHEUS, "/api/v1/rules")["data"]["groups"]
            view.rule_groups = [group["name"] for group in groups]
            view.rule_files = {group["file"] for group in groups}
            config = yaml.safe_load(_get(ALERTMANAGER, "/api/v2/status")["config"]["original"])
            view.receivers = sorted(receiver["name"] for receiver in config["receivers"])
        except OSError:
            continue
    return view


def _get(base: str, path: str) -> Any:
    url = base + path.replace('"', "%22").replace("{", "%7B").replace("}", "%7D")
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)
