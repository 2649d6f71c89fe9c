"""The evidence store's tables, column types and schema versioning (SQLAlchemy Core).

Only portable types are used, so the same tables work on SQLite and PostgreSQL. Timestamps are
always stored in UTC: SQLite keeps no zone, so :class:`UtcDateTime` converts on the way in and
re-attaches UTC on the way out.

:data:`metadata` always describes the newest schema, for the queries; the Alembic revisions in
``cxprobe/store/alembic/versions/`` create it and upgrade older stores to it, run by
:mod:`cxprobe.store.migrations` (``tests/unit/test_migrations.py`` checks the two agree).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from probes.errors import CxprobeError


class StoreError(CxprobeError):
    """The evidence store cannot be used as asked."""


class SchemaVersionError(StoreError):
    """The database's schema is one this version of cxprobe cannot use."""


class UnknownRunError(StoreError, LookupError):
    """A run id the store has never seen (it must be claimed first)."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite drops the zone; everything was written in UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class OutsideText(TypeDecorator[str]):
    """Text from outside (a reply's body, subject, sender or id; an error's text), with NUL
    characters stored as U+FFFD: PostgreSQL's text cannot hold NUL and would refuse the whole
    reply. Done on every backend, so a store's content does not depend on its database; the
    raw evidence keeps the original bytes."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else outside_text(value)


def outside_text(value: str) -> str:
    """``value`` as an :class:`OutsideText` column stores it (for hashes computed before)."""
    return value.replace("\x00", "\ufffd")


class JsonText(TypeDecorator[Any]):
    """JSON kept as plain text (readable with any SQL client; sorted keys, stable bytes)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


#: How many ids go into one ``IN (...)`` list (well under SQLite's and asyncpg's limits).
IN_CHUNK = 500


def in_chunks(values: Sequence[str]) -> list[Sequence[str]]:
    """``values`` in lists short enough for one ``IN (...)`` each (one empty list if empty)."""
    return [values[start : start + IN_CHUNK] for start in range(0, len(values), IN_CHUNK)] or [
        values
    ]


#: An auto-incrementing 64-bit key (SQLite only auto-increments a plain INTEGER primary key).
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: Short identifiers from configuration (check, target, channel ids) and enum values.
Name = String(200)

#: A run's ``status``: still being driven (sent or about to be, listening), or finished.
OPEN = "open"
CLOSED = "closed"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("check_id", Name, nullable=False),
    Column("target", Name, nullable=False),
    Column("channel", Name, nullable=False),
    Column("scenario", Name, nullable=False),
    Column("location", Name, nullable=False),
    Column("slot_at", UtcDateTime, nullable=False),
    Column("token", Name, nullable=False, unique=True),
    Column("status", String(10), nullable=False),
    Column("period", Name, nullable=False),
    Column("thresholds", JsonText, nullable=False),
    Column("expected_queue", Name),
    Column("sent_at", UtcDateTime),
    Column("sent_external_id", OutsideText),
    Column("resume_state", JsonText),
    Column("first_response_seconds", Float),
    Column("first_response_responder", Name),
    Column("first_human_seconds", Float),
    Column("routed_queue", Name),
    Column("routing", Name, nullable=False),
    Column("outcome", Name),
    Column("reason", OutsideText, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    # The lease on an open run (cxprobe.store.leases): the owning monitor's name, its process
    # (a new session each start) and when another monitor may take the run over.
    Column("lease_owner", Name),
    Column("lease_session", String(36)),
    Column("lease_expires_at", UtcDateTime),
    # Whether the contact disclosed itself (declared) or not (mystery): for the auditors.
    Column("contact_mode", Name, nullable=False, server_default="declared"),
    # Why the run counts for no SLO (a maintenance window); NULL when it counts.
    Column("slo_excluded", OutsideText),
    # What the contact cost (cxprobe.store.budgets): estimated when the slot was claimed,
    # the provider's price once it reported one, in ``currency``, billed to ``cost_account``.
    Column("estimated_cost", Float),
    Column("actual_cost", Float),
    Column("currency", String(3)),
    Column("cost_account", Name),
    # What the human answers said (scenarios.answers; revision 0006): NULL where the scenario
    # asks nothing of them, and for runs from before.
    Column("answer", Name),
    Column("resolved", Boolean),
    Column("language", Name),
    Column("reply_language", Name),
    # The mystery-shopping rubric (scenarios.rubric; revision 0008): the score (0-100) and each
    # item's result; NULL where the scenario has none, nobody answered, and for runs from before.
    Column("rubric_score", Float),
    Column("rubric_items", JsonText),
    CheckConstraint("status IN ('open', 'closed')", name="status"),
    Index(None, "check_id", "slot_at"),
    Index(None, "target", "channel", "sent_at"),
    Index(None, "slot_at"),
    Index(None, "status"),
    Index(None, "sent_external_id"),
    Index(None, "status", "location"),
    Index(None, "created_at"),
)

#: Every slot ever claimed, per location (monitors at several locations may share one store and
#: each runs its own checks). Kept even if its run is pruned, so gaps stay detectable.
slots = Table(
    "slots",
    metadata,
    Column("check_id", Name, primary_key=True),
    Column("location", Name, primary_key=True),
    Column("slot_at", UtcDateTime, primary_key=True),
    Column("claimed_at", UtcDateTime, nullable=False),
    Column("run_id", ForeignKey("runs.run_id", ondelete="SET NULL"), unique=True),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("external_id", OutsideText, nullable=False),
    Column("observed_at", UtcDateTime, nullable=False),
    Column("arrived_at", UtcDateTime, nullable=False),
    Column("timing_method", Name, nullable=False),
    Column("seconds", Float),  # arrived_at - sent_at as the engine judged it (replies only)
    Column("sender", OutsideText, nullable=False),
    Column("responder", Name),  # the engine's verdict (replies only)
    Column("channel_responder", Name),  # what the channel itself reported (replies only)
    Column("subject", OutsideText, nullable=False),
    Column("text", OutsideText, nullable=False),
    Column("headers", JsonText, nullable=False),
    Column("late", Boolean),
    Column("qualifies", Boolean),  # answers the run as its scenario asks (replies only)
    Column("queue", Name),
    # A conversation turn the probe sent (revision 0007): its record, NULL for other messages.
    Column("turn", JsonText),
    CheckConstraint("direction IN ('out', 'in')", name="direction"),
    UniqueConstraint("run_id", "direction", "external_id"),
    Index(None, "run_id", "arrived_at"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE"), index=True),
    Column("kind", Name, nullable=False),
    Column("media_type", Name, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

#: Large evidence in pieces (revision 0009): an artifact's bytes are its ``content`` followed
#: by its chunks in ``seq`` order (spooled evidence has an empty ``content``).
artifact_chunks = Table(
    "artifact_chunks",
    metadata,
    Column(
        "artifact_id",
        ForeignKey("artifacts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("content", LargeBinary, nullable=False),
)

#: The channel's own figures of a run (``ChannelType.measures``, revision 0010), e.g. a call's
#: time on hold from its audio: a row per measure the conversation took, in seconds.
run_measures = Table(
    "run_measures",
    metadata,
    Column("run_id", ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("name", Name, primary_key=True),
    Column("seconds", Float, nullable=False),
)

#: Which run holds a channel's pair (the probe's id, the brand's id) of one-conversation-per-pair
#: channels (SMS, WhatsApp, generic platforms; revision 0011), shared by every monitor on the
#: store: a row whose run is no longer open is stale and may be taken.
pair_holds = Table(
    "pair_holds",
    metadata,
    Column("channel", Name, primary_key=True),
    Column("pair", Name, primary_key=True),
    Column("token", ForeignKey("runs.token", ondelete="CASCADE"), nullable=False),
    Column("held_at", UtcDateTime, nullable=False),
)

#: What a channel driver keeps across restarts, e.g. how far it has read a mailbox.
channel_state = Table(
    "channel_state",
    metadata,
    Column("channel", Name, primary_key=True),
    Column("key", Name, primary_key=True),
    Column("value", JsonText, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


chain = Table(
    "chain",
    metadata,
    # Assigned by the writer holding the chain head's lock: consecutive, never reused.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", Name, nullable=False),
    # Scope of the run (run and amendment entries); no foreign key: the entry outlives the run
    # when retention purges it.
    Column("run_id", String(36)),
    Column("check_id", Name),
    Column("target", Name),
    Column("channel", Name),
    Column("location", Name),
    Column("slot_at", UtcDateTime),
    Column("record_hash", String(64), nullable=False),
    # Unique: two entries can never link to one predecessor (no fork).
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("entry_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("note", OutsideText, nullable=False),  # may quote a reply's external id
    Column("detail", JsonText),  # the purge record (purge entries)
    CheckConstraint("kind IN ('run', 'amendment', 'purge')", name="kind"),
    Index(None, "run_id", "seq"),
    Index(None, "slot_at"),
    Index(None, "kind"),
)

chain_head = Table(
    "chain_head",
    metadata,
    # One row, locked (SELECT ... FOR UPDATE) by every writer that appends an entry.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

exports = Table(
    "exports",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("exported_at", UtcDateTime, nullable=False),
    Column("filters", JsonText, nullable=False),
    Column("format", Name, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("chain_seq", BigInteger, nullable=False),
    Column("chain_hash", String(64), nullable=False),
    Column("runs", Integer, nullable=False),
)

exported_runs = Table(
    "exported_runs",
    metadata,
    Column("export_id", ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True),
    # No foreign key: the record of an export outlives the runs it held.
    Column("run_id", String(36), primary_key=True),
    Column("record_hash", String(64), nullable=False),
    Index(None, "run_id"),
)


#: Maintenance windows declared with ``cxprobe maintenance add`` (the configuration's own are
#: read from the file): the runner reads them before every claim, so no restart is needed.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("target", Name),
    Column("channel", Name),
    Column("reason", OutsideText, nullable=False),
    Column("mode", Name, nullable=False),
    Column("starts_at", UtcDateTime),
    Column("ends_at", UtcDateTime),
    Column("cron", Name),
    Column("duration_seconds", Float),
    Column("timezone", Name, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", Name, nullable=False),
    # Set by ``cxprobe maintenance end``: the window (every later opening too) is over.
    Column("ended_at", UtcDateTime),
)

#: Recipients that asked for no more contacts (an SMS STOP, Twilio 21610) or cannot take any
#: (a permanent bounce), per target and channel; contacts stay paused until an operator clears
#: the row (``cxprobe optout clear``), which is kept, cleared, as the record of who did.
opt_outs = Table(
    "opt_outs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("target", Name, nullable=False),
    Column("channel", Name, nullable=False),
    Column("recipient", OutsideText, nullable=False),
    Column("reason", OutsideText, nullable=False),
    Column("run_id", String(36)),  # the run that learnt it; no foreign key: outlives the run
    Column("created_at", UtcDateTime, nullable=False),
    Column("cleared_at", UtcDateTime),
    Column("cleared_by", Name),
    Index(None, "target", "channel", "cleared_at"),
)
