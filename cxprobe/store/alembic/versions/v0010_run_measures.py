"""Run measures: the channel's own figures of each run (schema version 10), e.g. a call's time
on hold and time to a human from its audio (``ChannelType.measures``).

A row per (run, measure name) with its seconds; a run without measures has none, and so do runs
from before this revision. The sealed run record carries them (format ``cxprobe-run/2``, for
runs that have measures only: every other record is ``cxprobe-run/1`` as before), so they are as
tamper-evident as the run's other figures.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_measures",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_run_measures")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.run_id"],
            name=op.f("fk_run_measures_run_id_runs"),
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    raise NotImplementedError("cxprobe stores are upgraded only")
