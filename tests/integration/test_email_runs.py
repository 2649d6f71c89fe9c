"""Whole email runs: the runner, engine, email probe and store against the sandbox desk
(real Dovecot behind a real SMTP front). Timings are compared with the desk's ground truth.

What every channel does (the timed happy path, misrouting, after hours, an unreachable server,
restarts, late replies) is the contract suite's (tests/contract); here is what only email
does: the desk's simulated clock, a silent desk, refusals, threading, mail read at restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from probes.base import Responder
from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from scenarios.model import Outcome, Period, RunResult
from tests.support import desk_profile, monitor_config, require_binary

#: The issue's accuracy bound for first-answer times against the desk's log.
ACCURACY_SECONDS = 1.5


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    require_binary("dovecot")
    monkeypatch.setenv("CXPROBE_TEST_IMAP_PASSWORD", "probe-secret")


@asynccontextmanager
async def sandbox(
    tmp_path: Path,
    *,
    open_now: bool = True,
    mail: dict[str, Any] | None = None,
    hours: dict[str, list[str]] | None = None,
    simulated: datetime | None = None,
    **config: Any,
) -> AsyncIterator[tuple[MailDesk, Monitor]]:
    """The desk and a monitor probing it; ``simulated`` moves both calendars to that instant."""
    profile_data = desk_profile(open_now, hours=hours, **(mail or {}))
    shift = timedelta(0) if simulated is None else simulated - datetime.now(UTC)
    profile_data["clock"] = {"offset_seconds": shift.total_seconds()}
    profile = Profile.model_validate(profile_data)
    async with MailDesk(profile, tmp_path / "desk") as desk:
        path = monitor_config(
            tmp_path,
            smtp_port=desk.smtp_port,
            imap_port=desk.imap_port,
            open_now=open_now,
            hours=hours,
            **config,
        )
        async with monitoring(path, shift) as monitor:
            yield desk, monitor


def monitoring(path: Path, shift: timedelta = timedelta(0)) -> AbstractAsyncContextManager[Monitor]:
    """A monitor process (without HTTP) of the config at ``path``."""
    return open_monitor(
        load_config(path),
        logging.getLogger("cxprobe.test"),
        serve_http=False,
        calendar_clock=lambda: datetime.now(UTC) + shift,
    )


def truth(desk: MailDesk, kind: str) -> list[dict[str, Any]]:
    return [e for e in desk.ground_truth() if e["event"] == "reply_sent" and e["kind"] == kind]


def seconds_after(sent_at: datetime, event: dict[str, Any]) -> float:
    return (datetime.fromisoformat(event["at"]) - sent_at).total_seconds()


async def run_once(monitor: Monitor) -> Any:
    check = monitor.config.checks[0]
    result = await monitor.runner.execute(check, datetime.now(UTC).replace(microsecond=0))
    assert result is not None
    return result


OFFICE_HOURS = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def next_local(weekday: int, hour: int) -> datetime:
    """The next instant that is ``weekday`` (Monday is 0) at ``hour``:00 in London."""
    london = datetime.now(ZoneInfo("Europe/London"))
    day = london + timedelta(days=(weekday - london.weekday()) % 7 or 7)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(UTC)


@pytest.mark.parametrize(
    ("weekday", "hour", "period", "responders"),
    [
        (5, 3, Period.AFTER_HOURS, [Responder.AUTO]),  # Saturday 03:00
        (0, 8, Period.AFTER_HOURS, [Responder.AUTO]),  # Monday 08:00, before opening
        (2, 11, Period.BUSINESS, [Responder.AUTO, Responder.HUMAN]),  # Wednesday 11:00
    ],
)
async def test_simulated_clock_puts_desk_and_monitor_in_the_same_period(
    tmp_path: Path, weekday: int, hour: int, period: Period, responders: list[Responder]
) -> None:
    at = next_local(weekday, hour)
    async with sandbox(tmp_path, hours=OFFICE_HOURS, simulated=at) as (desk, monitor):
        result = await run_once(monitor)
    received = desk.ground_truth()[0]
    assert received["event"] == "received"
    assert received["period"] == ("business" if period is Period.BUSINESS else "after_hours")
    assert result.period is period
    assert result.outcome is Outcome.MET, result.reason
    assert [r.responder for r in result.replies] == responders


async def test_outage_is_breached_at_the_deadline_not_a_hang(tmp_path: Path) -> None:
    sla = {"human_response": "2s", "first_response": "1s", "deadline": "3s"}
    async with sandbox(tmp_path, mail={"outage": True}, sla=sla) as (_, monitor):
        async with asyncio.timeout(20):
            result = await run_once(monitor)
    assert result.outcome is Outcome.BREACHED
    assert result.reason == "no human answer within 2s"
    assert result.replies == []
    assert (result.finished_at - result.sent_at).total_seconds() >= 3


async def test_refused_contact_is_failed_with_the_servers_reason(tmp_path: Path) -> None:
    async with sandbox(tmp_path, mail={"reject": True}) as (_, monitor):
        result = await run_once(monitor)
    assert result.outcome is Outcome.FAILED
    assert "550" in result.reason


async def human_answer_stored(monitor: Monitor, run_id: str) -> RunResult:
    """The run as stored, once a human answer is part of it (the test fails after 15 s)."""
    async with asyncio.timeout(15):
        while True:
            stored = await monitor.store.load_run(run_id)
            if stored and stored.first_human_seconds is not None:
                return stored
            await asyncio.sleep(0.2)


async def test_late_reply_arriving_while_the_monitor_is_down_is_recorded_at_restart(
    tmp_path: Path,
) -> None:
    # The run gives up at 1 s and the monitor stops; the human answers at 1.5 s, while nothing
    # watches the mailbox. The next monitor reads on from where the last one stopped.
    sla = {"human_response": "1s", "first_response": "1s", "deadline": "1s"}
    profile = Profile.model_validate(desk_profile())
    async with MailDesk(profile, tmp_path / "desk") as desk:
        path = monitor_config(tmp_path, smtp_port=desk.smtp_port, imap_port=desk.imap_port, sla=sla)
        async with monitoring(path) as monitor:
            result = await run_once(monitor)
        assert result.outcome is Outcome.BREACHED
        assert result.first_human_seconds is None
        async with asyncio.timeout(15):
            while not truth(desk, "human"):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        async with monitoring(path) as restarted:
            stored = await human_answer_stored(restarted, result.run_id)
            messages = await restarted.store.messages(result.run_id)
    assert stored.outcome is Outcome.BREACHED
    (human,) = truth(desk, "human")
    assert abs(stored.first_human_seconds - seconds_after(result.sent_at, human)) < ACCURACY_SECONDS
    assert [m.late for m in messages if m.responder == Responder.HUMAN] == [True]


async def test_auto_ack_after_the_human_answer_is_still_kept(tmp_path: Path) -> None:
    # The human (1.5 s) beats the auto-acknowledgement (2.5 s): the run is met and closes on
    # the human answer, and the acknowledgement, arriving after the run closed, is kept on it.
    ack = {"enabled": True, "delay": {"distribution": "fixed", "seconds": 2.5}}
    mail = {"auto_ack": {**ack, "sender": "noreply@acme.test"}}
    async with sandbox(tmp_path, mail=mail) as (_, monitor):
        result = await run_once(monitor)
        assert [r.responder for r in result.replies] == [Responder.HUMAN]
        async with asyncio.timeout(15):
            while len(await monitor.store.messages(result.run_id)) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        messages = await monitor.store.messages(result.run_id)
    assert result.outcome is Outcome.MET, result.reason
    replies = [(m.responder, m.late) for m in messages if m.direction == "in"]
    assert replies == [(Responder.HUMAN, False), (Responder.AUTO, False)]


async def test_follow_up_goes_out_in_the_thread_while_the_run_is_undecided(
    tmp_path: Path,
) -> None:
    # The desk answers in 1.5 s; the scenario chases after 0.5 s (and would again at 30 s).
    chased = {
        "intent": "billing-question",
        "subject": "Invoice question",
        "opening": "Why is my invoice higher? {token}",
        "expected_queue": "billing",
        "follow_ups": [
            {"after": "500ms", "text": "Any news about my invoice?"},
            {"after": "30s", "text": "Still waiting."},
        ],
    }
    check = {
        "id": "acme-email-chased",
        "target": "acme",
        "channel": "email",
        "scenario": "chased",
        "schedule": {"every": "1h"},
    }
    async with sandbox(tmp_path, scenarios={"chased": chased}, checks=[check]) as (
        desk,
        monitor,
    ):
        result = await run_once(monitor)
        stored = await monitor.store.messages(result.run_id)
    assert result.outcome is Outcome.MET, result.reason
    opening, follow_up = [m for m in stored if m.direction == "out"]
    assert follow_up.subject == f"Re: {opening.subject}"
    assert follow_up.headers["in-reply-to"] == opening.external_id
    received = [e for e in desk.ground_truth() if e["event"] == "received"]
    assert [e["in_reply_to"] for e in received] == [None, opening.external_id]
    assert result.token in follow_up.subject
    # Timings still count from the opening contact.
    (human, *_) = truth(desk, "human")
    assert abs(result.first_human_seconds - seconds_after(result.sent_at, human)) < ACCURACY_SECONDS


async def test_slot_is_claimed_once(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as (_, monitor):
        check = monitor.config.checks[0]
        slot = datetime(2030, 1, 1, tzinfo=UTC)
        first, second = await asyncio.gather(
            monitor.runner.execute(check, slot), monitor.runner.execute(check, slot)
        )
    assert sorted([first is None, second is None]) == [False, True]
