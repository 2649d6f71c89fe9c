"""One IMAP watcher per probe mailbox: routes every received message to the open conversation
it answers, never a connection per contact.

The watcher logs in, SELECTs the folder, remembers UIDVALIDITY and the highest UID seen, then
waits for new mail with IDLE (re-issued every ``idle_renew`` seconds) when the server offers it
and ``idle`` is set, else polls every ``poll_interval`` seconds. New messages are fetched with
``UID FETCH <uids> (UID RFC822.SIZE)``, then in batches of at most :data:`FETCH_CHUNK_BYTES`,
``UID FETCH <uids> (UID INTERNALDATE BODY.PEEK[]<0.n>)`` (PEEK: the probe never marks mail
read), a message longer than the chunk continuing ``BODY.PEEK[]<offset.n>`` a chunk per command,
so the IMAP client never buffers more than a chunk of a large reply. Each message goes into its
own spool file (:mod:`probes.spool`: hashed as it is written, fsynced) before it counts as
received; its first ``max_message_bytes`` are parsed once from the file (in a worker thread,
time-bounded), and it is routed by ``In-Reply-To``/``References`` (any id) or else by the
reference tokens in subject and body, with the file as its evidence (the raw bytes are never
held in memory). Messages no registration claims go to the ``on_unmatched`` sink. Every
consumer a message is handed to holds its spool file until it has stored (or dropped) it; the
file is removed after the last. Files a stopped process left in the spool (listed before this
process spools anything) are handed on again like new mail, once the runs resumed at start
listen (``ready``).

Gaps are closed, never skipped:

* on reconnect with the same UIDVALIDITY, everything above the last UID seen is fetched;
* when UIDVALIDITY changed, every message ``SINCE`` the oldest registration's day is searched and
  handed to the registrations it matches (strangers are dropped: they may have been seen);
* on the first connection, and whenever a conversation is resumed, a targeted ``UID SEARCH``
  (``HEADER In-Reply-To``/``HEADER References``/``TEXT <token>``) finds replies that arrived
  while nobody listened. Such searches are queued and run by interrupting IDLE.

Duplicates are left to the registrations (they deduplicate by Message-ID), so overlapping
back-fills are harmless. Any error — a refused login, a lost connection, a server bug — is
logged (never with the password) and followed by a reconnect with exponential back-off and
jitter capped at ``reconnect_max_backoff``; the watcher task itself never dies of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aioimaplib

from probes.base import ChannelState, Evidence, MemoryChannelState, Reply
from probes.email.parse import (
    IMAP_MONTHS,
    ParsedMail,
    cut_on_line,
    parse_internaldate,
    parse_mail,
    to_reply,
)
from probes.email.settings import ImapSettings, tls_context
from probes.errors import describe_error
from probes.spool import Spool, SpooledFile, SpoolWriter

#: UIDs fetched per command: bounds memory when a back-fill finds many messages.
FETCH_BATCH = 100
#: Bytes of message bodies fetched per command: what the IMAP client buffers at once.
FETCH_CHUNK_BYTES = 1024 * 1024
#: Registrations combined into one targeted search (each adds three criteria).
SEARCH_BATCH = 25
#: First reconnect delay; doubles per failed attempt up to ``reconnect_max_backoff``.
BACKOFF_START_SECONDS = 0.5
#: How often a cancellation is repeated until the cancelled task ends.
CANCEL_RETRY_SECONDS = 0.5
#: How long a polite LOGOUT may take when the watcher stops.
LOGOUT_SECONDS = 2.0
_UID = re.compile(rb"\bUID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_T = TypeVar("_T")


class ImapError(Exception):
    """The IMAP server refused a command; the watcher logs it and reconnects."""


@dataclass(frozen=True)
class FetchedMail:
    """A message as the watcher fetched it: parsed (``mail.raw`` is empty), its bytes in
    ``spooled``, which whoever the message is handed to holds until it is stored."""

    mail: ParsedMail
    uid: int
    uidvalidity: int
    mailbox: str
    internaldate: datetime | None
    observed_at: datetime  # UTC, right after the FETCH response with its first bytes
    spooled: SpooledFile

    @property
    def external_id(self) -> str:
        """The reply's Message-ID, or a stable IMAP identity when it has none."""
        return self.mail.message_id or f"imap:{self.mailbox}:{self.uidvalidity}:{self.uid}"

    def reply(self, sent_at: datetime | None) -> Reply:
        return to_reply(
            self.mail,
            external_id=self.external_id,
            internaldate=self.internaldate,
            observed_at=self.observed_at,
            sent_at=sent_at,
            evidence=Evidence("email", "message/rfc822", file=self.spooled),
        )


@dataclass(eq=False)
class Registration:
    """A conversation listening on a watcher: its thread keys and where its mail goes."""

    keys: frozenset[str]  # its Message-ID (``<...>``) and token
    #: Takes the message (True: it holds its spool file from now on) or declines it.
    deliver: Callable[[FetchedMail], bool]
    since: datetime  # when the contact was (or is about to be) sent; bounds back-fills
    active: bool = True
    #: Set once mail already in the folder has been searched for this registration.
    searched: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class WatcherStats:
    """The watcher's health, for /healthz and metrics."""

    mailbox: str
    connected: bool
    registered: int
    last_uid: int
    uidvalidity: int | None
    idle: bool  # True while the session uses IDLE (False: polling)


UnmatchedMail = Callable[[Reply], Awaitable[None]]


@dataclass(eq=False)
class MailboxWatcher:
    """Watches one mailbox folder; start with :meth:`start`, stop with :meth:`stop`."""

    name: str
    settings: ImapSettings
    logger: logging.Logger
    on_unmatched: UnmatchedMail
    #: Where fetched messages are kept until their consumers have stored them.
    spool: Spool
    #: Set once the runs resumed at start listen: messages left in the spool by an earlier
    #: process are handed on only then (see ChannelServices.runs_resumed).
    ready: asyncio.Event = field(default_factory=lambda: _set(asyncio.Event()))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Where the read position is kept, so mail that arrives while no process watches (a late
    #: reply to a finished run, say) is still read after a restart.
    state: ChannelState = field(default_factory=MemoryChannelState)
    _saved_position_at: tuple[int, int] | None = None  # (UIDVALIDITY, last UID) last saved
    _by_key: dict[str, set[Registration]] = field(default_factory=dict)
    _registrations: set[Registration] = field(default_factory=set)
    _searches: set[Registration] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _uidvalidity: int | None = None
    _last_uid: int = 0
    _connected: bool = False
    _idling: bool = False
    _session_was_healthy: bool = False
    _stopping: bool = False
    _mail_announced: bool = False
    _connected_once: asyncio.Event = field(default_factory=asyncio.Event)
    _up: asyncio.Event = field(default_factory=asyncio.Event)  # set while connected
    _last_error: str | None = None
    #: What an earlier process left in the spool, listed at the first drain (None: not yet).
    _leftovers: list[SpooledFile] | None = None
    _ready_waiter: asyncio.Task[None] | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def stats(self) -> WatcherStats:
        return WatcherStats(
            mailbox=self.name,
            connected=self._connected,
            registered=len(self._registrations),
            last_uid=self._last_uid,
            uidvalidity=self._uidvalidity,
            idle=self._idling,
        )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start watching in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"imap-watcher:{self.name}")
            self._ready_waiter = asyncio.create_task(self._wake_when_ready())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self._ready_waiter is not None:
            await _cancel_and_wait(self._ready_waiter)
        self._stopping = True
        self._wake.set()
        await _cancel_and_wait(task)

    async def connected_within(self, seconds: float) -> None:
        """Return once the watcher is connected, or raise ConnectionError after ``seconds``
        with the reason of the last failed attempt."""
        try:
            async with asyncio.timeout(seconds):
                await self._up.wait()
        except TimeoutError:
            reason = self._last_error or "no connection yet"
            raise ConnectionError(
                f"the IMAP watcher of mailbox {self.name!r} is not connected ({reason})"
            ) from None

    async def wait_connected(self) -> None:
        """Until the first session has selected the folder (for tests and health checks)."""
        await self._connected_once.wait()

    def register(
        self,
        keys: Iterable[str],
        deliver: Callable[[FetchedMail], bool],
        *,
        since: datetime,
        backfill: bool = False,
    ) -> Registration:
        """Route mail carrying any of ``keys`` to ``deliver`` from now on.

        ``backfill``: also search the folder for such mail already there (a resumed contact).
        """
        registration = Registration(frozenset(keys), deliver, since)
        self._registrations.add(registration)
        for key in registration.keys:
            self._by_key.setdefault(key, set()).add(registration)
        if backfill or self._uidvalidity is None:
            # Before the first SELECT there is no baseline: a reply may land before it.
            self._searches.add(registration)
            self._wake.set()
        else:
            registration.searched.set()
        return registration

    def add_keys(self, registration: Registration, keys: Iterable[str]) -> None:
        """Route mail carrying any of ``keys`` to ``registration`` too (e.g. a follow-up's
        Message-ID, which replies to the follow-up reference)."""
        added = frozenset(keys) - registration.keys
        registration.keys = registration.keys | added
        for key in added:
            self._by_key.setdefault(key, set()).add(registration)

    def unregister(self, registration: Registration) -> None:
        registration.active = False
        self._registrations.discard(registration)
        self._searches.discard(registration)
        for key in registration.keys:
            holders = self._by_key.get(key)
            if holders is not None:
                holders.discard(registration)
                if not holders:
                    del self._by_key[key]

    async def _wake_when_ready(self) -> None:
        await self.ready.wait()
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._guarded_session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watcher must outlive every failure
                self._last_error = describe_error(exc)
                self.logger.warning(
                    "imap watcher session failed; reconnecting",
                    extra={"mailbox": self.name, "error": describe_error(exc)},
                )
            finally:
                self._connected = False
                self._up.clear()
                self._idling = False
            if self._session_was_healthy:
                attempt = 0
            delay = _backoff(attempt, self.settings.reconnect_max_backoff)
            attempt += 1
            if not self._stopping:
                await asyncio.sleep(delay)

    async def _guarded_session(self) -> None:
        """One session; ends with an exception as soon as the connection is lost."""
        self._session_was_healthy = False
        lost = asyncio.Event()
        session = asyncio.create_task(self._session(lambda _exc: lost.set()))
        watch_lost = asyncio.create_task(lost.wait())
        try:
            await asyncio.wait({session, watch_lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch_lost.cancel()
            if not session.done():
                await _cancel_and_wait(session)
        if session.cancelled():
            raise ConnectionError("connection to the IMAP server was lost")
        session.result()  # re-raises the session's error

    async def _session(self, on_lost: Callable[[Exception | None], None]) -> None:
        client = await self._connect(on_lost)
        try:
            await self._select(client)
            self._connected = True
            self._up.set()
            self._last_error = None
            self._connected_once.set()
            use_idle = self.settings.idle and client.has_capability("IDLE")
            self._idling = use_idle
            self.logger.info(
                "imap watcher connected",
                extra={"mailbox": self.name, "idle": use_idle, "last_uid": self._last_uid},
            )
            while not self._stopping:
                self._mail_announced = False
                await self._drain(client)
                if self._mail_announced:
                    continue  # announced while we searched: it may have missed the search
                if use_idle:
                    await self._idle(client)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
        finally:
            self._connected = False
            self._up.clear()
            await _close(client)

    async def _connect(self, on_lost: Callable[[Exception | None], None]) -> Any:
        settings = self.settings
        context = tls_context(settings.ca_file) if settings.tls == "implicit" else None
        # IMAP4 rather than IMAP4_SSL: only IMAP4 passes conn_lost_cb on.
        client = aioimaplib.IMAP4(
            settings.host,
            settings.port,
            timeout=settings.timeout,
            conn_lost_cb=on_lost,
            ssl_context=context,
        )
        _note_announcements(client, self._note_new_mail)
        try:
            await client.wait_hello_from_server()
            if settings.tls == "starttls":
                await _starttls(client, settings)
            response = await client.login(settings.username, settings.password.get_secret_value())
            if response.result != "OK":
                raise ImapError(f"login as {settings.username!r} refused: {_text(response)}")
        except BaseException:
            await _close(client)
            raise
        return client

    def _note_new_mail(self) -> None:
        self._mail_announced = True

    async def _select(self, client: Any) -> None:
        response = await client.select(_quote(self.settings.folder))
        if response.result != "OK":
            raise ImapError(f"SELECT {self.settings.folder!r} refused: {_text(response)}")
        uidvalidity = _first_int(_UIDVALIDITY, response.lines)
        uidnext = _first_int(_UIDNEXT, response.lines)
        if uidvalidity is None:
            raise ImapError(f"SELECT {self.settings.folder!r} returned no UIDVALIDITY")
        if uidnext is None:
            uidnext = max(await self._search(client, "UID", "1:*"), default=0) + 1
        previous = self._uidvalidity
        self._uidvalidity = uidvalidity
        if previous is None:
            # First connection: go on from where the last process stopped reading, or start
            # from now; registrations made before were queued for a targeted search.
            saved = await self._saved_position(uidvalidity, uidnext)
            self._last_uid = uidnext - 1 if saved is None else saved
            await self._save_position()
        elif previous != uidvalidity:
            self.logger.warning(
                "imap UIDVALIDITY changed; back-filling by date",
                extra={"mailbox": self.name, "old": previous, "new": uidvalidity},
            )
            self._last_uid = uidnext - 1
            await self._backfill_since(client)
            await self._save_position()
        # Same UIDVALIDITY: _drain() fetches everything above _last_uid.

    def _position_key(self) -> str:
        return f"imap:{self.name}"

    async def _saved_position(self, uidvalidity: int, uidnext: int) -> int | None:
        """The last UID a previous process read in this folder, if it still applies."""
        try:
            saved = await self.state.load(self._position_key())
        except Exception as exc:  # no saved position is a degraded start, not a dead watcher
            self.logger.warning(
                "imap read position unavailable; starting from new mail",
                extra={"mailbox": self.name, "error": describe_error(exc)},
            )
            return None
        settings = self.settings
        if (
            saved is None
            or saved.get("host") != settings.host
            or saved.get("username") != settings.username
            or saved.get("folder") != settings.folder
            or saved.get("uidvalidity") != uidvalidity
        ):
            return None
        last_uid = saved.get("last_uid")
        if not isinstance(last_uid, int) or not 0 <= last_uid < uidnext:
            return None
        if last_uid < uidnext - 1:
            self.logger.info(
                "imap reading mail that arrived while stopped",
                extra={"mailbox": self.name, "after_uid": last_uid, "uidnext": uidnext},
            )
        return last_uid

    async def _save_position(self) -> None:
        if self._uidvalidity is None:
            return
        at = (self._uidvalidity, self._last_uid)
        if at == self._saved_position_at:
            return
        position = {
            "host": self.settings.host,
            "username": self.settings.username,
            "folder": self.settings.folder,
            "uidvalidity": self._uidvalidity,
            "last_uid": self._last_uid,
        }
        try:
            await self.state.save(self._position_key(), position)
        except Exception as exc:  # retried after the next fetch
            self.logger.warning(
                "imap read position not saved",
                extra={"mailbox": self.name, "error": describe_error(exc)},
            )
            return
        self._saved_position_at = at

    async def _drain(self, client: Any) -> None:
        """Fetch everything new, then run the queued targeted searches.

        New mail comes first so that a search the server struggles with (a huge folder)
        cannot hold up the replies of every other run.
        """
        if not self._stopping:
            self._wake.clear()
        if self._leftovers is None:  # before this process spools anything of its own
            self._leftovers = await self._list_leftovers()
        await self._fetch_new(client)
        searches = [r for r in self._searches if r.active]
        self._searches.clear()
        try:
            for batch in _batches(searches, SEARCH_BATCH):
                await self._targeted_search(client, batch)
        except BaseException:
            self._searches.update(searches)  # retried after the reconnect
            raise
        if self._leftovers and self.ready.is_set():
            await self._hand_on_leftovers(self._leftovers)
        # Only a session that got this far counts as healthy: one that keeps failing at the
        # same search backs off like one that cannot log in.
        self._session_was_healthy = True

    async def _list_leftovers(self) -> list[SpooledFile]:
        leftovers, unreadable = await asyncio.to_thread(self.spool.leftovers)
        for problem in unreadable:
            self.logger.warning(
                "left-over spool file kept: its metadata cannot be read",
                extra={"mailbox": self.name, "error": problem},
            )
        return leftovers

    async def _hand_on_leftovers(self, leftovers: list[SpooledFile]) -> None:
        """Messages an earlier process spooled but whose consumers had not stored them: handed
        on like new mail, once the runs resumed at start listen (``ready``) and after this
        session's searches (their replies still in the mailbox are delivered once: the
        conversations deduplicate). Each leaves ``leftovers`` once handed on."""
        self.logger.info(
            "handing on replies spooled by an earlier process",
            extra={"mailbox": self.name, "count": len(leftovers)},
        )
        while leftovers:
            spooled = leftovers[0]
            try:
                fetched = await self._read(
                    spooled,
                    uid=int(spooled.meta["uid"]),
                    uidvalidity=int(spooled.meta["uidvalidity"]),
                    internaldate=_optional_time(spooled.meta.get("internaldate")),
                    observed_at=_optional_time(spooled.meta.get("observed_at")) or self.clock(),
                )
            except (OSError, KeyError, TypeError, ValueError) as exc:
                # Kept on disk (never deleted unread): the next start tries it again.
                self.logger.warning(
                    "left-over spool file kept: it cannot be read",
                    extra={"mailbox": self.name, "file": str(spooled.path), "error": str(exc)},
                )
                leftovers.pop(0)
                continue
            leftovers.pop(0)
            await self._route(fetched, unmatched=True)

    async def _fetch_new(self, client: Any) -> None:
        uids = [uid for uid in await self._search(client, "UID", f"{self._last_uid + 1}:*")]
        # "n:*" also matches the highest UID when it is below n (RFC 3501 6.4.8).
        fresh = sorted(uid for uid in uids if uid > self._last_uid)
        for batch in _batches(fresh, FETCH_BATCH):
            for fetched in await self._fetch(client, batch):
                await self._route(fetched, unmatched=True)
            self._last_uid = max(self._last_uid, batch[-1])
            await self._save_position()

    async def _targeted_search(self, client: Any, registrations: Sequence[Registration]) -> None:
        criteria = _or_all(
            [c for registration in registrations for c in _key_criteria(registration.keys)]
        )
        if not criteria:
            return
        # Bounded by date: a body search over years of mail could outlast the command timeout.
        uids = await self._search(
            client, "SINCE", _imap_day(min(r.since for r in registrations)), *criteria
        )
        await self._route_found(client, uids)
        for registration in registrations:
            registration.searched.set()

    async def _backfill_since(self, client: Any) -> None:
        if not self._registrations:
            return
        oldest = min(r.since for r in self._registrations)
        await self._route_found(client, await self._search(client, "SINCE", _imap_day(oldest)))

    async def _route_found(self, client: Any, uids: Iterable[int]) -> None:
        """Hand searched messages to the registrations they match; strangers are dropped."""
        for batch in _batches(sorted(set(uids)), FETCH_BATCH):
            for fetched in await self._fetch(client, batch):
                await self._route(fetched, unmatched=False)

    async def _idle(self, client: Any) -> None:
        """One IDLE round: until new mail, a queued request, or ``idle_renew`` seconds."""
        # Our own deadline renews IDLE; aioimaplib's only needs to be later.
        idle = await client.idle_start(timeout=self.settings.idle_renew + 60)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.idle_renew
        wake = asyncio.create_task(self._wake.wait())
        try:
            while (remaining := deadline - loop.time()) > 0:
                push = asyncio.create_task(client.wait_server_push(timeout=remaining))
                done, _ = await asyncio.wait(
                    {push, wake}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if push not in done:
                    await _cancel_and_wait(push)
                    break
                if push.exception() is None and _says_bye(push.result()):
                    raise ConnectionError("the IMAP server ended the session (BYE)")
                if push.exception() is not None or _has_new_mail(push.result()):
                    break
        finally:
            wake.cancel()
            client.idle_done()
            # Not wait_for(): a CancelledError here must be ours, never idle's.
            await asyncio.wait({idle}, timeout=self.settings.timeout)
            if not idle.done():
                await _cancel_and_wait(idle)
                raise ImapError("the server did not end IDLE after DONE")
            if not idle.cancelled() and idle.exception() is not None:
                raise ImapError(f"IDLE failed: {describe_error(idle.exception())}")
            _drain_queue(client.protocol.idle_queue)

    # -- commands -------------------------------------------------------------------------

    async def _search(self, client: Any, *criteria: str) -> list[int]:
        response = await client.uid_search(*criteria, charset=None)
        if response.result != "OK":
            raise ImapError(f"UID SEARCH refused: {_text(response)}")
        found: list[int] = []
        for line in response.lines[:-1]:
            if isinstance(line, bytes | bytearray):
                words = bytes(line).split()
                if words and words[0].upper() == b"SEARCH":
                    words = words[1:]
                found.extend(int(word) for word in words if word.isdigit())
        return found

    async def _fetch(self, client: Any, uids: Sequence[int]) -> list[FetchedMail]:
        """The messages ``uids``: sizes first, then bodies in batches of at most
        :data:`FETCH_CHUNK_BYTES` (a large message alone, a chunk per command), each into its
        spool file, then parsed off the event loop from the file."""
        sizes = await self._sizes(client, uids)
        fetched: list[FetchedMail] = []
        unread: list[_Downloaded] = []
        try:
            for batch in _size_batches(uids, sizes, FETCH_CHUNK_BYTES):
                unread = await self._download(client, batch, sizes)
                while unread:
                    fetched.append(await self._read(unread[0].spooled, **unread[0].read_as))
                    unread.pop(0)
        except BaseException:
            # Not handed on: the messages are fetched again after the reconnect.
            for spooled in [item.spooled for item in fetched] + [d.spooled for d in unread]:
                spooled.done()
            raise
        return sorted(fetched, key=lambda item: item.uid)

    async def _sizes(self, client: Any, uids: Sequence[int]) -> dict[int, int]:
        uid_set = ",".join(str(uid) for uid in uids)
        response = await client.uid("fetch", uid_set, "(UID RFC822.SIZE)")
        if response.result != "OK":
            raise ImapError(f"UID FETCH refused: {_text(response)}")
        sizes: dict[int, int] = {}
        for meta, _ in _fetch_items(response.lines[:-1]):
            uid, size = _first_int(_UID, [meta]), _first_int(_SIZE, [meta])
            if uid is not None and size is not None:
                sizes[uid] = size
        return sizes

    async def _download(
        self, client: Any, uids: Sequence[int], sizes: dict[int, int]
    ) -> list[_Downloaded]:
        """Each message of ``uids`` into its own spool file: the first chunk of all of them in
        one command, the rest of a longer one a chunk per command. A download cut short (the
        connection lost, the server refusing) leaves no file: the message stays unread."""
        assert self._uidvalidity is not None
        wanted = set(uids)
        uid_set = ",".join(str(uid) for uid in uids)
        response = await self._uid_fetch(
            client, uid_set, f"(UID INTERNALDATE BODY.PEEK[]<0.{FETCH_CHUNK_BYTES}>)"
        )
        observed_at = self.clock()
        first_chunks: dict[int, tuple[bytes, datetime | None]] = {}
        for meta, body in _fetch_items(response.lines[:-1]):
            uid = _first_int(_UID, [meta])
            if uid is None or uid not in wanted or body is None or uid in first_chunks:
                continue  # an unsolicited FETCH (flags changed by another client)
            found = _INTERNALDATE.search(meta)
            internaldate = parse_internaldate(found.group(1).decode()) if found else None
            first_chunks[uid] = (body, internaldate)
        del response
        downloaded: list[_Downloaded] = []
        writer: SpoolWriter | None = None
        uid = 0
        try:
            for uid in uids:
                if uid not in first_chunks:
                    continue  # expunged meanwhile
                body, internaldate = first_chunks.pop(uid)
                about = {"mailbox": self.name, "uid": uid, "uidvalidity": self._uidvalidity}
                writer = await asyncio.to_thread(
                    self.spool.create, f"{self._uidvalidity}-{uid}", about
                )
                await asyncio.to_thread(writer.write, body)
                await self._fetch_rest(client, uid, writer, last=len(body), size=sizes.get(uid))
                spooled = await asyncio.to_thread(
                    writer.commit,
                    internaldate=None if internaldate is None else internaldate.isoformat(),
                    observed_at=observed_at.isoformat(),
                )
                writer = None
                downloaded.append(_Downloaded(spooled, uid, internaldate, observed_at))
        except BaseException as exc:
            if writer is not None:
                if not self._stopping:
                    self._log_interrupted(uid, writer.size, sizes.get(uid), exc)
                writer.abort()
            for done in downloaded:
                done.spooled.done()
            raise
        return downloaded

    async def _fetch_rest(
        self, client: Any, uid: int, writer: SpoolWriter, *, last: int, size: int | None
    ) -> None:
        """Message ``uid`` after the bytes ``writer`` has, a chunk per command, until a chunk
        comes back short (RFC 3501 6.4.5: a partial fetch is cut at the end of the message)
        or ``size`` (its RFC822.SIZE) is reached."""
        while last == FETCH_CHUNK_BYTES and (size is None or writer.size < size):
            offset = writer.size
            response = await self._uid_fetch(
                client, str(uid), f"(UID BODY.PEEK[]<{offset}.{FETCH_CHUNK_BYTES}>)"
            )
            body = next(
                (
                    piece
                    for meta, piece in _fetch_items(response.lines[:-1])
                    if _first_int(_UID, [meta]) == uid
                ),
                None,
            )
            del response
            if body is None:  # nothing after ``offset``: the server sent an empty string
                return
            await asyncio.to_thread(writer.write, body)
            last = len(body)

    def _log_interrupted(
        self, uid: int, received: int, size: int | None, exc: BaseException
    ) -> None:
        reason = (
            "the connection was lost"
            if isinstance(exc, asyncio.CancelledError)
            else describe_error(exc)
        )
        of_size = f" of {size}" if size is not None else ""
        self.logger.warning(
            "reply body fetch interrupted; the message stays unread and is fetched again",
            extra={
                "mailbox": self.name,
                "uid": uid,
                "error": f"after {received}{of_size} bytes: {reason}",
            },
        )

    async def _uid_fetch(self, client: Any, uid_set: str, items: str) -> Any:
        response = await client.uid("fetch", uid_set, items)
        if response.result != "OK":
            raise ImapError(f"UID FETCH {uid_set} {items} refused: {_text(response)}")
        return response

    async def _read(
        self,
        spooled: SpooledFile,
        *,
        uid: int,
        uidvalidity: int,
        internaldate: datetime | None,
        observed_at: datetime,
    ) -> FetchedMail:
        """The spooled message parsed: ``parse_mail`` in a worker thread, on at most
        ``max_message_bytes`` of the file, within ``parse_timeout`` (past it, only the headers
        are read); the file whole stays the evidence."""
        cap = self.settings.max_message_bytes
        head = await asyncio.to_thread(spooled.read, cap)
        cut_short = spooled.size > len(head)
        readable = cut_on_line(head) if cut_short else head
        notes: list[str] = []
        try:
            mail = await asyncio.wait_for(
                asyncio.to_thread(parse_mail, readable, cut_short=cut_short),
                self.settings.parse_timeout,
            )
        except TimeoutError:  # the thread finishes on its own; its result is dropped
            mail = parse_mail(_header_block(readable))
            notes.append(f"parsing took over {self.settings.parse_timeout:g}s: headers only read")
        if cut_short:
            notes.append(f"message of {spooled.size} bytes: its first {len(readable)} bytes read")
        mail = replace(mail, raw=b"", decoding_notes=(*mail.decoding_notes, *notes))
        if mail.decoding_notes:
            self.logger.info(
                "reply decoded by fallback",
                extra={"mailbox": self.name, "uid": uid, "notes": "; ".join(mail.decoding_notes)},
            )
        return FetchedMail(mail, uid, uidvalidity, self.name, internaldate, observed_at, spooled)

    # -- routing --------------------------------------------------------------------------

    async def _route(self, fetched: FetchedMail, *, unmatched: bool) -> None:
        """Hand ``fetched`` to the registrations it answers (else, if ``unmatched``, to the
        sink); each one that takes it holds its spool file, and the watcher lets go of its own
        hold here, so a message nobody took is removed at once."""
        try:
            await self._hand_over(fetched, unmatched=unmatched)
        finally:
            fetched.spooled.done()

    async def _hand_over(self, fetched: FetchedMail, *, unmatched: bool) -> None:
        mail = fetched.mail
        if mail.delivery_status is not None and not mail.is_bounce:
            self.logger.info(
                "delivery-status notification without failure ignored",
                extra={"mailbox": self.name, "status": mail.delivery_status.status},
            )
            return
        targets = self._matching(mail)
        for registration in targets:
            fetched.spooled.hold()
            taken = False
            try:
                taken = registration.deliver(fetched)
            except Exception as exc:
                self.logger.warning(
                    "reply delivery failed",
                    extra={"mailbox": self.name, "error": describe_error(exc)},
                )
            finally:
                if not taken:
                    fetched.spooled.done()
        if not targets and unmatched:
            if mail.delivery_status is not None:
                # A failed delivery of a contact no run waits for (e.g. a bounce days later):
                # not an answer, so not a late reply either.
                self.logger.info(
                    "bounce for no open run ignored",
                    extra={"mailbox": self.name, "status": mail.delivery_status.status},
                )
                return
            fetched.spooled.hold()  # the sink's, released by the sink once it has stored it
            try:
                await self.on_unmatched(fetched.reply(sent_at=None))
            except Exception as exc:  # the sink is the application's; keep watching
                # Its hold stays: the spool file outlives this process, and the next start
                # hands it on again.
                self.logger.warning(
                    "unmatched reply sink failed; the reply stays spooled for the next start",
                    extra={"mailbox": self.name, "error": describe_error(exc)},
                )

    def _matching(self, mail: ParsedMail) -> list[Registration]:
        """Registrations the mail answers: by referenced Message-ID, else by token."""
        for keys in (mail.referenced_ids, sorted(mail.tokens)):
            found: dict[int, Registration] = {}
            for key in keys:
                for registration in self._by_key.get(key, ()):
                    found[id(registration)] = registration
            if found:
                return list(found.values())
        return []


# -- helpers ------------------------------------------------------------------------------------


async def _starttls(client: Any, settings: ImapSettings) -> None:
    """STARTTLS (RFC 3501 6.2.1), which aioimaplib lacks: upgrade the transport in place."""
    protocol = client.protocol
    command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    response = await asyncio.wait_for(protocol.execute(command), settings.timeout)
    if response.result != "OK":
        raise ImapError(f"STARTTLS refused: {_text(response)}")
    loop = asyncio.get_running_loop()
    transport = await asyncio.wait_for(
        loop.start_tls(
            protocol.transport,
            protocol,
            tls_context(settings.ca_file),
            server_hostname=settings.host,
        ),
        settings.timeout,
    )
    protocol.transport = transport
    # Capabilities learnt before TLS must be discarded (RFC 3501 6.2.1).
    await asyncio.wait_for(protocol.capability(), settings.timeout)


async def _close(client: Any) -> None:
    """LOGOUT politely if the connection still works, then drop it."""
    protocol = client.protocol
    try:
        if protocol.transport is not None and not protocol.transport.is_closing():
            async with asyncio.timeout(LOGOUT_SECONDS):
                if client.has_pending_idle():
                    client.idle_done()
                    await protocol.wait("SELECTED|AUTH")
                if protocol.state in ("AUTH", "SELECTED", "NONAUTH"):
                    await client.logout()
    except Exception:  # TimeoutError included; a CancelledError (ours) propagates
        pass
    finally:
        if protocol.transport is not None:
            protocol.transport.close()


async def _cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for it to end, without swallowing our own cancellation
    (``with suppress(CancelledError): await task`` would, if we are cancelled meanwhile).

    The cancellation is repeated: Python 3.11's ``asyncio.wait_for`` (used throughout
    aioimaplib) loses a cancellation that races with the awaited result.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_RETRY_SECONDS)
    if not task.cancelled():
        task.exception()  # retrieved: a failure while stopping is of no interest


def _note_announcements(client: Any, on_new_mail: Callable[[], None]) -> None:
    """Call ``on_new_mail`` for every untagged EXISTS or RECENT the server sends.

    aioimaplib drops an untagged EXISTS that arrives while an asynchronous command (UID SEARCH,
    UID FETCH) is pending ("ignored untagged response"), and the server, having announced the
    message once, does not repeat it when IDLE starts. Without this, mail delivered between our
    last search and IDLE would wait for the next IDLE renewal.
    """
    protocol = client.protocol
    handle_untagged = protocol._untagged_response

    def noting(line: bytes) -> Any:
        if _has_new_mail([line]):
            on_new_mail()
        return handle_untagged(line)

    protocol._untagged_response = noting


def _says_bye(lines: Any) -> bool:
    """An untagged BYE (e.g. Dovecot shutting down): the connection is about to close."""
    return any(isinstance(line, bytes | bytearray) and line.startswith(b"BYE") for line in lines)


def _has_new_mail(lines: Any) -> bool:
    if lines is aioimaplib.STOP_WAIT_SERVER_PUSH or lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
        return True  # aioimaplib's own IDLE deadline: renew
    return any(
        isinstance(line, bytes | bytearray) and (b"EXISTS" in line or b"RECENT" in line)
        for line in lines
    )


def _drain_queue(queue: asyncio.Queue[Any]) -> None:
    while True:
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            return


def _size_batches(uids: Sequence[int], sizes: dict[int, int], budget: int) -> Iterator[list[int]]:
    """``uids`` in order, in runs whose sizes add up to at most ``budget`` (a message larger
    than the budget alone; one whose size is unknown counts as the whole budget)."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, budget)
        if batch and (total + size > budget or len(batch) >= FETCH_BATCH):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


@dataclass(frozen=True)
class _Downloaded:
    """A message downloaded into its spool file, with what it is read as."""

    spooled: SpooledFile
    uid: int
    internaldate: datetime | None
    observed_at: datetime

    @property
    def read_as(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "uidvalidity": int(self.spooled.meta["uidvalidity"]),
            "internaldate": self.internaldate,
            "observed_at": self.observed_at,
        }


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


def _optional_time(value: Any) -> datetime | None:
    """An ISO 8601 time kept in a spool file's metadata (None when absent)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _header_block(raw: bytes) -> bytes:
    """The header section of ``raw``, through the first blank line (bounded if none)."""
    ends = [
        found + len(separator)
        for separator in (b"\r\n\r\n", b"\n\n")
        if (found := raw.find(separator)) >= 0
    ]
    return raw[: min(ends)] if ends else raw[:65536]


def _fetch_items(lines: Sequence[Any]) -> Iterator[tuple[bytes, bytes | None]]:
    """(metadata, body) per ``n FETCH (...)`` item of an aioimaplib FETCH response.

    aioimaplib gives the line opening the item, the literal as a bytearray, then the rest of
    the item (``)``, or e.g. `` UID 5)`` when the server puts attributes after the body).
    """
    meta: bytes | None = None
    body: bytes | None = None
    for line in lines:
        if isinstance(line, bytearray):
            if meta is not None and body is None:
                body = bytes(line)
            continue
        if isinstance(line, bytes) and _FETCH_START.match(line):
            if meta is not None:
                yield meta, body
            meta, body = line, None
        elif meta is not None and isinstance(line, bytes):
            meta += b" " + line
    if meta is not None:
        yield meta, body


def _key_criteria(keys: Iterable[str]) -> list[list[str]]:
    """SEARCH criteria (each a list of atoms) finding mail that carries any of ``keys``."""
    criteria: list[list[str]] = []
    for key in sorted(keys):
        if key.startswith("<"):
            criteria.append(["HEADER", "In-Reply-To", _quote(key)])
            criteria.append(["HEADER", "References", _quote(key)])
        else:
            criteria.append(["TEXT", _quote(key)])
    return criteria


def _or_all(criteria: list[list[str]]) -> list[str]:
    """``OR a OR b c`` for any number of criteria (IMAP's OR takes exactly two)."""
    if not criteria:
        return []
    result = criteria[-1]
    for criterion in reversed(criteria[:-1]):
        result = ["OR", *criterion, *result]
    return result


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _first_int(pattern: re.Pattern[bytes], lines: Iterable[Any]) -> int | None:
    for line in lines:
        if isinstance(line, bytes | bytearray):
            match = pattern.search(bytes(line))
            if match:
                return int(match.group(1))
    return None


def _text(response: Any) -> str:
    lines = [bytes(line) for line in response.lines if isinstance(line, bytes | bytearray)]
    return (lines[-1] if lines else b"").decode(errors="replace")[:200]


def _backoff(attempt: int, cap: float) -> float:
    """Exponential back-off with jitter in [d/2, d], d = min(cap, start * 2**attempt)."""
    ceiling = min(cap, BACKOFF_START_SECONDS * 2 ** min(attempt, 30))
    return random.uniform(ceiling / 2, ceiling)


def _imap_day(since: datetime) -> str:
    """An IMAP SEARCH date a day before ``since`` (SINCE compares dates in the server's zone)."""
    day = since - timedelta(days=1)
    return f"{day.day}-{IMAP_MONTHS[day.month - 1]}-{day.year}"


def _batches(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
