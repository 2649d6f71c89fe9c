"""Builders shared by the evidence, retention and report tests (this module has no tests).

Runs are written through the store's public API as the runner would (claim, send, replies,
finish), with an accelerated fake clock: a week of slots takes a second or two. The config is
the sandbox's (one target in Europe/London, open 06:00-22:00), so periods, thresholds and
time zones come from a real config.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cxprobe.settings import Config, load_config
from cxprobe.store.database import EvidenceStore
from probes import CHANNEL_TYPES
from probes.base import Evidence, Reply, Responder, Sent
from scenarios.hours import BusinessCalendar
from scenarios.model import ObservedReply, Outcome, Period, RoutingResult, RunResult

ROOT = Path(__file__).resolve().parents[1]

#: The sandbox config's secrets; the tests check none of them leaks into an export.
SECRETS = {
    "CXPROBE_SANDBOX_IMAP_PASSWORD": "imap-Secret-7781",
    "CXPROBE_SANDBOX_TWILIO_TOKEN": "twilio-Secret-9912",
    "CXPROBE_SANDBOX_PEER_TOKEN": "peer-Secret-3381",
    "CXPROBE_SANDBOX_PEER_SECRET": "peer-Hmac-5519",
}

#: A Monday; a week from here covers every hour of the week.
WEEK_START = datetime(2025, 3, 3, tzinfo=UTC)

#: The checks the builder runs (all billing-question, so channels can be compared).
CHECKS = ("acme-email-billing", "acme-chat-billing", "acme-sms-billing", "acme-phone-billing")


def write_config(directory: Path, db_path: Path) -> Path:
    """The sandbox config with its store in ``db_path``."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "config" / "sandbox.yaml").read_text())
    data["monitor"]["store_url"] = f"sqlite+aiosqlite:///{db_path}"
    # The schedules populate() follows (so only missing runs show as gaps); other checks off.
    for check in data["checks"]:
        if check["id"] in CHECKS:
            minute = 15 * CHECKS.index(check["id"])
            check["schedule"] = {"cron": f"{minute} */2 * * *", "timezone": "UTC"}
        else:
            check["enabled"] = False
    path = directory / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(path: Path) -> Config:
    return load_config(path, environ=SECRETS)


class FakeClock:
    """Time that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass(frozen=True)
class Plan:
    """How one run should go."""

    outcome: Outcome
    replies: tuple[tuple[float, Responder, str], ...]  # (seconds after t0, responder, queue)
    routing: RoutingResult
    reason: str


def new_result(
    config: Config, check_id: str, slot: datetime, location: str | None = None
) -> RunResult:
    """A new run of ``check_id`` at ``location`` (default: the config's monitor's)."""
    check = config.check(check_id)
    assert check is not None
    calendar = BusinessCalendar(config.targets[check.target].business_hours)
    return RunResult(
        run_id=str(uuid.uuid4()),
        check_id=check.id,
        target=check.target,
        channel=check.channel,
        scenario=check.scenario,
        location=location or config.monitor.location,
        slot=slot,
        token="CXP-" + uuid.uuid4().hex[:10].upper(),
        period=calendar.period_at(slot),
        thresholds=config.thresholds(check),
        expected_queue="billing",
    )


def plan_for(result: RunResult, rng: random.Random) -> Plan:
    """A mix like a real desk's: mostly met, some breached, misrouted, refused, errored."""
    limits = result.thresholds
    roll = rng.random()
    if result.period is not Period.BUSINESS:
        limit = limits.after_hours_response or limits.deadline
        if roll < 0.8:
            return Plan(
                Outcome.MET,
                ((round(rng.uniform(0.5, limit * 0.8), 3), Responder.BOT, ""),),
                RoutingResult.UNKNOWN,
                "answered after hours by a bot",
            )
        return Plan(Outcome.BREACHED, (), RoutingResult.UNKNOWN, "no answer after hours")
    human = limits.human_response or limits.deadline
    first = limits.first_response or human
    ack = (round(rng.uniform(0.2, first * 0.5), 3), Responder.AUTO, "")
    if roll < 0.65:
        reply = (round(rng.uniform(first, human * 0.9), 3), Responder.HUMAN, "billing")
        return Plan(Outcome.MET, (ack, reply), RoutingResult.CORRECT, "answered by billing")
    if roll < 0.8:
        reply = (
            round(rng.uniform(human * 1.1, limits.deadline * 0.95), 3),
            Responder.HUMAN,
            "billing",
        )
        return Plan(Outcome.BREACHED, (ack, reply), RoutingResult.CORRECT, "human answer too late")
    if roll < 0.9:
        reply = (round(rng.uniform(first, human * 0.9), 3), Responder.HUMAN, "tech")
        return Plan(Outcome.MET, (ack, reply), RoutingResult.WRONG, "answered by tech, not billing")
    if roll < 0.96:
        return Plan(Outcome.FAILED, (), RoutingResult.UNKNOWN, "ContactRejected: 550 mailbox full")
    return Plan(Outcome.ERROR, (), RoutingResult.UNKNOWN, "ChannelUnavailable: timeout")


def reply_text(responder: Responder, queue: str, token: str) -> str:
    if responder is Responder.BOT:
        return f"Hi, I'm the Acme automated assistant.\nWe reopen at 06:00.\nRef {token}"
    if responder is Responder.AUTO:
        return f"We have received your message ({token}).\nWe will reply soon."
    team = {"billing": "Acme Billing", "tech": "Acme Technical Support"}[queue]
    return f"Hello Alex,\nthanks for getting in touch about {token}.\nKind regards,\n{team}"


async def record_run(
    store: EvidenceStore, result: RunResult, plan: Plan, clock: FakeClock, *, measured: bool = True
) -> None:
    """One run through the store as the runner writes it (``measured``: with the channel's
    measures, see :func:`channel_measures`)."""
    await store.claim_slot(result)
    clock.now = result.slot + timedelta(seconds=2)
    sent_at = clock.now
    raw = f"From: probe@cxprobe.test\r\nSubject: Invoice {result.token}\r\n\r\nHello\r\n"
    await store.record_sent(
        result.run_id,
        Sent(
            at=sent_at,
            external_id=f"<{result.token}@cxprobe.test>",
            evidence=Evidence("email", "message/rfc822", raw.encode()),
        ),
        result.expected_queue,
    )
    result.sent_at = sent_at
    for index, (seconds, responder, queue) in enumerate(plan.replies):
        arrived = sent_at + timedelta(seconds=seconds)
        clock.now = arrived + timedelta(milliseconds=400)
        text = reply_text(responder, queue, result.token)
        reply = Reply(
            observed_at=clock.now,
            arrived_at=arrived,
            timing_method="imap-internaldate",
            sender=f"{queue or 'noreply'}@acme.test",
            text=text,
            responder=responder,
            external_id=f"<reply-{index}-{result.token}@acme.test>",
            subject=f"Re: Invoice {result.token}",
            headers={"Message-ID": f"<reply-{index}-{result.token}@acme.test>"},
            evidence=Evidence("email", "message/rfc822", text.encode()),
        )
        observed = ObservedReply(
            arrived_at=arrived,
            observed_at=clock.now,
            seconds=seconds,
            responder=responder,
            sender=reply.sender,
            queue=queue or None,
            late=seconds > result.thresholds.deadline,
            external_id=reply.external_id,
            qualifies=responder is Responder.HUMAN or result.period is not Period.BUSINESS,
        )
        await store.record_reply(result.run_id, reply, observed)
        result.replies.append(observed)
    if plan.replies:
        result.first_response_seconds = plan.replies[0][0]
        result.first_response_responder = plan.replies[0][1]
    humans = [seconds for seconds, responder, _ in plan.replies if responder is Responder.HUMAN]
    result.first_human_seconds = humans[0] if humans else None
    queues = [queue for _, _, queue in plan.replies if queue]
    result.routed_queue = queues[0] if queues else None
    result.routing = plan.routing
    result.outcome = plan.outcome
    result.reason = plan.reason
    result.measures = channel_measures(result) if measured else {}
    result.finished_at = clock.advance(1)
    await store.finish(result)


def channel_measures(result: RunResult) -> dict[str, float]:
    """What a channel with measures of its own (``ChannelType.measures``, the phone's audio)
    measured on a run a human answered: each a fraction of the time to the human, in the
    order declared (so the report's quantiles can be worked out from the runs)."""
    declared = list(CHANNEL_TYPES[result.channel].measures)
    human = result.first_human_seconds
    if human is None:
        return {}
    return {
        name: round(human * (index + 1) / len(declared), 3) for index, name in enumerate(declared)
    }


async def populate(
    store: EvidenceStore,
    config: Config,
    *,
    start: datetime = WEEK_START,
    hours: int = 7 * 24,
    every_hours: int = 2,
    seed: int = 7,
    location: str | None = None,
    measured: bool = True,
) -> list[RunResult]:
    """Runs of every check in :data:`CHECKS`, one per ``every_hours`` (staggered), at
    ``location`` (default: the config's monitor's); ``measured=False``: without the channels'
    measures, as every run of a store from before revision 0010."""
    rng = random.Random(seed)
    clock = FakeClock(start)
    results = []
    for hour in range(0, hours, every_hours):
        for index, check_id in enumerate(CHECKS):
            slot = start + timedelta(hours=hour, minutes=15 * index)
            result = new_result(config, check_id, slot, location)
            await record_run(store, result, plan_for(result, rng), clock, measured=measured)
            results.append(result)
    return results
