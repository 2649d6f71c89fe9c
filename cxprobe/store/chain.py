"""The tamper-evidence chain: canonical records, their hashes, and the links between entries.

Pure functions only (no database), so an export can be verified with nothing but its files.

A finalised run is sealed by a *record hash*: SHA-256 over a canonical JSON form of the run's
fields, its messages' fields and its artifacts' SHA-256 digests (content is covered through the
digest). Each chain entry then commits to its record hash, a few scope fields (which run, when,
where) and the previous entry's hash, so deleting, editing or reordering entries breaks a link.
Entries are numbered from 1; the first one links to :data:`GENESIS`.

Entry kinds:

``run``
    a run was finalised; ``record_hash`` seals its content at that moment.
``amendment``
    a sealed run changed (a late reply, revised figures): ``record_hash`` seals its new content.
    The latest ``run``/``amendment`` entry of a run is the one its current content must match.
``purge``
    retention deleted runs; ``record_hash`` seals :func:`purge_record` (the run ids and the
    record hashes they had), so an export made later can tell a purged run from a deleted one.

Run record formats: ``cxprobe-run/1`` seals the run's fields, messages and artifacts;
``cxprobe-run/2`` is the same with ``measures`` (the channel's own figures, name → seconds),
used only for a run that has measures, so every run without them (all runs sealed before
revision 0010) keeps its ``/1`` record and hash.

Canonical form: JSON with sorted keys, no insignificant whitespace, UTF-8; times as UTC
``YYYY-MM-DDTHH:MM:SS.ffffffZ``; numbers as floats; optional text empty and null alike (null).
Database ids are left out, so a record survives a dump and restore into another database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

#: What the first entry links to.
GENESIS = "0" * 64

RUN = "run"
AMENDMENT = "amendment"
PURGE = "purge"
ENTRY_KINDS = (RUN, AMENDMENT, PURGE)

RUN_RECORD_FORMAT = "cxprobe-run/1"
#: A run record with the channel's measures (``measures``: name → seconds).
MEASURED_RUN_RECORD_FORMAT = "cxprobe-run/2"
PURGE_RECORD_FORMAT = "cxprobe-purge/1"
ENTRY_FORMAT = "cxprobe-chain/1"

FieldKind = Literal[
    "text", "opt_text", "time", "opt_time", "float", "opt_float", "opt_bool", "json"
]

#: The run fields a record seals, with how each is normalised. Not sealed: ``status`` (always
#: closed when sealed) and ``resume_state`` (a driver's bookkeeping, not evidence).
RUN_FIELDS: Mapping[str, FieldKind] = {
    "run_id": "text",
    "check_id": "text",
    "target": "text",
    "channel": "text",
    "scenario": "text",
    "location": "text",
    "slot_at": "time",
    "token": "text",
    "period": "text",
    "expected_queue": "opt_text",
    "sent_at": "opt_time",
    "sent_external_id": "opt_text",
    "first_response_seconds": "opt_float",
    "first_response_responder": "opt_text",
    "first_human_seconds": "opt_float",
    "routed_queue": "opt_text",
    "routing": "text",
    "outcome": "opt_text",
    "reason": "text",
    "created_at": "time",
    "finished_at": "opt_time",
}

#: The SLA figures of a run (seconds), sealed as ``thresholds``: every ``SloName`` and the
#: deadline. Written out, not derived: it is part of the sealed record's format, so an export
#: made today verifies with tomorrow's code; a new SLO needs a new record format.
THRESHOLD_NAMES = ("first_response", "human_response", "after_hours_response", "deadline")

MESSAGE_FIELDS: Mapping[str, FieldKind] = {
    "direction": "text",
    "external_id": "text",
    "observed_at": "time",
    "arrived_at": "time",
    "timing_method": "text",
    "seconds": "opt_float",
    "sender": "text",
    "responder": "opt_text",
    "channel_responder": "opt_text",
    "subject": "text",
    "text": "text",
    "headers": "json",
    "late": "opt_bool",
    "qualifies": "opt_bool",
    "queue": "opt_text",
}

ARTIFACT_FIELDS: Mapping[str, FieldKind] = {
    "kind": "text",
    "media_type": "text",
    "sha256": "text",
    "size": "float",
}

#: Scope fields every run/amendment entry carries, so a run missing from an export is noticed
#: even when its row is gone.
SCOPE_FIELDS = ("run_id", "check_id", "target", "channel", "location", "slot_at")


class ChainFormatError(ValueError):
    """A value cannot be put in canonical form (e.g. a time without a zone)."""


def utc_text(value: datetime) -> str:
    """The canonical form of an instant: UTC, microseconds, ``Z``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ChainFormatError(f"time {value.isoformat()} has no zone")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """An ISO 8601 instant with a zone (``Z`` or an offset), as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ChainFormatError(f"{value!r} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise ChainFormatError(f"time {value!r} has no zone")
    return parsed


def normalise(kind: FieldKind, value: Any) -> Any:
    """``value`` in canonical form for a field of ``kind``."""
    if value is None or (value == "" and kind.startswith("opt_")):
        if kind in ("text", "time", "float"):
            raise ChainFormatError(f"a {kind} field cannot be empty")
        return {} if kind == "json" else None
    if kind in ("time", "opt_time"):
        return utc_text(value if isinstance(value, datetime) else parse_time(str(value)))
    if kind in ("float", "opt_float"):
        return float(value)
    if kind == "opt_bool":
        return bool(value)
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else dict(value)
    return str(value)


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fields(spec: Mapping[str, FieldKind], values: Mapping[str, Any]) -> dict[str, Any]:
    missing = [name for name in spec if name not in values]
    if missing:
        raise ChainFormatError(f"missing field(s): {', '.join(missing)}")
    return {name: normalise(kind, values[name]) for name, kind in spec.items()}


MessageKey = tuple[str, str]  # (direction, external_id): unique within a run


def run_record(
    run: Mapping[str, Any],
    messages: Iterable[Mapping[str, Any]],
    artifacts: Iterable[Mapping[str, Any]],
    measures: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The canonical content of a run that its record hash seals.

    ``run`` holds :data:`RUN_FIELDS` and ``thresholds`` (a mapping); each message
    :data:`MESSAGE_FIELDS`; each artifact :data:`ARTIFACT_FIELDS` and ``message``, the
    ``(direction, external_id)`` of the message it belongs to or None (evidence of the run);
    ``measures`` the channel's own figures (seconds by name), none for most runs.
    """
    thresholds = run["thresholds"] or {}
    sealed_run = _fields(RUN_FIELDS, run) | {
        "thresholds": {
            name: normalise("opt_float", thresholds.get(name)) for name in THRESHOLD_NAMES
        }
    }
    sealed_messages = sorted(
        (_fields(MESSAGE_FIELDS, message) for message in messages),
        key=lambda m: (m["arrived_at"], m["direction"], m["external_id"]),
    )
    sealed_artifacts = []
    for artifact in artifacts:
        ref = artifact.get("message")
        sealed = _fields(ARTIFACT_FIELDS, artifact)
        sealed["message"] = None if ref is None else {"direction": ref[0], "external_id": ref[1]}
        sealed_artifacts.append(sealed)
    sealed_artifacts.sort(
        key=lambda a: (
            "" if a["message"] is None else a["message"]["direction"],
            "" if a["message"] is None else a["message"]["external_id"],
            a["kind"],
            a["sha256"],
            a["media_type"],
            a["size"],
        )
    )
    record: dict[str, Any] = {
        "format": RUN_RECORD_FORMAT,
        "run": sealed_run,
        "messages": sealed_messages,
        "artifacts": sealed_artifacts,
    }
    if measures:
        record["format"] = MEASURED_RUN_RECORD_FORMAT
        record["measures"] = {str(name): float(value) for name, value in measures.items()}
    return record


def record_hash(record: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(record))


@dataclass(frozen=True)
class PurgedRun:
    """A run a purge deleted, with the record hash it had and where it belonged."""

    run_id: str
    record_hash: str
    check_id: str
    target: str
    channel: str
    location: str
    slot_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "record_hash": self.record_hash,
            "check_id": self.check_id,
            "target": self.target,
            "channel": self.channel,
            "location": self.location,
            "slot_at": utc_text(self.slot_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PurgedRun:
        return cls(
            run_id=str(data["run_id"]),
            record_hash=str(data["record_hash"]),
            check_id=str(data["check_id"]),
            target=str(data["target"]),
            channel=str(data["channel"]),
            location=str(data["location"]),
            slot_at=parse_time(str(data["slot_at"])),
        )


def purge_record(runs: Sequence[PurgedRun], policy: Mapping[str, Any]) -> dict[str, Any]:
    """What a purge entry's record hash seals: every run it deleted and the policy applied."""
    return {
        "format": PURGE_RECORD_FORMAT,
        "policy": dict(policy),
        "runs": sorted((run.as_json() for run in runs), key=lambda r: r["run_id"]),
    }


def purged_runs(detail: Mapping[str, Any]) -> list[PurgedRun]:
    return [PurgedRun.from_json(run) for run in detail.get("runs", [])]


@dataclass(frozen=True)
class ChainEntry:
    """One link of the chain. ``detail`` is the purge record (purge entries only)."""

    seq: int
    kind: str
    run_id: str | None
    check_id: str | None
    target: str | None
    channel: str | None
    location: str | None
    slot_at: datetime | None
    record_hash: str
    prev_hash: str
    entry_hash: str
    created_at: datetime
    note: str = ""
    detail: dict[str, Any] | None = field(default=None, compare=False)

    def hashed_fields(self) -> dict[str, Any]:
        return entry_fields(
            seq=self.seq,
            kind=self.kind,
            scope={
                "run_id": self.run_id,
                "check_id": self.check_id,
                "target": self.target,
                "channel": self.channel,
                "location": self.location,
                "slot_at": self.slot_at,
            },
            record_hash=self.record_hash,
            prev_hash=self.prev_hash,
            created_at=self.created_at,
            note=self.note,
        )

    def computed_hash(self) -> str:
        return sha256_hex(canonical_json(self.hashed_fields()))


def entry_fields(
    *,
    seq: int,
    kind: str,
    scope: Mapping[str, Any],
    record_hash: str,
    prev_hash: str,
    created_at: datetime,
    note: str,
) -> dict[str, Any]:
    """What an entry hash covers (a purge's detail is covered through its record hash)."""
    slot_at = scope.get("slot_at")
    return {
        "format": ENTRY_FORMAT,
        "seq": seq,
        "kind": kind,
        **{name: scope.get(name) for name in SCOPE_FIELDS if name != "slot_at"},
        "slot_at": None if slot_at is None else utc_text(slot_at),
        "record_hash": record_hash,
        "prev_hash": prev_hash,
        "created_at": utc_text(created_at),
        "note": note,
    }


def link_problems(entries: Sequence[ChainEntry], *, where: str = "chain") -> list[str]:
    """Every broken link of a contiguous stretch of entries (sorted by seq), described."""
    problems: list[str] = []
    previous: ChainEntry | None = None
    for entry in entries:
        if entry.kind not in ENTRY_KINDS:
            problems.append(f"{where}: entry {entry.seq} has an unknown kind {entry.kind!r}")
        if entry.computed_hash() != entry.entry_hash:
            problems.append(
                f"{where}: entry {entry.seq} ({entry.kind}"
                + (f" of run {entry.run_id}" if entry.run_id else "")
                + ") does not match its entry hash: one of its fields was changed"
            )
        purge_detail = entry.detail if entry.kind == PURGE else None
        if purge_detail is not None and record_hash(purge_detail) != entry.record_hash:
            problems.append(
                f"{where}: purge entry {entry.seq} lists runs that differ from what it "
                "sealed (its record hash does not match its detail)"
            )
        if previous is None:
            if entry.seq == 1 and entry.prev_hash != GENESIS:
                problems.append(f"{where}: entry 1 does not link to the genesis hash")
        elif entry.seq != previous.seq + 1:
            missing = (
                f"entry {previous.seq + 1}"
                if entry.seq == previous.seq + 2
                else f"entries {previous.seq + 1}..{entry.seq - 1}"
            )
            problems.append(
                f"{where}: {missing} missing between {previous.seq} and {entry.seq}"
                if entry.seq > previous.seq
                else f"{where}: entry {entry.seq} is out of order after {previous.seq}"
            )
        elif entry.prev_hash != previous.entry_hash:
            problems.append(
                f"{where}: entry {entry.seq} does not link to entry {previous.seq} (its "
                "previous-hash differs): an entry was changed, removed or inserted"
            )
        previous = entry
    return problems


@dataclass(frozen=True)
class Scope:
    """Which runs an export covers: slots in [start, end), optionally some targets/channels."""

    start: datetime
    end: datetime
    targets: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    def covers(self, slot_at: datetime | None, target: str | None, channel: str | None) -> bool:
        if slot_at is None or not self.start <= slot_at < self.end:
            return False
        if self.targets and target not in self.targets:
            return False
        return not (self.channels and channel not in self.channels)

    def as_json(self) -> dict[str, Any]:
        return {
            "from": utc_text(self.start),
            "to": utc_text(self.end),
            "targets": list(self.targets),
            "channels": list(self.channels),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scope:
        return cls(
            start=parse_time(str(data["from"])),
            end=parse_time(str(data["to"])),
            targets=tuple(data.get("targets") or ()),
            channels=tuple(data.get("channels") or ()),
        )
