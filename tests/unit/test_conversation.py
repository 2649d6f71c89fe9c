"""Conversation scripts (scenarios.conversation): matching, rendering, the engine answering an
agent's questions in the conversation, the turn limit, the fallback, a failed turn, and a
restart that resumes a scripted run without sending a turn again (with the store)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from cxprobe.cli import _print_result
from cxprobe.store.database import EvidenceStore
from probes.base import Contact, Reply, Responder, Sent
from probes.errors import ChannelUnavailable, ProbeError
from scenarios.conversation import ConversationScript, matches
from scenarios.engine import build_contact, build_script, listen, send_contact
from scenarios.model import (
    ObservedReply,
    Outcome,
    Period,
    RunResult,
    Scenario,
    Thresholds,
    TurnMatcher,
    TurnRecord,
)
from scenarios.verdicts import Judge

TOKEN = "CXP-ABCDEFGHJK"
ORDER_QUESTION = "Could you give me your order number?"
EMAIL_QUESTION = "Thanks. And the e-mail address on the account?"
ANSWER = "Your order 482913 ships tomorrow."
#: The agent's reply to each message: (what the customer's message must contain, reply).
AGENT = [
    (r"", ORDER_QUESTION),
    (r"\b\d{6}\b", EMAIL_QUESTION),
    (r"@", ANSWER),
]

SCRIPTED = {
    "intent": "order-status",
    "subject": "Order {token}",
    "opening": "Where is my order?",
    "persona": {"order_number": "482913", "account_email": "pat@example.net"},
    "turns": [
        {"when": {"any": ["order number"], "responder": ["human"]}, "say": "It is {order_number}."},
        {"when": {"regex": r"e-?mail"}, "say": "It is {account_email}, {customer_name}."},
    ],
}


def scenario(**overrides: Any) -> Scenario:
    return Scenario.model_validate({**SCRIPTED, **overrides})


@dataclass
class AgentConversation:
    """A desk that answers every message after ``delay`` with the next line of ``script``
    whose pattern the message matches (else it asks the same question again)."""

    script: list[tuple[str, str]]
    delay: float = 0.02
    fail_follow_ups: bool = False
    said: list[str] = field(default_factory=list)
    sent_at: list[datetime] = field(default_factory=list)
    replied_at: list[datetime] = field(default_factory=list)
    _step: int = 0
    _queue: asyncio.Queue[Reply] = field(default_factory=asyncio.Queue)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def send(self, contact: Contact) -> Sent:
        return self._accept(contact)

    async def follow_up(self, contact: Contact) -> Sent:
        if self.fail_follow_ups:
            raise ChannelUnavailable("submission server down")
        return self._accept(contact)

    def _accept(self, contact: Contact) -> Sent:
        at = datetime.now(UTC)
        self.said.append(contact.text)
        self.sent_at.append(at)
        pattern, line = self.script[min(self._step, len(self.script) - 1)]
        if re.search(pattern, contact.text):
            self._step += 1
        else:
            line = self.script[max(0, self._step - 1)][1]
        task = asyncio.create_task(self._reply(line, len(self.said)))
        self._tasks.add(task)
        return Sent(at=at, external_id=f"<m{len(self.said)}@test>")

    async def _reply(self, text: str, number: int) -> None:
        await asyncio.sleep(self.delay)
        at = datetime.now(UTC)
        self.replied_at.append(at)
        self._queue.put_nowait(
            Reply(
                observed_at=at,
                arrived_at=at,
                timing_method="test",
                sender="agent@acme.test",
                text=text,
                responder=Responder.HUMAN,
                external_id=f"r{number}",
            )
        )

    async def replies(self) -> AsyncIterator[Reply]:
        while True:
            yield await self._queue.get()

    async def close(self) -> list[object]:
        for task in self._tasks:
            task.cancel()
        return []


@dataclass
class Hooks:
    turns: list[TurnRecord] = field(default_factory=list)
    failures: list[ProbeError] = field(default_factory=list)
    chasers: int = 0
    send_checks: int = 0

    async def sent(self, result: RunResult, sent: Sent) -> None:
        pass

    async def reply(self, result: RunResult, reply: Reply, observed: ObservedReply) -> None:
        pass

    async def may_send(self, result: RunResult) -> None:
        self.send_checks += 1

    async def followed_up(self, result: RunResult, sent: Sent) -> None:
        self.chasers += 1

    async def follow_up_failed(self, result: RunResult, error: ProbeError) -> None:
        self.failures.append(error)

    async def turn_sent(self, result: RunResult, sent: Sent, turn: TurnRecord) -> None:
        self.turns.append(turn)

    async def turn_failed(self, result: RunResult, error: ProbeError) -> None:
        self.failures.append(error)


def new_result(deadline: float = 5.0) -> RunResult:
    return RunResult(
        run_id="r",
        check_id="c",
        target="t",
        channel="test",
        scenario="s",
        location="l",
        slot=datetime.now(UTC),
        token=TOKEN,
        period=Period.BUSINESS,
        thresholds=Thresholds(
            first_response=None, human_response=5.0, after_hours_response=None, deadline=deadline
        ),
    )


async def play(
    chosen: Scenario, conversation: AgentConversation, hooks: Hooks, deadline: float = 5.0
) -> tuple[RunResult, ConversationScript]:
    """A whole scripted run, as the runner drives it."""
    opening = build_contact(
        chosen, token=TOKEN, customer_name="Pat", target_name="Acme", disclosure=None
    )
    script = build_script(chosen, opening, hooks, customer_name="Pat", target_name="Acme")
    assert script is not None
    judge = Judge(chosen, {}, [], new_result(deadline))
    await send_contact(conversation, opening, judge, hooks, send_timeout=1)
    try:
        await listen(conversation, judge, hooks, script=script)
    finally:
        await conversation.close()
    return judge.conclude(), script


# -- matching and rendering ------------------------------------------------------------------


def test_a_matcher_needs_every_condition() -> None:
    when = TurnMatcher(any=["order number", "order no"], responder=[Responder.HUMAN])
    assert matches(when, "Could you give me your Order Number?", Responder.HUMAN)
    assert not matches(when, "Could you give me your order number?", Responder.BOT)
    assert not matches(when, "What is your name?", Responder.HUMAN)
    assert matches(TurnMatcher(regex=r"e-?mail\b"), "your E-mail, please", Responder.BOT)
    assert matches(TurnMatcher(all=["account", "email"]), "Account email?", Responder.HUMAN)
    assert not matches(TurnMatcher(all=["account", "email"]), "Account?", Responder.HUMAN)


def test_a_matcher_needs_a_condition_and_a_valid_re2_pattern() -> None:
    with pytest.raises(ValidationError, match="at least one of"):
        TurnMatcher()
    with pytest.raises(ValidationError, match="RE2"):
        TurnMatcher(regex=r"(a)\1")


def test_persona_values_are_placeholders_of_every_text() -> None:
    chosen = scenario(opening="Order {order_number}: where is it?")
    opening = build_contact(
        chosen, token=TOKEN, customer_name="Pat", target_name="Acme", disclosure=None
    )
    assert opening.text.startswith("Order 482913: where is it?")
    with pytest.raises(ValidationError, match=r"unknown placeholder \{account_mail\}"):
        scenario(turns=[{"when": {"any": ["mail"]}, "say": "{account_mail}"}])
    with pytest.raises(ValidationError, match="filled in by cxprobe"):
        scenario(persona={"token": "x"})
    # Without the persona the same placeholder is unknown (the context does not leak).
    with pytest.raises(ValidationError, match=r"unknown placeholder \{order_number\}"):
        Scenario(intent="x", subject="s", opening="{order_number}")


# -- the engine plays the script -------------------------------------------------------------


async def test_a_three_turn_conversation_answers_each_question_and_times_each_turn() -> None:
    conversation = AgentConversation(AGENT)
    hooks = Hooks()
    result, script = await play(scenario(), conversation, hooks)

    assert result.outcome is Outcome.MET
    said = [text.split("\n")[0] for text in conversation.said]
    assert said == ["Where is my order?", "It is 482913.", "It is pat@example.net, Pat."]
    assert all(TOKEN in text for text in conversation.said)  # every turn routes by the token
    assert [t.matched for t in result.turns] == ["", "turns[0]", "turns[1]"]
    assert [t.reply for t in result.turns] == ["", "r1", "r2"]
    assert hooks.turns == result.turns[1:] and hooks.send_checks == 2
    # Each message timed to the reply that followed it, against what the agent did.
    for turn, sent_at, replied_at in zip(
        result.turns, conversation.sent_at, conversation.replied_at, strict=True
    ):
        assert turn.sent_at == sent_at
        expected = (replied_at - sent_at).total_seconds()
        assert turn.next_reply_seconds == pytest.approx(expected)
        assert turn.next_human_seconds == pytest.approx(expected)
    # The run was decided by the final answer, not by the first question.
    assert len(result.replies) == 3 and script.finished
    # Turns are not chasers: nothing here preceded an answer as a follow-up.
    assert hooks.chasers == 0
    document = script.evidence(result)
    assert document["turns_sent"] == 2 and document["finished"] is True
    assert document["turns"][1]["when"] == "turns[0]"


async def test_a_turn_is_used_once_unless_it_repeats() -> None:
    # The agent keeps asking for the order number; the turn answers it once.
    stubborn = [(r"", ORDER_QUESTION), (r"^$", ANSWER)]
    result, script = await play(scenario(), AgentConversation(stubborn), Hooks(), deadline=1.0)
    assert [t.matched for t in result.turns] == ["", "turns[0]"]
    assert script.finished

    repeating = scenario(
        turns=[{"when": {"any": ["order number"]}, "say": "{order_number}", "repeat": True}],
        max_turns=3,
    )
    result, script = await play(repeating, AgentConversation(stubborn), Hooks(), deadline=2.0)
    assert [t.matched for t in result.turns] == ["", "turns[0]", "turns[0]", "turns[0]"]
    assert script.stopped == "turn limit reached (3)" and script.finished
    assert result.outcome is Outcome.MET


async def test_the_fallback_answers_a_question_no_turn_matched() -> None:
    agent = [(r"", "What colour was the parcel?"), (r"blue", ANSWER)]
    with_fallback = scenario(fallback={"say": "It was blue, sorry I do not know more."})
    result, _ = await play(with_fallback, AgentConversation(agent), Hooks())
    assert [t.matched for t in result.turns] == ["", "fallback"]
    assert result.turns[1].said.startswith("It was blue")
    # Without one, the unexpected question ends the script: the run is decided by it.
    result, script = await play(scenario(), AgentConversation(agent), Hooks())
    assert [t.matched for t in result.turns] == [""] and script.finished


async def test_a_failed_turn_ends_the_script_not_the_run() -> None:
    hooks = Hooks()
    result, script = await play(scenario(), AgentConversation(AGENT, fail_follow_ups=True), hooks)
    assert [type(error) for error in hooks.failures] == [ChannelUnavailable]
    assert script.stopped == "a turn could not be sent" and script.finished
    assert result.outcome is Outcome.MET  # the question was a human answer within the SLA


async def test_the_deadline_ends_a_conversation_still_waiting() -> None:
    slow = AgentConversation(AGENT)
    hooks = Hooks()
    opening = build_contact(
        scenario(), token=TOKEN, customer_name="Pat", target_name="Acme", disclosure=None
    )
    script = build_script(scenario(), opening, hooks, customer_name="Pat", target_name="Acme")
    assert script is not None
    judge = Judge(scenario(), {}, [], new_result(deadline=0.3))
    await send_contact(slow, opening, judge, hooks, send_timeout=1)
    slow.delay = 10.0  # the agent never answers the first turn within the deadline
    await asyncio.wait_for(listen(slow, judge, hooks, script=script), timeout=5)
    await slow.close()
    # The first question qualified, but the script waited for the answer to turn 1 until the
    # deadline ended it; the run is then judged on what came.
    assert [t.index for t in judge.result.turns] == [0, 1] and script.awaiting
    assert datetime.now(UTC) >= judge.result.sent_at + timedelta(seconds=0.3)  # type: ignore[operator]
    assert judge.conclude().outcome is Outcome.MET


# -- a restart mid-conversation --------------------------------------------------------------


async def test_a_restart_keeps_the_turns_and_sends_none_again(tmp_path: Path) -> None:
    chosen = scenario()
    conversation = AgentConversation(AGENT)
    async with EvidenceStore(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as store:
        result = new_result()
        await store.claim_slot(result)
        opening = build_contact(
            chosen, token=TOKEN, customer_name="Pat", target_name="Acme", disclosure=None
        )
        sent = await conversation.send(opening)
        result.sent_at = sent.at
        await store.record_sent(result.run_id, sent, None)
        # The first question came and turn 1 was sent; then the monitor stopped.
        question = await anext(conversation.replies())
        judge = Judge(chosen, {}, [], result)
        observed = judge.observe(question)
        await store.record_reply(result.run_id, question, observed)
        script = build_script(chosen, opening, Hooks(), customer_name="Pat", target_name="Acme")
        assert script is not None
        script.opened(result)
        planned = script.respond(result, question, observed)
        assert planned is not None
        turn_sent = await conversation.follow_up(planned.contact)
        turn = TurnRecord(1, planned.contact.text, turn_sent.at, planned.matched, planned.reply)
        await store.record_follow_up(result.run_id, turn_sent, turn=turn.as_dict())

        # The next process: the turn is a turn (not a chaser), and the question it answered,
        # delivered again by the back-fill, triggers nothing.
        stored = await store.messages(result.run_id)
    turns = [m.turn for m in stored if m.direction == "out" and m.turn is not None]
    assert len(turns) == 1 and turns[0]["when"] == "turns[0]" and turns[0]["reply"] == "r1"
    resumed = new_result()
    resumed.sent_at = result.sent_at
    judge = Judge(chosen, {}, [], resumed)
    judge.restore(result.replies)
    restarted = build_script(chosen, opening, Hooks(), customer_name="Pat", target_name="Acme")
    assert restarted is not None
    restarted.restore(resumed, turns)
    assert [t.index for t in resumed.turns] == [0, 1] and restarted.awaiting
    again = judge.observe(question)
    assert restarted.respond(resumed, question, again) is None
    # The agent's next question is answered with the next turn, not the first again.
    email_question = await anext(conversation.replies())
    planned = restarted.respond(resumed, email_question, judge.observe(email_question))
    assert planned is not None and planned.matched == "turns[1]" and planned.index == 2
    await conversation.close()
    assert resumed.turns[1].next_reply_seconds == pytest.approx(
        (conversation.replied_at[1] - turn_sent.at).total_seconds()
    )
    assert timedelta(0) <= email_question.arrived_at - turn_sent.at


async def test_cxprobe_once_prints_the_turns() -> None:
    result, _ = await play(scenario(), AgentConversation(AGENT), Hooks())
    console = Console(record=True, width=200)
    _print_result(console, result, [])
    printed = console.export_text()
    assert re.search(r"^\s*turn 0 \(opening\) .*“Where is my order\?” → next reply", printed, re.M)
    assert re.search(r"^\s*turn 1 \(turns\[0\]\) .*“It is 482913\.”", printed, re.M)
    assert re.search(r"^\s*turn 2 \(turns\[1\]\) .*next human \d+\.\d\ds", printed, re.M)
