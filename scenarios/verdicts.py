"""Judging a run: who answered, which team, and whether the service level was met.

Pure functions and one small stateful :class:`Judge` per run; no I/O. The rules:

* **Responder**: the channel's own classification (e.g. RFC 3834 headers for email), unless a
  target's ``responders`` rule matches the reply, which then wins (first rule first).
* **Queue**: the first of the target's queues with a matcher that matches the reply. Routing is
  read from the first human reply that names a queue, else from any reply that does.
  ``correct`` when it equals the expected queue, ``wrong`` when it is another queue, ``unknown``
  when no reply names one or no queue is expected.
* **Outcome** in business hours: ``met`` when a human answered within ``human_response`` (or,
  with no human SLA, anyone within ``first_response``); after hours and on holidays: ``met``
  when a responder the scenario accepts (bot or auto-reply by default) answered within
  ``after_hours_response`` and, if the scenario has a ``closed_notice`` matcher, matched it.
  Otherwise ``breached``. Replies after the deadline are kept, flagged ``late``.
* **Answers**: the judge keeps the text of each on-time human reply and when the probe sent its
  follow-ups; :func:`scenarios.answers.assess_answers` judges them once the run is concluded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from probes.base import Reply, Responder
from scenarios.answers import MAX_RAW_CHARS, HumanAnswer
from scenarios.model import (
    Matcher,
    ObservedReply,
    Outcome,
    Period,
    RoutingResult,
    RunResult,
    Scenario,
    SloName,
)


class QueueRule(Protocol):
    """A target queue as the judge needs it: any matcher identifies the queue."""

    @property
    def match(self) -> Sequence[Matcher]: ...


class ResponderOverride(Protocol):
    @property
    def responder(self) -> Responder: ...

    @property
    def match(self) -> Matcher: ...


def _matches(matcher: Matcher, reply: Reply) -> bool:
    return matcher.matches(reply.sender, reply.subject, reply.text, dict(reply.headers))


def classify(reply: Reply, rules: Sequence[ResponderOverride]) -> Responder:
    for rule in rules:
        if _matches(rule.match, reply):
            return rule.responder
    return reply.responder


def queue_of(reply: Reply, queues: Mapping[str, QueueRule]) -> str | None:
    for queue_id, queue in queues.items():
        if any(_matches(matcher, reply) for matcher in queue.match):
            return queue_id
    return None


def routing_verdict(expected: str | None, routed: str | None) -> RoutingResult:
    if expected is None or routed is None:
        return RoutingResult.UNKNOWN
    return RoutingResult.CORRECT if routed == expected else RoutingResult.WRONG


@dataclass
class Judge:
    """Judges the replies of one run as they arrive."""

    scenario: Scenario
    queues: Mapping[str, QueueRule]
    responder_rules: Sequence[ResponderOverride]
    result: RunResult
    #: The text of each human reply (cut to what the answer evaluation reads), by reply id.
    _human_texts: dict[str, tuple[datetime, str]] = field(default_factory=dict, init=False)
    #: When the probe sent each follow-up.
    _follow_ups: list[datetime] = field(default_factory=list, init=False)

    def observe(self, reply: Reply) -> ObservedReply:
        """Classify ``reply``, add it to the result and update the figures."""
        result = self.result
        assert result.sent_at is not None, "replies are judged only after the contact was sent"
        seconds = max(0.0, (reply.arrived_at - result.sent_at).total_seconds())
        observed = ObservedReply(
            arrived_at=reply.arrived_at,
            observed_at=reply.observed_at,
            seconds=seconds,
            responder=classify(reply, self.responder_rules),
            sender=reply.sender,
            queue=queue_of(reply, self.queues),
            late=seconds > result.thresholds.deadline,
            external_id=reply.external_id or "",
        )
        observed = dataclasses.replace(observed, qualifies=self._qualifies(observed, reply))
        if observed.external_id:
            # A reply taken back from the store and now delivered again (a resumed run's
            # back-fill) is judged afresh, from its full text, and kept once.
            # It keeps when it was first seen: a conversation script orders replies by that.
            earlier = [r for r in result.replies if r.external_id == observed.external_id]
            if earlier:
                first_seen = min(observed.observed_at, *(r.observed_at for r in earlier))
                observed = dataclasses.replace(observed, observed_at=first_seen)
            result.replies = [r for r in result.replies if r.external_id != observed.external_id]
        result.replies.append(observed)
        result.replies.sort(key=lambda item: item.arrived_at)
        if observed.responder is Responder.HUMAN and not observed.late:
            key = observed.external_id or f"{reply.arrived_at.isoformat()}#{len(result.replies)}"
            self.remember_answer(key, reply.arrived_at, reply.text)
        self._refresh_figures()
        return observed

    def remember_answer(self, external_id: str, arrived_at: datetime, text: str) -> None:
        """Keep a human answer's text for the answer evaluation (a resumed run takes back the
        texts it stored; a reply delivered again replaces its own)."""
        self._human_texts[external_id] = (arrived_at, text[:MAX_RAW_CHARS])

    def followed_up(self, at: datetime) -> None:
        """The probe sent a follow-up at ``at``: answers after it do not resolve at first
        contact."""
        self._follow_ups.append(at)

    def answers(self) -> list[HumanAnswer]:
        """The human answers whose text was seen (in arrival order), for
        :func:`scenarios.answers.assess_answers`."""
        first_follow_up = min(self._follow_ups, default=None)
        return [
            HumanAnswer(
                arrived_at=arrived_at,
                text=text,
                after_follow_up=first_follow_up is not None and first_follow_up < arrived_at,
            )
            for arrived_at, text in sorted(self._human_texts.values(), key=lambda item: item[0])
        ]

    def restore(self, replies: Sequence[ObservedReply]) -> None:
        """Take back replies persisted before a restart.

        Whether one answers the run is known only when it was recorded with that verdict, or
        when the scenario asks nothing of the reply's text (no closed notice); otherwise it
        counts once the back-fill delivers it again and it is judged from its text.
        """
        for observed in replies:
            if observed.qualifies is None and (
                self.result.period.is_open or self.scenario.closed_notice is None
            ):
                observed = dataclasses.replace(observed, qualifies=self._qualifies(observed, None))
            self.result.replies.append(observed)
        self.result.replies.sort(key=lambda item: item.arrived_at)
        self._refresh_figures()

    @property
    def _qualifying(self) -> float | None:
        """Seconds to the first reply that answers the run as the scenario asks."""
        return min((r.seconds for r in self.result.replies if r.qualifies), default=None)

    @property
    def decided(self) -> bool:
        """True once waiting longer cannot change the outcome: a qualifying answer came."""
        return self._qualifying is not None

    def conclude(self) -> RunResult:
        """Set the outcome from what was observed (call at the deadline or once decided)."""
        result = self.result
        limit = self._limit()
        met = self._qualifying is not None and self._qualifying <= limit
        result.outcome = Outcome.MET if met else Outcome.BREACHED
        if not met:
            result.reason = self._breach_reason(limit)
        return result

    def _limit(self) -> float:
        thresholds = self.result.thresholds
        if self.result.period.is_open:
            limit = thresholds.human_response or thresholds.first_response
        else:
            limit = thresholds.after_hours_response
        return limit if limit is not None else thresholds.deadline

    def _qualifies(self, observed: ObservedReply, reply: Reply | None) -> bool:
        if self.result.period.is_open:
            if self.result.thresholds.human_response is None:
                return True
            return observed.responder is Responder.HUMAN
        if observed.responder not in self.scenario.after_hours_accepts:
            return False
        notice = self.scenario.closed_notice
        if notice is None:
            return True
        return reply is not None and _matches(notice, reply)

    def _refresh_figures(self) -> None:
        result = self.result
        replies = result.replies
        first = replies[0] if replies else None
        result.first_response_seconds = first.seconds if first else None
        result.first_response_responder = first.responder if first else None
        humans = [reply for reply in replies if reply.responder is Responder.HUMAN]
        result.first_human_seconds = humans[0].seconds if humans else None
        named = [reply.queue for reply in humans if reply.queue] or [
            reply.queue for reply in replies if reply.queue
        ]
        result.routed_queue = named[0] if named else None
        result.routing = routing_verdict(result.expected_queue, result.routed_queue)

    def _breach_reason(self, limit: float) -> str:
        wanted = (
            "a human answer"
            if self.result.period.is_open and self.result.thresholds.human_response is not None
            else "an answer"
            if self.result.period.is_open
            else "an after-hours answer (" + ", ".join(self.scenario.after_hours_accepts) + ")"
        )
        if self._qualifying is None:
            return f"no {wanted.removeprefix('a ').removeprefix('an ')} within {limit:g}s"
        return f"{wanted} came after {self._qualifying:.1f}s, limit {limit:g}s"


def slo_events(result: RunResult) -> list[tuple[str, bool]]:
    """The SLO events one finished run contributes: ``(slo, good)`` pairs.

    A run the probe could not perform (``error``/``interrupted``) says nothing about the
    service, so it burns no budget; a refused contact (``failed``) is the service's fault. A
    skipped slot sent nothing, and a run inside a declared maintenance window is excluded.
    """
    if result.outcome in (Outcome.ERROR, Outcome.INTERRUPTED, Outcome.SKIPPED, None):
        return []
    if result.slo_excluded is not None:
        return []
    thresholds = result.thresholds

    def good(seconds: float | None, limit: float) -> bool:
        return result.outcome is not Outcome.FAILED and seconds is not None and seconds <= limit

    events: list[tuple[str, bool]] = []
    if result.period is Period.BUSINESS:
        if thresholds.first_response is not None:
            events.append(
                (
                    SloName.FIRST_RESPONSE,
                    good(result.first_response_seconds, thresholds.first_response),
                )
            )
        if thresholds.human_response is not None:
            events.append(
                (
                    SloName.HUMAN_RESPONSE,
                    good(result.first_human_seconds, thresholds.human_response),
                )
            )
    elif thresholds.after_hours_response is not None:
        events.append((SloName.AFTER_HOURS_RESPONSE, result.outcome is Outcome.MET))
    return events
