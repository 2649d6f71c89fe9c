"""Checks every test gets for free: it leaves no database connection behind."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

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
