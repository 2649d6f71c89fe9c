"""Schema versioning: creating, checking and upgrading a store's tables.

``schema_version`` holds one row per version applied. A new store is created at
:data:`SCHEMA_VERSION` from :data:`~cxprobe.store.schema.metadata` (which always describes the
newest schema); an older store is brought up to date by :data:`MIGRATIONS`; a newer one is
refused.

Version 2 added the tamper-evidence chain (``chain``, ``chain_head``; see
:mod:`cxprobe.store.chain`) and the record of exports (``exports``, ``exported_runs``);
upgrading seals every run already closed, oldest first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, MetaData, func, insert, inspect, select

from cxprobe.store.ledger import seal_closed_runs
from cxprobe.store.schema import (
    STORE_TABLES,
    SchemaVersionError,
    evidence_tables_v2,
    metadata,
    schema_version,
    seed_chain_head,
)

#: One step of the schema: upgrades an open transaction's database by one version.
Migration = Callable[[Connection], None]


def _v2_evidence_chain(conn: Connection) -> None:
    """Version 2: the evidence chain and the record of exports; seals the closed runs."""
    frozen = MetaData(naming_convention=metadata.naming_convention)
    # The foreign key of exported_runs needs no runs table here; create only the new tables.
    new_tables = evidence_tables_v2(frozen)
    for table in new_tables:
        table.create(conn)
    now = datetime.now(UTC)
    seed_chain_head(conn, now, new_tables[1])
    seal_closed_runs(conn, now=now, note="sealed when the store was upgraded to schema 2")


#: ``MIGRATIONS[i]`` upgrades a store from version ``i + 1`` to ``i + 2``. Append only: a
#: released migration is never edited; :data:`metadata` is updated to the result alongside.
MIGRATIONS: tuple[Migration, ...] = (_v2_evidence_chain,)

#: The schema version this code writes.
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def prepare_schema(
    conn: Connection,
    where: str,
    *,
    migrations: Sequence[Migration] = MIGRATIONS,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Create, check or upgrade the schema inside the caller's (write) transaction.

    Returns ``(version found, version now)``; ``0`` found means the store was just created.
    ``where`` names the database in error messages (a path or a password-free URL).
    """
    latest = 1 + len(migrations)
    applied_at = now or datetime.now(UTC)
    inspector = inspect(conn)
    if not inspector.has_table(schema_version.name):
        existing = [name for name in STORE_TABLES if inspector.has_table(name)]
        if existing:
            raise SchemaVersionError(
                f"the database {where} has tables {', '.join(existing)} but no schema_version "
                "table: it was not created by cxprobe, or was damaged. Point monitor.store_url "
                "at a new database file, or restore the store from a backup."
            )
        metadata.create_all(conn)
        seed_chain_head(conn, applied_at)
        conn.execute(insert(schema_version).values(version=latest, applied_at=applied_at))
        return 0, latest
    found = conn.execute(select(func.max(schema_version.c.version))).scalar_one_or_none()
    if found is None or found < 1:
        raise SchemaVersionError(
            f"the database {where} has an empty or invalid schema_version table "
            f"(found {found!r}). Restore the store from a backup, or point monitor.store_url "
            "at a new database file."
        )
    if found > latest:
        raise SchemaVersionError(
            f"the evidence store {where} has schema version {found}, but this cxprobe knows "
            f"versions up to {latest}: it was written by a newer cxprobe. Upgrade cxprobe to "
            "that version (or newer), or point monitor.store_url at another database; do not "
            "downgrade the file by hand."
        )
    for version in range(found, latest):
        migrations[version - 1](conn)
        conn.execute(insert(schema_version).values(version=version + 1, applied_at=applied_at))
    return found, latest
