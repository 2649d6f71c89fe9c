"""The phone channel against the Twilio-compatible sandbox, through the real ``twilio`` client.

The sandbox validates every request against Twilio's official OpenAPI description (any
violation fails the test), calls the monitor's webhooks with valid signatures, and logs when
each thing really happened (ground truth): the time to answer is checked against it.

The menu path to a person, the miswired option, the closed message, forged signatures, an
API down past the retry budget, restarts and the deadline are the contract suite's
(tests/contract), as for every channel; here are retries, call results, status-only calls
and ``cxprobe once``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from probes.base import Responder
from sandbox.clock import WeeklyHours
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import Outcome, RunResult
from tests.support import PHONE_AUTH_TOKEN, phone_config, phone_line, weekly

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def sandbox_line(
    tmp_path: Path, open_now: bool = True, **overrides: Any
) -> AsyncIterator[TwilioSandbox]:
    hours = WeeklyHours.model_validate(weekly(open_now))
    line = phone_line(**overrides)
    async with TwilioSandbox(line, workdir=tmp_path / "line", hours=hours) as sandbox:
        yield sandbox
        assert sandbox.violations == [], sandbox.violations


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPROBE_TEST_TWILIO_TOKEN", PHONE_AUTH_TOKEN)


@asynccontextmanager
async def monitoring(path: Path, *, serve_http: bool = True) -> AsyncIterator[Monitor]:
    async with open_monitor(
        load_config(path), logging.getLogger("cxprobe.test"), serve_http=serve_http
    ) as monitor:
        yield monitor


async def run_once(monitor: Monitor) -> RunResult:
    result = await monitor.runner.execute(monitor.config.checks[0], datetime.now(UTC))
    assert result is not None
    return result


def events(sandbox: TwilioSandbox, name: str) -> list[dict[str, Any]]:
    return [e for e in sandbox.ground_truth() if e["event"] == name]


def at(event: dict[str, Any], key: str = "at") -> datetime:
    return datetime.fromisoformat(event[key])


async def test_rate_limit_and_unavailable_are_retried_then_the_call_goes_through(
    tmp_path: Path,
) -> None:
    async with sandbox_line(tmp_path) as sandbox:
        sandbox.rate_limit(2, retry_after=1)
        sandbox.server_error(1, 503)
        async with monitoring(phone_config(tmp_path, sandbox.base_url)) as monitor:
            result = await run_once(monitor)
            health = monitor.runner.health()["channels"]["phone"]
        created = events(sandbox, "call_created")
    assert result.outcome is Outcome.MET, result.reason
    assert health["api_retries"] == 3
    assert len(created) == 1  # retried requests never placed a second call


@pytest.mark.parametrize("mode", ["declared", "mystery"])
async def test_a_declared_call_says_it_is_a_test_to_the_person_who_answers(
    tmp_path: Path, mode: str
) -> None:
    path = phone_config(tmp_path, "http://127.0.0.1:1")  # the sandbox's URL is set below
    async with sandbox_line(tmp_path) as sandbox:
        data = yaml.safe_load(path.read_text().replace("http://127.0.0.1:1", sandbox.base_url))
        if mode == "mystery":
            data["targets"]["acme"].update(contact_mode="mystery", mystery={"reason": "audit"})
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        async with monitoring(path) as monitor:
            result = await run_once(monitor)
        said = [event["text"] for event in events(sandbox, "probe_said")]
    assert result.outcome is Outcome.MET, result.reason
    disclosure = f"This is an automated service-quality test contact (ref {result.token})."
    if mode == "declared":
        # Said once a person is on the line, before the closing line; the menu hears only moves.
        assert said[-2:] == [disclosure, "Thanks, goodbye."]
    else:
        assert said[-1] == "Thanks, goodbye." and not any("test contact" in s for s in said)


async def test_busy_line_is_a_failed_contact(tmp_path: Path) -> None:
    async with sandbox_line(tmp_path) as sandbox:
        sandbox.set_call_result("busy")
        async with monitoring(phone_config(tmp_path, sandbox.base_url)) as monitor:
            result = await run_once(monitor)
    assert result.outcome is Outcome.FAILED
    assert "busy" in result.reason


async def test_status_only_mode_measures_time_to_answer_without_webhooks(
    tmp_path: Path,
) -> None:
    async with sandbox_line(tmp_path) as sandbox:
        sla = {"first_response": "10s", "human_response": None, "deadline": "20s"}
        # Status-only calls cannot tell who answered: the scenario must accept "unknown".
        answered_call = {
            "intent": "billing-question",
            "subject": "Billing",
            "opening": "Billing question {token}",
            "expected_queue": "billing",
            "after_hours_accepts": ["unknown", "auto", "bot", "human"],
        }
        path = phone_config(
            tmp_path,
            sandbox.base_url,
            status_only=True,
            sla=sla,
            scenario="answered-call",
            scenarios={"answered-call": answered_call},
        )
        async with monitoring(path, serve_http=False) as monitor:
            result = await run_once(monitor)
        (answered,) = events(sandbox, "answered")
        hangups = events(sandbox, "hangup")
    assert result.outcome is Outcome.MET, result.reason
    assert [r.responder for r in result.replies] == [Responder.UNKNOWN]
    assert result.sent_at is not None and result.first_response_seconds is not None
    # Polled every 0.2 s: the answer is seen within one poll (plus the request).
    truth = (at(answered) - result.sent_at).total_seconds()
    assert 0 <= result.first_response_seconds - truth < 0.6
    assert hangups and hangups[-1]["by"] == "api"  # hung up through the REST API


async def test_cxprobe_once_prints_the_call_timeline(tmp_path: Path) -> None:
    async with sandbox_line(tmp_path) as sandbox:
        path = phone_config(tmp_path, sandbox.base_url)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cxprobe",
            "once",
            "-c",
            str(path),
            "acme-phone",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
            cwd=ROOT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode()
    assert process.returncode == 0, text
    for step in ("dialled", "ringing", "answered", "heard", "pressed", "hung up", "billed"):
        assert step in text, (step, text)
    assert "price" in text and "USD" in text
    assert PHONE_AUTH_TOKEN not in text


async def test_cxprobe_once_says_when_the_webhook_port_is_taken(tmp_path: Path) -> None:
    async with sandbox_line(tmp_path) as sandbox:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            path = phone_config(tmp_path, sandbox.base_url, http_port=busy.getsockname()[1])
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cxprobe",
                "once",
                "-c",
                str(path),
                "acme-phone",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "300"},
                cwd=ROOT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = " ".join(output.decode().split())
    assert process.returncode == 2, text
    assert "cannot listen on 127.0.0.1:" in text and "cxprobe run" in text
    assert "Traceback" not in text
    assert events(sandbox, "call_created") == []  # nothing was dialled


async def test_a_call_is_estimated_at_its_cap_and_charged_what_twilio_reports(
    tmp_path: Path,
) -> None:
    async with sandbox_line(tmp_path) as sandbox:
        path = phone_config(tmp_path, sandbox.base_url)
        config = yaml.safe_load(path.read_text())
        config["prices"] = {"currency": "USD", "channels": {"phone": {"default": 0.5}}}
        path.write_text(yaml.safe_dump(config))
        async with monitoring(path) as monitor:
            result = await run_once(monitor)
            costs = await monitor.store.run_costs(result.run_id)
            settings = monitor.config.channel_settings("phone")
            max_minutes = math.ceil(settings.max_call_seconds / 60)
        (call,) = sandbox.calls()
    assert result.outcome is Outcome.MET, result.reason
    assert costs is not None and costs.estimated == max_minutes * 0.5
    # The sandbox, like Twilio, prices a call when it ends; the run's end fetched it.
    assert call["price"] is not None and call["price_unit"] == "USD"
    assert (costs.actual, costs.currency) == (float(abs(Decimal(call["price"]))), "USD")
