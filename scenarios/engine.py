"""The channel-agnostic scenario engine: send the opening contact, judge replies until the
outcome is decided or the deadline passes.

The engine knows nothing of email or chat: it drives a :class:`probes.base.Conversation` and
hands every fact to :class:`RunHooks` (the runner persists them) as soon as it is known, so a
crash at any point loses nothing that was observed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from probes.base import Contact, Conversation, Reply, Sent
from probes.errors import ProbeError, ProbeTimeout
from scenarios.conversation import ConversationScript, TurnHooks, in_thread
from scenarios.model import ObservedReply, RunResult, Scenario
from scenarios.verdicts import Judge

Clock = Callable[[], datetime]

#: After a restart past the deadline, how long to let a resumed conversation deliver the
#: replies it back-filled before the run is judged.
RESUME_SETTLE_SECONDS = 2.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class RunHooks(Protocol):
    """Where the engine reports facts the moment they are known."""

    async def sent(self, result: RunResult, sent: Sent) -> None: ...

    async def reply(self, result: RunResult, reply: Reply, observed: ObservedReply) -> None: ...

    async def may_send(self, result: RunResult) -> None:
        """Raise if this process may no longer send in the run's conversation."""

    async def followed_up(self, result: RunResult, sent: Sent) -> None: ...

    async def follow_up_failed(self, result: RunResult, error: ProbeError) -> None: ...


def build_contact(
    scenario: Scenario,
    *,
    token: str,
    customer_name: str,
    target_name: str,
    disclosure: str | None,
    expected_queue: str | None = None,
) -> Contact:
    """The opening contact with its placeholders filled in and the token carried in the text."""
    values = {"token": token, "customer_name": customer_name, "target": target_name}
    text = scenario.render(scenario.opening, **values).rstrip()
    disclosure_line = disclosure.replace("{token}", token) if disclosure else ""
    if disclosure_line:
        text += "\n\n--\n" + disclosure_line
    if token not in text:
        text += f"\n\nRef: {token}"
    return Contact(
        token=token,
        subject=scenario.render(scenario.subject, **values),
        text=text + "\n",
        sender_name=customer_name,
        expected_queue=expected_queue,
        disclosed=bool(disclosure_line),
        disclosure=disclosure_line,
    )


def build_follow_ups(
    scenario: Scenario,
    opening: Contact,
    *,
    customer_name: str,
    target_name: str,
) -> list[tuple[float, Contact]]:
    """The scenario's follow-ups as ``(seconds after the opening, contact)``, in time order."""
    values = {"token": opening.token, "customer_name": customer_name, "target": target_name}
    return [
        (follow_up.after, in_thread(opening, scenario.render(follow_up.text, **values)))
        for follow_up in sorted(scenario.follow_ups, key=lambda item: item.after)
    ]


def build_script(
    scenario: Scenario,
    opening: Contact,
    hooks: TurnHooks,
    *,
    customer_name: str,
    target_name: str,
) -> ConversationScript | None:
    """The run's conversation script, when its scenario has turns or a fallback."""
    if not scenario.scripted:
        return None
    values = {"token": opening.token, "customer_name": customer_name, "target": target_name}
    return ConversationScript(scenario, opening, hooks, values)


async def send_contact(
    conversation: Conversation,
    contact: Contact,
    judge: Judge,
    hooks: RunHooks,
    *,
    send_timeout: float,
    shutdown_grace: float = 0.0,
) -> Sent:
    """Send ``contact`` and record that it was sent, as one unit.

    Cancelled meanwhile (a shutdown), the send and its record are given ``shutdown_grace``
    seconds to complete, so a contact that reached the target is not later taken for one that
    never left.
    """
    unit = asyncio.ensure_future(
        _send_and_record(conversation, contact, judge, hooks, send_timeout)
    )
    try:
        return await asyncio.shield(unit)
    except asyncio.CancelledError:
        if not unit.done():
            await asyncio.wait({unit}, timeout=shutdown_grace)
            unit.cancel()
        raise


async def _send_and_record(
    conversation: Conversation,
    contact: Contact,
    judge: Judge,
    hooks: RunHooks,
    send_timeout: float,
) -> Sent:
    try:
        async with asyncio.timeout(send_timeout):
            sent = await conversation.send(contact)
    except TimeoutError:
        raise ProbeTimeout(
            f"the channel did not accept the contact within {send_timeout:g}s"
        ) from None
    judge.result.sent_at = sent.at
    await hooks.sent(judge.result, sent)
    return sent


async def listen(
    conversation: Conversation,
    judge: Judge,
    hooks: RunHooks,
    *,
    clock: Clock = utc_now,
    settle: float = 0.0,
    follow_ups: Sequence[tuple[float, Contact]] = (),
    script: ConversationScript | None = None,
) -> None:
    """Judge replies until the outcome is decided or the run's deadline passes.

    With a conversation ``script``, a reply it answers is answered in the conversation at
    once, and the run is decided only once the script has finished too (see
    :mod:`scenarios.conversation`).

    ``settle`` is the least time to listen even when the deadline has passed: a resumed
    conversation delivers the replies it back-filled within it. ``follow_ups`` (seconds after
    the contact was sent, message) are sent when due while the run is undecided; a follow-up
    that cannot be sent is logged and skipped, as the opening contact's figures still stand.
    """
    result = judge.result
    assert result.sent_at is not None and result.deadline_at is not None, "sent first"
    listen_until = max(result.deadline_at, clock() + timedelta(seconds=settle))
    due_times = [(result.sent_at + timedelta(seconds=s), contact) for s, contact in follow_ups]
    pending = [(due, contact) for due, contact in due_times if due < result.deadline_at]
    if script is not None and not result.turns:
        script.opened(result)
    replies = conversation.replies()
    while not judge.decided or (script is not None and not script.finished):
        now = clock()
        if judge.decided:
            pending = []  # chasers wait for a qualifying answer only, not for the script
        if pending and pending[0][0] <= now:
            _, contact = pending.pop(0)
            await _follow_up(conversation, contact, judge, hooks)
            continue
        until = min(listen_until, pending[0][0]) if pending else listen_until
        wait = (until - now).total_seconds()
        if wait <= 0:
            return
        try:
            async with asyncio.timeout(wait):
                reply = await anext(replies)
        except TimeoutError:
            replies = conversation.replies()  # the interrupted iteration has ended
            continue
        except StopAsyncIteration:
            return  # the conversation ended (a call hung up): nothing more can arrive
        # Outside the timeout: a reply being recorded is never cut off by the deadline.
        observed = judge.observe(reply)
        await hooks.reply(result, reply, observed)
        if script is not None:
            planned = script.respond(result, reply, observed)
            if planned is not None:
                await script.say(result, planned, conversation.follow_up)


async def _follow_up(
    conversation: Conversation, contact: Contact, judge: Judge, hooks: RunHooks
) -> None:
    await hooks.may_send(judge.result)
    try:
        sent = await conversation.follow_up(contact)
    except ProbeError as exc:
        await hooks.follow_up_failed(judge.result, exc)
        return
    judge.followed_up(sent.at)
    await hooks.followed_up(judge.result, sent)
