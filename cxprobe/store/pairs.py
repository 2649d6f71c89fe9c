"""Pair holds: which run holds a channel's (probe id, brand id) pair, for every monitor.

A channel whose replies carry no thread (SMS, WhatsApp, a generic platform) knows a reply by its
pair, so a pair has one open conversation at a time. Held here, in the shared store, rather than
in each monitor's memory: two monitors of a location that opened one pair at once would each
take the other's replies as their own. A hold names its run's token; a hold whose run is no
longer open (its monitor died before releasing it, say) is stale and is taken over.

Queries only; :class:`~cxprobe.store.database.EvidenceStore` runs them in its transactions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cxprobe.store.schema import OPEN, pair_holds, runs

#: Attempts when the holder changes between one statement and the next (released meanwhile).
ATTEMPTS = 3


async def hold(
    conn: AsyncConnection,
    channel: str,
    pair: str,
    token: str,
    now: datetime,
    *,
    postgresql: bool,
) -> str | None:
    """Take ``pair`` for the run of ``token``. None when it is now (or already was) that run's;
    else the token of the open run that holds it."""
    this_pair = and_(pair_holds.c.channel == channel, pair_holds.c.pair == pair)
    dialect_insert = postgresql_insert if postgresql else sqlite_insert
    holder: str | None = None
    for _ in range(ATTEMPTS):
        inserted = await conn.execute(
            dialect_insert(pair_holds)
            .values(channel=channel, pair=pair, token=token, held_at=now)
            .on_conflict_do_nothing()
        )
        if inserted.rowcount == 1:
            return None
        row = (
            await conn.execute(
                select(pair_holds.c.token, runs.c.status)
                .outerjoin(runs, runs.c.token == pair_holds.c.token)
                .where(this_pair)
            )
        ).one_or_none()
        if row is None:
            continue  # released meanwhile: insert again
        holder = str(row.token)
        if holder == token:
            return None
        if row.status == OPEN:
            return holder
        # Stale: its run has ended (or was purged) without releasing it. Taken only if it
        # is still that run's.
        taken = await conn.execute(
            update(pair_holds)
            .where(this_pair, pair_holds.c.token == holder)
            .values(token=token, held_at=now)
        )
        if taken.rowcount == 1:
            return None
    return holder or "another run"  # it changed hands at every look: someone else's now


async def release(conn: AsyncConnection, channel: str, pair: str, token: str) -> bool:
    """Give ``pair`` up, if the run of ``token`` holds it."""
    released = await conn.execute(
        delete(pair_holds).where(
            pair_holds.c.channel == channel,
            pair_holds.c.pair == pair,
            pair_holds.c.token == token,
        )
    )
    return bool(released.rowcount)
