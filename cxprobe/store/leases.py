"""Leases on open runs: which monitor drives a run, until when, and taking over a dead one's.

Every open run is leased to the monitor process that claimed it (``runs.lease_owner``: the
monitor's name; ``lease_session``: the process, new at each start; ``lease_expires_at``). The
owner renews its leases every :attr:`LeaseHolder.renew_every`; each renewal extends them by
:attr:`LeaseHolder.term`, half of ``lease_timeout``. A monitor that dies stops renewing, and
another monitor of the same location takes its runs over once their lease has expired: at most
``term + renew_every`` (two thirds of ``lease_timeout``) after the death. A monitor that was
only paused finds, at its next write or renewal, that its session no longer holds the run and
stops touching it (:class:`LeaseLostError`): every write to an open run's content checks the
lease inside the same transaction that locks the run's row (fencing).

Time is the database's clock on PostgreSQL (``now()``), so that monitors on hosts whose clocks
disagree still agree on when a lease expires; SQLite lives on one host and uses its clock.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cxprobe.store.schema import OPEN, StoreError, in_chunks, runs

#: Environment variable naming the monitor when its configuration does not.
MONITOR_NAME_VARIABLE = "CXPROBE_MONITOR_NAME"

#: Default for ``monitor.lease_timeout`` (seconds).
DEFAULT_LEASE_TIMEOUT = 60.0


class LeaseLostError(StoreError):
    """The run is open but leased to another monitor process: this one must not touch it."""


def default_monitor_name() -> str:
    """``$CXPROBE_MONITOR_NAME``, else the host's name (unique per container or host)."""
    return os.environ.get(MONITOR_NAME_VARIABLE) or socket.gethostname()


@dataclass(frozen=True)
class LeaseHolder:
    """The monitor process that holds leases: its name, its session and the lease timeout."""

    name: str = field(default_factory=default_monitor_name)
    session: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: Longest an open run stays with a monitor that stopped renewing (``monitor.lease_timeout``).
    timeout: float = DEFAULT_LEASE_TIMEOUT

    @property
    def term(self) -> timedelta:
        """How far each renewal extends a lease."""
        return timedelta(seconds=self.timeout / 2)

    @property
    def renew_every(self) -> float:
        """Seconds between renewals (and between looks for expired leases): a lease survives
        two missed renewals, and a dead monitor's runs are taken over within the timeout."""
        return self.timeout / 6


@dataclass(frozen=True)
class Renewal:
    """What one renewal found: runs still held, and runs this process drove but lost."""

    held: frozenset[str]
    lost: frozenset[str]


@dataclass(frozen=True)
class TakenOver:
    """An open run this process has just taken the lease of."""

    run_id: str
    previous_owner: str | None  # None: a run from before leases
    expired_at: datetime | None


async def database_now(conn: AsyncConnection) -> datetime:
    """The time leases are judged by (see the module's docstring)."""
    if conn.dialect.name == "postgresql":
        now: datetime = (await conn.execute(select(func.now()))).scalar_one()
        return now.astimezone(UTC)
    return datetime.now(UTC)


def lease_columns(holder: LeaseHolder, now: datetime) -> dict[str, Any]:
    """The lease columns of a run ``holder`` has just claimed or taken over."""
    return {
        "lease_owner": holder.name,
        "lease_session": holder.session,
        "lease_expires_at": now + holder.term,
    }


def check_lease(row: Any, holder: LeaseHolder) -> None:
    """Refuse a write to an open run whose lease another session holds. ``row`` has the run's
    ``run_id``, ``status``, ``lease_owner`` and ``lease_session``; it must have been read
    with the row locked, in the transaction that writes. A run from before leases (no
    session) is nobody's yet: whoever takes it over fences it from then on."""
    held_elsewhere = row.lease_session is not None and row.lease_session != holder.session
    if row.status == OPEN and held_elsewhere:
        owner = row.lease_owner or "no monitor"
        raise LeaseLostError(
            f"run {row.run_id} is leased to {owner} now (this monitor, {holder.name}, lost its "
            "lease: it was paused or cut off from the store for longer than the lease "
            "timeout); it will not touch the run again"
        )


async def renew(conn: AsyncConnection, holder: LeaseHolder, driven: Collection[str]) -> Renewal:
    """Extend every lease ``holder``'s session holds; report which of the runs it drives
    (``driven``) are open but leased elsewhere now."""
    now = await database_now(conn)
    mine = and_(runs.c.status == OPEN, runs.c.lease_session == holder.session)
    renewable = mine
    if conn.dialect.name == "postgresql":
        # A row that one of this process's own writes has locked is renewed at the next
        # renewal rather than waited for: waiting would hold up every other lease behind the
        # slowest write. (A run locked by a write cannot be taken over meanwhile either: the
        # take-over skips locked rows.)
        unlocked = select(runs.c.run_id).where(mine).with_for_update(skip_locked=True)
        renewable = runs.c.run_id.in_(unlocked)
    await conn.execute(update(runs).where(renewable).values(lease_expires_at=now + holder.term))
    held = frozenset((await conn.execute(select(runs.c.run_id).where(mine))).scalars())
    lost: set[str] = set()
    elsewhere = [run_id for run_id in driven if run_id not in held]
    for chunk in in_chunks(elsewhere) if elsewhere else []:
        found = await conn.execute(
            select(runs.c.run_id).where(runs.c.run_id.in_(chunk), runs.c.status == OPEN)
        )
        lost.update(found.scalars())
    return Renewal(held=held, lost=frozenset(lost))


async def take_over(
    conn: AsyncConnection, holder: LeaseHolder, location: str, *, reclaim_own: bool
) -> list[TakenOver]:
    """Take the lease of every open run of ``location`` that no live session holds: runs whose
    lease expired, runs from before leases and, with ``reclaim_own`` (a monitor starting),
    runs an earlier process of this monitor's name held. Oldest slot first.

    The candidates are locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: two monitors sweeping
    at once split them; SQLite serialises writers) and re-leased in the same transaction.
    """
    now = await database_now(conn)
    free = or_(runs.c.lease_session.is_(None), runs.c.lease_expires_at < now)
    if reclaim_own:
        free = or_(
            free,
            and_(runs.c.lease_owner == holder.name, runs.c.lease_session != holder.session),
        )
    candidates = (
        select(runs.c.run_id, runs.c.lease_owner, runs.c.lease_expires_at)
        .where(runs.c.status == OPEN, runs.c.location == location, free)
        .order_by(runs.c.slot_at, runs.c.created_at)
        .with_for_update(skip_locked=True)
    )
    found = [
        TakenOver(row.run_id, row.lease_owner, row.lease_expires_at)
        for row in await conn.execute(candidates)
    ]
    for chunk in in_chunks([taken.run_id for taken in found]) if found else []:
        await conn.execute(
            update(runs).where(runs.c.run_id.in_(chunk)).values(lease_columns(holder, now))
        )
    return found


async def release(conn: AsyncConnection, holder: LeaseHolder) -> int:
    """End ``holder``'s leases now (a monitor stopping): another monitor of the location takes
    the runs at its next look instead of after the timeout. Returns how many were released."""
    now = await database_now(conn)
    released = await conn.execute(
        update(runs)
        .where(runs.c.status == OPEN, runs.c.lease_session == holder.session)
        .values(lease_expires_at=now)
    )
    return released.rowcount
