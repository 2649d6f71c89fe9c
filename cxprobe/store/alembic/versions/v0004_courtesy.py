"""Courtesy: each run's contact mode and SLO exclusion, maintenance windows declared with
``cxprobe maintenance add``, and opt-outs (schema version 4).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
Name = sa.String(200)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        # Runs before this revision disclosed themselves: only declared contacts existed.
        batch.add_column(sa.Column("contact_mode", Name, nullable=False, server_default="declared"))
        batch.add_column(sa.Column("slo_excluded", sa.Text))
    op.create_table(
        "maintenance_windows",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("target", Name),
        sa.Column("channel", Name),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("mode", Name, nullable=False),
        sa.Column("starts_at", Timestamp),
        sa.Column("ends_at", Timestamp),
        sa.Column("cron", Name),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("timezone", Name, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", Name, nullable=False),
        sa.Column("ended_at", Timestamp),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    op.create_table(
        "opt_outs",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("target", Name, nullable=False),
        sa.Column("channel", Name, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("cleared_at", Timestamp),
        sa.Column("cleared_by", Name),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_outs")),
    )
    op.create_index(
        op.f("ix_opt_outs_target_channel_cleared_at"),
        "opt_outs",
        ["target", "channel", "cleared_at"],
    )


def downgrade() -> None:
    raise NotImplementedError("cxprobe stores are upgraded only")
