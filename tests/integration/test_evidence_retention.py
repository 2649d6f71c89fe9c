"""Retention: failures are kept longer, unexported runs are protected, every purge is a chain
entry, and an export made after a purge still verifies and shows it; on SQLite and on
PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import timedelta
from pathlib import Path

import yaml

from cxprobe.store.chain import PURGE, ChainEntry, link_problems, purged_runs
from cxprobe.store.database import EvidenceStore
from cxprobe.store.ledger import entries_between
from cxprobe.store.retention import PurgePolicy, PurgeReport, Retention
from tests.evidence_support import SECRETS, WEEK_START, load, populate, write_config
from tests.integration.test_evidence_export import cli
from tests.stores import StoreBackend
from tests.unit.test_store import reply

POLICY = PurgePolicy(
    older_than=timedelta(days=90), keep_failures=timedelta(days=365), require_exported=True
)
LATER = WEEK_START + timedelta(days=100)  # successes are past retention, failures are not
MUCH_LATER = WEEK_START + timedelta(days=400)  # everything is


def write_backend_config(directory: Path, backend: StoreBackend) -> Path:
    """The sandbox config (see ``write_config``) with its store in ``backend``."""
    path = write_config(directory, directory / "unused.db")
    data = yaml.safe_load(path.read_text())
    data["monitor"]["store_url"] = backend.url
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def runs_by_kind(backend: StoreBackend) -> tuple[set[str], set[str]]:
    """(successes, failures) as the store holds them, computed here independently."""
    rows = await backend.query("SELECT run_id, outcome, routing FROM runs")
    successes = {
        run_id for run_id, outcome, routing in rows if outcome == "met" and routing != "wrong"
    }
    return successes, {run_id for run_id, _, _ in rows} - successes


def export_all(config: Path, out: Path) -> None:
    result = cli(
        "export",
        "-c",
        str(config),
        "--from",
        WEEK_START.isoformat(),
        "--to",
        (WEEK_START + timedelta(days=1)).isoformat(),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output


def test_retention_keeps_failures_protects_unexported_and_records_purges(
    tmp_path: Path, store_backend: StoreBackend
) -> None:
    """Synchronous: the CLI runs its own event loop; store steps run in theirs."""
    config_path = write_backend_config(tmp_path, store_backend)
    config = load(config_path)
    url = config.monitor.store_url

    async def fill() -> None:
        async with EvidenceStore(url) as store:
            await populate(store, config, hours=24)

    asyncio.run(fill())
    successes, failures = asyncio.run(runs_by_kind(store_backend))
    assert len(successes) > 10 and len(failures) > 5

    async def before_export() -> PurgeReport:
        async with EvidenceStore(url) as store:
            return await store.purge(POLICY, now=LATER)

    report = asyncio.run(before_export())  # never exported: nothing may go
    assert report.purged == [] and set(report.protected_unexported) == successes
    assert report.kept_failures == len(failures)
    export_all(config_path, tmp_path / "first")

    amended = sorted(successes)[0]

    async def after_export() -> tuple[PurgeReport, PurgeReport, list[ChainEntry]]:
        async with EvidenceStore(url) as store:
            # A late reply after the export changes one record: it is protected again.
            await store.record_reply(amended, *reply("<late@acme.test>", 99999.0))
            dry = await store.purge(POLICY, now=LATER, dry_run=True)
            # A dry run deletes nothing.
            assert (await runs_by_kind(store_backend))[0] == successes
            report = await store.purge(POLICY, now=LATER)
            async with store._read() as conn:
                chain = await conn.run_sync(entries_between, 1, 10**9)
            return dry, report, chain

    dry, report, chain = asyncio.run(after_export())
    assert {run.run_id for run in dry.purged} == successes - {amended}
    assert report.protected_unexported == [amended]
    assert report.kept_failures == len(failures)
    [entry] = report.entries
    assert entry.kind == PURGE
    assert link_problems(chain) == [] and chain[-1] == entry
    # The purge recorded each run with the record hash its last seal had.
    sealed = {e.run_id: e.record_hash for e in chain if e.kind != PURGE and e.run_id}
    recorded = purged_runs(entry.detail or {})
    assert len(recorded) == len(successes) - 1
    assert all(run.record_hash == sealed[run.run_id] for run in recorded)
    left_successes, left_failures = asyncio.run(runs_by_kind(store_backend))
    assert left_successes == {amended} and left_failures == failures
    # The purged runs' slots are still claimed.
    [(claimed,)] = asyncio.run(store_backend.query("SELECT count(*) FROM slots"))
    [(orphans,)] = asyncio.run(
        store_backend.query(
            "SELECT count(*) FROM messages WHERE run_id NOT IN (SELECT run_id FROM runs)"
        )
    )
    assert claimed == len(successes) + len(failures) and orphans == 0

    # An export after the purge verifies, and shows the purge and the purged slots.
    after = tmp_path / "after"
    export_all(config_path, after)
    result = cli("verify", str(after))
    assert result.exit_code == 0, result.output
    assert f"purge at chain entry {entry.seq}" in result.output
    with (after / "gaps.csv").open(encoding="utf-8-sig", newline="") as file:
        gaps = list(csv.DictReader(file))
    assert len(gaps) == len(successes) - 1
    assert {gap["explained_by"] for gap in gaps} == {f"purge (chain entry {entry.seq})"}
    manifest = json.loads((after / "manifest.json").read_text())
    assert manifest["chain"]["purges"] == [entry.seq]
    # The first export (from before the purge) still verifies on its own.
    assert cli("verify", str(tmp_path / "first")).exit_code == 0

    async def much_later() -> PurgeReport:
        async with EvidenceStore(url) as store:
            return await store.purge(POLICY, now=MUCH_LATER)

    # Much later the failures go too (they were exported), and the amended run, whose new
    # record the export after the purge held.
    assert {run.run_id for run in asyncio.run(much_later()).purged} == failures | {amended}
    final = tmp_path / "final"
    export_all(config_path, final)
    result = cli("verify", str(final))
    assert result.exit_code == 0, result.output
    assert asyncio.run(runs_by_kind(store_backend)) == (set(), set())


def test_purge_command_and_its_settings(tmp_path: Path, store_backend: StoreBackend) -> None:
    config_path = write_backend_config(tmp_path, store_backend)
    result = cli(
        "purge",
        "-c",
        str(config_path),
        "--older-than",
        "30d",
        "--keep-failures",
        "7d",
    )
    assert result.exit_code == 2
    assert "keep_failures (7d) must be at least older_than (30d)" in " ".join(result.output.split())
    result = cli("purge", "-c", str(config_path), "--dry-run", "--no-require-exported")
    assert result.exit_code == 0, result.output
    assert "would purge 0 run(s)" in result.output
    assert Retention.model_validate({"older_than": "30d"}).policy().older_than == timedelta(days=30)
    assert SECRETS  # the CLI loaded the config with the sandbox secrets
