"""How a revision reaches the database: Alembic runs this file for every upgrade.

cxprobe runs Alembic itself (:mod:`cxprobe.store.migrations`) and hands over, in
``config.attributes["connection"]``, a synchronous connection already inside the store's write
transaction: every revision then runs in that one transaction (all or nothing; DDL is
transactional on SQLite and PostgreSQL alike), under the store's lock, and Alembic begins and
commits nothing itself. There is no ``alembic.ini`` and no offline (``--sql``) mode.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection

from cxprobe.store.schema import metadata

#: The pre-Alembic version table, as every revision since the baseline has it.
_schema_version = sa.table(
    "schema_version",
    sa.column("version", sa.Integer),
    sa.column("applied_at", sa.DateTime(timezone=True)),
)


def record_schema_version(
    ctx: MigrationContext,
    step: MigrationInfo,
    heads: Collection[Any],
    run_args: Mapping[str, Any],
) -> None:
    """Write an upgrade's revision number to ``schema_version`` too: a cxprobe from before
    Alembic reads only that table, and so refuses a store upgraded beyond what it knows."""
    if not step.is_upgrade or step.up_revision_id is None or ctx.connection is None:
        return
    ctx.connection.execute(
        sa.insert(_schema_version).values(
            version=int(step.up_revision_id), applied_at=datetime.now(UTC)
        )
    )


def run_in_store_transaction() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "cxprobe's migrations run inside the evidence store: use `cxprobe db upgrade -c "
            "CONFIG` (or start cxprobe), not the alembic command"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Revisions alter tables in batches: SQLite can alter little in place and recreates
        # the table; PostgreSQL runs plain ALTERs.
        render_as_batch=True,
        on_version_apply=record_schema_version,
    )
    with context.begin_transaction():  # joins the store's transaction: begins nothing
        context.run_migrations()


run_in_store_transaction()
