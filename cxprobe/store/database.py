"""The evidence store: every run, its contact, its replies and their raw evidence, in SQL.

SQLAlchemy Core over an async engine; SQLite (the default, one file) or PostgreSQL by URL.
Every write is one transaction, committed before the call returns, so a crash loses at most
the call in progress. The store records what it is told and decides nothing: outcomes, timings
and routing verdicts come from the scenario engine.

SQLite specifics: WAL (readers never block the writer), ``synchronous=FULL`` (a committed run
survives power loss), foreign keys on, and a busy timeout. Writes of one store are serialised
by an asyncio lock and take the database's write lock up front (``BEGIN IMMEDIATE``), so two
processes (or two stores) on one file wait for each other instead of failing with "database is
locked". PostgreSQL (``postgresql+asyncpg://``; READ COMMITTED) relies on its own row locking
and on the same unique constraints, so any number of monitor processes may share one database:
the unique (check, location, slot) key decides a claim; a transaction-level advisory lock is
held per target and channel while a contact quota is checked, one per money budget while the
budgets are (:mod:`cxprobe.store.budgets`; all in ascending key order), and another while the
schema is created or upgraded; every write to a run's content locks the run's row first, and
then the chain head (that one order everywhere, so writers never deadlock); channel state is
one upsert.
Connections are tested before use (a server restart drops them). Opening a store that cannot
be reached, refuses the login or lacks the database raises :class:`StoreError` saying what to
do, with the URL's password masked.

Tamper evidence: :meth:`EvidenceStore.finish` seals the run in the same transaction that closes
it, appending an entry to the store's hash chain (:mod:`cxprobe.store.chain`,
:mod:`cxprobe.store.ledger`); any later write to a closed run (a late reply, revised
figures, evidence) appends an ``amendment`` entry sealing its new content, so verification
never breaks silently and the change is visible. Exports and retention purges are recorded
here too (:meth:`EvidenceStore.record_export`, :meth:`EvidenceStore.purge`).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import enum
import hashlib
import itertools
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Row,
    Select,
    and_,
    case,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InvalidRequestError,
    NoSuchModuleError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cxprobe.store import courtesy, pairs
from cxprobe.store.budgets import (
    ContactCost,
    WindowSpend,
    budget_lock_keys,
    contact_quota_lock_key,
    exceeded,
    money,
    skip_reason,
    spends,
)
from cxprobe.store.chain import ChainEntry, Scope
from cxprobe.store.courtesy import OptOut
from cxprobe.store.leases import (
    LeaseHolder,
    LeaseLostError,
    Renewal,
    check_lease,
    database_now,
    lease_columns,
    release,
    renew,
    take_over,
)
from cxprobe.store.ledger import head, load_measures, seal_run
from cxprobe.store.migrations import SCHEMA_VERSION, SchemaState, prepare_store
from cxprobe.store.retention import PurgePolicy, PurgeReport, purge_runs
from cxprobe.store.schema import (
    CLOSED,
    OPEN,
    SchemaVersionError,
    StoreError,
    UnknownRunError,
    artifact_chunks,
    artifacts,
    channel_state,
    in_chunks,
    messages,
    run_measures,
    runs,
    slots,
)
from cxprobe.store.snapshot import ExportRecord, Snapshot, record_export, take_snapshot
from probes.base import Evidence, Reply, Responder, Sent
from probes.spool import SPOOL_READ_BYTES, SpooledFile
from scenarios.maintenance import DeclaredWindow, MaintenanceWindow
from scenarios.model import (
    AnswerVerdict,
    ContactMode,
    LanguageVerdict,
    ObservedReply,
    Outcome,
    Period,
    RoutingResult,
    RubricItemResult,
    RunResult,
    Thresholds,
)

#: The default store: one SQLite file under the working directory.
DEFAULT_URL = "sqlite+aiosqlite:///data/cxprobe.db"

#: How long a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


#: Execution option marking a connection that will write (SQLite: ``BEGIN IMMEDIATE``).
_WRITES = "cxprobe_writes"

OUT = "out"
IN = "in"

#: ``timing_method`` of an outgoing message: its time is when the channel accepted it.
SENT_TIMING = "channel-accepted"

#: Userinfo in URL text that may not parse: from the user name's ':' (not a scheme's '://') to
#: the last '@', greedily, so a password holding ':', '/' or '@' is masked whole.
_URL_PASSWORD = re.compile(r"(?P<user>[^:/@\s]*):(?!//).*@", re.DOTALL)

#: URL query parameters whose values are secrets (e.g. ``?password=``, ``?sslpassword=``).
_SECRET_PARAMETER = re.compile(r"pass|secret|token", re.IGNORECASE)

_MASK = "***"


class Claim(enum.StrEnum):
    """What :meth:`EvidenceStore.claim_slot` did. Every member is truthy: compare, do not test."""

    CLAIMED = "claimed"  # the slot and its open run are recorded: go ahead and send
    TAKEN = "taken"  # the slot was claimed before (by this or another monitor process)
    OVER_BUDGET = "over_budget"  # the target's contact budget on the channel is spent
    SKIPPED = "skipped"  # a money budget would be exceeded: recorded as a closed skipped run


@dataclass(frozen=True)
class AwaitingPrice:
    """A sent contact whose provider price is not known yet."""

    run_id: str
    channel: str
    external_id: str


@dataclass(frozen=True)
class RunCost:
    """What a run's contact was estimated to cost and, once reported, what it cost."""

    estimated: float | None
    actual: float | None
    currency: str | None
    account: str | None


@dataclass(frozen=True)
class OpenRun:
    """A run a previous process left open, with what is needed to resume it."""

    result: RunResult  # replies loaded, in arrival order
    sent_external_id: str | None
    resume_state: dict[str, Any]


@dataclass(frozen=True)
class StoredArtifact:
    """One piece of raw evidence as stored (without its content; see ``artifact_content``)."""

    id: int
    run_id: str
    message_id: int | None
    kind: str
    media_type: str
    sha256: str
    size: int
    created_at: datetime


@dataclass(frozen=True)
class StoredMessage:
    """One message of a run as stored: the contact (``out``) or a reply (``in``)."""

    id: int
    run_id: str
    direction: str  # "out" | "in"
    external_id: str
    observed_at: datetime
    arrived_at: datetime
    timing_method: str
    seconds: float | None
    sender: str
    responder: str | None  # None for the contact
    channel_responder: str | None
    subject: str
    text: str
    headers: dict[str, str]
    late: bool | None
    queue: str | None
    artifacts: tuple[StoredArtifact, ...] = ()
    #: A conversation turn's record (scenarios.conversation), None for other messages.
    turn: dict[str, Any] | None = None

    @property
    def sha256(self) -> str | None:
        return self.artifacts[0].sha256 if self.artifacts else None

    @property
    def size(self) -> int | None:
        return self.artifacts[0].size if self.artifacts else None


class EvidenceStore:
    """Runs, messages and raw evidence in a SQL database; use as ``async with``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        logger: logging.Logger | None = None,
        upgrade_schema: bool = True,
        holder: LeaseHolder | None = None,
    ) -> None:
        """``upgrade_schema=False`` opens the store only to read its schema's state
        (:attr:`schema`; ``cxprobe db current``): nothing is created or upgraded, and a store
        that is not at this code's revision must not be used for anything else.

        ``holder`` is the monitor process that claims runs through this store and holds their
        leases (:mod:`cxprobe.store.leases`); by default a new session named after the host."""
        try:
            self.url: URL = make_url(url)
        except (ArgumentError, ValueError) as exc:
            # Neither the raw URL nor the parser's message is quoted: either may hold a password.
            raise StoreError(
                f"monitor.store_url {_redact_url_text(url)!r} is not a database URL: it cannot "
                "be parsed. Check the form dialect+driver://user:password@host:port/dbname (the "
                "port a number, special characters in the password %-encoded), e.g. "
                f"{DEFAULT_URL} or postgresql+asyncpg://user:password@host/dbname"
            ) from exc
        self._logger = logger or logging.getLogger(__name__)
        self._sqlite = self.url.get_backend_name() == "sqlite"
        self._postgresql = self.url.get_backend_name() == "postgresql"
        #: Where the store is, for messages: the file, or the URL without its password.
        self.where = self._describe()
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        #: Lease renewals' own connections on a server (see :meth:`_lease_write`).
        self._lease_engine: AsyncEngine | None = None
        # SQLite has one writer at a time. On a server, writes of one evidence chain wait for
        # each other in the database anyway: more at once than WRITERS would only hold pool
        # connections idle (a burst of hundreds of runs writing would exhaust the pool, and a
        # write would fail after the pool's timeout instead of waiting its turn here).
        self._write_lock: AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self._sqlite else asyncio.Semaphore(self.WRITERS)
        )
        self._upgrade_schema = upgrade_schema
        #: Who holds the leases of the runs claimed or taken over through this store.
        self.holder = holder or LeaseHolder()
        #: The schema's revisions as opening found and left them (set by ``async with``).
        self.schema: SchemaState | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> EvidenceStore:
        path = self._sqlite_file()
        if path is not None:
            await asyncio.to_thread(self._check_sqlite_file, path)
        engine = self._create_engine()
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITES: True})
        try:
            async with self._write_lock:
                schema = await prepare_store(self._writer, self.where, upgrade=self._upgrade_schema)
        except BaseException as exc:
            self._engine = self._writer = None
            await engine.dispose()
            if isinstance(exc, DBAPIError | OSError):
                raise StoreError(self._cannot_open(exc)) from exc
            raise
        self.schema = schema
        if not self._sqlite:
            self._lease_engine = self._create_engine(pool_size=1, max_overflow=1)
        if schema.created:
            self._logger.info(
                "evidence store created",
                extra={"store": self.where, "schema_revision": schema.revision},
            )
        elif schema.upgraded:
            self._logger.info(
                "evidence store migrated",
                extra={
                    "store": self.where,
                    "from_revision": schema.found,
                    "schema_revision": schema.revision,
                },
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        engine, self._engine, self._writer = self._engine, None, None
        lease_engine, self._lease_engine = self._lease_engine, None
        for each in (lease_engine, engine):
            if each is not None:
                await each.dispose()

    def _sqlite_file(self) -> Path | None:
        """The database file of a SQLite URL; None for in-memory databases and other servers."""
        database = self.url.database
        if not self._sqlite or not database or database == ":memory:":
            return None
        return None if database.startswith("file:") else Path(database)

    def _describe(self) -> str:
        path = self._sqlite_file()
        if path is not None:
            return str(path.resolve())
        query = {
            name: _MASK if _SECRET_PARAMETER.search(name) else value
            for name, value in self.url.query.items()
        }
        return self.url.set(query=query).render_as_string(hide_password=True)

    def _cannot_open(self, exc: DBAPIError | OSError) -> str:
        """Why the store could not be opened, and what to do, without the URL's secrets."""
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        reason = self._scrub(cause).rstrip(".")
        prefix = f"cannot open the evidence store {self.where}: {reason}."
        if self._sqlite:
            return f"{prefix} Check that the location exists and is writable (monitor.store_url)."
        user, database = self.url.username or "(none)", self.url.database or "(none)"
        server = f"{self.url.host or 'localhost'}:{self.url.port or 'default port'}"
        sqlstate = str(getattr(cause, "sqlstate", "") or "")
        if isinstance(exc, OSError):
            hint = (
                f"The database server {server} cannot be reached: check the host and port in "
                "monitor.store_url, that the server is running, and that it accepts TCP "
                "connections from this host (listen_addresses, pg_hba.conf, firewalls)."
            )
        elif sqlstate.startswith("28"):  # invalid authorization: password, user, pg_hba.conf
            hint = (
                f"The server refused user {user!r}: check the user name and password in "
                "monitor.store_url (write the password as ${VAR} and export VAR; %-encode "
                "characters such as @ : / in it) and that pg_hba.conf lets the user in."
            )
        elif sqlstate == "3D000":  # invalid catalog name
            hint = (
                f"Create the database (CREATE DATABASE {database} OWNER {user}) or correct its "
                "name in monitor.store_url."
            )
        elif sqlstate == "42501":  # insufficient privilege
            hint = (
                f"User {user!r} may not create or use the store's tables: make it the owner of "
                f"the database (ALTER DATABASE {database} OWNER TO {user}) or grant it CREATE "
                "on the schema."
            )
        else:
            hint = "Check monitor.store_url and the database server's log."
        return f"{prefix} {hint}"

    def _scrub(self, exc: BaseException) -> str:
        """A driver's error text for a message, with the URL's secrets masked in case it
        quotes them."""
        text = str(exc)
        secrets = [self.url.password or ""] + [
            value
            for name, values in self.url.query.items()
            if _SECRET_PARAMETER.search(name)
            for value in ([values] if isinstance(values, str) else values)
        ]
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, _MASK)
        return text

    def _check_sqlite_file(self, path: Path) -> None:
        """Create the file's directory and open the file once, synchronously.

        An unusable location is reported here rather than by aiosqlite, whose failed connect
        leaves its worker thread to report back to an event loop that may be gone by then.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory of the evidence store {self.where}: {exc}. "
                "Point monitor.store_url at a writable location."
            ) from exc
        try:
            with contextlib.closing(sqlite3.connect(path)) as probe:
                probe.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the evidence store {self.where}: {exc}. Check that the "
                "location is a SQLite file (or does not exist yet) and is writable "
                "(monitor.store_url)."
            ) from exc

    def _create_engine(self, **pool: int) -> AsyncEngine:
        try:
            # A server's connections can be dropped under the pool (a restart, a failover, an
            # idle timeout): test each before use. SQLite has no server.
            engine = create_async_engine(self.url, pool_pre_ping=not self._sqlite, **pool)
        except (ArgumentError, InvalidRequestError, NoSuchModuleError, ImportError) as exc:
            raise StoreError(
                f"monitor.store_url {self.where}: {self._scrub(exc)}. Use an async driver, e.g. "
                "sqlite+aiosqlite:///path/cxprobe.db or postgresql+asyncpg://host/dbname "
                "(with asyncpg installed)."
            ) from exc
        if self._sqlite:
            _configure_sqlite(engine)
        return engine

    # -- transactions ----------------------------------------------------------------------

    #: How long a write waits for a database server it cannot reach (restarting, failing
    #: over) before it fails, and the first and the longest wait between its attempts.
    WRITE_RECONNECT_SECONDS = 30.0
    #: Writes in flight at once on a database server (the pool holds 5 connections, and
    #: up to 10 more on demand: reads and lease renewals keep connections of their own).
    WRITERS = 4
    _RECONNECT_FIRST_WAIT = 0.1
    _RECONNECT_LONGEST_WAIT = 2.0

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self._writer is None:
            raise StoreError("the evidence store is not open: use it as `async with`")
        async with self._write_lock:
            conn = await self._connect_for_write(self._writer)
            try:
                async with conn.begin():
                    yield conn
            finally:
                await asyncio.shield(conn.close())

    @asynccontextmanager
    async def _lease_write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for renewing leases. On a server it runs on connections of its own,
        so that a renewal never queues behind the run and evidence writes of a busy monitor
        (hundreds of runs just taken over, all writing) for longer than a lease lasts: that
        queue would let this monitor's leases lapse while it is alive, and two monitors
        would take each other's runs back and forth. SQLite serialises every writer anyway."""
        if self._lease_engine is None:
            async with self._write() as conn:
                yield conn
            return
        conn = await self._connect_waiting(self._lease_engine, "the lease renewal waits for it")
        try:
            async with conn.begin():
                yield conn
        finally:
            await asyncio.shield(conn.close())

    async def _connect_for_write(self, writer: AsyncEngine) -> AsyncConnection:
        """A connection to write on. While the database server cannot be reached (a restart
        drops every connection and refuses new ones for a while), the write waits for it,
        with back-off, for up to ``WRITE_RECONNECT_SECONDS``: a reply or an outcome that
        comes meanwhile is stored once the server is back instead of being lost with its
        run. Pooled connections the restart dropped are replaced by the pre-ping."""
        return await self._connect_waiting(writer, "the write waits for it")

    async def _connect_waiting(self, engine: AsyncEngine, waiting: str) -> AsyncConnection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.WRITE_RECONNECT_SECONDS
        wait = self._RECONNECT_FIRST_WAIT
        while True:
            try:
                return await engine.connect().start()
            except (DBAPIError, OSError) as exc:
                if self._sqlite or not _server_unreachable(exc) or loop.time() + wait > deadline:
                    raise
                self._logger.warning(
                    f"evidence store unreachable; {waiting}",
                    extra={"store": self.where, "error": self._scrub(exc), "retry_in": wait},
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, self._RECONNECT_LONGEST_WAIT)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection to read on; like a write, a read waits for a server that is
        restarting (what the runner reads before a claim, e.g. maintenance windows and
        opt-outs, must not turn a short outage into a slot that never started)."""
        if self._engine is None:
            raise StoreError("the evidence store is not open: use it as `async with`")
        conn = await self._connect_waiting(self._engine, "the read waits for it")
        try:
            yield conn
        finally:
            await asyncio.shield(conn.close())

    # -- writing ---------------------------------------------------------------------------

    async def claim_slot(
        self,
        result: RunResult,
        *,
        max_contacts: int | None = None,
        since: datetime | None = None,
        cost: ContactCost | None = None,
    ) -> Claim:
        """Record the slot (of the run's check at the run's location) and the open run.

        Nothing is written when the slot was claimed before (``TAKEN``, which wins), or when
        ``max_contacts`` is given and that many contacts to the run's target on its channel,
        from any location, were sent at or after ``since`` or are in flight
        (``OVER_BUDGET``; see :meth:`count_contacts_since`). Check, count and insert are one
        write transaction, serialised with every other claim on the database, so claims made
        at once cannot all see the same count and all send.

        ``cost`` is the contact's estimated cost, recorded on the run and checked against its
        money budget windows in the same transaction (:mod:`cxprobe.store.budgets`): if it
        would take one over its limit, the slot is recorded with a closed, sealed run whose
        outcome is ``skipped`` (``SKIPPED``; ``result`` gets that outcome, the reason naming
        the budget, and its finish time) and nothing may be sent.
        """
        if max_contacts is not None and since is None:
            raise ValueError("claim_slot(max_contacts=...) needs since= (the budget's start)")
        now = _now()
        try:
            claim = await self._claim_and_insert(result, max_contacts, since, cost, now)
        except IntegrityError as exc:
            # Without a budget, PostgreSQL claims of one slot race to the unique (check,
            # location, slot) key, the arbiter between processes; any other violation (a reused
            # run id or token) is a bug in the caller.
            if not await self._slot_claimed(result.check_id, result.location, result.slot):
                raise StoreError(
                    f"cannot claim slot {result.slot.isoformat()} of check {result.check_id!r}: "
                    f"run id {result.run_id!r} or token {result.token!r} is already in the "
                    f"evidence store {self.where} (each run needs a new id and token)"
                ) from exc
            claim = Claim.TAKEN
        if claim is not Claim.CLAIMED:
            self._logger.debug(
                "slot not claimed",
                extra={
                    "check": result.check_id,
                    "location": result.location,
                    "slot": result.slot.isoformat(),
                    "claim": str(claim),
                },
            )
        return claim

    async def _claim_and_insert(
        self,
        result: RunResult,
        max_contacts: int | None,
        since: datetime | None,
        cost: ContactCost | None,
        now: datetime,
    ) -> Claim:
        """The claim's write transaction: budget locks, checks, and the run and slot rows."""
        async with self._write() as conn:
            await self._lock_budgets(conn, result, max_contacts, cost)
            claim = await _claim_in(conn, result, max_contacts, since)
            over = None
            if claim is Claim.CLAIMED and cost is not None and cost.windows:
                over = exceeded(await spends(conn, cost.windows), cost.amount)
            if claim is not Claim.CLAIMED:
                return claim
            row = _open_run_row(result, now) | _cost_columns(cost)
            if over is None:
                leased = lease_columns(self.holder, await database_now(conn))
                await conn.execute(insert(runs).values(row | leased))
            else:
                await conn.execute(insert(runs).values(row | _skipped_columns(over, now)))
            await conn.execute(
                insert(slots).values(
                    check_id=result.check_id,
                    location=result.location,
                    slot_at=result.slot,
                    claimed_at=now,
                    run_id=result.run_id,
                )
            )
            if over is not None:
                await conn.run_sync(
                    lambda sync: seal_run(sync, result.run_id, note="finished: skipped", now=now)
                )
        if over is None:
            return claim
        # Committed: the caller's result is the closed run now.
        result.outcome, result.reason, result.finished_at = Outcome.SKIPPED, skip_reason(over), now
        return Claim.SKIPPED

    async def _lock_budgets(
        self,
        conn: AsyncConnection,
        result: RunResult,
        max_contacts: int | None,
        cost: ContactCost | None,
    ) -> None:
        """PostgreSQL: lock the contact quota and every money budget the claim involves, in
        ascending key order (the one order everywhere: monitors never deadlock). SQLite's
        writes are serialised already (BEGIN IMMEDIATE); PostgreSQL's are not, and a count or
        a sum cannot lock rows that do not exist yet."""
        if not self._postgresql:
            return
        keys = budget_lock_keys(cost.windows) if cost is not None else set()
        if max_contacts is not None:
            keys.add(contact_quota_lock_key(result.target, result.channel))
        for key in sorted(keys):
            await conn.execute(select(func.pg_advisory_xact_lock(key)))

    async def budget_spends(self, cost: ContactCost) -> list[WindowSpend]:
        """What is spent now in each of ``cost``'s budget windows (for the metrics)."""
        async with self._read() as conn:
            return await spends(conn, cost.windows)

    async def record_actual_cost(self, run_id: str, amount: float, currency: str) -> bool:
        """The provider's price of the run's contact replaces its estimate in the budgets;
        False (nothing written) when the run's cost is in another currency. Costs are not
        part of the sealed record (the outbound message's evidence carries the price)."""
        async with self._write() as conn:
            updated = await conn.execute(
                update(runs)
                .where(
                    runs.c.run_id == run_id,
                    or_(runs.c.currency.is_(None), runs.c.currency == currency),
                )
                .values(actual_cost=money(amount), currency=currency)
            )
        return bool(updated.rowcount)

    async def runs_awaiting_price(
        self, since: datetime, *, run_id: str | None = None, limit: int = 500
    ) -> list[AwaitingPrice]:
        """Closed runs claimed at or after ``since`` (only ``run_id``, when given) whose
        contact was sent on a priced channel and whose provider price is not known yet,
        newest first (a provider that never rates some contacts cannot starve the others)."""
        query = (
            select(runs.c.run_id, runs.c.channel, runs.c.sent_external_id, runs.c.currency)
            .where(
                runs.c.status == CLOSED,
                runs.c.created_at >= since,
                runs.c.sent_external_id.is_not(None),
                runs.c.estimated_cost.is_not(None),
                runs.c.actual_cost.is_(None),
            )
            .order_by(runs.c.created_at.desc())  # newest first: the likeliest to be rated by now
            .limit(limit)
        )
        if run_id is not None:
            query = query.where(runs.c.run_id == run_id)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [AwaitingPrice(row.run_id, row.channel, row.sent_external_id) for row in rows]

    async def run_costs(self, run_id: str) -> RunCost | None:
        """The run's estimated and actual cost, currency and account."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(
                        runs.c.estimated_cost,
                        runs.c.actual_cost,
                        runs.c.currency,
                        runs.c.cost_account,
                    ).where(runs.c.run_id == run_id)
                )
            ).first()
        return None if row is None else RunCost(*row)

    async def record_sent(self, run_id: str, sent: Sent, expected_queue: str | None) -> None:
        """The channel accepted the contact: t0, its external id, resume state, evidence."""
        async with self._write() as conn:
            await self._lock_run(conn, run_id)
            await conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(
                    sent_at=sent.at,
                    sent_external_id=sent.external_id,
                    resume_state=dict(sent.resume_state),
                    expected_queue=expected_queue,
                )
            )
            await _insert_outgoing(conn, run_id, sent)
            await _amend_if_closed(conn, run_id, "contact recorded after the run was sealed")

    async def record_follow_up(
        self, run_id: str, sent: Sent, turn: Mapping[str, Any] | None = None
    ) -> None:
        """A further message the probe sent in the run's conversation, with its evidence;
        ``turn``: the record of a conversation turn (None: a chaser)."""
        async with self._write() as conn:
            await self._lock_run(conn, run_id)
            await _insert_outgoing(conn, run_id, sent, turn)
            await _amend_if_closed(conn, run_id, "follow-up recorded after the run was sealed")

    async def record_artifacts(self, run_id: str, evidence: Sequence[Evidence]) -> None:
        """Evidence of the run as a whole (a chat transcript, a final screenshot)."""
        if not evidence:
            return
        async with self._write() as conn:
            await self._lock_run(conn, run_id)
            for piece in evidence:
                await _insert_artifact(conn, run_id, None, piece)
            await _amend_if_closed(conn, run_id, "evidence added after the run was sealed")

    async def save_channel_state(self, channel: str, key: str, value: Mapping[str, Any]) -> None:
        """Keep a channel driver's state (JSON-ready) under ``key``, replacing what was there."""
        row = {"value": dict(value), "updated_at": datetime.now(UTC)}
        # One statement (an upsert): monitors saving a new key at once must not both insert.
        dialect_insert = postgresql_insert if self._postgresql else sqlite_insert
        upsert = dialect_insert(channel_state).values(channel=channel, key=key, **row)
        upsert = upsert.on_conflict_do_update(
            index_elements=[channel_state.c.channel, channel_state.c.key], set_=row
        )
        async with self._write() as conn:
            await conn.execute(upsert)

    async def hold_pair(self, channel: str, pair: str, token: str) -> str | None:
        """Take a channel's pair (a probe id and a brand id, as one key) for the run of
        ``token``, for every monitor on this store. None when it is now that run's; else the
        token of the open run that holds it (:mod:`cxprobe.store.pairs`)."""
        async with self._write() as conn:
            return await pairs.hold(
                conn, channel, pair, token, datetime.now(UTC), postgresql=self._postgresql
            )

    async def release_pair(self, channel: str, pair: str, token: str) -> bool:
        """Give up a pair the run of ``token`` holds (False: it held none)."""
        async with self._write() as conn:
            return await pairs.release(conn, channel, pair, token)

    async def load_channel_state(self, channel: str, key: str) -> dict[str, Any] | None:
        where = (channel_state.c.channel == channel) & (channel_state.c.key == key)
        async with self._read() as conn:
            value = (await conn.execute(select(channel_state.c.value).where(where))).scalar()
        return None if value is None else dict(value)

    async def record_reply(self, run_id: str, reply: Reply, observed: ObservedReply) -> bool:
        """Store a reply and its raw evidence; False if this reply was stored before. Either
        way the reply is released (:meth:`Reply.release`: its spool file's hold); a failure
        keeps the hold, so the spooled reply outlives the process and is stored later."""
        external_id = reply.external_id or _content_key(reply)
        try:
            async with self._write() as conn:
                await self._lock_run(conn, run_id)
                if await _message_id(conn, run_id, IN, external_id) is not None:
                    reply.release()  # stored before
                    return False
                inserted = await conn.execute(
                    insert(messages).values(
                        run_id=run_id,
                        direction=IN,
                        external_id=external_id,
                        observed_at=observed.observed_at,
                        arrived_at=observed.arrived_at,
                        timing_method=reply.timing_method,
                        seconds=observed.seconds,
                        sender=observed.sender,
                        responder=str(observed.responder),
                        channel_responder=str(reply.responder),
                        subject=reply.subject,
                        text=reply.text,
                        headers=dict(reply.headers),
                        late=observed.late,
                        qualifies=observed.qualifies,
                        queue=observed.queue,
                    )
                )
                if reply.evidence is not None:
                    message_id = _inserted_id(inserted)
                    await _insert_artifact(conn, run_id, message_id, reply.evidence)
                await _amend_if_closed(conn, run_id, f"reply recorded after sealing: {external_id}")
        except IntegrityError:
            # Another process stored the same reply between our check and insert (PostgreSQL).
            if await self._message_stored(run_id, IN, external_id):
                reply.release()
                return False
            raise
        reply.release()  # stored: its spool file, if any, is no longer needed
        return True

    async def finish(self, result: RunResult) -> None:
        """Close the run with its final figures, outcome, reason and the channel's measures,
        and seal it in the chain (one transaction: a closed run is always sealed; finishing it
        again amends)."""
        if result.outcome is None:
            raise ValueError(f"run {result.run_id}: finish() needs an outcome")
        await self._update(
            result,
            f"finished: {result.outcome}",
            outcome=str(result.outcome),
            reason=result.reason,
            finished_at=result.finished_at or _now(),
            status=CLOSED,
        )

    async def update_figures(self, result: RunResult) -> None:
        """Rewrite the run's figures (a late reply to a closed run); status and outcome stay.
        A sealed run that changes gets an amendment entry."""
        await self._update(result, "figures revised after sealing")

    async def _update(self, result: RunResult, note: str, **values: Any) -> None:
        async with self._write() as conn:
            await self._lock_run(conn, result.run_id)
            await conn.execute(
                update(runs).where(runs.c.run_id == result.run_id).values(_figures(result) | values)
            )
            await _replace_measures(conn, result)
            await _amend_if_closed(conn, result.run_id, note)

    # -- evidence chain, exports, retention --------------------------------------------------

    async def chain_head(self) -> tuple[int, str]:
        """The latest chain entry's ``(seq, entry_hash)``; ``(0, GENESIS)`` for an empty chain."""
        async with self._read() as conn:
            return await conn.run_sync(head)

    async def snapshot(
        self, scope: Scope, checks: Mapping[str, tuple[str, str]] | None = None
    ) -> Snapshot:
        """Everything an export of ``scope`` holds, read in one transaction (a consistent
        view). ``checks`` maps check ids to (target, channel) for slots whose run is gone."""
        async with self._read() as conn:
            if self._postgresql:  # one snapshot for every statement (SQLite's WAL reader has it)
                await conn.execution_options(isolation_level="REPEATABLE READ")
            snapshot: Snapshot = await conn.run_sync(take_snapshot, scope, dict(checks or {}))
            return snapshot

    async def record_export(self, export: ExportRecord) -> int:
        """Remember an export and the record hash of every sealed run it held (retention can
        then refuse to purge what was never exported). Returns the export's id."""
        async with self._write() as conn:
            return await conn.run_sync(record_export, export)

    async def purge(
        self, policy: PurgePolicy, *, now: datetime | None = None, dry_run: bool = False
    ) -> PurgeReport:
        """Delete the closed runs ``policy`` says are past retention, with their messages and
        evidence, and record them (ids and record hashes) as purge entries of the chain. Slots
        stay (a purged run's slot is listed as a gap explained by the purge)."""
        async with self._write() as conn:
            report: PurgeReport = await conn.run_sync(purge_runs, policy, now or _now(), dry_run)
            return report

    async def runs_between(
        self,
        start: datetime,
        end: datetime,
        *,
        targets: Sequence[str] = (),
        channels: Sequence[str] = (),
    ) -> list[RunResult]:
        """Runs whose slot lies in [start, end), with their replies, oldest slot first."""
        query = select(runs).where(runs.c.slot_at >= start, runs.c.slot_at < end)
        if targets:
            query = query.where(runs.c.target.in_(list(targets)))
        if channels:
            query = query.where(runs.c.channel.in_(list(channels)))
        async with self._read() as conn:
            rows = (await conn.execute(query.order_by(runs.c.slot_at, runs.c.run_id))).all()
            return await _with_replies(conn, rows)

    # -- reading ---------------------------------------------------------------------------

    async def open_runs(
        self, *, location: str | None = None, run_ids: Collection[str] | None = None
    ) -> list[OpenRun]:
        """Runs not closed yet, oldest slot first; only those of ``location`` and among
        ``run_ids`` when given (see :meth:`take_over_leases`)."""
        query = select(runs).where(runs.c.status == OPEN)
        if location is not None:
            query = query.where(runs.c.location == location)
        if run_ids is not None:
            wanted = list(run_ids)
            query = query.where(or_(*(runs.c.run_id.in_(chunk) for chunk in in_chunks(wanted))))
        async with self._read() as conn:
            rows = (await conn.execute(query.order_by(runs.c.slot_at, runs.c.created_at))).all()
            results = await _with_replies(conn, rows)
        return [
            OpenRun(
                result=result,
                sent_external_id=row.sent_external_id,
                resume_state=dict(row.resume_state or {}),
            )
            for row, result in zip(rows, results, strict=True)
        ]

    # -- leases ----------------------------------------------------------------------------

    async def renew_leases(self, driven: Collection[str]) -> Renewal:
        """Extend this process's leases; say which of the runs it drives (``driven``) another
        monitor has taken over (:func:`cxprobe.store.leases.renew`)."""
        async with self._lease_write() as conn:
            return await renew(conn, self.holder, driven)

    async def take_over_leases(self, location: str, *, reclaim_own: bool = False) -> list[OpenRun]:
        """Lease to this process the open runs of ``location`` no live monitor holds, and
        return them to be resumed (:func:`cxprobe.store.leases.take_over`)."""
        async with self._write() as conn:
            taken = await take_over(conn, self.holder, location, reclaim_own=reclaim_own)
        for run in taken:
            self._logger.info(
                "run lease taken over",
                extra={
                    "run_id": run.run_id,
                    "previous_owner": run.previous_owner,
                    "lease_expired_at": run.expired_at.isoformat() if run.expired_at else None,
                },
            )
        if not taken:
            return []
        return await self.open_runs(run_ids=[run.run_id for run in taken])

    async def check_lease(self, run_id: str) -> None:
        """Raise :class:`LeaseLostError` if the run is open and leased to another process
        (before a send, which no transaction can fence)."""
        async with self._read() as conn:
            found = await conn.execute(
                select(
                    runs.c.run_id, runs.c.status, runs.c.lease_owner, runs.c.lease_session
                ).where(runs.c.run_id == run_id)
            )
            row = found.first()
        if row is None:
            raise UnknownRunError(f"no run {run_id!r} in the evidence store {self.where}")
        check_lease(row, self.holder)

    async def release_leases(self) -> int:
        """End this process's leases now (it is stopping); returns how many it held."""
        async with self._write() as conn:
            return await release(conn, self.holder)

    async def find_run_by_thread_keys(self, keys: Iterable[str]) -> RunResult | None:
        """The run whose contact's external id or token is among ``keys`` (exact match);
        an external-id match wins over a token match, then the newest slot."""
        wanted = [key for key in dict.fromkeys(keys) if key]
        if not wanted:
            return None
        async with self._read() as conn:
            by_id = or_(*(runs.c.sent_external_id.in_(chunk) for chunk in in_chunks(wanted)))
            by_token = or_(*(runs.c.token.in_(chunk) for chunk in in_chunks(wanted)))
            row = (
                await conn.execute(
                    select(runs)
                    .where(or_(by_id, by_token))
                    .order_by(case((by_id, 0), else_=1), runs.c.slot_at.desc())
                    .limit(1)
                )
            ).first()
            return None if row is None else (await _with_replies(conn, [row]))[0]

    async def load_run(self, run_id: str) -> RunResult | None:
        async with self._read() as conn:
            row = (await conn.execute(select(runs).where(runs.c.run_id == run_id))).first()
            return None if row is None else (await _with_replies(conn, [row]))[0]

    async def recent_runs(
        self, limit: int = 50, *, check_id: str | None = None, target: str | None = None
    ) -> list[RunResult]:
        """The latest runs, newest slot first (open runs included, with outcome None)."""
        query = select(runs).order_by(runs.c.slot_at.desc(), runs.c.created_at.desc())
        if check_id is not None:
            query = query.where(runs.c.check_id == check_id)
        if target is not None:
            query = query.where(runs.c.target == target)
        async with self._read() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
            return await _with_replies(conn, rows)

    async def count_contacts_since(self, target: str, channel: str, since: datetime) -> int:
        """Contacts to ``target`` on ``channel`` from any location: sent at or after ``since``,
        or in flight (claimed at or after ``since``, still open, not sent yet). The count a
        budgeted :meth:`claim_slot` compares with ``max_contacts``."""
        async with self._read() as conn:
            return int((await conn.execute(_contacts_since(target, channel, since))).scalar_one())

    async def messages(self, run_id: str) -> list[StoredMessage]:
        """The run's contact and replies in arrival order, each with its evidence's digest."""
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(messages)
                    .where(messages.c.run_id == run_id)
                    .order_by(messages.c.arrived_at, messages.c.id)
                )
            ).all()
            stored = await self._artifacts(conn, run_id)
        by_message: dict[int | None, list[StoredArtifact]] = {}
        for artifact in stored:
            by_message.setdefault(artifact.message_id, []).append(artifact)
        return [
            StoredMessage(
                id=row.id,
                run_id=row.run_id,
                direction=row.direction,
                external_id=row.external_id,
                observed_at=row.observed_at,
                arrived_at=row.arrived_at,
                timing_method=row.timing_method,
                seconds=row.seconds,
                sender=row.sender,
                responder=row.responder,
                channel_responder=row.channel_responder,
                subject=row.subject,
                text=row.text,
                headers=row.headers,
                late=row.late,
                queue=row.queue,
                artifacts=tuple(by_message.get(row.id, ())),
                turn=row.turn,
            )
            for row in rows
        ]

    async def artifacts(self, run_id: str) -> list[StoredArtifact]:
        """Every piece of evidence of the run (its contact's and its replies'), as stored."""
        async with self._read() as conn:
            return await self._artifacts(conn, run_id)

    async def artifact_content(self, artifact_id: int) -> bytes | None:
        """The artifact's bytes whole (None: no such artifact); see :meth:`artifact_pieces`
        for large ones."""
        pieces = [piece async for piece in self.artifact_pieces(artifact_id)]
        if not pieces:
            async with self._read() as conn:
                found = await conn.execute(
                    select(artifacts.c.id).where(artifacts.c.id == artifact_id)
                )
                return b"" if found.scalar_one_or_none() is not None else None
        return b"".join(pieces)

    async def artifact_pieces(self, artifact_id: int) -> AsyncIterator[bytes]:
        """The artifact's bytes in order, one stored piece (at most 1 MiB for spooled
        evidence) in memory at a time: its ``content``, then its chunks. Nothing for an
        unknown artifact or an empty one."""
        async with self._read() as conn:
            content = (
                await conn.execute(select(artifacts.c.content).where(artifacts.c.id == artifact_id))
            ).scalar_one_or_none()
            if content:
                yield content
            seqs = (
                await conn.execute(
                    select(artifact_chunks.c.seq)
                    .where(artifact_chunks.c.artifact_id == artifact_id)
                    .order_by(artifact_chunks.c.seq)
                )
            ).scalars()
            for seq in list(seqs):
                piece = (
                    await conn.execute(
                        select(artifact_chunks.c.content).where(
                            artifact_chunks.c.artifact_id == artifact_id,
                            artifact_chunks.c.seq == seq,
                        )
                    )
                ).scalar_one()
                yield piece

    # -- helpers ---------------------------------------------------------------------------

    # -- courtesy: maintenance windows and opt-outs (cxprobe.store.courtesy) ------------------

    async def add_maintenance(self, window: MaintenanceWindow, *, created_by: str) -> int:
        """Declare ``window`` (``cxprobe maintenance add``); returns its id."""
        async with self._write() as conn:
            return await courtesy.insert_window(conn, window, created_by, _now())

    async def maintenance_windows(self, *, include_ended: bool = False) -> list[DeclaredWindow]:
        """Windows declared in the store, oldest first; ended ones only when asked."""
        async with self._read() as conn:
            return await courtesy.select_windows(conn, include_ended=include_ended)

    async def end_maintenance(self, window_id: int, *, at: datetime | None = None) -> bool:
        """End a stored window now (every later opening of a recurring one too); False when
        there is no such window still in force."""
        async with self._write() as conn:
            return await courtesy.end_window(conn, window_id, at or _now())

    async def record_opt_out(self, opt_out: OptOut) -> bool:
        """Pause contacts to ``opt_out``'s target on its channel; False if already paused."""
        async with self._write() as conn:
            return await courtesy.insert_opt_out(conn, opt_out)

    async def active_opt_out(self, target: str, channel: str) -> OptOut | None:
        async with self._read() as conn:
            return await courtesy.active_opt_out(conn, target, channel)

    async def opt_outs(self, *, include_cleared: bool = False) -> list[OptOut]:
        async with self._read() as conn:
            return await courtesy.select_opt_outs(conn, include_cleared=include_cleared)

    async def clear_opt_outs(self, target: str, channel: str | None, *, by: str) -> int:
        """Re-enable contacts to ``target`` (on ``channel``, or every channel); how many
        opt-outs were cleared. The rows stay, cleared, as the record."""
        async with self._write() as conn:
            return await courtesy.clear_opt_outs(conn, target, channel, by, _now())

    async def _lock_run(self, conn: AsyncConnection, run_id: str) -> None:
        """Lock the run's row until the transaction ends, before adding to its content.

        Sealing a run reads its messages and artifacts in several statements; on PostgreSQL
        (READ COMMITTED) another monitor's reply committed between them would be half in the
        seal, or missing from it with no amendment. Every writer of a run's content locks its
        row first (finishing updates it, which locks it too), so they take turns. SQLite's
        writes are serialised already (SQLAlchemy omits FOR UPDATE there).

        An open run leased to another monitor process is refused (:class:`LeaseLostError`):
        this process was paused or cut off past its lease and must no longer write to it.
        """
        found = await conn.execute(
            select(runs.c.run_id, runs.c.status, runs.c.lease_owner, runs.c.lease_session)
            .where(runs.c.run_id == run_id)
            .with_for_update()
        )
        row = found.first()
        if row is None:
            raise UnknownRunError(f"no run {run_id!r} in the evidence store {self.where}")
        check_lease(row, self.holder)

    async def _artifacts(self, conn: AsyncConnection, run_id: str) -> list[StoredArtifact]:
        rows = await conn.execute(
            select(
                artifacts.c.id,
                artifacts.c.run_id,
                artifacts.c.message_id,
                artifacts.c.kind,
                artifacts.c.media_type,
                artifacts.c.sha256,
                artifacts.c.size,
                artifacts.c.created_at,
            )
            .where(artifacts.c.run_id == run_id)
            .order_by(artifacts.c.id)
        )
        return [StoredArtifact(**row._asdict()) for row in rows]

    async def _slot_claimed(self, check_id: str, location: str, slot: datetime) -> bool:
        async with self._read() as conn:
            return await _slot_taken(conn, check_id, location, slot)

    async def _message_stored(self, run_id: str, direction: str, external_id: str) -> bool:
        async with self._read() as conn:
            return await _message_id(conn, run_id, direction, external_id) is not None


# -- module helpers (no state) -----------------------------------------------------------------


def _server_unreachable(exc: DBAPIError | OSError) -> bool:
    """The database server could not be reached or dropped the connection (connection
    refused or reset, SQLSTATE class 08, or 57P: shutting down, starting up), as opposed to
    a write it refused."""
    if isinstance(exc, OSError) or exc.connection_invalidated:
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    return sqlstate.startswith(("08", "57P")) or isinstance(exc.orig, OSError)


def _enable_wal(cursor: Any) -> None:
    """Switch the database to WAL (it stays so: later connections find it already set).

    The switch needs the database to itself, and SQLite answers "database is locked" at once,
    without its busy handler, when another connection is switching or creating the same new
    file (monitors starting together on a new store). That race lasts milliseconds and happens
    only on a new database, so retry briefly within the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, durability, foreign keys and a busy timeout on every connection; and BEGIN issued
    by SQLAlchemy (IMMEDIATE for writers) instead of by the sqlite3 module, which would start
    transactions late and turn a read-then-write into a "database is locked" error."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get(_WRITES, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _now() -> datetime:
    return datetime.now(UTC)


async def _amend_if_closed(conn: AsyncConnection, run_id: str, note: str) -> ChainEntry | None:
    """Seal the run again after a change (an amendment) if it was closed, i.e. sealed before;
    an open run is sealed when it finishes. Nothing is added when its content is unchanged."""
    status = await conn.execute(select(runs.c.status).where(runs.c.run_id == run_id))
    if status.scalar_one_or_none() != CLOSED:
        return None
    now = _now()
    entry: ChainEntry | None = await conn.run_sync(
        lambda sync: seal_run(sync, run_id, note=note, now=now)
    )
    return entry


def _redact_url_text(url: str) -> str:
    """URL text that may not parse, with its password (and user name, when they cannot be
    told apart from the scheme) masked; for error messages."""
    return _URL_PASSWORD.sub(lambda found: f"{found['user']}:{_MASK}@", url)


async def _slot_taken(conn: AsyncConnection, check_id: str, location: str, slot: datetime) -> bool:
    found = await conn.execute(
        select(slots.c.check_id).where(
            slots.c.check_id == check_id, slots.c.location == location, slots.c.slot_at == slot
        )
    )
    return found.first() is not None


def _contacts_since(target: str, channel: str, since: datetime) -> Select[int]:
    """Count contacts to ``target`` on ``channel`` sent at or after ``since``, or in flight:
    claimed at or after ``since`` and neither sent nor closed yet (a run that died before
    sending ages out with its claim)."""
    in_flight = and_(runs.c.sent_at.is_(None), runs.c.status == OPEN, runs.c.created_at >= since)
    return (
        select(func.count())
        .select_from(runs)
        .where(
            runs.c.target == target,
            runs.c.channel == channel,
            or_(runs.c.sent_at >= since, in_flight),
        )
    )


async def _claim_in(
    conn: AsyncConnection, result: RunResult, max_contacts: int | None, since: datetime | None
) -> Claim:
    """Whether ``result`` may claim its slot, read inside the claiming transaction; a taken
    slot is reported before a spent budget."""
    if await _slot_taken(conn, result.check_id, result.location, result.slot):
        return Claim.TAKEN
    if max_contacts is not None and since is not None:
        contacts = await conn.execute(_contacts_since(result.target, result.channel, since))
        if contacts.scalar_one() >= max_contacts:
            return Claim.OVER_BUDGET
    return Claim.CLAIMED


def _cost_columns(cost: ContactCost | None) -> dict[str, Any]:
    """The cost columns of a run claimed with ``cost`` (none for a free contact)."""
    if cost is None or not cost.priced:
        return {}
    return {
        "estimated_cost": money(cost.amount),
        "currency": cost.currency,
        "cost_account": cost.account or None,
    }


def _skipped_columns(over: WindowSpend, now: datetime) -> dict[str, Any]:
    """A run closed at its claim, never sent, because of the budget window ``over``."""
    return {
        "status": CLOSED,
        "outcome": str(Outcome.SKIPPED),
        "reason": skip_reason(over),
        "finished_at": now,
    }


def _open_run_row(result: RunResult, now: datetime) -> dict[str, Any]:
    """The ``runs`` row of a run whose slot was just claimed (open, nothing answered yet)."""
    return _figures(result) | {
        "run_id": result.run_id,
        "check_id": result.check_id,
        "target": result.target,
        "channel": result.channel,
        "scenario": result.scenario,
        "location": result.location,
        "slot_at": result.slot,
        "token": result.token,
        "status": OPEN,
        "period": str(result.period),
        "thresholds": result.thresholds.as_dict(),
        "sent_at": result.sent_at,
        "outcome": None,
        "reason": "",
        "created_at": now,
        "contact_mode": str(result.contact_mode),
        "slo_excluded": result.slo_excluded,
    }


async def _replace_measures(conn: AsyncConnection, result: RunResult) -> None:
    """The run's measures as the result holds them (a result loaded from the store holds the
    stored ones, so revising other figures keeps them)."""
    await conn.execute(delete(run_measures).where(run_measures.c.run_id == result.run_id))
    if result.measures:
        await conn.execute(
            insert(run_measures),
            [
                {"run_id": result.run_id, "name": name, "seconds": float(seconds)}
                for name, seconds in sorted(result.measures.items())
            ],
        )


def _figures(result: RunResult) -> dict[str, Any]:
    """The columns the engine may revise while a run is open or after it closed."""
    return {
        "expected_queue": result.expected_queue,
        "first_response_seconds": result.first_response_seconds,
        "first_response_responder": (
            None
            if result.first_response_responder is None
            else str(result.first_response_responder)
        ),
        "first_human_seconds": result.first_human_seconds,
        "routed_queue": result.routed_queue,
        "routing": str(result.routing),
        "answer": None if result.answer is None else str(result.answer),
        "resolved": result.resolved,
        "language": None if result.language is None else str(result.language),
        "reply_language": result.reply_language,
        "rubric_score": result.rubric_score,
        "rubric_items": (
            [item.as_dict() for item in result.rubric_items] if result.rubric_items else None
        ),
    }


async def _message_id(
    conn: AsyncConnection, run_id: str, direction: str, external_id: str
) -> int | None:
    found = await conn.execute(
        select(messages.c.id).where(
            messages.c.run_id == run_id,
            messages.c.direction == direction,
            messages.c.external_id == external_id,
        )
    )
    message_id: int | None = found.scalar_one_or_none()
    return message_id


async def _insert_artifact(
    conn: AsyncConnection, run_id: str, message_id: int | None, evidence: Evidence
) -> int:
    """The artifact row; a spooled file's bytes are copied into chunks (revision 0009)."""
    inserted = await conn.execute(
        insert(artifacts).values(
            run_id=run_id,
            message_id=message_id,
            kind=evidence.kind,
            media_type=evidence.media_type,
            sha256=evidence.sha256,
            size=evidence.size,
            content=evidence.content,
            created_at=_now(),
        )
    )
    artifact_id: int = _inserted_id(inserted)
    if evidence.file is not None:
        await _insert_chunks(conn, artifact_id, evidence.file)
    return artifact_id


async def _insert_chunks(conn: AsyncConnection, artifact_id: int, spooled: SpooledFile) -> None:
    """``spooled`` into chunks of :data:`SPOOL_READ_BYTES`, one in memory at a time, checked
    against the digest it was spooled with (a damaged file is refused, never stored)."""
    digest = hashlib.sha256()
    size = 0
    pieces = spooled.chunks(SPOOL_READ_BYTES)

    def read_and_hash() -> bytes | None:  # in a worker thread: off the event loop
        piece = next(pieces, None)
        if piece is not None:
            digest.update(piece)
        return piece

    try:
        for seq in itertools.count():
            piece = await asyncio.to_thread(read_and_hash)
            if piece is None:
                break
            size += len(piece)
            await conn.execute(
                insert(artifact_chunks).values(artifact_id=artifact_id, seq=seq, content=piece)
            )
    finally:
        pieces.close()
    if size != spooled.size or digest.hexdigest() != spooled.sha256:
        raise StoreError(
            f"the spool file {spooled.path} no longer matches what was received ({size} bytes, "
            f"sha256 {digest.hexdigest()}; received {spooled.size} bytes, sha256 "
            f"{spooled.sha256}): its evidence was not stored. Check the disk of the monitor's "
            "data_dir; the file is kept for inspection"
        )


def _inserted_id(inserted: CursorResult[Any]) -> int:
    key = inserted.inserted_primary_key
    if key is None:  # pragma: no cover - every table here has an autoincrement key
        raise StoreError("the database did not report the new row's id")
    new_id: int = key[0]
    return new_id


async def _insert_outgoing(
    conn: AsyncConnection, run_id: str, sent: Sent, turn: Mapping[str, Any] | None = None
) -> None:
    """A message the probe sent, with its evidence; once per external id (idempotent)."""
    if await _message_id(conn, run_id, OUT, sent.external_id) is not None:
        return
    headers = _rfc822_headers(sent.evidence)
    inserted = await conn.execute(
        insert(messages).values(
            run_id=run_id,
            direction=OUT,
            external_id=sent.external_id,
            observed_at=sent.at,
            arrived_at=sent.at,
            timing_method=sent.timing_method or SENT_TIMING,
            seconds=None,
            sender=headers.get("from", ""),
            responder=None,
            channel_responder=None,
            subject=headers.get("subject", ""),
            text=sent.text,
            headers=headers,
            late=None,
            queue=None,
            turn=None if turn is None else dict(turn),
        )
    )
    if sent.evidence is not None:
        await _insert_artifact(conn, run_id, _inserted_id(inserted), sent.evidence)


async def _with_replies(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[RunResult]:
    """Run rows as results, each with its replies (incoming messages) in arrival order."""
    results = [_result(row) for row in rows]
    by_id = {result.run_id: result for result in results}
    measures = await conn.run_sync(load_measures, list(by_id))
    for run_id, found in measures.items():
        by_id[run_id].measures = found
    for chunk in in_chunks(list(by_id)):
        replies = await conn.execute(
            select(messages)
            .where(messages.c.direction == IN, messages.c.run_id.in_(chunk))
            .order_by(messages.c.arrived_at, messages.c.id)
        )
        for reply in replies:
            by_id[reply.run_id].replies.append(
                ObservedReply(
                    arrived_at=reply.arrived_at,
                    observed_at=reply.observed_at,
                    seconds=reply.seconds,
                    responder=Responder(reply.responder),
                    sender=reply.sender,
                    queue=reply.queue,
                    late=bool(reply.late),
                    external_id=reply.external_id,
                    qualifies=reply.qualifies,
                )
            )
    return results


def _result(row: Row[Any]) -> RunResult:
    thresholds: Mapping[str, Any] = row.thresholds
    return RunResult(
        run_id=row.run_id,
        check_id=row.check_id,
        target=row.target,
        channel=row.channel,
        scenario=row.scenario,
        location=row.location,
        slot=row.slot_at,
        token=row.token,
        period=Period(row.period),
        thresholds=Thresholds(
            first_response=thresholds.get("first_response"),
            human_response=thresholds.get("human_response"),
            after_hours_response=thresholds.get("after_hours_response"),
            deadline=thresholds["deadline"],
        ),
        outcome=None if row.outcome is None else Outcome(row.outcome),
        reason=row.reason,
        sent_at=row.sent_at,
        first_response_seconds=row.first_response_seconds,
        first_response_responder=(
            None
            if row.first_response_responder is None
            else Responder(row.first_response_responder)
        ),
        first_human_seconds=row.first_human_seconds,
        routed_queue=row.routed_queue,
        expected_queue=row.expected_queue,
        routing=RoutingResult(row.routing),
        finished_at=row.finished_at,
        contact_mode=ContactMode(row.contact_mode),
        slo_excluded=row.slo_excluded,
        answer=None if row.answer is None else AnswerVerdict(row.answer),
        resolved=row.resolved,
        language=None if row.language is None else LanguageVerdict(row.language),
        reply_language=row.reply_language,
        rubric_score=row.rubric_score,
        rubric_items=[RubricItemResult.from_dict(item) for item in row.rubric_items or []],
    )


def _rfc822_headers(evidence: Evidence | None) -> dict[str, str]:
    """The header fields of a raw email (lower-case names, first occurrence), for the evidence
    summary; empty for other evidence. The raw bytes are stored untouched either way."""
    if evidence is None or evidence.media_type != "message/rfc822" or evidence.file is not None:
        return {}
    headers: dict[str, str] = {}
    try:
        parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
            evidence.content
        )
        for name, value in parsed.items():
            headers.setdefault(name.lower(), str(value))
    except Exception:  # a malformed header must never cost the evidence itself
        return headers
    return headers


def _content_key(reply: Reply) -> str:
    """A stand-in external id for a channel that gave none: the reply's content digest."""
    if reply.evidence is not None:
        return "sha256:" + reply.evidence.sha256
    content = f"{reply.arrived_at.isoformat()}\n{reply.sender}\n{reply.text}".encode()
    return "sha256:" + hashlib.sha256(content).hexdigest()


__all__ = [
    "DEFAULT_URL",
    "SCHEMA_VERSION",
    "AwaitingPrice",
    "Claim",
    "ContactCost",
    "EvidenceStore",
    "LeaseHolder",
    "LeaseLostError",
    "OpenRun",
    "RunCost",
    "SchemaVersionError",
    "StoreError",
    "StoredArtifact",
    "StoredMessage",
    "UnknownRunError",
    "WindowSpend",
]
