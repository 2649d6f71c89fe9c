"""The phone channel against the Twilio-compatible sandbox, through the real ``twilio`` client.

The sandbox validates every request against Twilio's official OpenAPI description (any
violation fails the test), calls the monitor's webhooks with valid signatures, and logs when
each thing really happened (ground truth): the time to a human is checked against it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import generate_latest
from twilio.request_validator import RequestValidator

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from probes.base import Responder
from sandbox.clock import WeeklyHours
from sandbox.twilio.profile import TwilioSettings
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import Outcome, Period, RoutingResult, RunResult
from tests.support import weekly

ACCOUNT_SID = "AC" + "5a" * 16
AUTH_TOKEN = "sandbox-phone-token"
SUPPORT_LINE = "+442071234567"
PROBE_NUMBER = "+15005550006"
#: The issue's bound on the time to a human against the ground truth.
ACCURACY_SECONDS = 1.0
ROOT = Path(__file__).resolve().parents[2]


def line(**overrides: Any) -> TwilioSettings:
    """A fast sandbox line: billing on 1, 'support' on 2 is miswired to sales."""
    fixed = lambda seconds: {"distribution": "fixed", "seconds": seconds}  # noqa: E731
    profile: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "speech_rate": 40,
        "post_dial_delay": fixed(0.1),
        "ring_time": fixed(0.3),
        "partial_result_delay": fixed(0.3),
        "partial_result_interval": 0.5,
        "max_call_seconds": 60,
        "hangup_delay_seconds": 0.3,
        "ivr": {
            "root": "main",
            "menus": {
                "main": {
                    "prompt": "Welcome to Acme. For billing press 1. For support press 2.",
                    "options": [
                        {"digit": "1", "keywords": ["billing"], "goto": "billing"},
                        {
                            "digit": "2",
                            "keywords": ["support"],
                            "goto": "sales",
                            "intended": "tech",
                        },
                    ],
                    "no_input_seconds": 3,
                }
            },
            "queues": {
                "billing": {"label": "Billing", "wait": fixed(1.0), "agents": ["Sam"]},
                "tech": {"label": "Technical Support", "wait": fixed(1.0), "agents": ["Jo"]},
                "sales": {"label": "Sales", "wait": fixed(1.0), "agents": ["Al"]},
            },
        },
        "after_hours": {
            "message": "Thank you for calling Acme. Our lines are open Monday to Friday 9 to "
            "5:30. Please call back then."
        },
    }
    profile.update(overrides)
    return TwilioSettings.model_validate(profile)


@asynccontextmanager
async def phone_line(
    tmp_path: Path, open_now: bool = True, **overrides: Any
) -> AsyncIterator[TwilioSandbox]:
    hours = WeeklyHours.model_validate(weekly(open_now))
    async with TwilioSandbox(line(**overrides), workdir=tmp_path / "line", hours=hours) as sandbox:
        yield sandbox
        assert sandbox.violations == [], sandbox.violations


def phone_config(
    tmp_path: Path,
    sandbox: TwilioSandbox,
    *,
    open_now: bool = True,
    scenario: str = "billing-question",
    status_only: bool = False,
    retry_for: float = 10.0,
    sla: dict[str, Any] | None = None,
    scenarios: dict[str, Any] | None = None,
    http_port: int = 0,
) -> Path:
    config: dict[str, Any] = {
        "version": 1,
        "monitor": {
            "location": "test",
            "store_url": f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}",
            "http": {"host": "127.0.0.1", "port": http_port},
            "log_format": "json",
        },
        "locations": {"test": {}},
        "channels": {
            "phone": {
                "twilio": {
                    "account_sid": ACCOUNT_SID,
                    "auth_token": "${CXPROBE_TEST_TWILIO_TOKEN}",
                    "api_base_url": sandbox.base_url,
                    "retry_for": retry_for,
                },
                "from_number": PROBE_NUMBER,
                "webhook": {"status_only": status_only, "poll_interval": 0.2},
                "listen_timeout": 5,
                "closing_line": "Thanks, goodbye.",
            }
        },
        "targets": {
            "acme": {
                "name": "Acme (sandbox)",
                "business_hours": {"timezone": "UTC", "weekly": weekly(open_now)},
                "channels": {
                    "phone": {
                        "number": SUPPORT_LINE,
                        "ivr": {"billing": [{"digits": "w1"}], "tech": [{"digits": "w2"}]},
                    }
                },
                "queues": {
                    "billing": {"match": [{"text": r"\bin Billing\b"}]},
                    "tech": {"match": [{"text": r"\bin Technical Support\b"}]},
                    "sales": {"match": [{"text": r"\bin Sales\b"}]},
                },
                "slas": {
                    "phone": sla
                    or {
                        "first_response": "10s",
                        "human_response": "20s",
                        "after_hours_response": "10s",
                        "deadline": "25s",
                    }
                },
                "rate_limit": {"max_contacts_per_hour": 1000},
            }
        },
        "checks": [
            {
                "id": "acme-phone",
                "target": "acme",
                "channel": "phone",
                "scenario": scenario,
                "schedule": {"every": "1h"},
            }
        ],
    }
    if scenarios:
        config["scenarios"] = scenarios
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPROBE_TEST_TWILIO_TOKEN", AUTH_TOKEN)


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


async def test_menu_path_reaches_billing_and_the_person_is_timed(tmp_path: Path) -> None:
    async with phone_line(tmp_path) as sandbox:
        async with monitoring(phone_config(tmp_path, sandbox)) as monitor:
            result = await run_once(monitor)
            artifacts = await monitor.store.artifacts(result.run_id)
            health = monitor.runner.health()["channels"]["phone"]
        (agent,) = events(sandbox, "agent_answered")
        (answered,) = events(sandbox, "answered")
        digits = events(sandbox, "digits_received")
        hangups = events(sandbox, "hangup")
    assert result.outcome is Outcome.MET, result.reason
    assert result.period is Period.BUSINESS
    responders = [r.responder for r in result.replies]
    assert responders[0] is Responder.IVR and responders[-1] is Responder.HUMAN
    assert (result.routed_queue, result.routing) == ("billing", RoutingResult.CORRECT)
    assert agent["queue"] == "billing"
    assert [d["digits"] for d in digits] == ["1"]
    # Time to a human: from the greeting's first partial result, against its true start.
    assert result.sent_at is not None and result.first_human_seconds is not None
    truth = (at(agent) - result.sent_at).total_seconds()
    assert abs(result.first_human_seconds - truth) < ACCURACY_SECONDS
    assert result.first_response_seconds is not None
    assert (
        abs(result.first_response_seconds - (at(answered) - result.sent_at).total_seconds()) < 0.5
    )
    # The probe said goodbye and hung up; the timeline is kept as evidence.
    assert hangups and hangups[-1]["by"] == "caller"
    assert {a.kind for a in artifacts} == {"call-timeline"}
    assert health["rejected_webhooks"] == 0


async def test_wrong_menu_option_is_reported_as_a_misroute(tmp_path: Path) -> None:
    async with phone_line(tmp_path) as sandbox:
        path = phone_config(tmp_path, sandbox, scenario="technical-fault")
        async with monitoring(path) as monitor:
            result = await run_once(monitor)
        (queued,) = events(sandbox, "queue_entered")
    assert queued["intended_queue"] == "tech" and queued["queue"] == "sales"
    assert result.routing is RoutingResult.WRONG
    assert result.routed_queue == "sales"


async def test_after_hours_the_closed_message_answers(tmp_path: Path) -> None:
    async with phone_line(tmp_path, open_now=False) as sandbox:
        async with monitoring(phone_config(tmp_path, sandbox, open_now=False)) as monitor:
            result = await run_once(monitor)
        (closed,) = events(sandbox, "closed_message")
    assert result.period is Period.AFTER_HOURS
    assert result.outcome is Outcome.MET, result.reason
    assert result.replies[-1].responder is Responder.AUTO
    assert result.first_human_seconds is None
    assert result.sent_at is not None
    auto = next(r for r in result.replies if r.responder is Responder.AUTO)
    assert abs(auto.seconds - (at(closed) - result.sent_at).total_seconds()) < ACCURACY_SECONDS


async def test_forged_and_missing_signatures_are_rejected_and_change_nothing(
    tmp_path: Path,
) -> None:
    async with (
        phone_line(tmp_path) as sandbox,
        monitoring(phone_config(tmp_path, sandbox)) as monitor,
    ):
        run = asyncio.create_task(run_once(monitor))
        (created,) = await asyncio.wait_for(
            sandbox.wait_for(lambda e: e["event"] == "call_created"), 10
        )
        token = next(iter(monitor.runner.channels["phone"]._calls))
        assert monitor.server is not None
        url = f"{monitor.server.url}/webhooks/twilio/status/{token}"
        forged = {"CallSid": created["call_sid"], "CallStatus": "busy"}
        wrong = RequestValidator("not-the-token").compute_signature(url, forged)
        async with aiohttp.ClientSession() as session:
            for headers in ({"X-Twilio-Signature": wrong}, {}):
                async with session.post(url, data=forged, headers=headers) as response:
                    assert response.status == 403
        result = await run
        health = monitor.runner.health()["channels"]["phone"]
        metrics = generate_latest(monitor.registry).decode()
    assert result.outcome is Outcome.MET, result.reason
    assert health["rejected_webhooks"] == 2
    assert 'cxprobe_webhooks_rejected_total{channel="phone"} 2.0' in metrics


async def test_rate_limit_and_unavailable_are_retried_then_the_call_goes_through(
    tmp_path: Path,
) -> None:
    async with phone_line(tmp_path) as sandbox:
        sandbox.rate_limit(2, retry_after=1)
        sandbox.server_error(1, 503)
        async with monitoring(phone_config(tmp_path, sandbox)) as monitor:
            result = await run_once(monitor)
            health = monitor.runner.health()["channels"]["phone"]
        created = events(sandbox, "call_created")
    assert result.outcome is Outcome.MET, result.reason
    assert health["api_retries"] == 3
    assert len(created) == 1  # retried requests never placed a second call


async def test_provider_errors_beyond_the_retry_budget_are_recorded(tmp_path: Path) -> None:
    async with phone_line(tmp_path) as sandbox:
        sandbox.server_error(1000, 503)
        path = phone_config(tmp_path, sandbox, retry_for=1.5)
        async with monitoring(path) as monitor:
            result = await run_once(monitor)
    assert result.outcome is Outcome.ERROR
    assert "place the call: Twilio answered HTTP 503" in result.reason


async def test_busy_line_is_a_failed_contact(tmp_path: Path) -> None:
    async with phone_line(tmp_path) as sandbox:
        sandbox.set_call_result("busy")
        async with monitoring(phone_config(tmp_path, sandbox)) as monitor:
            result = await run_once(monitor)
    assert result.outcome is Outcome.FAILED
    assert "busy" in result.reason


async def test_status_only_mode_measures_time_to_answer_without_webhooks(
    tmp_path: Path,
) -> None:
    async with phone_line(tmp_path) as sandbox:
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
            sandbox,
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
    async with phone_line(tmp_path) as sandbox:
        path = phone_config(tmp_path, sandbox)
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
    assert AUTH_TOKEN not in text


async def test_cxprobe_once_says_when_the_webhook_port_is_taken(tmp_path: Path) -> None:
    async with phone_line(tmp_path) as sandbox:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            path = phone_config(tmp_path, sandbox, http_port=busy.getsockname()[1])
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
