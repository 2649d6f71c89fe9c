"""Checks every test gets for free (it leaves no database connection behind), and the real
PostgreSQL server the store tests run on besides SQLite."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, running_postgres
from tests.stores import BACKENDS, SQLITE, StoreBackend

#: The thread aiosqlite runs each connection on; one still alive after a test is a leak.
_SQLITE_WORKER = "_connection_worker_thread"


def _sqlite_workers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if _SQLITE_WORKER in thread.name}


@pytest.fixture(autouse=True)
def _no_leaked_database_connections() -> Iterator[None]:
    before = _sqlite_workers()
    yield
    gc.collect()
    leaked = _sqlite_workers() - before
    for thread in leaked:
        thread.join(timeout=2)
    still_running = [thread.name for thread in leaked if thread.is_alive()]
    assert not still_running, f"the test left database connections open: {still_running}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (started on first use); fails if missing."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database on the session's server, owned by the store's role."""
    name = postgres_server.create_database()
    yield name
    postgres_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    """An empty store database: a SQLite file whose directories do not exist yet, or a new
    PostgreSQL database."""
    if request.param == SQLITE:
        return StoreBackend.sqlite(tmp_path / "data" / "evidence" / "cxprobe.db")
    database = request.getfixturevalue("postgres_database")
    return StoreBackend.postgresql(request.getfixturevalue("postgres_server"), database)
