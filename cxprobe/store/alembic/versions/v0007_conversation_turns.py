"""Conversation turns: a message the probe sent answering an agent's question is marked as a
turn (schema version 7), so a restart neither sends it again nor loses the turn timeline.

``messages.turn`` holds the turn's record as JSON (its number, what it answered and said, when it
was sent); NULL for the opening contact, chasers (timed follow-ups) and replies.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("turn", sa.Text))


def downgrade() -> None:
    raise NotImplementedError("cxprobe stores are upgraded only")
