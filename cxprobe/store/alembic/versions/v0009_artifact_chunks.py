"""Artifact chunks: large raw evidence (a 20 MiB reply) stored in pieces (schema version 9).

An artifact's bytes are its ``artifacts.content`` followed by its ``artifact_chunks`` in
``seq`` order. Evidence held in memory is written to ``content`` as before (no chunks); evidence
spooled to a file (received email) is copied into chunks of at most 1 MiB, so neither the
monitor nor the database driver holds it whole, and ``content`` is empty. The chain seals
``artifacts.sha256``, the digest of those bytes, so its records are the same either way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "artifact_chunks",
        sa.Column("artifact_id", BigId, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("artifact_id", "seq", name=op.f("pk_artifact_chunks")),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_artifact_chunks_artifact_id_artifacts"),
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    raise NotImplementedError("cxprobe stores are upgraded only")
