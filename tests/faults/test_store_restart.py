"""PostgreSQL restarted while an email run is open: the monitor keeps going and loses nothing.

The test has a PostgreSQL server of its own (tests/postgres.py), never the session's: it stops
and starts it. The desk's human answers while the server is down, so the monitor has a reply
to store then; the store's write waits for the server (``EvidenceStore._connect_for_write``)
and the pool's pre-ping replaces the connections the restart dropped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from cxprobe.app import Monitor
from cxprobe.store.chain import Scope, link_problems
from cxprobe.store.database import EvidenceStore
from probes.base import Responder
from scenarios.model import Outcome
from tests.contract.harness import Pace, Setup
from tests.contract.harnesses import HARNESSES
from tests.faults.harness import (
    edit_config,
    every,
    finished,
    later_run_finished,
    log_records,
    run_in_flight,
    scheduled,
    settle,
    until,
)
from tests.postgres import PostgresServer, running_postgres

EMAIL = HARNESSES["email"]
INTERVAL = 3
#: What the store logs when a write finds the server unreachable and waits for it.
WRITE_WAITS = "evidence store unreachable; the write waits for it"


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test alone: the session's is shared, and must never be
    restarted under other tests."""
    with running_postgres() as server:
        yield server


def _mail_read(monitor: Monitor) -> int:
    """The highest UID the email channel's watcher has read from the probe mailbox."""
    (watcher,) = monitor.runner.channels["email"].stats()
    return int(watcher.last_uid)


def _on_postgres(url: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        every(INTERVAL)(data)
        data["monitor"]["store_url"] = url

    return change


async def test_postgres_restart_mid_run_loses_nothing(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    url = own_postgres.url(own_postgres.create_database())
    async with EMAIL.sandbox(tmp_path, Setup(pace=Pace.AFTER_RESTART)) as sandbox:
        edit_config(sandbox.config, _on_postgres(url))
        with log_records("cxprobe.test.contract", WRITE_WAITS) as waits:
            async with scheduled(sandbox) as monitor:
                faulted = await run_in_flight(monitor)
                stopped_at = datetime.now(UTC)
                read_before = _mail_read(monitor)
                await asyncio.to_thread(own_postgres.stop_server)
                # The auto-acknowledgement comes at once, the human 3 s after the contact,
                # both while the server is down; the monitor reads mail it must store.
                await EMAIL.human_answered(sandbox.peer, faulted)
                await until(lambda: _mail_read(monitor) > read_before, "a reply read")
                await asyncio.to_thread(own_postgres.start_server)
                restarted_at = datetime.now(UTC)
                faulted = await finished(monitor, faulted)
                later = await later_run_finished(monitor, after=restarted_at)
                messages = await monitor.store.messages(faulted.run_id)
                figures = await settle(
                    monitor,
                    "postgres-restart",
                    down_seconds=round((restarted_at - stopped_at).total_seconds(), 1),
                    writes_waited=len(waits.records),
                )
                slots = [run.slot for run in await monitor.store.recent_runs(1000)]
                snapshot = await monitor.store.snapshot(
                    Scope(min(slots), max(slots) + timedelta(seconds=1))
                )
    assert faulted.outcome is Outcome.MET, faulted.reason
    assert waits.records, "no write waited for the server"
    assert [m.responder for m in messages if m.direction == "in"] == [
        Responder.AUTO,
        Responder.HUMAN,
    ]
    assert later.outcome is Outcome.MET, later.reason
    assert figures.lost == 0 and figures.stalled == 0 and figures.recorded == figures.runs
    # One valid chain, every run sealed in it.
    assert snapshot.problems == [] and link_problems(snapshot.chain) == []
    assert len(snapshot.runs) == figures.runs
    assert all(run.entry is not None for run in snapshot.runs)


async def test_a_write_fails_once_the_server_stays_away_longer_than_its_wait(
    own_postgres: PostgresServer,
) -> None:
    # Bounded: a server that does not come back fails the write with its own error (the
    # runner records what it can), it never hangs a run.
    url = own_postgres.url(own_postgres.create_database())
    async with EvidenceStore(url) as store:
        await store.save_channel_state("email", "position", {"uid": 1})
        await asyncio.to_thread(own_postgres.stop_server)
        store.WRITE_RECONNECT_SECONDS = 1.0
        began = time.monotonic()
        with pytest.raises((OSError, DBAPIError)):
            await store.save_channel_state("email", "position", {"uid": 2})
        waited = time.monotonic() - began
    print(f"FAULT postgres-gone: writes=1 failed=1 waited_seconds={waited:.1f}")
    assert 0.5 <= waited < 5.0
