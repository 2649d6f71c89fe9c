"""The channel-agnostic scenario engine: send the opening contact, judge replies until the
outcome is decided or the deadline passes.

The engine knows nothing of email or chat: it drives a :class:`probes.base.Conversation` and
hands every fact to :class:`RunHooks` (the runner persists them) as soon as it is known, so a
crash at any point loses nothing that was observed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from probes.base import Contact, Conversation, Reply, Sent
from probes.errors import ProbeTimeout
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


def build_contact(
    scenario: Scenario,
    *,
    token: str,
    customer_name: str,
    target_name: str,
    disclosure: str | None,
) -> Contact:
    """The opening contact with its placeholders filled in and the token carried in the text."""
    values = {"token": token, "customer_name": customer_name, "target": target_name}
    text = scenario.render(scenario.opening, **values).rstrip()
    if disclosure:
        text += "\n\n--\n" + disclosure.replace("{token}", token)
    if token not in text:
        text += f"\n\nRef: {token}"
    return Contact(
        token=token,
        subject=scenario.render(scenario.subject, **values),
        text=text + "\n",
        sender_name=customer_name,
    )


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
) -> None:
    """Judge replies until the outcome is decided or the run's deadline passes.

    ``settle`` is the least time to listen even when the deadline has passed: a resumed
    conversation delivers the replies it back-filled within it.
    """
    deadline = judge.result.deadline_at
    assert deadline is not None, "listen() needs a sent contact"
    remaining = max((deadline - clock()).total_seconds(), settle)
    if judge.decided:
        return
    try:
        async with asyncio.timeout(remaining):
            async for reply in conversation.replies():
                observed = judge.observe(reply)
                await hooks.reply(judge.result, reply, observed)
                if judge.decided:
                    return
    except TimeoutError:
        return
