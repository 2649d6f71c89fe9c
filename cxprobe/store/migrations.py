"""The store's schema: created, checked and upgraded by Alembic when a store is opened.

The revisions live in :mod:`cxprobe.store.alembic` (``versions/``, one line of history, numbered
``0001``, ``0002``, ...). Alembic is driven from here, with a configuration built in code, on
a synchronous connection inside the store's write transaction, so an upgrade is all or nothing
and two monitors starting at once never run one twice:

- SQLite: the transaction begins with ``BEGIN IMMEDIATE`` (the store's writer engine), so a
  second process waits for the database's write lock, then finds the store upgraded. Foreign
  keys are off while the schema changes (a table that ``op.batch_alter_table`` recreates must
  not cascade its deletion to the rows that refer to it) and checked before the commit.
- PostgreSQL: a transaction-level advisory lock (:data:`MIGRATION_LOCK_KEY`) comes first. The
  ``alembic_version`` row cannot serve: a new database has no such row to lock, and a store
  from before Alembic has no such table.

Stores from before Alembic carry only ``schema_version`` (1: the baseline; 2: the evidence
chain); they are stamped with the matching revision (:data:`LEGACY_REVISIONS`) and upgraded.
Every revision still writes its number to ``schema_version`` (``env.py``): a pre-Alembic
cxprobe reads only that, and refuses a store upgraded beyond it. A store at a revision this
code does not know was written by a newer cxprobe and is refused: :class:`SchemaVersionError`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cxprobe.store.schema import SchemaVersionError, metadata, schema_version

#: Where the revisions are (installed with the package).
SCRIPT_LOCATION = Path(__file__).with_name("alembic")

#: The newest revision this code knows (``tests/unit/test_migrations.py`` checks it is the
#: head of ``versions/``).
HEAD_REVISION = "0011"

#: The ``schema_version`` this code writes: the head revision's number.
SCHEMA_VERSION = int(HEAD_REVISION)

#: The revision a store from before Alembic is at, by its ``schema_version``. Frozen.
LEGACY_REVISIONS = {1: "0001", 2: "0002"}

#: Alembic's table of the store's revision.
VERSION_TABLE = "alembic_version"

#: PostgreSQL advisory lock held while the schema is checked or upgraded: a signed 64-bit
#: number, the same in every process.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"cxprobe schema migration").digest()[:8], "big", signed=True
)


@dataclass(frozen=True)
class SchemaState:
    """What opening the store found and left: revisions, or None for an empty database."""

    found: str | None  # the store's revision before (a legacy store's: as mapped)
    revision: str | None  # the store's revision now
    head: str  # the newest revision this code knows
    legacy_version: int | None = None  # the schema_version of a store from before Alembic
    stamped: bool = False  # that store now carries its Alembic revision

    @property
    def created(self) -> bool:
        return self.found is None and self.revision is not None

    @property
    def upgraded(self) -> bool:
        return self.found is not None and self.found != self.revision

    @property
    def pending(self) -> bool:
        """The store needs an upgrade (or creating) to be used by this code."""
        return self.revision != self.head


def alembic_config(*, version_locations: Sequence[Path] = ()) -> Config:
    """Alembic's configuration, without an ``alembic.ini``. ``version_locations`` adds
    directories of revisions (tests add a revision after the head)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if version_locations:
        locations = [SCRIPT_LOCATION / "versions", *version_locations]
        config.set_main_option("version_locations", os.pathsep.join(map(str, locations)))
    return config


async def prepare_store(
    engine: AsyncEngine, where: str, *, upgrade: bool = True, config: Config | None = None
) -> SchemaState:
    """Create a new store, check an existing one and upgrade it to the head, in one write
    transaction of ``engine`` (the store's writer), under the lock described above.

    ``upgrade=False`` only reads the state (``cxprobe db current``): nothing is written.
    ``where`` names the database in error messages (a path or a password-free URL).
    """
    config = config or alembic_config()
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite and upgrade:
            await conn.run_sync(_sqlite_foreign_keys, False)  # before the transaction begins
        try:
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                state: SchemaState = await conn.run_sync(_prepare, where, config, upgrade=upgrade)
                if sqlite and (state.upgraded or state.created):
                    await conn.run_sync(_check_foreign_keys, where)
        finally:
            if sqlite and upgrade:
                await _restore_foreign_keys(conn)
    return state


def _prepare(conn: Connection, where: str, config: Config, *, upgrade: bool) -> SchemaState:
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise SchemaVersionError(f"no schema revisions found in {SCRIPT_LOCATION}")
    found, legacy = _found_revision(conn, where, script, head)
    if not upgrade:
        return SchemaState(found=found, revision=found, head=head, legacy_version=legacy)
    stamped = legacy is not None and found is not None
    if stamped and found is not None:
        MigrationContext.configure(conn).stamp(script, found)
    if found != head:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return SchemaState(
        found=found, revision=head, head=head, legacy_version=legacy, stamped=stamped
    )


def _found_revision(
    conn: Connection, where: str, script: ScriptDirectory, head: str
) -> tuple[str | None, int | None]:
    """The store's revision (None: an empty database) and, for a store from before Alembic,
    its ``schema_version``; a store this code cannot use is refused."""
    inspector = inspect(conn)
    if inspector.has_table(VERSION_TABLE):
        revisions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        current = sorted(revisions)
        if current:
            return _known_revision(current, where, script, head), None
    if inspector.has_table(schema_version.name):
        return _legacy_revision(conn, where, head)
    existing = sorted(name for name in metadata.tables if inspector.has_table(name))
    if existing:
        raise SchemaVersionError(
            f"the database {where} has tables {', '.join(existing)} but no schema_version "
            f"or {VERSION_TABLE} table: it was not created by cxprobe, or was damaged. Point "
            "monitor.store_url at a new database, or restore the store from a backup."
        )
    return None, None


def _known_revision(current: list[str], where: str, script: ScriptDirectory, head: str) -> str:
    if len(current) > 1:
        raise SchemaVersionError(
            f"the evidence store {where} has several schema revisions ({', '.join(current)}) "
            "in its alembic_version table, but cxprobe's history is one line: the store was "
            "altered by hand. Restore it from a backup."
        )
    revision = current[0]
    try:
        script.get_revision(revision)
    except CommandError:
        raise _newer_store(where, revision, head) from None
    return revision


def _legacy_revision(conn: Connection, where: str, head: str) -> tuple[str, int]:
    found = conn.execute(select(func.max(schema_version.c.version))).scalar_one_or_none()
    if found is None or found < 1:
        raise SchemaVersionError(
            f"the database {where} has an empty or invalid schema_version table "
            f"(found {found!r}). Restore the store from a backup, or point monitor.store_url "
            "at a new database."
        )
    if found not in LEGACY_REVISIONS:
        raise _newer_store(where, f"{found:04d}", head)
    return LEGACY_REVISIONS[found], found


def _newer_store(where: str, revision: str, head: str) -> SchemaVersionError:
    if revision.isdigit():
        have = f"schema version {int(revision)} (revision {revision})"
    else:
        have = f"schema revision {revision!r}"
    return SchemaVersionError(
        f"the evidence store {where} has {have}, but this cxprobe knows versions up to "
        f"{int(head)} (revision {head}): it was written by a newer cxprobe. Upgrade cxprobe to "
        "that version (or newer), or point monitor.store_url at another database; do not "
        "downgrade the store by hand."
    )


def _sqlite_foreign_keys(conn: Connection, enabled: bool) -> None:
    """Switch SQLite's foreign keys, outside a transaction (inside one, SQLite ignores it);
    straight on the driver's connection, as SQLAlchemy would begin a transaction first."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if enabled else 'OFF'}")
    finally:
        cursor.close()


async def _restore_foreign_keys(conn: AsyncConnection) -> None:
    """Foreign keys back on for the connection's next user, or the connection discarded (the
    pool must never hand one out without them); the error that broke it, if any, is raised
    by the caller."""
    try:
        await conn.run_sync(_sqlite_foreign_keys, True)
    except Exception:
        await conn.invalidate()


def _check_foreign_keys(conn: Connection, where: str) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise SchemaVersionError(
            f"upgrading the evidence store {where} left rows of {', '.join(tables)} referring "
            "to rows that do not exist; nothing was changed. Report this as a cxprobe bug."
        )
