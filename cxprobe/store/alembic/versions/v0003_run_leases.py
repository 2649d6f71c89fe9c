"""Run leases (schema version 3): the monitor that owns an open run, and until when.

``lease_owner`` is the owning monitor's name (``monitor.name``), ``lease_session`` the owning
process (a new one each start), ``lease_expires_at`` when another monitor may take the run
over. Runs opened before this revision have no lease: the first monitor of their location to
start takes them, as before leases existed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
Name = sa.String(200)


def upgrade() -> None:
    op.add_column("runs", sa.Column("lease_owner", Name))
    op.add_column("runs", sa.Column("lease_session", sa.String(36)))
    op.add_column("runs", sa.Column("lease_expires_at", Timestamp))
    op.create_index(op.f("ix_runs_status_location"), "runs", ["status", "location"])


def downgrade() -> None:
    raise NotImplementedError(
        "the evidence store is never downgraded (it would destroy the evidence chain): "
        "restore a backup"
    )
