"""Verifying an evidence export from its files alone (no store, no configuration needed).

Checks, each reported with what is wrong and where (file, run, chain entry):

1. ``manifest.json`` matches ``manifest.sha256``; every file listed in the manifest exists with
   that SHA-256; no file was added.
2. The chain stretch links up: consecutive sequence numbers, each entry's hash recomputed from
   its fields, each previous-hash equal to the previous entry's hash, purge records matching
   their hashes; and its ends and head agree with the manifest.
3. Every exported run: its content (run, messages, artifact digests) hashes to the record hash
   of its latest chain entry; every derived column (local times, first replies, attachment
   paths) is what the sealed content gives; each attachment's bytes match its digest.
4. Completeness: every run the chain sealed in the period is exported, or recorded by a purge
   entry; every claimed slot without a run is explained by a purge.

The manifest's digest alone proves nothing against someone who rewrites the export: the chain
does (the runs of a period cannot be changed or dropped without breaking the links to entries
they do not control), and the chain head, once handed to an auditor or found in a later export,
anchors it (docs/evidence.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxprobe.evidence.format import (
    CSV,
    ExportedRun,
    Gap,
    artifact_rows,
    entry_from_object,
    entry_from_row,
    measure_rows,
    message_rows,
    run_from_object,
    run_object,
    run_row,
    runs_from_rows,
)
from cxprobe.store.chain import (
    AMENDMENT,
    PURGE,
    RUN,
    ChainEntry,
    ChainFormatError,
    PurgedRun,
    Scope,
    link_problems,
    purged_runs,
    record_hash,
    utc_text,
)

MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: int = 0
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):  # an attachment may be a 20 MiB reply
            digest.update(block)
    return digest.hexdigest()


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def verify_export(directory: Path) -> Verification:
    """Every problem found in the export at ``directory`` (none: it is intact)."""
    result = Verification()
    manifest = _check_manifest(directory, result)
    if manifest is None:
        return result
    actual = _check_files(directory, manifest, result)
    file_format = manifest.get("file_format")
    try:
        scope = Scope.from_json(manifest["filters"])
    except (KeyError, TypeError, ChainFormatError) as exc:
        result.problems.append(f"{MANIFEST}: its filters cannot be read ({exc})")
        return result
    chain_name = "chain.csv" if file_format == CSV else "chain.jsonl"
    entries = _load_chain(directory / chain_name, file_format, result)
    _check_chain(entries, manifest.get("chain") or {}, chain_name, result)
    by_seq = {entry.seq: entry for entry in entries}
    runs = _load_runs(directory, file_format, by_seq, result)
    result.runs = len(runs)
    _check_runs(runs, entries, scope, actual, file_format, result)
    _check_completeness(runs, entries, scope, file_format, result)
    _check_gaps(directory, file_format, entries, result)
    return result


def _check_manifest(directory: Path, result: Verification) -> dict[str, Any] | None:
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        result.problems.append(f"{MANIFEST} is missing: {directory} is not an evidence export")
        return None
    digest_path = directory / MANIFEST_DIGEST
    if not digest_path.is_file():
        result.problems.append(f"{MANIFEST_DIGEST} is missing (it holds the manifest's SHA-256)")
    else:
        expected = digest_path.read_text(encoding="ascii", errors="replace").split()
        if not expected or expected[0] != _sha256(manifest_path):
            result.problems.append(
                f"{MANIFEST} does not match the SHA-256 in {MANIFEST_DIGEST}: one of them was "
                "changed after the export"
            )
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        result.problems.append(f"{MANIFEST} cannot be read as JSON ({exc})")
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        result.problems.append(f"{MANIFEST} has no file list")
        return None
    return manifest


def _check_files(
    directory: Path, manifest: Mapping[str, Any], result: Verification
) -> dict[str, str]:
    """Compare every file with the manifest; returns the actual digest of every file found."""
    actual: dict[str, str] = {}
    listed: set[str] = set()
    for item in manifest["files"]:
        relative = str(item.get("path", ""))
        listed.add(relative)
        path = directory / relative
        if relative.startswith("/") or ".." in Path(relative).parts:
            result.problems.append(f"{MANIFEST} lists an unsafe path {relative!r}")
            continue
        if not path.is_file():
            result.problems.append(f"{relative}: listed in the manifest but missing")
            continue
        actual[relative] = _sha256(path)
        if actual[relative] != item.get("sha256"):
            result.problems.append(
                f"{relative}: its SHA-256 differs from the manifest (the file was changed)"
            )
    result.files = len(listed)
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and relative not in listed | {MANIFEST, MANIFEST_DIGEST}:
            result.problems.append(f"{relative}: not in the manifest (added after the export)")
    return actual


def _load_chain(path: Path, file_format: Any, result: Verification) -> list[ChainEntry]:
    if not path.is_file():
        return []  # already reported as missing
    entries = []
    try:
        raw: Sequence[Mapping[str, Any]] = (
            _read_csv(path) if file_format == CSV else _read_jsonl(path)
        )
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        result.problems.append(f"{path.name}: cannot be read ({exc})")
        return []
    for number, item in enumerate(raw, start=2 if file_format == CSV else 1):
        try:
            entries.append(entry_from_row(item) if file_format == CSV else entry_from_object(item))
        except (KeyError, ValueError, TypeError) as exc:
            result.problems.append(f"{path.name} line {number}: cannot be read ({exc})")
    return sorted(entries, key=lambda entry: entry.seq)


def _check_chain(
    entries: Sequence[ChainEntry], expected: Mapping[str, Any], name: str, result: Verification
) -> None:
    result.problems += link_problems(entries, where=name)
    first = entries[0].seq if entries else None
    last = entries[-1].seq if entries else None
    if expected.get("first_seq") != first or expected.get("last_seq") != last:
        result.problems.append(
            f"{name}: holds entries {first}..{last} but the manifest says "
            f"{expected.get('first_seq')}..{expected.get('last_seq')} (entries were removed)"
        )
    head = expected.get("head") or {}
    by_seq = {entry.seq: entry for entry in entries}
    if head.get("seq") in by_seq and by_seq[head["seq"]].entry_hash != head.get("entry_hash"):
        result.problems.append(
            f"{name}: entry {head['seq']} differs from the manifest's chain head"
        )
    for entry in entries:
        if entry.kind == PURGE:
            count = len(entry.detail.get("runs", [])) if entry.detail else 0
            result.notes.append(
                f"purge at chain entry {entry.seq} ({utc_text(entry.created_at)}): {count} run(s)"
            )


def _load_runs(
    directory: Path, file_format: Any, entries: Mapping[int, ChainEntry], result: Verification
) -> list[tuple[ExportedRun, Any]]:
    """The runs with what the file said about each (rows or JSON object), for comparison."""
    if file_format == CSV:
        try:
            run_rows = _read_csv(directory / "runs.csv")
            message_table = _read_csv(directory / "messages.csv")
            artifact_table = _read_csv(directory / "artifacts.csv")
            # An export from before measures.csv has none (a missing file the manifest lists
            # is reported with the files).
            measures_path = directory / "measures.csv"
            measure_table = _read_csv(measures_path) if measures_path.is_file() else []
        except (OSError, ValueError, csv.Error) as exc:
            result.problems.append(f"the CSV files cannot be read ({exc})")
            return []
        parsed, problems = runs_from_rows(
            run_rows, message_table, artifact_table, entries, measure_table
        )
        result.problems += problems
        rows_by_run: dict[str, dict[str, Any]] = {}
        for row in run_rows:
            rows_by_run.setdefault(
                row.get("run_id", ""), {"run": row, "messages": [], "artifacts": [], "measures": []}
            )
        for table, key in (
            (message_table, "messages"),
            (artifact_table, "artifacts"),
            (measure_table, "measures"),
        ):
            for row in table:
                rows_by_run.get(row.get("run_id", ""), {}).get(key, []).append(row)
        return [(run, rows_by_run.get(run.run_id)) for run in parsed]
    runs = []
    try:
        objects = _read_jsonl(directory / "runs.jsonl")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        result.problems.append(f"runs.jsonl cannot be read ({exc})")
        return []
    for number, data in enumerate(objects, start=1):
        try:
            runs.append((run_from_object(data, entries), data))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            result.problems.append(f"runs.jsonl line {number}: cannot be read ({exc})")
    return runs


def _check_runs(
    runs: Sequence[tuple[ExportedRun, Any]],
    entries: Sequence[ChainEntry],
    scope: Scope,
    actual: Mapping[str, str],
    file_format: Any,
    result: Verification,
) -> None:
    latest: dict[str, ChainEntry] = {}
    for entry in entries:
        if entry.kind in (RUN, AMENDMENT) and entry.run_id:
            latest[entry.run_id] = entry
    runs_file = "runs.csv" if file_format == CSV else "runs.jsonl"
    seen: set[str] = set()
    for run, written in runs:
        run_id = run.run_id
        if run_id in seen:
            result.problems.append(f"{runs_file}: run {run_id} appears more than once")
        seen.add(run_id)
        values = run.run
        if not scope.covers(values["slot_at"], values["target"], values["channel"]):
            result.problems.append(f"{runs_file}: run {run_id} lies outside the export's filters")
        _compare_derived(run, written, file_format, result)
        for artifact, path in zip(run.sorted_artifacts(), run.paths(), strict=True):
            if path in actual and actual[path] != artifact["sha256"]:
                result.problems.append(
                    f"{path}: its content does not match the SHA-256 recorded for run {run_id}"
                )
        if values.get("status") != "closed":
            result.notes.append(f"run {run_id} was still open at export: not sealed yet")
            continue
        try:
            digest = record_hash(run.record())
        except (ChainFormatError, KeyError, ValueError) as exc:
            result.problems.append(
                f"run {run_id}: its content cannot be put in canonical form ({exc})"
            )
            continue
        newest = latest.get(run_id)
        if newest is None:
            result.problems.append(
                f"run {run_id}: closed, but no chain entry of the export seals it"
            )
        elif run.entry is None or run.entry.seq != newest.seq:
            result.problems.append(
                f"{runs_file}: run {run_id} names chain entry "
                f"{None if run.entry is None else run.entry.seq}, but its latest entry is "
                f"{newest.seq}"
            )
        elif digest != newest.record_hash:
            result.problems.append(
                f"run {run_id}: its exported content does not match the record hash sealed by "
                f"chain entry {newest.seq} (the run, one of its messages or measures, or its "
                "attachments' digests was changed)"
            )


def _compare_derived(
    run: ExportedRun, written: Any, file_format: Any, result: Verification
) -> None:
    """Rebuild what the export writes from the parsed evidence; any difference is an edit."""
    if written is None:
        return
    if file_format != CSV:
        expected = run_object(run)
        for key in sorted(set(expected) | set(written)):
            if expected.get(key) != written.get(key):
                result.problems.append(
                    f"runs.jsonl: run {run.run_id}: {key!r} is not what its evidence gives"
                )
        return
    pairs = [
        ("runs.csv", [run_row(run)], [written["run"]]),
        ("messages.csv", message_rows(run), written["messages"]),
        ("artifacts.csv", artifact_rows(run), written["artifacts"]),
        ("measures.csv", measure_rows(run), written["measures"]),
    ]
    for name, rebuilt, rows in pairs:
        if len(rebuilt) != len(rows):
            result.problems.append(
                f"{name}: run {run.run_id} has {len(rows)} row(s), expected {len(rebuilt)}"
            )
            continue
        for expected_row, row in zip(rebuilt, rows, strict=True):
            for column, value in expected_row.items():
                if row.get(column) != value:
                    result.problems.append(
                        f"{name}: run {run.run_id}, column {column}: {row.get(column)!r} is not "
                        f"what its evidence gives ({value!r})"
                    )


def _purges(entries: Sequence[ChainEntry]) -> dict[str, tuple[ChainEntry, PurgedRun]]:
    found: dict[str, tuple[ChainEntry, PurgedRun]] = {}
    for entry in entries:
        if entry.kind == PURGE and entry.detail:
            for run in purged_runs(entry.detail):
                found[run.run_id] = (entry, run)
    return found


def _check_completeness(
    runs: Sequence[tuple[ExportedRun, Any]],
    entries: Sequence[ChainEntry],
    scope: Scope,
    file_format: Any,
    result: Verification,
) -> None:
    exported = {run.run_id for run, _ in runs}
    purges = _purges(entries)
    runs_file = "runs.csv" if file_format == CSV else "runs.jsonl"
    latest_before: dict[str, ChainEntry] = {}
    reported: set[str] = set()
    for entry in entries:
        run_id = entry.run_id
        if entry.kind not in (RUN, AMENDMENT) or run_id is None:
            continue
        latest_before[run_id] = entry
        if run_id in exported or run_id in reported:
            continue
        if not scope.covers(entry.slot_at, entry.target, entry.channel):
            continue
        purge = purges.get(run_id)
        if purge is not None and purge[0].seq > entry.seq:
            continue
        reported.add(run_id)
        slot = "?" if entry.slot_at is None else utc_text(entry.slot_at)
        result.problems.append(
            f"run {run_id} ({entry.check_id}@{entry.location}, slot {slot}) is sealed by chain "
            f"entry {entry.seq} but missing from {runs_file}: it was deleted from the store "
            "before the export, or from the export"
        )
    for run_id, (purge_entry, purged) in sorted(purges.items()):
        if not scope.covers(purged.slot_at, purged.target, purged.channel):
            continue
        sealed = latest_before.get(run_id)
        if (
            sealed is not None
            and sealed.seq < purge_entry.seq
            and sealed.record_hash != purged.record_hash
        ):
            result.problems.append(
                f"purge at chain entry {purge_entry.seq} records run {run_id} with a record "
                f"hash other than the one chain entry {sealed.seq} sealed"
            )
        result.notes.append(
            f"run {run_id} of this period was purged (chain entry {purge_entry.seq})"
        )


def _check_gaps(
    directory: Path, file_format: Any, entries: Sequence[ChainEntry], result: Verification
) -> None:
    name = "gaps.csv" if file_format == CSV else "gaps.jsonl"
    path = directory / name
    if not path.is_file():
        return
    try:
        rows = _read_csv(path) if file_format == CSV else _read_jsonl(path)
        gaps = [Gap.from_row(row) for row in rows]
    except (KeyError, ValueError, csv.Error) as exc:
        result.problems.append(f"{name}: cannot be read ({exc})")
        return
    purged = {(run.check_id, run.location, run.slot_at) for purge, run in _purges(entries).values()}
    unclaimed = 0
    for gap in gaps:
        if gap.kind == "unclaimed":
            unclaimed += 1
        elif (gap.check_id, gap.location, gap.slot_at) not in purged:
            result.problems.append(
                f"{name}: slot {gap.check_id}@{gap.location} {utc_text(gap.slot_at)} was claimed "
                "but has no run, and no purge records one: its run was deleted"
            )
    if unclaimed:
        result.notes.append(
            f"{unclaimed} scheduled slot(s) were never claimed (monitor down or overloaded): "
            f"see {name}"
        )
