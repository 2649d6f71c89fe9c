"""Routing replies on messaging channels, where a reply says only who sent it.

An SMS or a social-network message carries no thread header: a reply is known by its pair
(the probe's own id, the brand's id) and, sometimes, the reference token quoted back. So each
pair has at most one open conversation at a time (a probe with several numbers runs several
at once), and the token of the pair's latest run is kept in the channel state, so a reply
that comes after its run was judged, even after a restart, still finds its run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from probes.base import TOKEN_PATTERN, ChannelState, ProbeError, Reply, UnmatchedSink

Pair = tuple[str, str]  # (the probe's id, the brand's id)


class InboxConversation:
    """Replies queued for one conversation, deduplicated by their external id."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._queue: asyncio.Queue[Reply | ProbeError] = asyncio.Queue()
        self._seen: set[str] = set()
        self.received: list[Reply] = []

    def deliver(self, reply: Reply) -> bool:
        """Queue ``reply`` unless it was delivered before (webhook and poll may both see it)."""
        if reply.external_id in self._seen:
            return False
        self._seen.add(reply.external_id)
        self.received.append(reply)
        self._queue.put_nowait(reply)
        return True

    def fail(self, error: ProbeError) -> None:
        self._queue.put_nowait(error)

    async def replies(self) -> AsyncIterator[Reply]:
        while True:
            item = await self._queue.get()
            if isinstance(item, ProbeError):
                self._queue.put_nowait(item)  # a later iteration raises it too
                raise item
            yield item


class PairedInbox:
    """Open conversations by pair; replies to none go to the runner with their run's token."""

    def __init__(
        self, state: ChannelState, on_unmatched: UnmatchedSink, logger: logging.Logger
    ) -> None:
        self._state = state
        self._unmatched = on_unmatched
        self._log = logger
        self._open: dict[Pair, InboxConversation] = {}

    def claim(self, probe_ids: Sequence[str], brand: str, conversation: InboxConversation) -> str:
        """The first of ``probe_ids`` with no open conversation with ``brand``, now taken."""
        for probe in probe_ids:
            if (probe, brand) not in self._open:
                self._open[(probe, brand)] = conversation
                return probe
        raise LookupError(brand)

    def attach(self, pair: Pair, conversation: InboxConversation) -> None:
        """Re-attach a resumed conversation to the pair it was using."""
        self._open[pair] = conversation

    def release(self, pair: Pair, conversation: InboxConversation) -> None:
        if self._open.get(pair) is conversation:
            del self._open[pair]

    def open_pairs(self) -> list[tuple[Pair, InboxConversation]]:
        return list(self._open.items())

    async def remember(self, pair: Pair, token: str, sent_at: datetime) -> None:
        await self._state.save(_key(pair), {"token": token, "sent_at": sent_at.isoformat()})

    async def last_inbound(self, pair: Pair) -> datetime | None:
        stored = await self._state.load(_key(pair) + ":inbound")
        value = stored.get("at") if stored else None
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    async def route(self, pair: Pair, reply: Reply) -> None:
        """Hand ``reply`` (from the brand, to the probe) to its conversation, or to the runner."""
        await self._state.save(_key(pair) + ":inbound", {"at": reply.arrived_at.isoformat()})
        conversation = self._open.get(pair)
        if conversation is not None:
            conversation.deliver(reply)
            return
        keys = set(reply.thread_keys) | set(TOKEN_PATTERN.findall(reply.text))
        stored = await self._state.load(_key(pair))
        if stored and isinstance(stored.get("token"), str):
            keys.add(stored["token"])
        await self._unmatched(dataclasses.replace(reply, thread_keys=frozenset(keys)))

    def __len__(self) -> int:
        return len(self._open)


def _key(pair: Pair) -> str:
    return f"pair:{pair[0]}:{pair[1]}"
