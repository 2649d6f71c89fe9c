"""The desk's record of what really happened, one JSON object per line.

The monitor's measurements are checked against this file, so every line is flushed as soon as
it is written, and waiters are woken by a push rather than by re-reading the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sandbox.clock import iso_utc, real_now

EventName = Literal[
    "received",
    "rejected",
    "deferred",
    "reply_sent",
    "reply_dropped",
    # Web chat (sandbox/chat/desk.py).
    "session_started",
    "handoff",
    "session_ended",
    # Twilio sandbox (sandbox/twilio/).
    "call_created",
    "ringing",
    "answered",
    "ivr_prompt",
    "closed_message",
    "digits_received",
    "probe_said",
    "gather_timeout",
    "partial_result",
    "queue_entered",
    "agent_answered",
    "redirected",
    "twiml_error",
    "webhook_error",
    "hangup",
    "completed",
    # Media Streams (sandbox/twilio/stream_line.py): what the stream really carried, in
    # seconds from its first media frame.
    "stream_started",
    "stream_segment",
    "stream_mark",
    "stream_stopped",
    "stream_error",
    # Messaging: the Twilio sandbox's Messages (sandbox/twilio/brand_lines.py) and the generic
    # messaging peer (sandbox/generic/peer.py); reply_sent and webhook_error too.
    "message_received",
    "message_failed",
]
Event = dict[str, Any]


class GroundTruthLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._events: list[Event] = []
        # Replaced on every append: waiters hold the current one and are woken when it is set.
        self._appended = asyncio.Event()
        # One file per desk run: a reused workdir must not mix in an earlier run's truth.
        self._file = path.open("w", encoding="utf-8")

    def append(self, event: Event) -> None:
        self._file.write(json.dumps(event, sort_keys=True) + "\n")
        self._file.flush()
        self._events.append(event)
        appended, self._appended = self._appended, asyncio.Event()
        appended.set()

    def record(self, event: EventName, *, at: datetime | None = None, **fields: Any) -> None:
        """Append {"event": event, "at": at (default now), **fields}.

        Once the log is closed the event is dropped: a task that ends after its peer stopped
        has nobody left to tell.
        """
        entry: Event = {"event": event, "at": iso_utc(at or real_now())}
        entry.update(fields)
        with contextlib.suppress(ValueError):  # writing to the closed file
            self.append(entry)

    def events(self) -> list[Event]:
        return list(self._events)

    async def wait_for(self, predicate: Callable[[Event], bool], count: int = 1) -> list[Event]:
        """Wait until `count` events satisfy predicate; bound it with asyncio.timeout."""
        while True:
            matching = [e for e in self._events if predicate(e)]
            if len(matching) >= count:
                return matching
            await self._appended.wait()

    def close(self) -> None:
        self._file.close()
