"""Retention: which runs may be deleted, and deleting them without breaking verification.

Failures are kept longer than successes (as blackbox exporters keep failed probes' history
longer): a run *failed* when its outcome is anything but ``met`` or it reached the wrong team.
Ages count from the run's slot. Open runs are never purged. With ``require_exported`` a run is
purged only when its current record (the record hash of its latest chain entry) went into an
export, so nothing leaves the store that was never handed over.

Every purge is itself a chain entry (``purge``) whose record lists each deleted run's id, scope
and record hash: an export made afterwards shows the purge, and its verification accepts those
runs as purged instead of reporting them deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, Row, delete, select, update

from cxprobe.store.chain import (
    PURGE,
    ChainEntry,
    PurgedRun,
    purge_record,
    record_hash,
    utc_text,
)
from cxprobe.store.ledger import IN_CHUNK, append_entry, chunks, latest_entries
from cxprobe.store.schema import (
    artifact_chunks,
    artifacts,
    exported_runs,
    messages,
    run_measures,
    runs,
    slots,
)
from scenarios.durations import Duration, format_duration

DAY = 86400.0

#: A row of the runs that may be due (any columns).
_RunRow = Row[*tuple[Any, ...]]

#: Outcomes that count as success; any other outcome, or a wrong route, is a failure.
SUCCESS_OUTCOMES = frozenset({"met"})


class Retention(BaseModel):
    """The ``retention`` config section: how long evidence is kept (by slot time)."""

    model_config = ConfigDict(extra="forbid")

    older_than: Duration = Field(
        90 * DAY, description="Purge successful runs (met, routed correctly) older than this."
    )
    keep_failures: Duration = Field(
        365 * DAY,
        description="Keep breached, failed, errored, interrupted and misrouted runs this long.",
    )
    require_exported: bool = Field(
        True, description="Never purge a run whose current record is in no export."
    )

    @model_validator(mode="after")
    def _failures_kept_longer(self) -> Retention:
        if self.keep_failures < self.older_than:
            raise ValueError(
                f"keep_failures ({format_duration(self.keep_failures)}) must be at least "
                f"older_than ({format_duration(self.older_than)}): failures are the evidence "
                "most often asked for"
            )
        return self

    def policy(self) -> PurgePolicy:
        return PurgePolicy(
            older_than=timedelta(seconds=self.older_than),
            keep_failures=timedelta(seconds=self.keep_failures),
            require_exported=self.require_exported,
        )


@dataclass(frozen=True)
class PurgePolicy:
    older_than: timedelta
    keep_failures: timedelta
    require_exported: bool

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "older_than_seconds": self.older_than.total_seconds(),
            "keep_failures_seconds": self.keep_failures.total_seconds(),
            "require_exported": self.require_exported,
            "successes_before": utc_text(now - self.older_than),
            "failures_before": utc_text(now - self.keep_failures),
        }


@dataclass
class PurgeReport:
    """What a purge deleted (or, dry, would delete) and what it kept on purpose."""

    dry_run: bool
    purged: list[PurgedRun] = field(default_factory=list)
    kept_failures: int = 0
    protected_unexported: list[str] = field(default_factory=list)
    unsealed: list[str] = field(default_factory=list)
    entries: list[ChainEntry] = field(default_factory=list)


def is_failure(outcome: str | None, routing: str) -> bool:
    return outcome not in SUCCESS_OUTCOMES or routing == "wrong"


def purge_runs(conn: Connection, policy: PurgePolicy, now: datetime, dry_run: bool) -> PurgeReport:
    """Purge inside the caller's write transaction (which holds the chain's lock when it
    appends); with ``dry_run`` nothing is written."""
    report = PurgeReport(dry_run=dry_run)
    due = _due_runs(conn, policy, now, report)
    _select_purgeable(conn, policy, due, report)
    if not dry_run:
        _delete_purged(conn, policy, now, report)
    return report


def _due_runs(
    conn: Connection, policy: PurgePolicy, now: datetime, report: PurgeReport
) -> list[_RunRow]:
    """Closed runs old enough to purge by their outcome (failures younger than
    ``keep_failures`` are counted as kept)."""
    success_before = now - policy.older_than
    failure_before = now - policy.keep_failures
    rows = conn.execute(
        select(
            runs.c.run_id,
            runs.c.check_id,
            runs.c.target,
            runs.c.channel,
            runs.c.location,
            runs.c.slot_at,
            runs.c.outcome,
            runs.c.routing,
        )
        .where(runs.c.status == "closed", runs.c.slot_at < success_before)
        .order_by(runs.c.slot_at, runs.c.run_id)
        # Run rows before the chain head, as every other writer locks them (PostgreSQL): a
        # purge taking the head first would deadlock with a late reply to a run it deletes.
        .with_for_update()
    ).all()
    due: list[_RunRow] = []
    for row in rows:
        if is_failure(row.outcome, row.routing) and row.slot_at >= failure_before:
            report.kept_failures += 1
        else:
            due.append(row)
    return due


def _exported_records(conn: Connection, run_ids: list[str]) -> set[tuple[str, str]]:
    """The (run id, record hash) pairs of ``run_ids`` that went into an export."""
    exported: set[tuple[str, str]] = set()
    for chunk in chunks(run_ids):
        exported.update(
            (run_id, digest)
            for run_id, digest in conn.execute(
                select(exported_runs.c.run_id, exported_runs.c.record_hash).where(
                    exported_runs.c.run_id.in_(chunk)
                )
            )
        )
    return exported


def _select_purgeable(
    conn: Connection, policy: PurgePolicy, due: list[_RunRow], report: PurgeReport
) -> None:
    """Of the due runs, those whose current record is known (sealed) and, if required,
    exported go into ``report.purged``; the others are listed as kept and why."""
    run_ids = [row.run_id for row in due]
    latest = latest_entries(conn, run_ids)
    exported = _exported_records(conn, run_ids) if policy.require_exported else set()
    for row in due:
        entry = latest.get(row.run_id)
        if entry is None:
            report.unsealed.append(row.run_id)  # cannot say what was deleted: keep it
            continue
        if policy.require_exported and (row.run_id, entry.record_hash) not in exported:
            report.protected_unexported.append(row.run_id)
            continue
        report.purged.append(
            PurgedRun(
                run_id=row.run_id,
                record_hash=entry.record_hash,
                check_id=row.check_id,
                target=row.target,
                channel=row.channel,
                location=row.location,
                slot_at=row.slot_at,
            )
        )


def _delete_purged(
    conn: Connection, policy: PurgePolicy, now: datetime, report: PurgeReport
) -> None:
    """Record each batch of ``report.purged`` as a purge chain entry, then delete its runs."""
    for start in range(0, len(report.purged), IN_CHUNK):
        batch = report.purged[start : start + IN_CHUNK]
        detail = purge_record(batch, policy.as_json(now))
        report.entries.append(
            append_entry(
                conn,
                kind=PURGE,
                scope=None,
                record=record_hash(detail),
                note=f"retention purge of {len(batch)} run(s)",
                now=now,
                detail=detail,
            )
        )
        ids = [run.run_id for run in batch]
        conn.execute(update(slots).where(slots.c.run_id.in_(ids)).values(run_id=None))
        purged_artifacts = select(artifacts.c.id).where(artifacts.c.run_id.in_(ids))
        conn.execute(
            delete(artifact_chunks).where(artifact_chunks.c.artifact_id.in_(purged_artifacts))
        )
        conn.execute(delete(artifacts).where(artifacts.c.run_id.in_(ids)))
        conn.execute(delete(run_measures).where(run_measures.c.run_id.in_(ids)))
        conn.execute(delete(messages).where(messages.c.run_id.in_(ids)))
        conn.execute(delete(runs).where(runs.c.run_id.in_(ids)))
