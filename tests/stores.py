"""The evidence store's databases for tests parametrised over SQLite and PostgreSQL.

A :class:`StoreBackend` is one empty database and what a test needs to look into it behind
the store's back: its URL, where store messages name it, and plain SQL through a connection
of its own (``sqlite3``, or ``asyncpg`` as the store's role), never through the store under
test. This module has no tests.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from alembic.script import ScriptDirectory

from cxprobe.store.migrations import alembic_config
from tests.postgres import PostgresServer

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BACKENDS = (SQLITE, POSTGRESQL)


@dataclass(frozen=True)
class StoreBackend:
    kind: str  # SQLITE | POSTGRESQL
    url: str
    #: How store messages name the database: the file, or the URL without its password.
    where: str
    sqlite_path: Path | None = None
    postgres: PostgresServer | None = None
    database: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.kind == SQLITE

    @classmethod
    def sqlite(cls, path: Path) -> StoreBackend:
        return cls(SQLITE, f"sqlite+aiosqlite:///{path}", str(path.resolve()), sqlite_path=path)

    @classmethod
    def postgresql(cls, server: PostgresServer, database: str) -> StoreBackend:
        url = server.url(database)
        where = url.replace(f":{server.password}@", ":***@")
        return cls(POSTGRESQL, url, where, postgres=server, database=database)

    async def query(self, sql: str, *arguments: Any) -> list[tuple[Any, ...]]:
        """Rows of one statement (``?`` placeholders on SQLite, ``$1`` on PostgreSQL)."""
        if self.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as conn, conn:
                return conn.execute(sql, arguments).fetchall()
        assert self.postgres is not None and self.database is not None
        conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return [tuple(row) for row in await conn.fetch(sql, *arguments)]
        finally:
            await conn.close()

    async def execute(self, *statements: str) -> None:
        """Statements in one transaction, e.g. to damage or downgrade a store."""
        if self.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as conn, conn:
                for statement in statements:
                    conn.execute(statement)
            return
        conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
        finally:
            await conn.close()


def revision_numbers() -> list[tuple[int]]:
    """``schema_version``'s rows once every revision ran, oldest first: each revision writes
    its number (a store from before Alembic has the first ones already)."""
    script = ScriptDirectory.from_config(alembic_config())
    return [(int(revision.revision),) for revision in script.walk_revisions()][::-1]
