"""Routing replies on messaging channels, where a reply says only who sent it.

An SMS or a social-network message carries no thread header: a reply is known by its pair
(the probe's own id, the brand's id) and, sometimes, the reference token quoted back. So each
pair has at most one open conversation at a time (a probe with several numbers runs several
at once), and the token of the pair's latest run is kept in the channel state, so a reply
that comes after its run was judged, even after a restart, still finds its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta

from probes.base import TOKEN_PATTERN, ChannelState, ProbeError, Reply, Responder, UnmatchedSink

Pair = tuple[str, str]  # (the probe's id, the brand's id)
#: The evidence kind of a conversation's message records (kept when it closes).
MESSAGE_RECORDS = "message-records"


def classify_auto(reply: Reply, patterns: Sequence[re.Pattern[str]]) -> Reply:
    """``reply`` as ``auto`` when its text matches an automatic-reply pattern, else ``human``."""
    auto = any(pattern.search(reply.text) for pattern in patterns)
    return dataclasses.replace(reply, responder=Responder.AUTO if auto else Responder.HUMAN)


def timing_record(reply: Reply) -> dict[str, str]:
    """How a reply was timed and classified, for a conversation's message records."""
    return {
        "arrived_at": reply.arrived_at.isoformat(),
        "observed_at": reply.observed_at.isoformat(),
        "timing_method": reply.timing_method,
        "responder": str(reply.responder),
    }


class InboxConversation:
    """Replies queued for one conversation, deduplicated by their external id.

    A reply is taken only once the contact was sent and only if it came after it: on a reused
    pair, anything earlier belongs to the previous run.
    """

    #: How far before ``sent_at`` a reply's timestamp may be and still be this conversation's
    #: (timestamps from another clock, e.g. a platform's).
    clock_tolerance = timedelta(0)

    def __init__(self, token: str) -> None:
        self.token = token
        self.sent_at: datetime | None = None
        self._queue: asyncio.Queue[Reply | ProbeError] = asyncio.Queue()
        self._seen: set[str] = set()
        self._consumed: set[str] = set()
        self.received: list[Reply] = []

    def accepts(self, reply: Reply) -> bool:
        """Whether ``reply`` belongs to this conversation rather than to an earlier run."""
        if self.sent_at is None or reply.arrived_at < self.sent_at - self.clock_tolerance:
            return False
        quoted = set(TOKEN_PATTERN.findall(reply.text))
        return not quoted or self.token in quoted

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
            self._consumed.add(item.external_id)
            yield item

    def unconsumed(self) -> list[Reply]:
        """Replies delivered but never taken (the run was judged before reaching them: two
        replies in one poll, say). They belong to the run all the same."""
        return [reply for reply in self.received if reply.external_id not in self._consumed]


#: Classifies a reply no open conversation takes (a late one), as its conversation would have.
Classifier = Callable[[Reply], Reply]


class PairedInbox:
    """Open conversations by pair; replies to none go to the runner with their run's token.

    ``namespace`` keeps the durable keys of several platforms on one channel apart.
    """

    #: How often a waiting run looks again for a pair another monitor may have released.
    REMOTE_LOOK_SECONDS = 2.0

    def __init__(
        self,
        state: ChannelState,
        on_unmatched: UnmatchedSink,
        logger: logging.Logger,
        *,
        namespace: str = "",
        classify: Classifier = lambda reply: reply,
    ) -> None:
        self._state = state
        self._unmatched = on_unmatched
        self._log = logger
        self._namespace = namespace
        self._classify = classify
        self._open: dict[Pair, InboxConversation] = {}
        self._released: dict[Pair, float] = {}
        # By brand: set (and dropped) when one of the brand's pairs is released.
        self._freed: dict[str, asyncio.Event] = {}
        self._waiting = 0

    async def claim(
        self,
        probe_ids: Sequence[str],
        brand: str,
        conversation: InboxConversation,
        *,
        wait: float,
    ) -> str:
        """The least recently used of ``probe_ids`` with no open conversation with ``brand``,
        now taken: a late reply to the previous run is then least likely to meet a new one.

        A pair is held in the channel state too, so that every monitor sharing it (a pair of
        monitors on one store) keeps to one conversation per pair: a pair another monitor's
        run holds is not free here either. When no pair is free, wait up to ``wait`` seconds
        for one to be released (a run still listening, or a catch-up at start whose next
        slot came while it ran) rather than fail: the run's timings start at its send, so
        waiting costs it nothing but lateness. :class:`LookupError` when none was in time."""
        deadline = time.monotonic() + wait
        waited = False
        while True:
            if (probe := await self._take_free(probe_ids, brand, conversation)) is not None:
                return probe
            left = deadline - time.monotonic()
            if left <= 0:
                raise LookupError(brand)
            if not waited:
                waited = True
                self._log.info(
                    "waiting for a probe id to end its conversation with the brand",
                    extra={"brand": brand, "for_at_most": round(left, 1)},
                )
            self._waiting += 1
            try:
                # Released here: at once. Released by another monitor: seen at the next look.
                freed = self._freed.setdefault(brand, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, self.REMOTE_LOOK_SECONDS)):
                        await freed.wait()
            finally:
                self._waiting -= 1

    async def _take_free(
        self, probe_ids: Sequence[str], brand: str, conversation: InboxConversation
    ) -> str | None:
        """Take the least recently used pair with ``brand`` that is free here and in the
        channel state; None when there is none."""
        free = [probe for probe in probe_ids if (probe, brand) not in self._open]
        free.sort(key=lambda p: (self._released.get((p, brand), 0.0), probe_ids.index(p)))
        for probe in free:
            pair = (probe, brand)
            if pair in self._open:
                continue  # taken here while this claim asked the state about another
            self._open[pair] = conversation  # reserved while the state is asked
            try:
                holder = await self._state.hold(self._key(pair), conversation.token)
            except BaseException:
                self._give_back(pair, conversation)
                raise
            if holder is None:
                return probe
            self._give_back(pair, conversation)
            self._log.info(
                "pair held in the store by another open run",
                extra={"pair": ":".join(pair), "holder_token": holder},
            )
        return None

    def _give_back(self, pair: Pair, conversation: InboxConversation) -> None:
        """Free a pair held here by ``conversation``, and wake the runs waiting for it."""
        if self._open.get(pair) is conversation:
            del self._open[pair]
            freed = self._freed.pop(pair[1], None)
            if freed is not None:
                freed.set()  # every waiter looks again; the first to run takes the pair

    @property
    def waiting(self) -> int:
        """Runs waiting for a pair to be released."""
        return self._waiting

    async def attach(self, pair: Pair, conversation: InboxConversation) -> None:
        """Re-attach a resumed conversation to the pair it was using, here and in the channel
        state (whichever monitor drives the run now; a shutdown released the pair, so it is
        taken again). :class:`LookupError` when another run has opened the pair meanwhile."""
        holder = self._open.get(pair)
        if holder is not None and holder is not conversation:
            raise LookupError(pair)
        self._open[pair] = conversation
        try:
            held_by = await self._state.hold(self._key(pair), conversation.token)
        except BaseException:
            self._give_back(pair, conversation)
            raise
        if held_by is not None:
            self._give_back(pair, conversation)
            raise LookupError(pair)

    async def release(self, pair: Pair, conversation: InboxConversation) -> None:
        """Free ``conversation``'s pair, here and in the channel state. A hold the state could
        not release goes stale once the run is closed, and is taken over then."""
        if self._open.get(pair) is not conversation:
            return
        self._released[pair] = time.monotonic()
        try:
            await self._state.release(self._key(pair), conversation.token)
        except Exception as exc:
            self._log.warning(
                "could not release the pair in the store; it is free once the run is closed",
                extra={"pair": ":".join(pair), "error": str(exc)},
            )
        finally:
            self._give_back(pair, conversation)

    def open_pairs(self) -> list[tuple[Pair, InboxConversation]]:
        return list(self._open.items())

    async def remember(self, pair: Pair, token: str) -> None:
        """The pair's latest run, for replies that come after it was judged. Saved before the
        send: a send that fails half-way must not leave the previous run's token in place."""
        await self._state.save(self._key(pair), {"token": token})

    async def last_inbound(self, pair: Pair) -> datetime | None:
        stored = await self._state.load(self._key(pair) + ":inbound")
        value = stored.get("at") if stored else None
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    async def route(self, pair: Pair, reply: Reply) -> None:
        """Hand ``reply`` (from the brand, to the probe) to its conversation, or to the runner."""
        conversation = self._open.get(pair)
        if conversation is not None and conversation.accepts(reply):
            conversation.deliver(reply)
        else:
            await self.hand_on(pair, reply)
        try:  # best effort, after delivery: a store hiccup must not lose the reply
            await self._state.save(
                self._key(pair) + ":inbound", {"at": reply.arrived_at.isoformat()}
            )
        except Exception as exc:
            self._log.warning("could not note the brand's last message", extra={"error": str(exc)})

    async def hand_on(self, pair: Pair, reply: Reply, token: str | None = None) -> None:
        """To the runner: for the run of ``token`` when the caller knows it, else the run the
        reply quotes, else the pair's latest run."""
        keys = {token} if token else set(TOKEN_PATTERN.findall(reply.text))
        if not keys:
            stored = await self._state.load(self._key(pair))
            if stored and isinstance(stored.get("token"), str):
                keys.add(stored["token"])
        classified = self._classify(reply)
        await self._unmatched(dataclasses.replace(classified, thread_keys=frozenset(keys)))

    def __len__(self) -> int:
        return len(self._open)

    def _key(self, pair: Pair) -> str:
        prefix = f"{self._namespace}:" if self._namespace else ""
        return f"pair:{prefix}{pair[0]}:{pair[1]}"
