"""What a messaging line's team does with a customer message: the bot's answer, then an agent's.

Shared by the Twilio lines (SMS, WhatsApp) and the generic messaging peer, so both answer the
same way for the same profile. Every latency is measured from the moment the line received the
message, and the replies are independent: the bot at `bot.latency`, the routed queue's agent at
a sampled queue latency (either may come first). After hours only the bot answers, with its
after-hours text; an outage answers nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sandbox.clock import Period
from sandbox.messaging_profile import ReplyTeam
from sandbox.routing import DeskStreams, route
from sandbox.scripted_agent import ScriptedAgents

Responder = Literal["bot", "agent"]

# The reference token cxprobe puts in every contact (Crockford base32, no I, L, O, U).
TOKEN = re.compile(r"\bCXP-[0-9A-HJKMNP-TV-Z]{10}\b")


def find_token(*texts: str | None) -> str | None:
    """The first token in texts, searched in order."""
    for text in texts:
        found = TOKEN.search(text or "")
        if found is not None:
            return found.group(0)
    return None


@dataclass(frozen=True)
class PlannedReply:
    responder: Responder
    delay: float  # seconds after the message was received
    body: str
    queue: str | None = None
    intended_queue: str | None = None
    agent: str | None = None
    #: The answer's kind and the rubric parts it was composed with (sandbox/answers.py);
    #: None when the team has no scripted answers.
    answer: str | None = None
    rubric: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Plan:
    period: Period
    queue: str  # who would answer in business hours (routing happens even when nobody does)
    intended_queue: str
    replies: tuple[PlannedReply, ...]


class ReplyPlanner:
    def __init__(self, team: ReplyTeam, streams: DeskStreams) -> None:
        self._team = team
        self._streams = streams
        self._agents = ScriptedAgents({name: queue.asks for name, queue in team.queues.items()})

    def plan(
        self,
        text: str,
        period: Period,
        *,
        token: str | None,
        silent: bool = False,
        bot: bool = True,
        agents: bool = True,
    ) -> Plan:
        """The replies to text; silent (an outage) plans none, bot/agents are the line's switches.

        Every draw from the random streams is made whatever the outcome, so one message's
        switches do not change the routes, latencies and agents of the messages after it.
        """
        team = self._team
        chosen = route(
            text, team.queues, team.default_queue, team.misroute_rate, self._streams.routing
        )
        agent_answers = not silent and agents and period == "business"
        # A pair's conversation (its token) stays with the queue whose agent asked a question.
        step = self._agents.next_step(token if agent_answers else None, chosen.actual, text)
        queue = team.queues[step.queue]
        agent = self._streams.answers.choice(queue.agents)
        bot_delay = team.bot.latency.sample(self._streams.latency)
        agent_delay = queue.latency.sample(self._streams.latency)
        ref = token or ""
        replies: list[PlannedReply] = []
        if silent or not team.bot.enabled:
            pass
        elif period == "after_hours":
            if bot and team.bot.after_hours:
                replies.append(
                    PlannedReply("bot", bot_delay, team.bot.after_hours_text.format(ref=ref))
                )
        elif bot:
            replies.append(PlannedReply("bot", bot_delay, team.bot.text.format(ref=ref)))
        if agent_answers:
            names = {"agent": agent, "label": queue.label, "ref": ref}
            said = step.question or queue.text.format(**names)
            answer, rubric = None, None
            if team.answers is not None:
                if step.question is None:
                    answer, said = team.answers.pick(self._streams.answers)
                composed = team.answers.compose(self._streams.answers, said)
                if composed is not None:
                    said, rubric = composed.text, composed.parts
            body = f"{said}\n{queue.signature.format(**names)}"
            replies.append(
                PlannedReply(
                    "agent",
                    agent_delay,
                    body,
                    step.queue,
                    chosen.intended,
                    agent,
                    answer,
                    rubric,
                )
            )
        return Plan(period, chosen.actual, chosen.intended, tuple(replies))
