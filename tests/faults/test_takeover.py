"""Two monitors on one PostgreSQL store; one is SIGKILLed at seeded random points, again and
again, while both probe the sandbox mail desk (real Dovecot and SMTP). Over at least 100 runs:

- no run is lost: every slot claimed before the end is a closed run with an outcome, and no
  slot of any check went unclaimed while a monitor was alive;
- no contact is sent twice: the desk received at most one contact per (check, slot);
- every run open on a killed monitor is taken over by a live one, within ``lease_timeout``,
  and finished there (its replies back-filled by the resumed conversation's search).

The killed monitor is replaced at once by a new process under a new name (a replaced host),
so a run can only come back through a lease that expired, never through a restart of its own
monitor. ``CXPROBE_FAULT_SEED`` replays another schedule of kills. The figures are printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from cxprobe.store.database import EvidenceStore
from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from scenarios.model import Outcome
from tests.e2e.monitor_process import MonitorProcess, wait_until
from tests.postgres import PostgresServer
from tests.support import desk_profile, monitor_config, require_binary

SEED = int(os.environ.get("CXPROBE_FAULT_SEED", "20261202"))
#: Runs the test drives at least; checks and their interval set sets how long that takes.
MIN_RUNS = 100
MIN_KILLS = 6
CHECKS = 10
EVERY = 4.0
LEASE_TIMEOUT = 3.0
#: Seconds between kills, drawn uniformly (the kill lands anywhere in a run's life: before the
#: claim, between claim and send, while waiting for the auto-ack or the human).
KILL_GAP = (0.5, 4.0)
ENV = {"CXPROBE_TEST_IMAP_PASSWORD": "probe-secret"}
#: What a monitor logs when it leaves a run another monitor took over.
LEASE_LOST = "run lease lost: another monitor took the run over, this one leaves it"

SCENARIO = {
    "intent": "billing-question",
    "subject": "Invoice question {token}",
    "opening": "Hello,\n\nwhy is my latest invoice higher than usual? Is a refund possible?\n\n"
    "Thanks,\n{customer_name}\n",
    "expected_queue": "billing",
}


@dataclass
class Kill:
    at: datetime
    victim: str
    open_runs: list[str]  # open runs leased to the victim when it died


@dataclass
class Fleet:
    """The monitor processes of the test: two alive at any time, each name used once."""

    config: Path
    logs: Path
    alive: dict[str, MonitorProcess] = field(default_factory=dict)
    dead: list[MonitorProcess] = field(default_factory=list)
    started: int = 0

    def start(self) -> str:
        name = f"monitor-{self.started}"
        self.started += 1
        process = MonitorProcess(
            self.config, self.logs / f"{name}.log", {**ENV, "CXPROBE_MONITOR_NAME": name}
        )
        process.start()
        self.alive[name] = process
        return name

    def kill(self, name: str) -> None:
        process = self.alive.pop(name)
        process.kill()
        self.dead.append(process)

    async def ready(self, name: str) -> None:
        """Until ``name`` runs its schedule (it logged "cxprobe running")."""
        process = self.alive[name]

        def running() -> bool:
            process.alive()
            return '"msg": "cxprobe running"' in process.log

        await wait_until(running, 60, f"{name} to start")

    def check_alive(self) -> None:
        """Fails the test at once, with its log, if a monitor exited by itself."""
        for process in self.alive.values():
            process.alive()

    def stop_all(self) -> list[int]:
        codes = [process.terminate() for process in self.alive.values()]
        self.dead.extend(self.alive.values())
        self.alive.clear()
        return codes

    def ensure_stopped(self) -> None:
        for process in [*self.alive.values(), *self.dead]:
            process.ensure_stopped()

    def log_events(self, message: str) -> list[dict[str, Any]]:
        events = []
        for path in sorted(self.logs.glob("monitor-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    event = json.loads(line)
                    if event.get("msg") == message:
                        events.append(event | {"log": path.stem})
        return events


def fault_config(
    tmp_path: Path,
    smtp_port: int,
    imap_port: int,
    store_url: str,
    *,
    checks: int = CHECKS,
    human_response: str = "10s",
) -> Path:
    path = monitor_config(
        tmp_path,
        smtp_port=smtp_port,
        imap_port=imap_port,
        sla={"first_response": "5s", "human_response": human_response, "deadline": "30s"},
        checks=[
            {
                "id": f"acme-email-{n:02d}",
                "target": "acme",
                "channel": "email",
                "scenario": f"fault-billing-{n:02d}",
                "schedule": {"every": f"{EVERY:g}s"},
            }
            for n in range(checks)
        ],
        # One scenario per check: checks of one target, channel and scenario would share series.
        scenarios={f"fault-billing-{n:02d}": SCENARIO for n in range(checks)},
    )
    config = yaml.safe_load(path.read_text())
    config["monitor"]["store_url"] = store_url
    config["monitor"]["lease_timeout"] = f"{LEASE_TIMEOUT:g}s"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def open_leases(store_url: str, owner: str, *, sent: bool = False) -> list[str]:
    """The open runs leased to ``owner`` now (only those whose contact was recorded as sent
    with ``sent``), read straight from the database, not through the store under test."""
    conn = await asyncpg.connect(store_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch(
            "SELECT run_id FROM runs WHERE status = 'open' AND lease_owner = $1"
            + (" AND sent_at IS NOT NULL" if sent else ""),
            owner,
        )
    finally:
        await conn.close()
    return sorted(row["run_id"] for row in rows)


@pytest.mark.timeout(300)
async def test_sigkill_at_random_points_loses_no_run_and_sends_nothing_twice(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str
) -> None:
    require_binary("dovecot")
    rng = random.Random(SEED)
    store_url = postgres_server.url(postgres_database)
    profile = desk_profile(human_seconds=1.0)
    (tmp_path / "logs").mkdir()
    async with (
        MailDesk(Profile.model_validate(profile), tmp_path / "desk") as desk,
        EvidenceStore(store_url) as store,
    ):
        config = fault_config(tmp_path, desk.smtp_port, desk.imap_port, store_url)
        fleet = Fleet(config, tmp_path / "logs")
        kills: list[Kill] = []
        try:
            for name in (fleet.start(), fleet.start()):
                await fleet.ready(name)
            began = datetime.now(UTC)

            async def runs_claimed() -> int:
                fleet.check_alive()
                return len(await store.runs_between(began - timedelta(minutes=5), far_future()))

            await wait_until(runs_claimed, 60, "the first runs")
            while len(kills) < MIN_KILLS or await runs_claimed() < MIN_RUNS:
                await asyncio.sleep(rng.uniform(*KILL_GAP))  # the seeded fault schedule
                victim = rng.choice(sorted(fleet.alive))
                fleet.check_alive()
                fleet.kill(victim)
                killed_at = datetime.now(UTC)
                kills.append(Kill(killed_at, victim, await open_leases(store_url, victim)))
                # The replacement comes up while the survivor works alone; the next kill waits
                # for it, so that one monitor is always alive.
                await fleet.ready(fleet.start())
                assert len(kills) < 60, "the runs do not accumulate: see the monitors' logs"
            ended = datetime.now(UTC)

            async def all_claimed_runs_closed() -> bool:
                window = await store.runs_between(began - timedelta(minutes=5), ended)
                return all(run.outcome is not None for run in window)

            await wait_until(all_claimed_runs_closed, 90, "every run claimed to be finished")
            assert fleet.stop_all() == [0, 0]
            runs = await store.runs_between(began - timedelta(minutes=5), ended)
        finally:
            fleet.ensure_stopped()
        received = [e for e in desk.ground_truth() if e["event"] == "received"]

    by_token = {run.token: run for run in runs}
    contacts_per_slot = Counter(
        (by_token[token].check_id, by_token[token].slot)
        for event in received
        for token in [token_in(event["subject"], by_token)]
        if token is not None
    )
    duplicated = sum(count - 1 for count in contacts_per_slot.values() if count > 1)
    lost = [run.run_id for run in runs if run.outcome is None]
    missed = missed_slots(runs, began + timedelta(seconds=15), ended - timedelta(seconds=EVERY))
    outcomes = Counter(str(run.outcome) for run in runs)
    unrecorded = [
        run
        for run in runs
        if run.sent_at is None and contacts_per_slot.get((run.check_id, run.slot), 0) > 0
    ]
    takeovers = fleet.log_events("run lease taken over")
    taken_at = {event["run_id"]: datetime.fromisoformat(event["ts"]) for event in takeovers}
    orphaned = [run_id for kill in kills for run_id in kill.open_runs if run_id not in taken_at]
    delays = [
        (taken_at[run_id] - kill.at).total_seconds()
        for kill in kills
        for run_id in kill.open_runs
        if run_id in taken_at
    ]
    by_id = {run.run_id: run for run in runs}
    taken_and_sent = [
        by_id[run_id]
        for kill in kills
        for run_id in kill.open_runs
        if run_id in by_id and by_id[run_id].sent_at is not None
    ]
    print(
        f"\nFAULT sigkill-takeover seed={SEED}: runs={len(runs)} kills={len(kills)} "
        f"lost={len(lost)} duplicated={duplicated} missed_slots={len(missed)} "
        f"open_at_kill={sum(len(k.open_runs) for k in kills)} taken_over={len(delays)} "
        f"max_takeover_delay={max(delays, default=0.0):.2f}s (lease_timeout {LEASE_TIMEOUT:g}s) "
        f"sent_but_unrecorded={len(unrecorded)} outcomes={dict(sorted(outcomes.items()))}"
    )
    assert len(runs) >= MIN_RUNS
    assert lost == [], "runs left open"
    assert duplicated == 0, "a contact was sent twice for one slot"
    assert missed == [], "slots no live monitor claimed"
    assert orphaned == [], "runs of a killed monitor that nobody took over"
    assert delays and max(delays) <= LEASE_TIMEOUT, delays
    # A taken-over run whose contact was sent is judged from its replies, not abandoned.
    assert taken_and_sent, "no kill landed on a sent, open run: change the seed or the gaps"
    for run in taken_and_sent:
        assert run.outcome in (Outcome.MET, Outcome.BREACHED), (run.outcome, run.reason)
    assert all(run.outcome is not Outcome.ERROR for run in runs), [
        run.reason for run in runs if run.outcome is Outcome.ERROR
    ]


def far_future() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


def token_in(subject: str, tokens: dict[str, Any]) -> str | None:
    return next((word for word in subject.split() if word in tokens), None)


def missed_slots(runs: list[Any], start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    """The (check, slot) pairs of every check's interval slots in [start, end) with no run."""
    have = {(run.check_id, run.slot) for run in runs}
    first = datetime.fromtimestamp((start.timestamp() // EVERY + 1) * EVERY, UTC)
    missing = []
    for n in range(CHECKS):
        slot = first
        while slot < end:
            if (f"acme-email-{n:02d}", slot) not in have:
                missing.append((f"acme-email-{n:02d}", slot))
            slot += timedelta(seconds=EVERY)
    return missing


@pytest.mark.timeout(180)
async def test_a_paused_monitor_finds_its_runs_taken_over_and_leaves_them(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str
) -> None:
    """SIGSTOP a monitor holding open runs (a frozen VM) past its lease; its peer takes them
    over; SIGCONT: the paused monitor notices at its next renewal and never writes to them
    again, and the peer finishes them (one contact each, judged once)."""
    require_binary("dovecot")
    store_url = postgres_server.url(postgres_database)
    (tmp_path / "logs").mkdir()
    async with (
        MailDesk(
            Profile.model_validate(desk_profile(human_seconds=8.0)), tmp_path / "desk"
        ) as desk,
        EvidenceStore(store_url) as store,
    ):
        config = fault_config(
            tmp_path, desk.smtp_port, desk.imap_port, store_url, checks=3, human_response="20s"
        )
        fleet = Fleet(config, tmp_path / "logs")
        try:
            paused, peer = fleet.start(), fleet.start()
            for name in (paused, peer):
                await fleet.ready(name)
            await wait_until(
                lambda: open_leases(store_url, paused, sent=True), 60, f"{paused} to hold runs"
            )
            fleet.alive[paused].pause()
            held = await open_leases(store_url, paused, sent=True)

            async def all_taken() -> bool:
                return not set(held) & set(await open_leases(store_url, paused))

            await wait_until(all_taken, 30, f"{peer} to take over the paused monitor's runs")
            fleet.alive[paused].resume()

            def noticed() -> bool:
                fleet.check_alive()
                left = {e["run_id"] for e in fleet.log_events(LEASE_LOST) if e["log"] == paused}
                return set(held) <= left

            await wait_until(noticed, 30, f"{paused} to notice its leases were lost")

            async def finished() -> bool:
                loaded = [await store.load_run(run_id) for run_id in held]
                return all(run is not None and run.outcome is not None for run in loaded)

            await wait_until(finished, 60, "the taken-over runs to finish")
            assert fleet.stop_all() == [0, 0]
            runs = [await store.load_run(run_id) for run_id in held]
            messages = {run_id: await store.messages(run_id) for run_id in held}
        finally:
            fleet.ensure_stopped()
        received = [e for e in desk.ground_truth() if e["event"] == "received"]

    finished_by = {event["run_id"]: event["log"] for event in fleet.log_events("run finished")}
    print(
        f"\nFAULT pause-takeover: paused_runs={len(held)} "
        f"finished_by_peer={sum(finished_by.get(r) == peer for r in held)} "
        f"lost_noticed={len(fleet.log_events(LEASE_LOST))}"
    )
    for run in runs:
        assert run is not None and run.outcome is Outcome.MET, run and run.reason
        assert finished_by[run.run_id] == peer, "only the lease holder finishes a run"
        outgoing = [m for m in messages[run.run_id] if m.direction == "out"]
        assert len(outgoing) == 1
        assert [r.responder for r in run.replies] == ["auto", "human"]
        assert sum(run.token in e["subject"] for e in received) == 1, "contact sent twice"
