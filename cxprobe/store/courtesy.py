"""The store's courtesy records: maintenance windows declared at run time and opt-outs.

Queries only; :class:`~cxprobe.store.database.EvidenceStore` runs them in its transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cxprobe.store.schema import maintenance_windows, opt_outs
from scenarios.maintenance import DeclaredWindow, MaintenanceMode, MaintenanceWindow

#: The ``source`` of a window added with ``cxprobe maintenance add``, before its id.
STORE_SOURCE = "store #"


@dataclass(frozen=True)
class OptOut:
    """A recipient no contact is sent to, and why."""

    id: int
    target: str
    channel: str
    recipient: str
    reason: str
    run_id: str | None
    created_at: datetime
    cleared_at: datetime | None = None
    cleared_by: str | None = None


async def insert_window(
    conn: AsyncConnection, window: MaintenanceWindow, created_by: str, now: datetime
) -> int:
    inserted = await conn.execute(
        insert(maintenance_windows).values(
            target=window.target,
            channel=window.channel,
            reason=window.reason,
            mode=str(window.mode),
            starts_at=None if window.starts_at is None else window.local(window.starts_at),
            ends_at=None if window.ends_at is None else window.local(window.ends_at),
            cron=window.cron,
            duration_seconds=window.duration,
            timezone=window.timezone,
            created_at=now,
            created_by=created_by,
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    return int(key[0])


async def select_windows(conn: AsyncConnection, *, include_ended: bool) -> list[DeclaredWindow]:
    query = select(maintenance_windows).order_by(maintenance_windows.c.id)
    if not include_ended:
        query = query.where(maintenance_windows.c.ended_at.is_(None))
    return [_window(row) for row in (await conn.execute(query)).all()]


def _window(row: Row[Any]) -> DeclaredWindow:
    window = MaintenanceWindow(
        target=row.target,
        channel=row.channel,
        reason=row.reason,
        mode=MaintenanceMode(row.mode),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        cron=row.cron,
        duration=row.duration_seconds,
        timezone=row.timezone,
    )
    return DeclaredWindow(window, source=f"{STORE_SOURCE}{row.id}", ended_at=row.ended_at)


async def end_window(conn: AsyncConnection, window_id: int, now: datetime) -> bool:
    ended = await conn.execute(
        update(maintenance_windows)
        .where(maintenance_windows.c.id == window_id, maintenance_windows.c.ended_at.is_(None))
        .values(ended_at=now)
    )
    return ended.rowcount > 0


async def insert_opt_out(conn: AsyncConnection, opt_out: OptOut) -> bool:
    """Record ``opt_out`` unless the recipient is paused already (the first reason stands)."""
    if await active_opt_out(conn, opt_out.target, opt_out.channel) is not None:
        return False
    await conn.execute(
        insert(opt_outs).values(
            target=opt_out.target,
            channel=opt_out.channel,
            recipient=opt_out.recipient,
            reason=opt_out.reason,
            run_id=opt_out.run_id,
            created_at=opt_out.created_at,
        )
    )
    return True


async def active_opt_out(conn: AsyncConnection, target: str, channel: str) -> OptOut | None:
    row = (
        await conn.execute(
            select(opt_outs)
            .where(
                opt_outs.c.target == target,
                opt_outs.c.channel == channel,
                opt_outs.c.cleared_at.is_(None),
            )
            .order_by(opt_outs.c.id)
            .limit(1)
        )
    ).first()
    return None if row is None else _opt_out(row)


async def select_opt_outs(conn: AsyncConnection, *, include_cleared: bool) -> list[OptOut]:
    query = select(opt_outs).order_by(opt_outs.c.id)
    if not include_cleared:
        query = query.where(opt_outs.c.cleared_at.is_(None))
    return [_opt_out(row) for row in (await conn.execute(query)).all()]


async def clear_opt_outs(
    conn: AsyncConnection, target: str, channel: str | None, by: str, now: datetime
) -> int:
    query = update(opt_outs).where(opt_outs.c.target == target, opt_outs.c.cleared_at.is_(None))
    if channel is not None:
        query = query.where(opt_outs.c.channel == channel)
    cleared = await conn.execute(query.values(cleared_at=now, cleared_by=by))
    return int(cleared.rowcount)


def _opt_out(row: Row[Any]) -> OptOut:
    return OptOut(
        id=row.id,
        target=row.target,
        channel=row.channel,
        recipient=row.recipient,
        reason=row.reason,
        run_id=row.run_id,
        created_at=row.created_at,
        cleared_at=row.cleared_at,
        cleared_by=row.cleared_by,
    )
