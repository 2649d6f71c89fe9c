"""The evidence chain (``chain``, ``chain_head``) and the record of exports (``exports``,
``exported_runs``); every run already closed is sealed, oldest finish first (schema version 2).

The tables are frozen here as they were released. Sealing reuses today's
:func:`~cxprobe.store.ledger.seal_closed_runs` (one definition of how a run is sealed): should
a later revision change a column it reads, copy the sealing of this day here first.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from cxprobe.store.ledger import seal_closed_runs

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
Name = sa.String(200)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: The hash the first entry links to.
GENESIS = "0" * 64

UPGRADE_NOTE = "sealed when the store was upgraded to schema 2"


def upgrade() -> None:
    create_chain()
    head = op.create_table(
        "chain_head",
        # One row, locked (SELECT ... FOR UPDATE) by every writer that appends an entry.
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_head")),
        sa.CheckConstraint("id = 1", name=op.f("ck_chain_head_single_row")),
    )
    create_exports()
    now = datetime.now(UTC)
    op.bulk_insert(head, [{"id": 1, "seq": 0, "entry_hash": GENESIS, "updated_at": now}])
    seal_closed_runs(op.get_bind(), now=now, note=UPGRADE_NOTE)


def create_chain() -> None:
    op.create_table(
        "chain",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("kind", Name, nullable=False),
        # The run's scope; no foreign key: the entry outlives the run when it is purged.
        sa.Column("run_id", sa.String(36)),
        sa.Column("check_id", Name),
        sa.Column("target", Name),
        sa.Column("channel", Name),
        sa.Column("location", Name),
        sa.Column("slot_at", Timestamp),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_chain")),
        sa.CheckConstraint("kind IN ('run', 'amendment', 'purge')", name=op.f("ck_chain_kind")),
        # Unique: two entries can never link to one predecessor (no fork).
        sa.UniqueConstraint("prev_hash", name=op.f("uq_chain_prev_hash")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_chain_entry_hash")),
    )
    op.create_index(op.f("ix_chain_run_id_seq"), "chain", ["run_id", "seq"])
    op.create_index(op.f("ix_chain_slot_at"), "chain", ["slot_at"])
    op.create_index(op.f("ix_chain_kind"), "chain", ["kind"])


def create_exports() -> None:
    op.create_table(
        "exports",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("exported_at", Timestamp, nullable=False),
        sa.Column("filters", sa.Text, nullable=False),
        sa.Column("format", Name, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("chain_seq", sa.BigInteger, nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    op.create_table(
        "exported_runs",
        sa.Column("export_id", BigId, nullable=False, autoincrement=False),
        # No foreign key: the record of an export outlives the runs it held.
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("export_id", "run_id", name=op.f("pk_exported_runs")),
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["exports.id"],
            name=op.f("fk_exported_runs_export_id_exports"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_exported_runs_run_id"), "exported_runs", ["run_id"])


def downgrade() -> None:
    raise NotImplementedError(
        "the evidence store is never downgraded (it would destroy the evidence chain): "
        "restore a backup"
    )
