"""What an export holds, read from the store in one transaction; and the record of exports.

A snapshot of a :class:`~cxprobe.store.chain.Scope` has the period's runs with their
messages and artifact digests (content is read afterwards, per artifact), each run's latest
chain entry, the contiguous stretch of the chain that covers the scope, and the claimed slots
whose run is gone. It also reports what already looks wrong in the store (a closed run whose
content no longer matches its seal, a sealed run whose row is missing), so ``export`` can warn
while ``verify`` proves it from the files alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select

from cxprobe.store.chain import (
    AMENDMENT,
    PURGE,
    RUN,
    ChainEntry,
    Scope,
    purged_runs,
    record_hash,
    run_record,
)
from cxprobe.store.ledger import (
    entries_between,
    head,
    latest_entries,
    load_content,
    load_measures,
    run_fields,
)
from cxprobe.store.schema import chain, exported_runs, exports, runs, slots


@dataclass(frozen=True)
class SnapshotRun:
    run: dict[str, Any]  # every column of the run row
    messages: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]  # metadata with ``id`` and ``message`` (direction, id)
    entry: ChainEntry | None  # the latest run/amendment entry; None while the run is open
    measures: dict[str, float] = field(default_factory=dict)  # the channel's, by name

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])


@dataclass(frozen=True)
class MissingRunSlot:
    """A claimed slot whose run is not in the store (purged, or deleted)."""

    check_id: str
    location: str
    slot_at: datetime
    claimed_at: datetime
    target: str | None
    channel: str | None


@dataclass
class Snapshot:
    scope: Scope
    runs: list[SnapshotRun]
    chain: list[ChainEntry]  # contiguous; empty when nothing in the chain concerns the scope
    head: tuple[int, str]  # the chain head row at the time
    missing_run_slots: list[MissingRunSlot]
    #: Every claimed (check, location, slot) in the period, for schedule gaps.
    claimed: set[tuple[str, str, datetime]]
    #: The first slot each (check, location) ever claimed: gaps are counted from there.
    first_claims: dict[tuple[str, str], datetime]
    problems: list[str] = field(default_factory=list)


def _covered(scope: Scope) -> Any:
    condition = and_(chain.c.slot_at >= scope.start, chain.c.slot_at < scope.end)
    if scope.targets:
        condition = and_(condition, chain.c.target.in_(scope.targets))
    if scope.channels:
        condition = and_(condition, chain.c.channel.in_(scope.channels))
    return condition


def take_snapshot(
    conn: Connection, scope: Scope, checks: Mapping[str, tuple[str, str]]
) -> Snapshot:
    problems: list[str] = []
    snapshot_runs = _runs_in_scope(conn, scope, problems)
    segment = _chain_segment(conn, scope)
    present = {item.run_id for item in snapshot_runs}
    problems += _deleted_runs(scope, segment, present)
    chain_head = head(conn)
    last = conn.execute(select(func.max(chain.c.seq))).scalar_one_or_none() or 0
    if last != chain_head[0]:
        problems.append(
            f"the chain head says entry {chain_head[0]} is the latest, but the chain ends at "
            f"{last}: entries were removed or added outside cxprobe"
        )
    missing, claimed = _claimed_slots(conn, scope, checks)
    return Snapshot(
        scope=scope,
        runs=snapshot_runs,
        chain=segment,
        head=chain_head,
        missing_run_slots=missing,
        claimed=claimed,
        first_claims=_first_claims(conn),
        problems=problems,
    )


def _runs_in_scope(conn: Connection, scope: Scope, problems: list[str]) -> list[SnapshotRun]:
    """The scope's runs with their content and latest chain entry; a closed run whose content
    is not what the chain sealed is a problem."""
    query = select(runs).where(runs.c.slot_at >= scope.start, runs.c.slot_at < scope.end)
    if scope.targets:
        query = query.where(runs.c.target.in_(scope.targets))
    if scope.channels:
        query = query.where(runs.c.channel.in_(scope.channels))
    rows = conn.execute(query.order_by(runs.c.slot_at, runs.c.check_id, runs.c.run_id)).all()
    ids = [row.run_id for row in rows]
    by_messages, by_artifacts = load_content(conn, ids)
    by_measures = load_measures(conn, ids)
    latest = latest_entries(conn, ids)
    snapshot_runs = []
    for row in rows:
        entry = latest.get(row.run_id)
        fields = run_fields(row)
        measures = by_measures[row.run_id]
        if row.status == "closed":
            digest = record_hash(
                run_record(fields, by_messages[row.run_id], by_artifacts[row.run_id], measures)
            )
            if entry is None:
                problems.append(f"run {row.run_id} is closed but was never sealed in the chain")
            elif entry.record_hash != digest:
                problems.append(
                    f"run {row.run_id}: its content in the store differs from what chain entry "
                    f"{entry.seq} sealed (changed outside cxprobe)"
                )
        snapshot_runs.append(
            SnapshotRun(fields, by_messages[row.run_id], by_artifacts[row.run_id], entry, measures)
        )
    return snapshot_runs


def _chain_segment(conn: Connection, scope: Scope) -> list[ChainEntry]:
    """The stretch of chain that concerns the scope: from its first relevant entry (a run, an
    amendment or a purge of a run in scope) to its last."""
    bounds = conn.execute(
        select(func.min(chain.c.seq), func.max(chain.c.seq)).where(
            chain.c.kind.in_((RUN, AMENDMENT)), _covered(scope)
        )
    ).one()
    relevant = [seq for seq in bounds if seq is not None]
    for entry_row in conn.execute(select(chain.c.seq, chain.c.detail).where(chain.c.kind == PURGE)):
        if any(
            scope.covers(run.slot_at, run.target, run.channel)
            for run in purged_runs(entry_row.detail or {})
        ):
            relevant.append(entry_row.seq)
    return entries_between(conn, min(relevant), max(relevant)) if relevant else []


def _deleted_runs(scope: Scope, segment: list[ChainEntry], present: set[str]) -> list[str]:
    """Runs in scope that the chain sealed but that are neither in the store nor purged."""
    purged = {run.run_id for e in segment if e.kind == PURGE for run in purged_runs(e.detail or {})}
    problems: list[str] = []
    reported: set[str] = set()
    for entry in segment:
        run_id = entry.run_id
        if (
            entry.kind in (RUN, AMENDMENT)
            and run_id is not None
            and run_id not in present | purged | reported
            and scope.covers(entry.slot_at, entry.target, entry.channel)
        ):
            problems.append(
                f"run {run_id} (chain entry {entry.seq}) is sealed but no longer in the store, "
                "and no purge records it: it was deleted"
            )
            reported.add(run_id)
    return problems


def _claimed_slots(
    conn: Connection, scope: Scope, checks: Mapping[str, tuple[str, str]]
) -> tuple[list[MissingRunSlot], set[tuple[str, str, datetime]]]:
    """The scope's claimed slots, and those of them whose run is gone."""
    owners = dict(_check_owners(conn)) | dict(checks)
    slot_rows = conn.execute(
        select(slots, runs.c.run_id.label("present"))
        .select_from(slots.outerjoin(runs, slots.c.run_id == runs.c.run_id))
        .where(slots.c.slot_at >= scope.start, slots.c.slot_at < scope.end)
        .order_by(slots.c.slot_at, slots.c.check_id, slots.c.location)
    ).all()
    missing = []
    claimed = set()
    for slot in slot_rows:
        target, channel = owners.get(slot.check_id, (None, None))
        if (scope.targets and target is not None and target not in scope.targets) or (
            scope.channels and channel is not None and channel not in scope.channels
        ):
            continue
        claimed.add((slot.check_id, slot.location, slot.slot_at))
        if slot.present is None:
            missing.append(
                MissingRunSlot(
                    slot.check_id, slot.location, slot.slot_at, slot.claimed_at, target, channel
                )
            )
    return missing, claimed


def _first_claims(conn: Connection) -> dict[tuple[str, str], datetime]:
    """Each (check, location)'s first claimed slot, in or out of scope."""
    return {
        (row.check_id, row.location): row.first
        for row in conn.execute(
            select(
                slots.c.check_id, slots.c.location, func.min(slots.c.slot_at).label("first")
            ).group_by(slots.c.check_id, slots.c.location)
        )
    }


def _check_owners(conn: Connection) -> list[tuple[str, tuple[str, str]]]:
    """(check id, (target, channel)) as the runs and the chain remember them."""
    found: list[tuple[str, tuple[str, str]]] = []
    for table in (chain, runs):
        rows = conn.execute(
            select(table.c.check_id, table.c.target, table.c.channel)
            .where(table.c.check_id.is_not(None))
            .distinct()
        )
        found += [(row.check_id, (row.target, row.channel)) for row in rows]
    return found


@dataclass(frozen=True)
class ExportRecord:
    exported_at: datetime
    scope: Scope
    format: str
    manifest_sha256: str
    chain_seq: int
    chain_hash: str
    #: (run id, record hash) of every sealed run the export held.
    sealed_runs: Sequence[tuple[str, str]]


def record_export(conn: Connection, export: ExportRecord) -> int:
    inserted = conn.execute(
        insert(exports).values(
            exported_at=export.exported_at,
            filters=export.scope.as_json(),
            format=export.format,
            manifest_sha256=export.manifest_sha256,
            chain_seq=export.chain_seq,
            chain_hash=export.chain_hash,
            runs=len(export.sealed_runs),
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    export_id = int(key[0])
    for start in range(0, len(export.sealed_runs), 500):
        conn.execute(
            insert(exported_runs),
            [
                {"export_id": export_id, "run_id": run_id, "record_hash": digest}
                for run_id, digest in export.sealed_runs[start : start + 500]
            ],
        )
    return export_id


__all__ = [
    "ExportRecord",
    "MissingRunSlot",
    "Snapshot",
    "SnapshotRun",
    "record_export",
    "take_snapshot",
]
