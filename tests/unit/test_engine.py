"""The engine against a scripted in-memory conversation: it tests the engine's own logic
(sending, deadlines, early decision, hooks); the real channels are tested in integration."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from probes.base import Contact, Reply, Responder, Sent
from probes.errors import ChannelUnavailable, ProbeError, ProbeTimeout
from scenarios.engine import build_contact, build_follow_ups, listen, send_contact
from scenarios.model import (
    FollowUp,
    ObservedReply,
    Outcome,
    Period,
    RunResult,
    Scenario,
    Thresholds,
)
from scenarios.verdicts import Judge


@dataclass
class ScriptedConversation:
    """Replies ``(delay_seconds, responder)`` after send, each delay after the previous reply;
    optional slow send and failing follow-ups. Like a real channel, replies wait in a queue, so
    an interrupted ``replies()`` iteration loses none."""

    script: list[tuple[float, Responder]]
    send_delay: float = 0.0
    fail_follow_ups: bool = False
    sent_contact: Contact | None = None
    follow_ups: list[Contact] = field(default_factory=list)
    closed: bool = False
    _queue: asyncio.Queue[Reply] = field(default_factory=asyncio.Queue)
    _script: asyncio.Task[None] | None = None

    async def send(self, contact: Contact) -> Sent:
        await asyncio.sleep(self.send_delay)
        self.sent_contact = contact
        self.sent_at = datetime.now(UTC)
        self._script = asyncio.create_task(self._play())
        return Sent(at=self.sent_at, external_id="<m1@test>")

    async def _play(self) -> None:
        for index, (delay, responder) in enumerate(self.script):
            await asyncio.sleep(delay)
            at = datetime.now(UTC)
            self._queue.put_nowait(
                Reply(
                    observed_at=at,
                    arrived_at=at,
                    timing_method="test",
                    sender="desk@acme.test",
                    text="hi",
                    responder=responder,
                    external_id=f"r{index}",
                )
            )

    async def follow_up(self, contact: Contact) -> Sent:
        if self.fail_follow_ups:
            raise ChannelUnavailable("submission server down")
        self.follow_ups.append(contact)
        return Sent(at=datetime.now(UTC), external_id=f"<f{len(self.follow_ups)}@test>")

    async def replies(self) -> AsyncIterator[Reply]:
        while True:  # a real channel never ends the stream by itself
            yield await self._queue.get()

    async def close(self) -> list[object]:
        self.closed = True
        if self._script is not None:
            self._script.cancel()
        return []


@dataclass
class RecordingHooks:
    sent_ids: list[str] = field(default_factory=list)
    replies: list[ObservedReply] = field(default_factory=list)
    failures: list[ProbeError] = field(default_factory=list)
    send_checks: int = 0

    async def sent(self, result: RunResult, sent: Sent) -> None:
        self.sent_ids.append(sent.external_id)

    async def reply(self, result: RunResult, reply: Reply, observed: ObservedReply) -> None:
        self.replies.append(observed)

    async def may_send(self, result: RunResult) -> None:
        self.send_checks += 1

    async def followed_up(self, result: RunResult, sent: Sent) -> None:
        self.sent_ids.append(sent.external_id)

    async def follow_up_failed(self, result: RunResult, error: ProbeError) -> None:
        self.failures.append(error)


SCENARIO = Scenario(intent="t", subject="Help {token}", opening="Hello from {customer_name}")


async def converse(
    conversation: ScriptedConversation,
    contact: Contact,
    j: Judge,
    hooks: RecordingHooks,
    *,
    send_timeout: float,
    follow_ups: list[tuple[float, Contact]] | None = None,
) -> RunResult:
    """A whole run as the runner drives it: send, listen, conclude."""
    await send_contact(conversation, contact, j, hooks, send_timeout=send_timeout)
    await listen(conversation, j, hooks, follow_ups=follow_ups or [])
    try:
        return j.conclude()
    finally:
        await conversation.close()


def contact() -> Contact:
    return build_contact(
        SCENARIO, token="CXP-ABCDEFGHJK", customer_name="A", target_name="T", disclosure=None
    )


def judge(human: float = 5, deadline: float = 0.5) -> Judge:
    result = RunResult(
        run_id="r",
        check_id="c",
        target="t",
        channel="test",
        scenario="s",
        location="l",
        slot=datetime.now(UTC),
        token="CXP-ABCDEFGHJK",
        period=Period.BUSINESS,
        thresholds=Thresholds(None, human, None, deadline),
    )
    return Judge(SCENARIO, {}, [], result)


def test_contact_carries_token_and_disclosure() -> None:
    contact = build_contact(
        SCENARIO,
        token="CXP-ABCDEFGHJK",
        customer_name="Alex",
        target_name="Acme",
        disclosure="Test contact {token}",
    )
    assert contact.subject == "Help CXP-ABCDEFGHJK"
    assert contact.text.startswith("Hello from Alex")
    assert contact.text.rstrip().endswith("Test contact CXP-ABCDEFGHJK")


async def test_stops_listening_once_decided() -> None:
    conversation = ScriptedConversation(
        [(0.01, Responder.AUTO), (0.01, Responder.HUMAN), (10, Responder.HUMAN)]
    )
    hooks = RecordingHooks()
    j = judge(deadline=5)
    started = asyncio.get_running_loop().time()
    result = await converse(
        conversation,
        build_contact(
            SCENARIO, token="CXP-ABCDEFGHJK", customer_name="A", target_name="T", disclosure=None
        ),
        j,
        hooks,
        send_timeout=1,
    )
    assert asyncio.get_running_loop().time() - started < 2  # did not wait for the deadline
    assert result.outcome is Outcome.MET
    assert hooks.sent_ids == ["<m1@test>"]
    assert [r.responder for r in hooks.replies] == [Responder.AUTO, Responder.HUMAN]


async def test_silence_ends_at_the_deadline_as_breached() -> None:
    j = judge(deadline=0.3)
    result = await converse(
        ScriptedConversation([]),
        build_contact(
            SCENARIO, token="CXP-ABCDEFGHJK", customer_name="A", target_name="T", disclosure=None
        ),
        j,
        RecordingHooks(),
        send_timeout=1,
    )
    assert result.outcome is Outcome.BREACHED
    assert result.deadline_at is not None
    assert datetime.now(UTC) >= result.deadline_at - timedelta(milliseconds=50)


async def test_slow_send_is_a_probe_timeout() -> None:
    with pytest.raises(ProbeTimeout, match="did not accept"):
        await converse(
            ScriptedConversation([], send_delay=5),
            build_contact(
                SCENARIO,
                token="CXP-ABCDEFGHJK",
                customer_name="A",
                target_name="T",
                disclosure=None,
            ),
            judge(),
            RecordingHooks(),
            send_timeout=0.05,
        )


@pytest.mark.parametrize(("grace", "recorded"), [(2.0, True), (0.0, False)])
async def test_a_send_cancelled_by_shutdown_gets_the_grace_to_finish(
    grace: float, recorded: bool
) -> None:
    hooks = RecordingHooks()
    j = judge()
    send = asyncio.create_task(
        send_contact(
            ScriptedConversation([], send_delay=0.2),
            contact(),
            j,
            hooks,
            send_timeout=5,
            shutdown_grace=grace,
        )
    )
    await asyncio.sleep(0.05)
    send.cancel()
    with pytest.raises(asyncio.CancelledError):
        await send
    assert hooks.sent_ids == (["<m1@test>"] if recorded else [])
    assert (j.result.sent_at is not None) is recorded


def chasers(*after: float) -> list[tuple[float, Contact]]:
    scenario = SCENARIO.model_copy(
        update={"follow_ups": [FollowUp(after=a, text="Any news on {token}?") for a in after]}
    )
    return build_follow_ups(scenario, contact(), customer_name="A", target_name="T")


async def test_follow_ups_go_out_while_the_run_is_undecided() -> None:
    # Human answers 0.5 s after sending; chasers due at 0.1 s and 0.2 s go, the one at 2 s not.
    conversation = ScriptedConversation([(0.5, Responder.HUMAN)])
    hooks = RecordingHooks()
    result = await converse(
        conversation,
        contact(),
        judge(deadline=5),
        hooks,
        send_timeout=1,
        follow_ups=chasers(0.2, 2, 0.1),
    )
    assert result.outcome is Outcome.MET
    assert hooks.sent_ids == ["<m1@test>", "<f1@test>", "<f2@test>"]
    assert [c.text for c in conversation.follow_ups] == ["Any news on CXP-ABCDEFGHJK?\n"] * 2
    assert result.first_human_seconds is not None and result.first_human_seconds >= 0.5


async def test_follow_ups_due_after_the_deadline_are_not_sent() -> None:
    conversation = ScriptedConversation([])
    hooks = RecordingHooks()
    result = await converse(
        conversation,
        contact(),
        judge(deadline=0.3),
        hooks,
        send_timeout=1,
        follow_ups=chasers(0.1, 0.5),
    )
    assert result.outcome is Outcome.BREACHED
    assert hooks.sent_ids == ["<m1@test>", "<f1@test>"]


async def test_a_follow_up_that_fails_is_reported_and_listening_goes_on() -> None:
    conversation = ScriptedConversation([(0.3, Responder.HUMAN)], fail_follow_ups=True)
    hooks = RecordingHooks()
    result = await converse(
        conversation,
        contact(),
        judge(deadline=5),
        hooks,
        send_timeout=1,
        follow_ups=chasers(0.1),
    )
    assert result.outcome is Outcome.MET
    assert [type(e) for e in hooks.failures] == [ChannelUnavailable]
    assert hooks.sent_ids == ["<m1@test>"]


def test_follow_up_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FollowUp(after=0, text="hi")
    with pytest.raises(ValueError, match="unknown placeholder"):
        FollowUp(after=60, text="{order}")
