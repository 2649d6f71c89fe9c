"""Appending to and reading the evidence chain, inside the caller's store transaction.

Synchronous SQLAlchemy Core on a :class:`~sqlalchemy.Connection`: the store calls these through
``AsyncConnection.run_sync`` in its write transaction, and the schema migration calls them
directly, so sealing a run is written once.

Appending is serialised by the single ``chain_head`` row, read ``FOR UPDATE``: on PostgreSQL
concurrent finishers queue on that row lock; on SQLite the store's writes already hold the
database's write lock (``BEGIN IMMEDIATE``) and ``FOR UPDATE`` is not needed (SQLAlchemy omits
it). The unique ``prev_hash`` and primary-key ``seq`` make a fork impossible even if a writer
bypassed the lock: the second entry on one predecessor fails to insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, insert, select, update

from cxprobe.store.chain import (
    AMENDMENT,
    MESSAGE_FIELDS,
    RUN,
    RUN_FIELDS,
    ChainEntry,
    canonical_json,
    entry_fields,
    record_hash,
    run_record,
    sha256_hex,
)
from cxprobe.store.schema import (
    StoreError,
    artifacts,
    chain,
    chain_head,
    messages,
    outside_text,
    run_measures,
    runs,
)

#: How many ids go into one ``IN (...)`` list.
IN_CHUNK = 500


def chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[start : start + IN_CHUNK] for start in range(0, len(values), IN_CHUNK)]


def lock_head(conn: Connection) -> tuple[int, str]:
    """The chain head ``(seq, entry_hash)``, locked until the transaction ends."""
    row = conn.execute(
        select(chain_head.c.seq, chain_head.c.entry_hash)
        .where(chain_head.c.id == 1)
        .with_for_update()
    ).first()
    if row is None:
        raise StoreError(
            "the evidence store has no chain head row (chain_head): the store was damaged. "
            "Restore it from a backup."
        )
    return int(row.seq), str(row.entry_hash)


def append_entry(
    conn: Connection,
    *,
    kind: str,
    scope: Mapping[str, Any] | None,
    record: str,
    note: str,
    now: datetime,
    detail: Mapping[str, Any] | None = None,
) -> ChainEntry:
    """Add one entry after the head and move the head to it."""
    head_seq, head_hash = lock_head(conn)
    scope = scope or {}
    note = outside_text(note)  # hashed as it will be stored
    seq = head_seq + 1
    fields = entry_fields(
        seq=seq,
        kind=kind,
        scope=scope,
        record_hash=record,
        prev_hash=head_hash,
        created_at=now,
        note=note,
    )
    entry_hash = sha256_hex(canonical_json(fields))
    conn.execute(
        insert(chain).values(
            seq=seq,
            kind=kind,
            run_id=scope.get("run_id"),
            check_id=scope.get("check_id"),
            target=scope.get("target"),
            channel=scope.get("channel"),
            location=scope.get("location"),
            slot_at=scope.get("slot_at"),
            record_hash=record,
            prev_hash=head_hash,
            entry_hash=entry_hash,
            created_at=now,
            note=note,
            detail=None if detail is None else dict(detail),
        )
    )
    conn.execute(
        update(chain_head)
        .where(chain_head.c.id == 1)
        .values(seq=seq, entry_hash=entry_hash, updated_at=now)
    )
    return entry_from_row(
        conn.execute(select(chain).where(chain.c.seq == seq)).one()  # as stored (UTC times)
    )


def entry_from_row(row: Row[Any]) -> ChainEntry:
    return ChainEntry(
        seq=int(row.seq),
        kind=row.kind,
        run_id=row.run_id,
        check_id=row.check_id,
        target=row.target,
        channel=row.channel,
        location=row.location,
        slot_at=row.slot_at,
        record_hash=row.record_hash,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
        created_at=row.created_at,
        note=row.note,
        detail=row.detail,
    )


# -- run content -------------------------------------------------------------------------------


def run_fields(row: Row[Any]) -> dict[str, Any]:
    """A run row as the mapping :func:`~cxprobe.store.chain.run_record` takes (every
    column, so exports can show the rest too)."""
    return dict(row._asdict())


def message_fields(row: Row[Any]) -> dict[str, Any]:
    return dict(row._asdict())


def artifact_fields(row: Row[Any], keys: Mapping[int, tuple[str, str]]) -> dict[str, Any]:
    """An artifact row (without content) with ``message``: its message's (direction, id)."""
    values = dict(row._asdict())
    values["message"] = None if row.message_id is None else keys[row.message_id]
    return values


def sealed_run_columns() -> list[Any]:
    """The ``runs`` columns a run record seals (:data:`RUN_FIELDS` and the thresholds)."""
    return [runs.c[name] for name in (*RUN_FIELDS, "thresholds")]


def sealed_message_columns() -> list[Any]:
    """The ``messages`` columns a run record seals (:data:`MESSAGE_FIELDS`) and the keys:
    revision 0002 seals with this code while later revisions' columns do not exist yet (a
    turn's record, revision 0007, is sealed as the run's ``conversation`` artifact)."""
    return [messages.c[name] for name in ("id", "run_id", *MESSAGE_FIELDS)]


def artifact_columns() -> list[Any]:
    return [column for column in artifacts.c if column.name != "content"]


def load_content(
    conn: Connection, run_ids: Sequence[str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """The messages and artifacts (metadata only) of ``run_ids``, by run id, in stable order."""
    by_run_messages: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    by_run_artifacts: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    keys: dict[int, tuple[str, str]] = {}
    for chunk in chunks(list(run_ids)):
        for row in conn.execute(
            select(*sealed_message_columns())
            .where(messages.c.run_id.in_(chunk))
            .order_by(messages.c.arrived_at, messages.c.id)
        ):
            keys[row.id] = (row.direction, row.external_id)
            by_run_messages[row.run_id].append(message_fields(row))
        for row in conn.execute(
            select(*artifact_columns())
            .where(artifacts.c.run_id.in_(chunk))
            .order_by(artifacts.c.id)
        ):
            by_run_artifacts[row.run_id].append(artifact_fields(row, keys))
    return by_run_messages, by_run_artifacts


def load_measures(conn: Connection, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """The channel measures of ``run_ids`` (seconds by name), by run id; {} for a run without."""
    found: dict[str, dict[str, float]] = {run_id: {} for run_id in run_ids}
    for chunk in chunks(list(run_ids)):
        for row in conn.execute(
            select(run_measures)
            .where(run_measures.c.run_id.in_(chunk))
            .order_by(run_measures.c.run_id, run_measures.c.name)
        ):
            found[row.run_id][row.name] = float(row.seconds)
    return found


def current_record_hash(
    conn: Connection, run_id: str, *, measured: bool = True
) -> tuple[Row[Any], str] | None:
    """The run's row and the record hash of its content as it is now (None: no such run).
    ``measured=False``: the store has no measures yet (a revision before 0010 is sealing)."""
    # Only the sealed columns: revision 0002 seals with this code while later revisions'
    # columns do not exist yet.
    row = conn.execute(select(*sealed_run_columns()).where(runs.c.run_id == run_id)).first()
    if row is None:
        return None
    by_messages, by_artifacts = load_content(conn, [run_id])
    measures = load_measures(conn, [run_id])[run_id] if measured else None
    record = run_record(run_fields(row), by_messages[run_id], by_artifacts[run_id], measures)
    return row, record_hash(record)


def latest_entries(conn: Connection, run_ids: Iterable[str]) -> dict[str, ChainEntry]:
    """Each run's latest run/amendment entry: the one its current content must match."""
    found: dict[str, ChainEntry] = {}
    wanted = list(dict.fromkeys(run_ids))
    for chunk in chunks(wanted):
        latest = (
            select(chain.c.run_id, func.max(chain.c.seq).label("seq"))
            .where(chain.c.run_id.in_(chunk), chain.c.kind.in_((RUN, AMENDMENT)))
            .group_by(chain.c.run_id)
            .subquery()
        )
        rows = conn.execute(
            select(chain).join(
                latest, and_(chain.c.run_id == latest.c.run_id, chain.c.seq == latest.c.seq)
            )
        )
        for row in rows:
            found[row.run_id] = entry_from_row(row)
    return found


def seal_run(
    conn: Connection, run_id: str, *, note: str, now: datetime, measured: bool = True
) -> ChainEntry | None:
    """Seal the run's current content: a ``run`` entry the first time, an ``amendment`` when
    the content changed since its latest entry, nothing when it did not."""
    current = current_record_hash(conn, run_id, measured=measured)
    if current is None:
        raise StoreError(f"cannot seal run {run_id!r}: it is not in the evidence store")
    row, digest = current
    previous = latest_entries(conn, [run_id]).get(run_id)
    if previous is not None and previous.record_hash == digest:
        return None
    scope = {
        "run_id": row.run_id,
        "check_id": row.check_id,
        "target": row.target,
        "channel": row.channel,
        "location": row.location,
        "slot_at": row.slot_at,
    }
    return append_entry(
        conn,
        kind=RUN if previous is None else AMENDMENT,
        scope=scope,
        record=digest,
        note=note,
        now=now,
    )


def seal_closed_runs(conn: Connection, *, now: datetime, note: str) -> int:
    """Seal every closed run that has no entry yet, oldest finish first (schema upgrade).

    Only revision 0002 calls this: before ``run_measures`` exists (revision 0010), when no run
    had measures, so the runs are sealed without reading them."""
    sealed = select(chain.c.run_id).where(chain.c.run_id.is_not(None))  # NOT IN and NULLs
    unsealed = conn.execute(
        select(runs.c.run_id)
        .where(runs.c.status == "closed", runs.c.run_id.not_in(sealed))
        .order_by(runs.c.finished_at, runs.c.slot_at, runs.c.run_id)
    ).scalars()
    count = 0
    for run_id in list(unsealed):
        if seal_run(conn, run_id, note=note, now=now, measured=False) is not None:
            count += 1
    return count


def entries_between(conn: Connection, first: int, last: int) -> list[ChainEntry]:
    rows = conn.execute(
        select(chain).where(chain.c.seq >= first, chain.c.seq <= last).order_by(chain.c.seq)
    )
    return [entry_from_row(row) for row in rows]


def head(conn: Connection) -> tuple[int, str]:
    """The chain head ``(seq, entry_hash)`` without locking it."""
    row = conn.execute(select(chain_head.c.seq, chain_head.c.entry_hash)).first()
    if row is None:
        raise StoreError("the evidence store has no chain head row (chain_head): it was damaged")
    return int(row.seq), str(row.entry_hash)
