"""`make demo`'s script end to end: sandbox, monitor, Alertmanager and Prometheus start, runs
finish, Prometheus scrapes the monitor and knows the Alertmanager, and
everything stops cleanly by itself when DEMO_SECONDS passes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import urllib.request
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path
from typing import Any

from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]


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
        scrape, alertmanagers = await asyncio.to_thread(_prometheus_view)
        output, _ = await finished
    text = output.decode(errors="replace")
    assert scrape == "1", text  # up{job="cxprobe"}: Prometheus scrapes the monitor
    assert alertmanagers == ["http://127.0.0.1:9093/api/v2/alerts"], text
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
    assert "cxprobe stopped" in text and "demo stopped" in text
    assert "probe-secret" not in text
    assert "sandbox-auth-token" not in text and "sandbox-peer" not in text
    prometheus_log = (ROOT / "data" / "demo" / "prometheus.log").read_text()
    assert "Server is ready to receive web requests" in prometheus_log


def _prometheus_view(wait_seconds: float = 20) -> tuple[str | None, list[str]]:
    """``up`` of the cxprobe job and the active Alertmanagers, once Prometheus reports both."""
    deadline = time.monotonic() + wait_seconds
    scrape: str | None = None
    alertmanagers: list[str] = []
    while time.monotonic() < deadline and (scrape != "1" or not alertmanagers):
        time.sleep(0.5)
        try:
            up = _get('/api/v1/query?query=up{job="cxprobe"}')["data"]["result"]
            scrape = up[0]["value"][1] if up else None
            active = _get("/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
            alertmanagers = [entry["url"] for entry in active]
        except OSError:
            continue
    return scrape, alertmanagers


def _get(path: str) -> Any:
    url = "http://127.0.0.1:9090" + path.replace('"', "%22").replace("{", "%7B").replace("}", "%7D")
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)
