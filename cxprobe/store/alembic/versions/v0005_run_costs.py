"""Run costs (schema version 5): what each contact was estimated to cost and what it cost.

``estimated_cost`` is written when the slot is claimed (the channel's units times the price
table), ``actual_cost`` once the provider reports its price (Twilio: ``price``, often some
minutes after the send), both in ``currency`` (ISO 4217) and billed to ``cost_account`` (the
provider account, e.g. a Twilio account SID). Runs from before this revision have none: they
count for no money budget. The index on ``created_at`` serves the budgets' window sums.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("estimated_cost", sa.Float))
    op.add_column("runs", sa.Column("actual_cost", sa.Float))
    op.add_column("runs", sa.Column("currency", sa.String(3)))
    op.add_column("runs", sa.Column("cost_account", sa.String(200)))
    op.create_index(op.f("ix_runs_created_at"), "runs", ["created_at"])


def downgrade() -> None:
    raise NotImplementedError(
        "the evidence store is never downgraded (it would destroy the evidence chain): "
        "restore a backup"
    )
