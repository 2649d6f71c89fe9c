"""The files of an evidence export: their columns, and converting runs to and from them.

One module writes and reads both formats, so what ``export`` writes is exactly what ``verify``
parses back: ``verify`` rebuilds every row from the parsed evidence and compares it with the
file, so derived columns (local times, first reply per responder, attachment paths) are checked
as well as the sealed ones.

CSV (for spreadsheets): UTF-8 *with* a byte-order mark, because Excel reads BOM-less UTF-8 in
the machine's ANSI code page and garbles names and reply text; Python reads it with
``encoding="utf-8-sig"``, pandas and LibreOffice detect it. One header row, RFC 4180 quoting
(every field that needs it), CRLF line ends. Times are ISO 8601: ``*_utc`` columns in UTC with
``Z``, ``*_local`` columns in the target's zone with its offset. Empty cell = no value.
JSONL (for programs): one JSON object per line, UTF-8 without BOM, same names.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from cxprobe.store.chain import (
    ARTIFACT_FIELDS,
    MESSAGE_FIELDS,
    RUN_FIELDS,
    THRESHOLD_NAMES,
    ChainEntry,
    ChainFormatError,
    FieldKind,
    canonical_json,
    parse_time,
    run_record,
    utc_text,
)
from probes.base import Responder

CSV = "csv"
JSONL = "jsonl"
FORMATS = (CSV, JSONL)

#: One ``first_<responder>_reply_seconds`` column per kind of responder.
RESPONDERS = tuple(responder.value for responder in Responder)

#: Time fields shown a second time in the target's local time.
LOCAL_RUN_TIMES = ("slot_at", "sent_at", "finished_at")

_MEDIA_EXTENSIONS = {
    "message/rfc822": "eml",
    "text/plain": "txt",
    "text/html": "html",
    "application/json": "json",
    "image/png": "png",
    "image/jpeg": "jpg",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def attachment_path(run_id: str, artifact_id: int, kind: str, media_type: str) -> str:
    """``attachments/<run_id>/<artifact_id>-<kind>.<ext>`` (POSIX separators)."""
    ext = _MEDIA_EXTENSIONS.get(media_type.split(";")[0].strip().lower())
    if ext is None:
        guessed = mimetypes.guess_extension(media_type.split(";")[0].strip())
        ext = guessed.lstrip(".") if guessed else "bin"
    safe_kind = _UNSAFE.sub("-", kind).strip("-") or "evidence"
    return f"attachments/{_UNSAFE.sub('-', run_id)}/{artifact_id}-{safe_kind}.{ext}"


@dataclass
class ExportedRun:
    """One run as an export holds it. Values are Python values (aware datetimes, floats)."""

    run: dict[str, Any]  # RUN_FIELDS, ``thresholds`` and ``status``
    messages: list[dict[str, Any]]  # MESSAGE_FIELDS
    artifacts: list[dict[str, Any]]  # ARTIFACT_FIELDS, ``id``, ``message`` (direction, id)
    entry: ChainEntry | None  # the latest run/amendment entry (None: open, unsealed)
    zone: str | None  # the target's IANA zone, for the local-time columns
    #: The channel's own figures (seconds by name), sealed with the run; most runs have none.
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    def record(self) -> dict[str, Any]:
        """The run record its chain entry seals (:func:`~cxprobe.store.chain.run_record`)."""
        return run_record(self.run, self.messages, self.artifacts, self.measures)

    def sorted_messages(self) -> list[dict[str, Any]]:
        return sorted(
            self.messages,
            key=lambda m: (utc_text(m["arrived_at"]), m["direction"], m["external_id"]),
        )

    def sorted_artifacts(self) -> list[dict[str, Any]]:
        return sorted(self.artifacts, key=lambda a: int(a["id"]))

    def paths(self) -> list[str]:
        return [
            attachment_path(self.run_id, int(a["id"]), a["kind"], a["media_type"])
            for a in self.sorted_artifacts()
        ]

    def first_reply_seconds(self) -> dict[str, float | None]:
        """Seconds to the first reply of each responder kind (late replies included)."""
        firsts: dict[str, float | None] = dict.fromkeys(RESPONDERS)
        for message in self.sorted_messages():
            responder = message.get("responder")
            seconds = message.get("seconds")
            if (
                message["direction"] == "in"
                and responder in firsts
                and firsts[responder] is None
                and seconds is not None
            ):
                firsts[responder] = float(seconds)
        return firsts


def local_text(value: datetime | None, zone: str | None) -> str | None:
    if value is None or not zone:
        return None
    return value.astimezone(ZoneInfo(zone)).isoformat(timespec="microseconds")


# -- cell values -------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """A value as CSV text: empty for None, canonical UTC for times, repr for floats."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return canonical_json(value).decode()
    return str(value)


def uncell(kind: FieldKind, text: str) -> Any:
    """CSV text back to a value of ``kind``."""
    if kind == "text":
        return text
    if kind == "json":
        return json.loads(text) if text else {}
    if text == "":
        return None
    if kind in ("time", "opt_time"):
        return parse_time(text)
    if kind in ("float", "opt_float"):
        return float(text)
    if kind == "opt_bool":
        if text not in ("true", "false"):
            raise ChainFormatError(f"{text!r} is not true or false")
        return text == "true"
    return text


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_text(value)
    return value


def unjson(kind: FieldKind, value: Any) -> Any:
    if value is None:
        return {} if kind == "json" else None
    if kind in ("time", "opt_time"):
        return parse_time(str(value))
    if kind in ("float", "opt_float"):
        return float(value)
    return value


# -- CSV ---------------------------------------------------------------------------------------

#: runs.csv: column -> the run field it shows (None: derived, rebuilt by verify).
RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "check_id",
    "target",
    "channel",
    "scenario",
    "location",
    "status",
    "time_zone",
    "slot_at_utc",
    "slot_at_local",
    "period",
    "sent_at_utc",
    "sent_at_local",
    "finished_at_utc",
    "finished_at_local",
    "created_at_utc",
    "outcome",
    "reason",
    "first_response_seconds",
    "first_response_responder",
    "first_human_seconds",
    *(f"first_{responder}_reply_seconds" for responder in RESPONDERS),
    "expected_queue",
    "routed_queue",
    "routing",
    *(f"sla_{name}_seconds" for name in THRESHOLD_NAMES),
    "token",
    "sent_external_id",
    "messages",
    "attachments",
    "chain_seq",
    "chain_kind",
    "sealed_at_utc",
    "record_hash",
    "entry_hash",
)

MESSAGE_COLUMNS: tuple[str, ...] = (
    "run_id",
    "direction",
    "external_id",
    "arrived_at_utc",
    "arrived_at_local",
    "observed_at_utc",
    "timing_method",
    "seconds",
    "sender",
    "responder",
    "channel_responder",
    "queue",
    "late",
    "qualifies",
    "subject",
    "text",
    "headers",
)

ARTIFACT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "artifact_id",
    "message_direction",
    "message_external_id",
    "kind",
    "media_type",
    "size",
    "sha256",
    "path",
)

#: measures.csv: a row per channel measure of a run (``ChannelType.measures``), in seconds.
MEASURE_COLUMNS: tuple[str, ...] = ("run_id", "measure", "seconds")

CHAIN_COLUMNS: tuple[str, ...] = (
    "seq",
    "kind",
    "run_id",
    "check_id",
    "target",
    "channel",
    "location",
    "slot_at_utc",
    "created_at_utc",
    "note",
    "record_hash",
    "prev_hash",
    "entry_hash",
    "detail",
)

GAP_COLUMNS: tuple[str, ...] = (
    "kind",
    "check_id",
    "location",
    "target",
    "channel",
    "slot_at_utc",
    "slot_at_local",
    "claimed_at_utc",
    "explained_by",
)

_UTC_SUFFIX = "_utc"


def _run_field_of(column: str) -> str | None:
    name = column.removesuffix(_UTC_SUFFIX)
    return name if name in RUN_FIELDS else None


def run_row(run: ExportedRun) -> dict[str, str]:
    values = run.run
    thresholds = values.get("thresholds") or {}
    firsts = run.first_reply_seconds()
    entry = run.entry
    row: dict[str, str] = {}
    for column in RUN_COLUMNS:
        name = _run_field_of(column)
        if name is not None:
            row[column] = cell(values[name])
        elif column == "status":
            row[column] = cell(values.get("status"))
        elif column == "time_zone":
            row[column] = run.zone or ""
        elif column.endswith("_local"):
            row[column] = cell(local_text(values[column.removesuffix("_local")], run.zone))
        elif column.startswith("sla_"):
            row[column] = cell(thresholds.get(column[4:].removesuffix("_seconds")))
        elif column.endswith("_reply_seconds"):
            row[column] = cell(firsts[column[6:].removesuffix("_reply_seconds")])
        elif column == "messages":
            row[column] = str(len(run.messages))
        elif column == "attachments":
            row[column] = "; ".join(run.paths())
        elif column == "chain_seq":
            row[column] = "" if entry is None else str(entry.seq)
        elif column == "chain_kind":
            row[column] = "" if entry is None else entry.kind
        elif column == "sealed_at_utc":
            row[column] = "" if entry is None else cell(entry.created_at)
        elif column == "record_hash":
            row[column] = "" if entry is None else entry.record_hash
        elif column == "entry_hash":
            row[column] = "" if entry is None else entry.entry_hash
        else:  # pragma: no cover - every column is handled above
            raise AssertionError(column)
    return row


def message_rows(run: ExportedRun) -> list[dict[str, str]]:
    rows = []
    for message in run.sorted_messages():
        row = {"run_id": run.run_id}
        for column in MESSAGE_COLUMNS[1:]:
            name = column.removesuffix(_UTC_SUFFIX)
            if column == "arrived_at_local":
                row[column] = cell(local_text(message["arrived_at"], run.zone))
            else:
                row[column] = cell(message[name])
        rows.append(row)
    return rows


def artifact_rows(run: ExportedRun) -> list[dict[str, str]]:
    rows = []
    for artifact, path in zip(run.sorted_artifacts(), run.paths(), strict=True):
        ref = artifact.get("message")
        rows.append(
            {
                "run_id": run.run_id,
                "artifact_id": str(artifact["id"]),
                "message_direction": "" if ref is None else ref[0],
                "message_external_id": "" if ref is None else ref[1],
                "kind": artifact["kind"],
                "media_type": artifact["media_type"],
                "size": str(int(artifact["size"])),
                "sha256": artifact["sha256"],
                "path": path,
            }
        )
    return rows


def measure_rows(run: ExportedRun) -> list[dict[str, str]]:
    return [
        {"run_id": run.run_id, "measure": name, "seconds": cell(float(seconds))}
        for name, seconds in sorted(run.measures.items())
    ]


def chain_row(entry: ChainEntry) -> dict[str, str]:
    return {
        "seq": str(entry.seq),
        "kind": entry.kind,
        "run_id": entry.run_id or "",
        "check_id": entry.check_id or "",
        "target": entry.target or "",
        "channel": entry.channel or "",
        "location": entry.location or "",
        "slot_at_utc": cell(entry.slot_at),
        "created_at_utc": cell(entry.created_at),
        "note": entry.note,
        "record_hash": entry.record_hash,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "detail": "" if entry.detail is None else cell(entry.detail),
    }


def entry_from_row(row: Mapping[str, str]) -> ChainEntry:
    detail = row.get("detail") or ""
    return ChainEntry(
        seq=int(row["seq"]),
        kind=row["kind"],
        run_id=row["run_id"] or None,
        check_id=row["check_id"] or None,
        target=row["target"] or None,
        channel=row["channel"] or None,
        location=row["location"] or None,
        slot_at=uncell("opt_time", row["slot_at_utc"]),
        record_hash=row["record_hash"],
        prev_hash=row["prev_hash"],
        entry_hash=row["entry_hash"],
        created_at=parse_time(row["created_at_utc"]),
        note=row["note"],
        detail=json.loads(detail) if detail else None,
    )


def runs_from_rows(
    runs: Sequence[Mapping[str, str]],
    messages: Sequence[Mapping[str, str]],
    artifacts: Sequence[Mapping[str, str]],
    entries: Mapping[int, ChainEntry],
    measures: Sequence[Mapping[str, str]] = (),
) -> tuple[list[ExportedRun], list[str]]:
    """Runs parsed back from the CSV files (``measures``: measures.csv's rows, none in an
    export from before it), and what could not be (a row that cannot be parsed is reported,
    and verify carries on with the rest)."""
    loose: list[str] = []
    by_run_messages = _by_run(_parsed(messages, "messages.csv", _message_from_row, loose))
    by_run_artifacts = _by_run(_parsed(artifacts, "artifacts.csv", _artifact_from_row, loose))
    by_run_measures = _by_run(_parsed(measures, "measures.csv", _measure_from_row, loose))
    parsed = []
    read_run = functools.partial(_run_from_row, entries=entries)
    for row, (values, entry) in _parsed(runs, "runs.csv", read_run, loose):
        run_id = str(values["run_id"])
        parsed.append(
            ExportedRun(
                run=values,
                messages=by_run_messages.pop(run_id, []),
                artifacts=by_run_artifacts.pop(run_id, []),
                entry=entry,
                zone=row.get("time_zone") or None,
                measures=_measures_of(by_run_measures.pop(run_id, []), run_id, loose),
            )
        )
    for run_id, orphans in {**by_run_messages, **by_run_artifacts, **by_run_measures}.items():
        loose.append(
            f"messages.csv/artifacts.csv/measures.csv hold {len(orphans)} row(s) of run "
            f"{run_id}, which is not in runs.csv (its line was removed?)"
        )
    return parsed, loose


def _measure_from_row(row: Mapping[str, str]) -> dict[str, Any]:
    return {"measure": row["measure"], "seconds": float(row["seconds"])}


def _measures_of(
    rows: Sequence[Mapping[str, Any]], run_id: str, loose: list[str]
) -> dict[str, float]:
    found: dict[str, float] = {}
    for row in rows:
        if row["measure"] in found:
            loose.append(f"measures.csv: run {run_id} has measure {row['measure']} twice")
        found[row["measure"]] = row["seconds"]
    return found


_Parsed = TypeVar("_Parsed")


def _parsed(
    rows: Sequence[Mapping[str, str]],
    file: str,
    parse: Callable[[Mapping[str, str]], _Parsed],
    loose: list[str],
) -> Iterator[tuple[Mapping[str, str], _Parsed]]:
    """Each row with what ``parse`` read from it; a row it cannot read goes to ``loose``
    (numbered as the file's lines, after the header)."""
    for number, row in enumerate(rows, start=2):
        try:
            value = parse(row)
        except (KeyError, ValueError) as exc:
            loose.append(f"{file} line {number}: cannot be read ({exc})")
            continue
        yield row, value


def _by_run(
    parsed: Iterable[tuple[Mapping[str, str], dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row, value in parsed:
        grouped.setdefault(row["run_id"], []).append(value)
    return grouped


def _message_from_row(row: Mapping[str, str]) -> dict[str, Any]:
    return {name: uncell(kind, row[_message_column(name)]) for name, kind in MESSAGE_FIELDS.items()}


def _artifact_from_row(row: Mapping[str, str]) -> dict[str, Any]:
    ref = (
        None
        if not row["message_direction"]
        else (row["message_direction"], row["message_external_id"])
    )
    return {
        "id": int(row["artifact_id"]),
        "message": ref,
        "kind": row["kind"],
        "media_type": row["media_type"],
        "size": int(row["size"]),
        "sha256": row["sha256"],
    }


def _run_from_row(
    row: Mapping[str, str], entries: Mapping[int, ChainEntry]
) -> tuple[dict[str, Any], ChainEntry | None]:
    values: dict[str, Any] = {
        name: uncell(kind, row[f"{name}{_UTC_SUFFIX}" if "time" in kind else name])
        for name, kind in RUN_FIELDS.items()
    }
    values["status"] = row["status"]
    values["thresholds"] = {
        name: uncell("opt_float", row[f"sla_{name}_seconds"]) for name in THRESHOLD_NAMES
    }
    seq = row["chain_seq"]
    return values, entries.get(int(seq)) if seq else None


def _message_column(name: str) -> str:
    return f"{name}{_UTC_SUFFIX}" if MESSAGE_FIELDS[name] in ("time", "opt_time") else name


# -- JSONL -------------------------------------------------------------------------------------


def run_object(run: ExportedRun) -> dict[str, Any]:
    """One line of runs.jsonl: the run's fields, derived views, messages, artifacts, seal."""
    values = run.run
    entry = run.entry
    return {
        **{name: jsonable(values[name]) for name in RUN_FIELDS},
        "status": values.get("status"),
        "thresholds": {
            name: (values.get("thresholds") or {}).get(name) for name in THRESHOLD_NAMES
        },
        "time_zone": run.zone,
        "local": {name: local_text(values[name], run.zone) for name in LOCAL_RUN_TIMES},
        "first_reply_seconds": run.first_reply_seconds(),
        "messages": [
            {name: jsonable(message[name]) for name in MESSAGE_FIELDS}
            | {"arrived_at_local": local_text(message["arrived_at"], run.zone)}
            for message in run.sorted_messages()
        ],
        "artifacts": [
            {
                "id": int(artifact["id"]),
                "message": None
                if artifact.get("message") is None
                else {"direction": artifact["message"][0], "external_id": artifact["message"][1]},
                **{name: artifact[name] for name in ARTIFACT_FIELDS},
                "size": int(artifact["size"]),
                "path": path,
            }
            for artifact, path in zip(run.sorted_artifacts(), run.paths(), strict=True)
        ],
        "chain": None
        if entry is None
        else {
            "seq": entry.seq,
            "kind": entry.kind,
            "sealed_at": utc_text(entry.created_at),
            "record_hash": entry.record_hash,
            "entry_hash": entry.entry_hash,
        },
        # Only where the run has measures: a line of a run without any reads as before.
        **({"measures": dict(sorted(run.measures.items()))} if run.measures else {}),
    }


def run_from_object(data: Mapping[str, Any], entries: Mapping[int, ChainEntry]) -> ExportedRun:
    values: dict[str, Any] = {name: unjson(kind, data[name]) for name, kind in RUN_FIELDS.items()}
    values["status"] = data["status"]
    values["thresholds"] = {
        name: unjson("opt_float", (data.get("thresholds") or {}).get(name))
        for name in THRESHOLD_NAMES
    }
    seal = data.get("chain")
    return ExportedRun(
        run=values,
        messages=[
            {name: unjson(kind, message[name]) for name, kind in MESSAGE_FIELDS.items()}
            for message in data["messages"]
        ],
        artifacts=[
            {
                "id": int(artifact["id"]),
                "message": None
                if artifact["message"] is None
                else (artifact["message"]["direction"], artifact["message"]["external_id"]),
                "kind": artifact["kind"],
                "media_type": artifact["media_type"],
                "size": int(artifact["size"]),
                "sha256": artifact["sha256"],
            }
            for artifact in data["artifacts"]
        ],
        entry=None if seal is None else entries.get(int(seal["seq"])),
        zone=data.get("time_zone"),
        measures={str(name): float(value) for name, value in (data.get("measures") or {}).items()},
    )


def chain_object(entry: ChainEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "run_id": entry.run_id,
        "check_id": entry.check_id,
        "target": entry.target,
        "channel": entry.channel,
        "location": entry.location,
        "slot_at": None if entry.slot_at is None else utc_text(entry.slot_at),
        "created_at": utc_text(entry.created_at),
        "note": entry.note,
        "record_hash": entry.record_hash,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "detail": entry.detail,
    }


def entry_from_object(data: Mapping[str, Any]) -> ChainEntry:
    return ChainEntry(
        seq=int(data["seq"]),
        kind=str(data["kind"]),
        run_id=data.get("run_id"),
        check_id=data.get("check_id"),
        target=data.get("target"),
        channel=data.get("channel"),
        location=data.get("location"),
        slot_at=None if data.get("slot_at") is None else parse_time(str(data["slot_at"])),
        record_hash=str(data["record_hash"]),
        prev_hash=str(data["prev_hash"]),
        entry_hash=str(data["entry_hash"]),
        created_at=parse_time(str(data["created_at"])),
        note=str(data.get("note", "")),
        detail=data.get("detail"),
    )


def json_line(value: Mapping[str, Any]) -> str:
    """One JSONL line: sorted keys, UTF-8 text kept as is."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


@dataclass(frozen=True)
class Gap:
    """A scheduled slot without a run: ``no_run`` (claimed, run gone) or ``unclaimed``."""

    kind: str
    check_id: str
    location: str
    target: str | None
    channel: str | None
    slot_at: datetime
    claimed_at: datetime | None
    zone: str | None
    explained_by: str = ""

    def row(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "check_id": self.check_id,
            "location": self.location,
            "target": self.target or "",
            "channel": self.channel or "",
            "slot_at_utc": cell(self.slot_at),
            "slot_at_local": cell(local_text(self.slot_at, self.zone)),
            "claimed_at_utc": cell(self.claimed_at),
            "explained_by": self.explained_by,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, str], zone: str | None = None) -> Gap:
        return cls(
            kind=row["kind"],
            check_id=row["check_id"],
            location=row["location"],
            target=row["target"] or None,
            channel=row["channel"] or None,
            slot_at=parse_time(row["slot_at_utc"]),
            claimed_at=uncell("opt_time", row["claimed_at_utc"]),
            zone=zone,
            explained_by=row["explained_by"],
        )
