"""Baseline: the store as cxprobe created it before the evidence chain (schema version 1).

Frozen: written out as the pre-Alembic cxprobe created it, names included (``op.f``: final,
whatever naming convention the metadata of the day has), so a new store and one upgraded from
version 1 have the same tables, constraints and indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Timestamps in UTC (cxprobe.store.schema.UtcDateTime stores them so).
Timestamp = sa.DateTime(timezone=True)
#: Identifiers from configuration and enum values.
Name = sa.String(200)
#: An auto-incrementing 64-bit key (SQLite only auto-increments a plain INTEGER primary key).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "schema_version",
        sa.Column("version", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("applied_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_schema_version")),
    )
    create_runs()
    op.create_table(
        "channel_state",
        sa.Column("channel", Name, nullable=False),
        sa.Column("key", Name, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("channel", "key", name=op.f("pk_channel_state")),
    )
    op.create_table(
        "slots",
        sa.Column("check_id", Name, nullable=False),
        sa.Column("location", Name, nullable=False),
        sa.Column("slot_at", Timestamp, nullable=False),
        sa.Column("claimed_at", Timestamp, nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.PrimaryKeyConstraint("check_id", "location", "slot_at", name=op.f("pk_slots")),
        sa.UniqueConstraint("run_id", name=op.f("uq_slots_run_id")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_slots_run_id_runs"), ondelete="SET NULL"
        ),
    )
    create_messages()
    create_artifacts()


def create_runs() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("check_id", Name, nullable=False),
        sa.Column("target", Name, nullable=False),
        sa.Column("channel", Name, nullable=False),
        sa.Column("scenario", Name, nullable=False),
        sa.Column("location", Name, nullable=False),
        sa.Column("slot_at", Timestamp, nullable=False),
        sa.Column("token", Name, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("period", Name, nullable=False),
        sa.Column("thresholds", sa.Text, nullable=False),
        sa.Column("expected_queue", Name),
        sa.Column("sent_at", Timestamp),
        sa.Column("sent_external_id", sa.Text),
        sa.Column("resume_state", sa.Text),
        sa.Column("first_response_seconds", sa.Float),
        sa.Column("first_response_responder", Name),
        sa.Column("first_human_seconds", sa.Float),
        sa.Column("routed_queue", Name),
        sa.Column("routing", Name, nullable=False),
        sa.Column("outcome", Name),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_runs_status")),
        sa.UniqueConstraint("token", name=op.f("uq_runs_token")),
    )
    op.create_index(op.f("ix_runs_check_id_slot_at"), "runs", ["check_id", "slot_at"])
    op.create_index(
        op.f("ix_runs_target_channel_sent_at"), "runs", ["target", "channel", "sent_at"]
    )
    op.create_index(op.f("ix_runs_slot_at"), "runs", ["slot_at"])
    op.create_index(op.f("ix_runs_status"), "runs", ["status"])
    op.create_index(op.f("ix_runs_sent_external_id"), "runs", ["sent_external_id"])


def create_messages() -> None:
    op.create_table(
        "messages",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("observed_at", Timestamp, nullable=False),
        sa.Column("arrived_at", Timestamp, nullable=False),
        sa.Column("timing_method", Name, nullable=False),
        sa.Column("seconds", sa.Float),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("responder", Name),
        sa.Column("channel_responder", Name),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("late", sa.Boolean),
        sa.Column("qualifies", sa.Boolean),
        sa.Column("queue", Name),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.CheckConstraint("direction IN ('out', 'in')", name=op.f("ck_messages_direction")),
        sa.UniqueConstraint(
            "run_id",
            "direction",
            "external_id",
            name=op.f("uq_messages_run_id_direction_external_id"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_messages_run_id_runs"), ondelete="CASCADE"
        ),
    )
    op.create_index(op.f("ix_messages_run_id_arrived_at"), "messages", ["run_id", "arrived_at"])


def create_artifacts() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("message_id", BigId),
        sa.Column("kind", Name, nullable=False),
        sa.Column("media_type", Name, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_artifacts_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_artifacts_message_id_messages"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_artifacts_run_id"), "artifacts", ["run_id"])
    op.create_index(op.f("ix_artifacts_message_id"), "artifacts", ["message_id"])


def downgrade() -> None:
    raise NotImplementedError(
        "the evidence store is never downgraded (it would destroy evidence): restore a backup"
    )
