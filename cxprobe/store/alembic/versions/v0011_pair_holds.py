"""Pair holds (schema version 11): which run holds a channel's (probe id, brand id) pair.

SMS, WhatsApp and generic platforms carry no thread: a reply is known by its pair, so a pair has
one open conversation at a time. Each monitor kept that rule in memory only, so two monitors of
a location could open the same pair at once and take each other's replies. A row per held pair,
naming the run's token; a row whose run is no longer open is stale and is taken over. A store
upgraded from an earlier revision has none: pairs open then are held in memory by their
monitor, as before, until their runs end.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pair_holds",
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("pair", sa.String(200), nullable=False),
        sa.Column("token", sa.String(200), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "pair", name=op.f("pk_pair_holds")),
        sa.ForeignKeyConstraint(
            ["token"],
            ["runs.token"],
            name=op.f("fk_pair_holds_token_runs"),
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    raise NotImplementedError("cxprobe stores are upgraded only")
