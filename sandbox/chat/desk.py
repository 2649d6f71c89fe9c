"""The web-chat contact centre's conversations: bot greeting, hand-off, agents, after hours.

One `ChatSession` per WebSocket. The desk decides from the profile what happens to a customer
message, schedules each answer as a task against absolute deadlines (so a slow send does not
push later answers back), and writes what really happened to the ground-truth log: the monitor's
web-chat measurements are checked against it.

Timing of a chat's first customer message in business hours, all measured from its receipt:
the bot's hand-off message at `bot.latency`, the agent joining `handoff_latency` later, and the
agent's answer a sampled queue latency after that. A later message is answered a fresh queue
latency after its receipt (or after the agent joined, if that is later).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sandbox.chat.profile import ChatSettings
from sandbox.clock import DeskClock, Period, iso_utc, real_now
from sandbox.ground_truth import EventName, GroundTruthLog
from sandbox.profile import Profile
from sandbox.routing import DeskStreams, route
from sandbox.scripted_agent import ScriptedAgents

Responder = Literal["bot", "agent", "system"]
Frame = dict[str, Any]

SYSTEM_AUTHOR = "Acme Support"
# The reference token cxprobe puts in every contact (Crockford base32, no I, L, O, U).
TOKEN = re.compile(r"\bCXP-[0-9A-HJKMNP-TV-Z]{10}\b")
_MAX_NAME = 200
# Every event carries these keys, null where they do not apply.
_EVENT_KEYS = (
    "session",
    "token",
    "responder",
    "queue",
    "intended_queue",
    "agent",
    "text",
    "message_id",
    "in_reply_to",
    "period",
)
_MAX_TEXT = 4000


class Outbox(Protocol):
    """Where a session's frames go: the WebSocket, or a list in unit tests."""

    async def send(self, frame: Frame) -> bool:
        """Write one frame; False if the connection is already gone."""
        ...


@dataclass
class ChatSwitches:
    """The site's run-time fault switches, shared by the pages, the desk and the control API."""

    outage: bool
    misroute_rate: float
    page_error: bool
    widget_missing: bool
    alert_on_load: bool


@dataclass(frozen=True)
class Visitor:
    name: str
    email: str
    topic: str  # as chosen in the pre-chat form; "" when none


@dataclass
class _Assignment:
    """The human side of a chat once the bot has handed it off."""

    queue: str
    intended: str
    agent: str  # first name, as shown in the widget
    joins_at: float  # event-loop time of the agent's join message
    greeted: bool = False  # whether an agent answer with the introduction is planned
    # Set once the join message has gone out (or been dropped): no agent types before joining.
    joined: asyncio.Event = field(default_factory=asyncio.Event)


def find_token(text: str) -> str | None:
    match = TOKEN.search(text)
    return match.group(0) if match else None


class ChatDesk:
    """Shared state of every chat: settings, switches, random streams, clock and ground truth."""

    def __init__(
        self,
        profile: Profile,
        settings: ChatSettings,
        switches: ChatSwitches,
        clock: DeskClock,
        log: GroundTruthLog,
    ) -> None:
        self.profile = profile
        self.settings = settings
        self.switches = switches
        self.clock = clock
        self.streams = DeskStreams(profile.seed, "chat")
        self.agents = ScriptedAgents({name: queue.asks for name, queue in settings.queues.items()})
        self._log = log
        self._sessions: dict[str, ChatSession] = {}

    def period_now(self) -> Period:
        return self.profile.business_hours.period_at(self.clock.now(), self.profile.zone)

    def session(self, outbox: Outbox) -> ChatSession:
        """A conversation for a newly opened socket; it starts with the client's start frame."""
        session = ChatSession(self, uuid.uuid4().hex[:12], outbox)
        self._sessions[session.id] = session
        return session

    def forget(self, session: ChatSession) -> None:
        self._sessions.pop(session.id, None)

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    @property
    def pending_replies(self) -> int:
        return sum(session.pending_replies for session in self._sessions.values())

    async def close_all(self, reason: str) -> None:
        for session in list(self._sessions.values()):
            await session.close(reason)

    def record(self, event: EventName, *, at: datetime | None = None, **fields: Any) -> None:
        self._log.record(event, at=at, **{**dict.fromkeys(_EVENT_KEYS), **fields})


class ChatSession:
    """One customer's chat over one WebSocket, from the start frame until either side ends it."""

    def __init__(self, desk: ChatDesk, session_id: str, outbox: Outbox) -> None:
        self.id = session_id
        self._desk = desk
        self._outbox = outbox
        self._visitor: Visitor | None = None
        self._token: str | None = None
        self._assignment: _Assignment | None = None
        self._sequence = 0
        self._typing = 0  # agent answers currently in their "is typing" phase
        self._outstanding = 0  # planned answers to customer messages not yet sent or dropped
        self._tasks: set[asyncio.Task[None]] = set()
        # Frames from reply tasks and the receive loop must not interleave mid-write, and each
        # message's timestamp must be taken when it is its turn to be written.
        self._write_lock = asyncio.Lock()
        self._closed = False

    @property
    def pending_replies(self) -> int:
        return self._outstanding

    # -- inbound -----------------------------------------------------------------------

    async def handle(self, raw: str) -> bool:
        """Act on one client frame; False once the customer has ended the chat."""
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            await self._error("frames are JSON objects with a 'type'")
            return True
        kind = frame.get("type")
        if kind == "start":
            await self._start(frame)
        elif kind == "message":
            await self._message(frame)
        elif kind == "end":
            await self.close("customer_ended")
            return False
        else:
            await self._error(f"unknown frame type {kind!r}; expected start, message or end")
        return True

    async def _start(self, frame: Frame) -> None:
        if self._visitor is not None:
            await self._error("the chat has already started")
            return
        name, email, topic = frame.get("name"), frame.get("email"), frame.get("topic", "")
        if not (isinstance(name, str) and name.strip() and len(name) <= _MAX_NAME):
            await self._error("start needs a non-empty 'name'")
            return
        if not (isinstance(email, str) and len(email) <= _MAX_NAME):
            await self._error("start needs an 'email'")
            return
        returning = frame.get("visitor_id")
        visitor = Visitor(name.strip(), email.strip(), topic if isinstance(topic, str) else "")
        self._visitor = visitor
        # A probe may carry its token in the pre-chat details as well as in its messages.
        self._token = find_token(f"{visitor.name} {visitor.email}")
        desk = self._desk
        period = desk.period_now()
        desk.record(
            "session_started",
            session=self.id,
            token=self._token,
            period=period,
            name=visitor.name,
            email=visitor.email,
            topic=visitor.topic,
            # The id the widget keeps in the browser (storage, cookie): the same one on two
            # sessions means the browser came back as the same visitor.
            visitor_id=returning if isinstance(returning, str) else None,
            desk_time=self._desk_time(),
            outage=desk.switches.outage,
        )
        # Greeted before `ready`, so the widget shows the greeting above any customer message.
        if not desk.switches.outage:
            greeting = desk.settings.bot.greeting.format(name=visitor.name)
            await self._deliver("bot", greeting, period=period)
        await self._write({"type": "ready", "session": self.id})

    async def _message(self, frame: Frame) -> None:
        visitor = self._visitor
        text, client_id = frame.get("text"), frame.get("client_id")
        if visitor is None:
            await self._error("send a start frame before messages")
            return
        if not (isinstance(text, str) and text.strip() and len(text) <= _MAX_TEXT):
            await self._error(f"a message needs a 'text' of 1 to {_MAX_TEXT} characters")
            return
        received_at = real_now()
        received_loop = asyncio.get_running_loop().time()
        desk = self._desk
        message_id = self._next_id()
        token = find_token(text)
        self._token = self._token or token
        period = desk.period_now()
        plan = self._plan(visitor, text, message_id, period, received_loop)
        self._outstanding += len(plan)
        desk.record(
            "received",
            at=received_at,
            session=self.id,
            token=token,
            text=text,
            message_id=message_id,
            client_id=client_id if isinstance(client_id, str) else None,
            period=period,
            desk_time=self._desk_time(),
            outage=desk.switches.outage,
            planned=plan,
        )
        await self._write({"type": "ack", "client_id": client_id, "id": message_id})

    # -- planning ----------------------------------------------------------------------

    def _plan(
        self, visitor: Visitor, text: str, message_id: str, period: Period, received: float
    ) -> list[Responder]:
        """Schedule the answers to one customer message; returns who will answer, in order."""
        desk = self._desk
        settings = desk.settings
        if desk.switches.outage:
            return []
        bot = settings.bot
        assignment = self._assignment
        if assignment is None and period == "after_hours":
            after_hours = bot.after_hours_text.format(name=visitor.name)
            deadline = received + bot.latency.sample(desk.streams.latency)
            self._spawn(self._bot_later(deadline, after_hours, message_id, period))
            return ["bot"]
        planned: list[Responder] = []
        if assignment is None:
            default = visitor.topic if visitor.topic in settings.queues else settings.default_queue
            chosen = route(
                text, settings.queues, default, desk.switches.misroute_rate, desk.streams.routing
            )
            queue = settings.queues[chosen.actual]
            agent = desk.streams.answers.choice(queue.agents).split()[0]
            bot_at = received + bot.latency.sample(desk.streams.latency)
            joins_at = bot_at + settings.handoff_latency.sample(desk.streams.latency)
            assignment = _Assignment(chosen.actual, chosen.intended, agent, joins_at)
            self._assignment = assignment
            intended_label = settings.queues[chosen.intended].label
            handoff = bot.handoff_text.format(name=visitor.name, team=intended_label)
            self._spawn(self._hand_off(bot_at, handoff, assignment, message_id, period))
            planned += ["bot", "system"]
        queue = settings.queues[assignment.queue]
        # A question of the queue's asks (sandbox/scripted_agent.py), or its usual answer.
        question = desk.agents.next_step(self.id, assignment.queue, text).question
        if assignment.greeted:
            answer = question or queue.followup_text
        else:
            assignment.greeted = True
            answer = f"Hi {visitor.name}, {assignment.agent} here from the {queue.label}. "
            answer += question or queue.text
        reply_at = max(received, assignment.joins_at) + queue.latency.sample(desk.streams.latency)
        typing_at = max(assignment.joins_at, reply_at - settings.typing_seconds)
        self._spawn(self._agent_later(typing_at, reply_at, answer, assignment, message_id, period))
        return [*planned, "agent"]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- outbound ----------------------------------------------------------------------

    async def _bot_later(
        self, deadline: float, text: str, in_reply_to: str, period: Period
    ) -> None:
        await _sleep_until(deadline)
        await self._deliver("bot", text, in_reply_to=in_reply_to, period=period)

    async def _hand_off(
        self,
        bot_at: float,
        text: str,
        assignment: _Assignment,
        in_reply_to: str,
        period: Period,
    ) -> None:
        desk = self._desk
        queue, intended = assignment.queue, assignment.intended
        await _sleep_until(bot_at)
        await self._deliver(
            "bot",
            text,
            in_reply_to=in_reply_to,
            period=period,
            queue=queue,
            intended_queue=intended,
        )
        await _sleep_until(assignment.joins_at)
        label = desk.settings.queues[queue].label
        joined = f"You are now chatting with {assignment.agent} from the {label}."
        try:
            message_id = await self._deliver(
                "system",
                joined,
                in_reply_to=in_reply_to,
                period=period,
                team_label=label,
                agent=assignment.agent,
                queue=queue,
                intended_queue=intended,
            )
        finally:
            assignment.joined.set()
        if message_id is not None:
            desk.record(
                "handoff",
                session=self.id,
                token=self._token,
                agent=assignment.agent,
                message_id=message_id,
                in_reply_to=in_reply_to,
                period=period,
                queue=queue,
                intended_queue=intended,
                misrouted=queue != intended,
            )

    async def _agent_later(
        self,
        typing_at: float,
        reply_at: float,
        text: str,
        assignment: _Assignment,
        in_reply_to: str,
        period: Period,
    ) -> None:
        await assignment.joined.wait()
        await _sleep_until(typing_at)
        typing = not self._desk.switches.outage
        if typing:
            self._typing += 1
            if self._typing == 1:
                await self._write({"type": "typing", "author": assignment.agent, "on": True})
        try:
            await _sleep_until(reply_at)
        finally:
            if typing:
                self._typing -= 1
        delivered = await self._deliver(
            "agent",
            text,
            in_reply_to=in_reply_to,
            period=period,
            agent=assignment.agent,
            queue=assignment.queue,
            intended_queue=assignment.intended,
        )
        # The widget drops the indicator when an agent message arrives: restore it for an
        # answer still being typed, and clear it if this answer was never sent.
        if self._typing > 0 or (typing and delivered is None):
            on = self._typing > 0
            await self._write({"type": "typing", "author": assignment.agent, "on": on})

    async def _deliver(
        self,
        responder: Responder,
        text: str,
        *,
        period: Period,
        in_reply_to: str | None = None,
        team_label: str | None = None,
        agent: str | None = None,
        queue: str | None = None,
        intended_queue: str | None = None,
    ) -> str | None:
        """Send one message and record it; its message id, or None if it was not sent."""
        desk = self._desk
        if in_reply_to is not None:  # an answer planned by _plan, not the greeting
            self._outstanding -= 1
        message_id = self._next_id()
        fields: dict[str, Any] = {
            "session": self.id,
            "token": self._token,
            "responder": responder,
            "queue": queue,
            "intended_queue": intended_queue,
            "agent": agent,
            "text": text,
            "message_id": message_id,
            "in_reply_to": in_reply_to,
            "period": period,
        }
        if desk.switches.outage:
            desk.record("reply_dropped", reason="outage", **fields)
            return None
        author = {"bot": desk.settings.bot.name, "agent": agent, "system": SYSTEM_AUTHOR}
        frame: Frame = {
            "type": "message",
            "id": message_id,
            "role": responder,
            "author": author[responder],
            "text": text,
        }
        if team_label is not None:
            frame["team_label"] = team_label
        async with self._write_lock:
            # The ground-truth send time: taken immediately before the frame is written.
            sent_at = real_now()
            frame["sent_at"] = iso_utc(sent_at)
            sent = await self._outbox.send(frame)
        if not sent:
            desk.record("reply_dropped", at=sent_at, reason="socket closed", **fields)
            return None
        desk.record("reply_sent", at=sent_at, **fields)
        return message_id

    async def _write(self, frame: Frame) -> bool:
        async with self._write_lock:
            return await self._outbox.send(frame)

    async def _error(self, text: str) -> None:
        await self._write({"type": "error", "text": text})

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self, reason: str) -> None:
        """Cancel every pending answer and record the end; the first reason given wins."""
        if self._closed:
            return
        self._closed = True
        self._desk.forget(self)
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        cancelled, self._outstanding = self._outstanding, 0
        if self._visitor is not None:
            self._desk.record(
                "session_ended",
                session=self.id,
                token=self._token,
                reason=reason,
                cancelled_replies=cancelled,
            )

    # -- helpers -----------------------------------------------------------------------

    def _next_id(self) -> str:
        self._sequence += 1
        return f"{self.id}-{self._sequence}"

    def _desk_time(self) -> str:
        return self._desk.clock.now().astimezone(self._desk.profile.zone).isoformat()


async def _sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))
