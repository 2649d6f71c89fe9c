"""Mystery-shopping rubric: each run's rubric score (0-100) and its items' results (schema
version 8).

``runs.rubric_score`` is NULL where the scenario has no rubric, nobody answered, and for runs
from before this revision; ``runs.rubric_items`` holds each item's result as JSON (kind, weight,
met, points, span). Like the answer verdicts (revision 0006) they are not in the sealed run
record (its format is fixed, ``cxprobe-run/1``): the chain seals them through the run's
``rubric`` evidence artifact, whose digest is part of the record.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("rubric_score", sa.Float))
        batch.add_column(sa.Column("rubric_items", sa.Text))


def downgrade() -> None:
    raise NotImplementedError("cxprobe stores are upgraded only")
