"""Answer quality: what each run's human answers said against the scenario's expectations,
whether they resolved it, and their language (schema version 6).

Runs before this revision were not judged on their answers: the columns stay NULL for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Name = sa.String(200)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("answer", Name))
        batch.add_column(sa.Column("resolved", sa.Boolean))
        batch.add_column(sa.Column("language", Name))
        batch.add_column(sa.Column("reply_language", Name))


def downgrade() -> None:
    raise NotImplementedError("cxprobe stores are upgraded only")
