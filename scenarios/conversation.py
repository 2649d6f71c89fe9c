"""Conversation scripts: the probe answers the agent's questions in the same conversation.

A scripted scenario (``turns``, ``fallback``, ``max_turns``) is played by one
:class:`ConversationScript` per run. After each reply the engine asks it whether the reply is
one to answer: the first turn whose ``when`` matches the *last* reply (one that came after the
probe's latest message), not yet used unless it may ``repeat``, else the fallback, while fewer
than ``max_turns`` turns have been sent. A sent turn opens a wait for the next reply of the
party that asked (a human's question is answered by a human: the auto-acknowledgement of the
turn does not end the wait); the conversation is finished when such a reply triggers no turn
(or the limit stops it), and only then may the run be decided. The deadline ends everything.

Turns are not chasers: a timed follow-up (``follow_ups``) means the customer was kept waiting,
so answers after it do not resolve at first contact; a turn answers a question the agent asked,
and leaves ``resolved`` alone.

Matching is pattern matching on the reply's text (keywords and RE2 regexes, on bounded plain
text): it is not understanding. A question phrased in a way no pattern foresaw goes to the
fallback, or ends the script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from probes.base import Contact, Reply, Responder, Sent
from probes.errors import ProbeError
from scenarios.answers import MAX_EVALUATED_CHARS, find_fact, plain_text
from scenarios.model import ObservedReply, RunResult, Scenario, TurnMatcher, TurnRecord

#: The evidence kind of a run's conversation timeline.
EVIDENCE_KIND = "conversation"
#: What a fallback turn's ``matched`` says.
FALLBACK = "fallback"


def in_thread(opening: Contact, text: str) -> Contact:
    """A further message of the opening's conversation, carrying its token (the desks and the
    channels without a thread key route it by the token)."""
    text = text.rstrip()
    if opening.token not in text:
        text += f"\n\nRef: {opening.token}"
    return Contact(
        token=opening.token,
        subject=opening.subject,
        text=text + "\n",
        sender_name=opening.sender_name,
        disclosed=opening.disclosed,
    )


def matches(matcher: TurnMatcher, text: str, responder: Responder) -> bool:
    """Whether a reply of ``responder`` saying ``text`` (plain, bounded) matches."""
    if matcher.responder and responder not in matcher.responder:
        return False
    fact = matcher.text_fact("turn")
    return fact is None or find_fact(fact, text, 0) is not None


class TurnHooks(Protocol):
    """Where the script's sends are reported (the runner persists them as turns)."""

    async def may_send(self, result: RunResult) -> None: ...

    async def turn_sent(self, result: RunResult, sent: Sent, turn: TurnRecord) -> None: ...

    async def turn_failed(self, result: RunResult, error: ProbeError) -> None: ...


@dataclass(frozen=True)
class PlannedTurn:
    """A turn the script wants said: its number, what triggered it, and the message."""

    index: int
    matched: str  # "turns[<i>]" or "fallback"
    reply: str  # the external id of the reply it answers
    contact: Contact
    asker: Responder = Responder.HUMAN  # who sent that reply


@dataclass
class ConversationScript:
    """The scripted side of one run's conversation (see the module docstring)."""

    scenario: Scenario
    opening: Contact
    hooks: TurnHooks
    #: Placeholder values besides the persona (token, customer_name, target).
    values: Mapping[str, str] = field(default_factory=dict)
    #: Whether a turn was sent and the party that asked has not replied since.
    awaiting: bool = False
    #: Who asked the question the latest turn answered: their next reply ends the wait (an
    #: auto-acknowledgement of the turn in between does not).
    waiting_for: Responder = Responder.HUMAN
    #: Why the script stopped early ("" while it plays): a failed send, the turn limit.
    stopped: str = ""
    _used: set[int] = field(default_factory=set)
    _answered: set[str] = field(default_factory=set)

    @property
    def finished(self) -> bool:
        return not self.awaiting

    def opened(self, result: RunResult) -> None:
        """The opening was sent (at ``result.sent_at``): turn 0 of the timeline."""
        assert result.sent_at is not None
        result.turns = [TurnRecord(0, self.opening.text, result.sent_at)]

    def restore(self, result: RunResult, sent_turns: Sequence[Mapping[str, Any]]) -> None:
        """Take back the turns a previous process sent (as stored with them): none is said
        again, and the reply each answered does not trigger another."""
        assert result.sent_at is not None
        result.turns = [TurnRecord(0, self.opening.text, result.sent_at)]
        for stored in sorted(sent_turns, key=lambda item: int(item["turn"])):
            record = TurnRecord(
                index=int(stored["turn"]),
                said=str(stored["said"]),
                sent_at=datetime.fromisoformat(str(stored["sent_at"])),
                matched=str(stored["when"]),
                reply=str(stored.get("reply") or ""),
            )
            self._said(result, record)
        last = result.turns[-1]
        asker = next((r for r in result.replies if r.external_id == last.reply), None)
        self.waiting_for = asker.responder if asker is not None else Responder.HUMAN
        self.awaiting = last.index > 0 and not any(
            reply.observed_at >= last.sent_at and reply.responder is self.waiting_for
            for reply in result.replies
        )
        time_turns(result)

    def respond(
        self, result: RunResult, reply: Reply, observed: ObservedReply
    ) -> PlannedTurn | None:
        """The turn answering ``reply``, or None (the reply ends the script, or is not the
        last one: it came before the probe's latest message or was answered already)."""
        time_turns(result)
        if self.stopped or not result.turns or observed.late:
            return None
        # ``observed`` keeps when the reply was first seen, also when a resumed run's back-fill
        # delivers it again.
        if observed.observed_at < result.turns[-1].sent_at:
            return None
        if observed.external_id in self._answered:
            return None
        # Bounded: a huge or hostile reply is cut before it is stripped of markup and matched.
        text = plain_text(reply.text[: MAX_EVALUATED_CHARS * 4])[:MAX_EVALUATED_CHARS]
        matched = self._match(text, observed.responder)
        if matched is None:
            if observed.responder is self.waiting_for:
                self.awaiting = False  # the party that asked replied: the script is done
            return None
        self.awaiting = False
        if len(result.turns) - 1 >= self.scenario.max_turns:
            self.stopped = f"turn limit reached ({self.scenario.max_turns})"
            return None
        name, say = matched
        values = {**self.values, **self.scenario.persona}
        said = self.scenario.render(say, **values)
        return PlannedTurn(
            len(result.turns),
            name,
            observed.external_id,
            in_thread(self.opening, said),
            observed.responder,
        )

    def _match(self, text: str, responder: Responder) -> tuple[str, str] | None:
        for index, turn in enumerate(self.scenario.turns):
            if index in self._used and not turn.repeat:
                continue
            if matches(turn.when, text, responder):
                return f"turns[{index}]", turn.say
        fallback = self.scenario.fallback
        if fallback is not None and matches(fallback.when, text, responder):
            return FALLBACK, fallback.say
        return None

    async def say(self, result: RunResult, planned: PlannedTurn, send: Any) -> None:
        """Send ``planned`` with ``send`` (the conversation's ``follow_up``); a failed send is
        reported and ends the script, not the run."""
        await self.hooks.may_send(result)
        try:
            sent: Sent = await send(planned.contact)
        except ProbeError as exc:
            self.stopped = "a turn could not be sent"
            await self.hooks.turn_failed(result, exc)
            return
        record = TurnRecord(
            index=planned.index,
            said=planned.contact.text,
            sent_at=sent.at,
            matched=planned.matched,
            reply=planned.reply,
        )
        self._said(result, record)
        self.awaiting = True
        self.waiting_for = planned.asker
        await self.hooks.turn_sent(result, sent, record)

    def _said(self, result: RunResult, record: TurnRecord) -> None:
        """``record`` is on the timeline: its reply is answered and its turn used."""
        result.turns.append(record)
        self._answered.add(record.reply)
        if record.matched.startswith("turns["):
            self._used.add(int(record.matched.removeprefix("turns[").rstrip("]")))

    def evidence(self, result: RunResult) -> dict[str, Any]:
        """The ``conversation`` evidence document: the timeline and how the script ended."""
        time_turns(result)
        return {
            "max_turns": self.scenario.max_turns,
            "turns_sent": max(0, len(result.turns) - 1),
            "finished": self.finished,
            "stopped": self.stopped or None,
            "turns": [turn.as_dict() for turn in result.turns],
        }


def time_turns(result: RunResult) -> None:
    """Each sent message's time to the next reply and to the next human reply: the first reply
    observed after it was sent, timed by its arrival (the channel's precision)."""
    for turn in result.turns:
        after = [reply for reply in result.replies if reply.observed_at >= turn.sent_at]
        first = after[0] if after else None
        human = next((reply for reply in after if reply.responder is Responder.HUMAN), None)
        turn.next_reply_seconds = _seconds(first.arrived_at, turn.sent_at) if first else None
        turn.next_human_seconds = _seconds(human.arrived_at, turn.sent_at) if human else None


def _seconds(arrived_at: datetime, sent_at: datetime) -> float:
    return max(0.0, (arrived_at - sent_at).total_seconds())
