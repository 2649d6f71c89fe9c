"""Evidence export: a period's runs, their evidence and the chain that seals them, as files.

``export_evidence`` writes into an empty directory::

    runs.csv | runs.jsonl        one row/line per run (UTC and target-local times, period,
                                 outcome, first answers, routing, SLA thresholds, seal)
    messages.csv, artifacts.csv  (CSV only; JSONL nests them in each run's line)
    measures.csv                 each run's channel measures, e.g. a call's time to a human
                                 from its audio (CSV only; JSONL: each run's ``measures``)
    chain.csv | chain.jsonl      the contiguous chain entries covering the period
    gaps.csv | gaps.jsonl        scheduled slots without a run (claimed but gone; unclaimed)
    courtesy.json                each run's contact mode (declared/mystery), skip reason and
                                 SLO exclusion; the maintenance windows open in the period,
                                 with their openings and why (so declared gaps read as such)
    attachments/<run_id>/<artifact_id>-<kind>.<ext>   the raw evidence, byte for byte
    manifest.json                every file's SHA-256, the chain head, filters, config digest,
                                 cxprobe version, export time
    manifest.sha256              the manifest's own digest (``sha256sum -c`` format)

Nothing secret is written: the configuration is represented by its digest only, the store by
its password-free description, and runs hold no credentials. The export is recorded in the
store (which runs, with which record hash) for retention's ``require_exported``.
See docs/evidence.md; :mod:`cxprobe.evidence.verify` checks an export.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cxprobe.evidence.format import (
    ARTIFACT_COLUMNS,
    CHAIN_COLUMNS,
    CSV,
    GAP_COLUMNS,
    JSONL,
    MEASURE_COLUMNS,
    MESSAGE_COLUMNS,
    RUN_COLUMNS,
    ExportedRun,
    Gap,
    artifact_rows,
    chain_object,
    chain_row,
    json_line,
    measure_rows,
    message_rows,
    run_object,
    run_row,
)
from cxprobe.store.chain import (
    GENESIS,
    PURGE,
    Scope,
    purged_runs,
    record_hash,
    utc_text,
)
from cxprobe.store.database import EvidenceStore
from cxprobe.store.snapshot import ExportRecord, Snapshot
from scenarios.maintenance import DeclaredWindow
from scenarios.schedule import Schedule

MANIFEST = "manifest.json"
COURTESY = "courtesy.json"
MANIFEST_DIGEST = "manifest.sha256"
EXPORT_FORMAT = "cxprobe-evidence-export/1"
NO_RUN = "no_run"
UNCLAIMED = "unclaimed"


class ExportError(Exception):
    """The export cannot be written as asked (e.g. the directory is not empty)."""


@dataclass(frozen=True)
class ScheduledCheck:
    """A configured check's schedule, so slots that were never claimed show as gaps."""

    check_id: str
    target: str
    channel: str
    #: Where it runs; None: wherever it has claimed slots.
    locations: tuple[str, ...] | None
    #: Its slots: those in the period that were never claimed are gaps.
    schedule: Schedule
    #: How long after its slot a run may still claim it (jitter and start-up).
    settle: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class ExportOptions:
    scope: Scope
    file_format: str
    out: Path
    now: datetime
    zones: Mapping[str, str]  # target -> IANA zone
    config_sha256: str
    version: str
    schedules: Sequence[ScheduledCheck] = ()
    #: Maintenance windows an auditor of the scope must see (configuration and store).
    maintenance: Sequence[DeclaredWindow] = ()


@dataclass
class ExportResult:
    out: Path
    runs: int
    open_runs: int
    attachments: int
    gaps: list[Gap]
    chain_span: tuple[int, int] | None
    head: tuple[int, str]
    manifest_sha256: str
    export_id: int
    problems: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_jsonl(path: Path, objects: Iterable[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as file:
        for value in objects:
            file.write(json_line(value))


def _exported_runs(snapshot: Snapshot, zones: Mapping[str, str]) -> list[ExportedRun]:
    return [
        ExportedRun(
            run=item.run,
            messages=item.messages,
            artifacts=item.artifacts,
            entry=item.entry,
            zone=zones.get(str(item.run["target"])),
            measures=item.measures,
        )
        for item in snapshot.runs
    ]


def compute_gaps(snapshot: Snapshot, options: ExportOptions, zones: Mapping[str, str]) -> list[Gap]:
    """Claimed slots whose run is gone (explained by a purge, or not), and slots a configured
    schedule had that were never claimed (from each check's first claim on)."""
    purged_slots = {
        (run.check_id, run.location, run.slot_at): entry.seq
        for entry in snapshot.chain
        if entry.kind == PURGE
        for run in purged_runs(entry.detail or {})
    }
    gaps = [
        Gap(
            kind=NO_RUN,
            check_id=slot.check_id,
            location=slot.location,
            target=slot.target,
            channel=slot.channel,
            slot_at=slot.slot_at,
            claimed_at=slot.claimed_at,
            zone=zones.get(slot.target or ""),
            explained_by=(
                f"purge (chain entry {seq})"
                if (seq := purged_slots.get((slot.check_id, slot.location, slot.slot_at)))
                else ""
            ),
        )
        for slot in snapshot.missing_run_slots
    ]
    scope = options.scope
    for check in options.schedules:
        if not scope.covers(scope.start, check.target, check.channel):
            continue
        locations = check.locations or tuple(
            sorted(
                location
                for check_id, location in snapshot.first_claims
                if check_id == check.check_id
            )
        )
        for location in locations:
            first = snapshot.first_claims.get((check.check_id, location))
            if first is None:
                continue  # never ran there: nothing to compare with
            end = min(scope.end, options.now - check.settle)
            for slot in check.schedule.slots(max(scope.start, first), end):
                if (check.check_id, location, slot) not in snapshot.claimed:
                    gaps.append(
                        Gap(
                            kind=UNCLAIMED,
                            check_id=check.check_id,
                            location=location,
                            target=check.target,
                            channel=check.channel,
                            slot_at=slot,
                            claimed_at=None,
                            zone=zones.get(check.target),
                        )
                    )
    gaps.sort(key=lambda gap: (gap.slot_at, gap.check_id, gap.location, gap.kind))
    return gaps


async def export_evidence(store: EvidenceStore, options: ExportOptions) -> ExportResult:
    """Write the export described by ``options`` and record it in ``store``."""
    out = options.out
    _check_destination(options)
    checks = {check.check_id: (check.target, check.channel) for check in options.schedules}
    snapshot = await store.snapshot(options.scope, checks)
    zones = dict(options.zones)
    runs = _exported_runs(snapshot, zones)
    problems = list(snapshot.problems)
    out.mkdir(parents=True, exist_ok=True)
    attachments = await _write_attachments(store, runs, out, problems)
    gaps = compute_gaps(snapshot, options, zones)
    problems += [
        f"slot {gap.check_id}@{gap.location} {utc_text(gap.slot_at)} was claimed but its run is "
        "gone and no purge records it"
        for gap in gaps
        if gap.kind == NO_RUN and not gap.explained_by
    ]
    _write_tables(out, options.file_format, runs, snapshot, gaps)
    await _write_courtesy(store, options)
    span = (snapshot.chain[0].seq, snapshot.chain[-1].seq) if snapshot.chain else None
    manifest = _manifest(
        store, options, snapshot, _Contents(runs, zones, attachments, gaps, problems, span)
    )
    manifest_sha256 = _write_manifest(out, manifest)
    export_id = await store.record_export(
        ExportRecord(
            exported_at=options.now,
            scope=options.scope,
            format=options.file_format,
            manifest_sha256=manifest_sha256,
            chain_seq=snapshot.head[0],
            chain_hash=snapshot.head[1],
            sealed_runs=_sealed_runs(runs),
        )
    )
    return ExportResult(
        out=out,
        runs=len(runs),
        open_runs=sum(run.entry is None for run in runs),
        attachments=attachments,
        gaps=gaps,
        chain_span=span,
        head=snapshot.head,
        manifest_sha256=manifest_sha256,
        export_id=export_id,
        problems=problems,
    )


def _check_destination(options: ExportOptions) -> None:
    out = options.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(
            f"{out} exists and is not an empty directory: export into a new directory (an "
            "export is verified as a whole, so it never mixes with other files)"
        )
    if options.file_format not in (CSV, JSONL):
        raise ExportError(f"unknown format {options.file_format!r}: use csv or jsonl")


async def _write_attachments(
    store: EvidenceStore, runs: list[ExportedRun], out: Path, problems: list[str]
) -> int:
    """Each run's artifacts, byte for byte, under ``attachments/``; how many were written.
    One that vanished or whose content no longer matches its SHA-256 is a problem."""
    attachments = 0
    for run in runs:
        for artifact, relative in zip(run.sorted_artifacts(), run.paths(), strict=True):
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            digest = await _copy_artifact(store, int(artifact["id"]), path)
            if digest is None:
                path.unlink(missing_ok=True)
                problems.append(
                    f"run {run.run_id}: artifact {artifact['id']} vanished during export"
                )
                continue
            if digest != artifact["sha256"]:
                problems.append(
                    f"run {run.run_id}: artifact {artifact['id']} ({artifact['kind']}) content "
                    "does not match its recorded SHA-256 (changed in the store)"
                )
            attachments += 1
    return attachments


async def _copy_artifact(store: EvidenceStore, artifact_id: int, path: Path) -> str | None:
    """The artifact's bytes into ``path``, a stored piece at a time (a 20 MiB reply is never
    held whole); their SHA-256, or None when the artifact is gone."""
    digest = hashlib.sha256()
    written = False
    with path.open("wb") as file:
        async for piece in store.artifact_pieces(artifact_id):
            digest.update(piece)
            file.write(piece)
            written = True
    if not written and await store.artifact_content(artifact_id) is None:
        return None
    return digest.hexdigest()


def _write_tables(
    out: Path, file_format: str, runs: list[ExportedRun], snapshot: Snapshot, gaps: list[Gap]
) -> None:
    if file_format == CSV:
        _write_csv(out / "runs.csv", RUN_COLUMNS, (run_row(run) for run in runs))
        _write_csv(
            out / "messages.csv",
            MESSAGE_COLUMNS,
            (row for run in runs for row in message_rows(run)),
        )
        _write_csv(
            out / "artifacts.csv",
            ARTIFACT_COLUMNS,
            (row for run in runs for row in artifact_rows(run)),
        )
        _write_csv(
            out / "measures.csv",
            MEASURE_COLUMNS,
            (row for run in runs for row in measure_rows(run)),
        )
        _write_csv(out / "chain.csv", CHAIN_COLUMNS, (chain_row(e) for e in snapshot.chain))
        _write_csv(out / "gaps.csv", GAP_COLUMNS, (gap.row() for gap in gaps))
    else:
        _write_jsonl(out / "runs.jsonl", (run_object(run) for run in runs))
        _write_jsonl(out / "chain.jsonl", (chain_object(e) for e in snapshot.chain))
        _write_jsonl(out / "gaps.jsonl", (gap.row() for gap in gaps))


async def _write_courtesy(store: EvidenceStore, options: ExportOptions) -> None:
    """``courtesy.json``: listed in the manifest like every file, so its digest is sealed
    with the export (the run fields it holds are not part of the chain's run records)."""
    scope = options.scope
    results = await store.runs_between(
        scope.start, scope.end, targets=scope.targets, channels=scope.channels
    )
    windows = []
    for declared in options.maintenance:
        openings = list(declared.openings(scope.start, scope.end))
        if not openings:
            continue
        windows.append(
            {
                "source": declared.source,
                "target": declared.window.target,
                "channel": declared.window.channel,
                "mode": str(declared.window.mode),
                "reason": declared.window.reason,
                "declared": declared.window.describe(),
                "ended_at": None if declared.ended_at is None else utc_text(declared.ended_at),
                "openings": [
                    {
                        "from": utc_text(max(opened, scope.start)),
                        "to": utc_text(min(closed, scope.end)),
                    }
                    for opened, closed in openings
                ],
            }
        )
    document = {
        "runs": [
            {
                "run_id": result.run_id,
                "contact_mode": str(result.contact_mode),
                "skipped": result.reason if str(result.outcome) == "skipped" else None,
                "slo_excluded": result.slo_excluded,
            }
            for result in results
        ],
        "maintenance_windows": windows,
    }
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (options.out / COURTESY).write_text(text, encoding="utf-8")


def _sealed_runs(runs: list[ExportedRun]) -> list[tuple[str, str]]:
    """(run id, record hash) of the runs whose exported content is what the chain sealed."""
    sealed = []
    for run in runs:
        if run.entry is not None:
            digest = record_hash(run.record())
            if digest == run.entry.record_hash:
                sealed.append((run.run_id, digest))
    return sealed


@dataclass(frozen=True)
class _Contents:
    """What the export holds, as the manifest describes it."""

    runs: list[ExportedRun]
    zones: dict[str, str]
    attachments: int
    gaps: list[Gap]
    problems: list[str]
    span: tuple[int, int] | None


def _manifest(
    store: EvidenceStore, options: ExportOptions, snapshot: Snapshot, contents: _Contents
) -> dict[str, Any]:
    """The manifest: what was exported from where, the chain head, and every written file's
    SHA-256 (so it is built after the files)."""
    out, runs, gaps, span = options.out, contents.runs, contents.gaps, contents.span
    files = sorted(
        (path for path in out.rglob("*") if path.is_file()), key=lambda p: p.relative_to(out)
    )
    return {
        "format": EXPORT_FORMAT,
        "file_format": options.file_format,
        "cxprobe_version": options.version,
        "config_sha256": options.config_sha256,
        "exported_at": utc_text(options.now),
        "store": store.where,
        "filters": options.scope.as_json(),
        "time_zones": dict(sorted(contents.zones.items())),
        "counts": {
            "runs": len(runs),
            "open_runs": sum(run.entry is None for run in runs),
            "messages": sum(len(run.messages) for run in runs),
            "attachments": contents.attachments,
            "gaps_no_run": sum(gap.kind == NO_RUN for gap in gaps),
            "gaps_unclaimed": sum(gap.kind == UNCLAIMED for gap in gaps),
        },
        "chain": {
            "genesis": GENESIS,
            "head": {"seq": snapshot.head[0], "entry_hash": snapshot.head[1]},
            "first_seq": None if span is None else span[0],
            "last_seq": None if span is None else span[1],
            "entries": len(snapshot.chain),
            "purges": [entry.seq for entry in snapshot.chain if entry.kind == PURGE],
        },
        "store_problems": contents.problems,
        "files": [
            {
                "path": path.relative_to(out).as_posix(),
                "sha256": file_sha256(path),
                "size": path.stat().st_size,
            }
            for path in files
        ],
    }


def _write_manifest(out: Path, manifest: Mapping[str, Any]) -> str:
    """Write the manifest and its digest file; return the digest."""
    manifest_bytes = (
        json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode()
    (out / MANIFEST).write_bytes(manifest_bytes)
    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    (out / MANIFEST_DIGEST).write_text(f"{manifest_sha256}  {MANIFEST}\n", encoding="ascii")
    return manifest_sha256
