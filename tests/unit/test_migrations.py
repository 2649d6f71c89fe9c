"""Schema migrations with Alembic: a new store, stores written before Alembic (schema_version 1
and 2), later revisions, a store from a newer cxprobe, concurrent starts and ``cxprobe db``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from typer.testing import CliRunner

from cxprobe.cli import app
from cxprobe.store.chain import GENESIS, RUN, link_problems
from cxprobe.store.database import SCHEMA_VERSION, EvidenceStore, SchemaVersionError
from cxprobe.store.ledger import current_record_hash, entries_between, head, latest_entries
from cxprobe.store.migrations import (
    HEAD_REVISION,
    LEGACY_REVISIONS,
    SCRIPT_LOCATION,
    SchemaState,
    alembic_config,
    prepare_store,
)
from cxprobe.store.schema import metadata
from tests.evidence_support import SECRETS, WEEK_START, load, populate, write_config
from tests.stores import revision_numbers
from tests.unit.test_store import new_result, reply, sent, sqlite_url

HERE = Path(__file__).parent


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read with plain sqlite3, not through the store under test."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


#: The DDL cxprobe wrote on SQLite before Alembic, dumped from sqlite_master (frozen).
OLD_SCHEMA = {1: HERE / "store_schema_v1.sql", 2: HERE / "store_schema_v2.sql"}
#: Every table that holds evidence, and so must keep every row through an upgrade.
DATA_TABLES = ("runs", "slots", "messages", "artifacts", "channel_state")

#: A revision after the head, as a later cxprobe might add: it recreates ``runs`` on SQLite,
#: the table every other one refers to (with ON DELETE CASCADE).
_NOTES, _NOTES_INDEX = f"{int(HEAD_REVISION) + 1:04d}", f"{int(HEAD_REVISION) + 2:04d}"
LATER_REVISIONS = {
    f"v{_NOTES}_run_notes.py": f"""
import sqlalchemy as sa
from alembic import op

revision = "{_NOTES}"
down_revision = "{HEAD_REVISION}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", recreate="always") as batch:
        batch.add_column(sa.Column("notes", sa.Text))


def downgrade() -> None:
    raise NotImplementedError
""",
    f"v{_NOTES_INDEX}_run_notes_index.py": f"""
from alembic import op

revision = "{_NOTES_INDEX}"
down_revision = "{_NOTES}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_notes", "runs", ["notes"])


def downgrade() -> None:
    raise NotImplementedError
""",
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cxprobe.db"


def ddl(path: Path) -> set[str]:
    """The store's schema as SQLite keeps it (statements, whitespace normalised)."""
    rows = query(path, "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
    return {" ".join(str(sql).split()) for (sql,) in rows}


def old_ddl(version: int) -> set[str]:
    statements = OLD_SCHEMA[version].read_text().split(";\n")
    lines = (
        "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
        for statement in statements
    )
    return {" ".join(text.split()) for text in lines if text.strip()}


def counts(path: Path) -> dict[str, int]:
    return {table: int(query(path, f"SELECT count(*) FROM {table}")[0][0]) for table in DATA_TABLES}


async def populated_store(db_path: Path, tmp_path: Path, *, measured: bool = False) -> Path:
    """A day of runs of the sandbox config (closed, sealed, with evidence), an open run and a
    channel's read position; returns the config pointing at the store. ``measured``: phone runs
    have their audio measures (not for copies into the tables of old schemas, which had none)."""
    config = write_config(tmp_path, db_path)
    async with EvidenceStore(sqlite_url(db_path)) as store:
        await populate(store, load(config), hours=12, measured=measured)
        still_open = new_result(slot=WEEK_START + timedelta(days=2))
        await store.claim_slot(still_open)
        await store.record_sent(still_open.run_id, sent(), still_open.expected_queue)
        await store.record_reply(still_open.run_id, *reply("<open-1@acme.test>", 30.0))
        await store.save_channel_state("email", "probe", {"uidvalidity": 7, "last_uid": 41})
    return config


def as_old_store(source: Path, target: Path, version: int) -> None:
    """``target``: a store exactly as cxprobe before Alembic wrote it at ``version`` (its DDL,
    its schema_version rows), holding the rows of ``source``'s tables of that version."""
    with contextlib.closing(sqlite3.connect(target)) as conn:
        conn.executescript(OLD_SCHEMA[version].read_text())
        conn.execute("ATTACH DATABASE ? AS source", (str(source),))
        tables = [*DATA_TABLES, *(("chain", "chain_head", "exports", "exported_runs"))]
        for table in tables[: len(DATA_TABLES)] if version == 1 else tables:
            # The old table's columns only: later revisions add some to today's tables.
            names = ", ".join(row[1] for row in conn.execute(f"PRAGMA main.table_info({table})"))
            conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM source.{table}")
        conn.executemany(
            "INSERT INTO schema_version VALUES (?, '2025-01-01 00:00:00.000000')",
            [(number,) for number in range(1, version + 1)],
        )
        conn.commit()
        conn.execute("DETACH DATABASE source")


def chain_problems(path: Path) -> list[str]:
    """Links of the whole chain, and every run's latest entry against its current content."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            entries = entries_between(conn, 1, 10**9)
            problems = link_problems(entries)
            run_ids = sorted({e.run_id for e in entries if e.run_id is not None})
            for run_id, entry in latest_entries(conn, run_ids).items():
                current = current_record_hash(conn, run_id)
                if current is None or current[1] != entry.record_hash:
                    problems.append(f"run {run_id}: its content no longer matches its seal")
            if entries and head(conn) != (entries[-1].seq, entries[-1].entry_hash):
                problems.append("the chain head is not the last entry")
            return problems
    finally:
        engine.dispose()


async def open_schema(path: Path) -> SchemaState:
    async with EvidenceStore(sqlite_url(path)) as store:
        assert store.schema is not None
        return store.schema


def closed_runs(path: Path) -> set[str]:
    return {str(r[0]) for r in query(path, "SELECT run_id FROM runs WHERE status = 'closed'")}


# -- the revisions ----------------------------------------------------------------------------


def test_the_head_revision_is_the_newest_of_one_numbered_line() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD_REVISION]
    history = [revision.revision for revision in script.walk_revisions()][::-1]
    assert history == [f"{n:04d}" for n in range(1, len(history) + 1)]
    assert SCHEMA_VERSION == int(HEAD_REVISION) == len(history)
    assert set(LEGACY_REVISIONS.values()) <= set(history)
    files = sorted(p.name for p in (SCRIPT_LOCATION / "versions").glob("v*.py"))
    assert [name[1:5] for name in files] == history


async def test_a_new_store_is_created_at_head_with_exactly_the_metadata(db_path: Path) -> None:
    async with EvidenceStore(sqlite_url(db_path)) as store:
        assert store.schema is not None
        assert store.schema.created and store.schema.found is None
        assert store.schema.revision == HEAD_REVISION
        assert await store.chain_head() == (0, GENESIS)
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []
    assert query(db_path, "SELECT version FROM schema_version ORDER BY 1") == revision_numbers()


async def test_a_new_store_has_the_schema_of_an_old_store_upgraded(
    db_path: Path, tmp_path: Path
) -> None:
    async with EvidenceStore(sqlite_url(db_path)):
        pass
    assert old_ddl(1) < old_ddl(2)
    # A store the old code wrote at schema 2 (stamped 0002, then the later revisions) and a new
    # one (every revision) come out alike: 0001 and 0002 create what the old code did.
    old = db_path.with_name("old.db")
    as_old_store(db_path, old, 2)
    assert ddl(old) == old_ddl(2)
    await open_schema(old)
    assert ddl(old) == ddl(db_path)


# -- stores written before Alembic -------------------------------------------------------------


def test_a_version_1_store_of_the_old_code_keeps_every_run_and_gets_a_valid_chain(
    db_path: Path, tmp_path: Path
) -> None:
    asyncio.run(populated_store(db_path, tmp_path))
    old = tmp_path / "old.db"
    as_old_store(db_path, old, 1)
    assert ddl(old) == old_ddl(1)
    before = counts(old)
    assert before["runs"] == 25 and before["messages"] > before["runs"]
    state = asyncio.run(open_schema(old))
    assert (state.found, state.revision) == ("0001", HEAD_REVISION)
    assert state.legacy_version == 1 and state.upgraded
    assert counts(old) == before
    assert ddl(old) == ddl(db_path)
    assert query(old, "SELECT version FROM schema_version ORDER BY 1") == revision_numbers()
    assert query(old, "SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]
    sealed = query(old, "SELECT run_id, kind, note FROM chain ORDER BY seq")
    assert {run_id for run_id, _, _ in sealed} == closed_runs(old)
    assert len(sealed) == len(closed_runs(old)) == 24
    assert {(kind, note) for _, kind, note in sealed} == {
        (RUN, "sealed when the store was upgraded to schema 2")
    }
    assert chain_problems(old) == []
    # And an auditor's export of the upgraded store verifies.
    config = write_config(tmp_path, old)
    out = tmp_path / "export"
    runner = CliRunner()
    env = {**SECRETS, "COLUMNS": "400"}
    window = [
        "--from",
        WEEK_START.isoformat(),
        "--to",
        (WEEK_START + timedelta(days=1)).isoformat(),
    ]
    exported = runner.invoke(
        app, ["evidence", "export", "-c", str(config), *window, "--out", str(out)], env=env
    )
    assert exported.exit_code == 0, exported.output
    verified = runner.invoke(app, ["evidence", "verify", str(out)], env=env)
    assert verified.exit_code == 0, verified.output


async def test_a_version_2_store_of_the_old_code_is_stamped_and_its_chain_left_alone(
    db_path: Path, tmp_path: Path
) -> None:
    await populated_store(db_path, tmp_path)
    old = tmp_path / "old.db"
    as_old_store(db_path, old, 2)
    assert ddl(old) == old_ddl(2)
    before = counts(old)
    chain_before = query(old, "SELECT * FROM chain ORDER BY seq")
    assert len(chain_before) == 24
    async with EvidenceStore(sqlite_url(old)) as store:
        assert store.schema is not None
        # Stamped at the revision it was written at; the revisions since run on it.
        assert (store.schema.found, store.schema.revision) == (LEGACY_REVISIONS[2], HEAD_REVISION)
        assert store.schema.stamped
        assert store.schema.upgraded == (LEGACY_REVISIONS[2] != HEAD_REVISION)
    assert counts(old) == before
    assert query(old, "SELECT * FROM chain ORDER BY seq") == chain_before
    assert query(old, "SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]
    assert query(old, "SELECT version FROM schema_version ORDER BY 1") == revision_numbers()
    assert chain_problems(old) == []


async def test_two_monitors_upgrading_one_old_store_at_once_seal_each_run_once(
    db_path: Path, tmp_path: Path
) -> None:
    await populated_store(db_path, tmp_path)
    old = tmp_path / "old.db"
    as_old_store(db_path, old, 1)
    first, second = EvidenceStore(sqlite_url(old)), EvidenceStore(sqlite_url(old))
    async with contextlib.AsyncExitStack() as stack:
        opened = await asyncio.gather(
            stack.enter_async_context(first), stack.enter_async_context(second)
        )
        states = [store.schema for store in opened]
    assert sorted(bool(state and state.upgraded) for state in states) == [False, True]
    assert len(query(old, "SELECT seq FROM chain")) == len(closed_runs(old)) == 24
    assert query(old, "SELECT version FROM schema_version ORDER BY 1") == revision_numbers()
    assert chain_problems(old) == []


# -- later revisions ---------------------------------------------------------------------------


async def test_later_revisions_run_in_order_and_a_recreated_table_loses_no_row(
    db_path: Path, tmp_path: Path
) -> None:
    await populated_store(db_path, tmp_path, measured=True)
    before = counts(db_path)
    measures = query(db_path, "SELECT * FROM run_measures ORDER BY run_id, name")
    assert measures
    later = tmp_path / "later"
    later.mkdir()
    for name, source in LATER_REVISIONS.items():
        (later / name).write_text(source)
    config = alembic_config(version_locations=[later])
    async with EvidenceStore(sqlite_url(db_path)) as store:
        assert store._writer is not None
        state = await prepare_store(store._writer, store.where, config=config)
        assert (state.found, state.revision) == (HEAD_REVISION, _NOTES_INDEX)
        again = await prepare_store(store._writer, store.where, config=config)
        assert (again.found, again.revision, again.upgraded) == (_NOTES_INDEX, _NOTES_INDEX, False)
        async with store._read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
    # runs was dropped and recreated: with foreign keys on, its messages would have gone too.
    assert counts(db_path) == before
    assert query(db_path, "SELECT * FROM run_measures ORDER BY run_id, name") == measures
    assert query(db_path, "SELECT count(*) FROM runs WHERE notes IS NULL") == [(before["runs"],)]
    assert query(db_path, "SELECT version FROM schema_version ORDER BY 1") == [
        *revision_numbers(),
        (int(_NOTES),),
        (int(_NOTES_INDEX),),
    ]
    assert chain_problems(db_path) == []
    # This cxprobe (at HEAD_REVISION) now refuses the store.
    refused = rf"schema version {int(_NOTES_INDEX)} \(revision {_NOTES_INDEX}\)"
    with pytest.raises(SchemaVersionError, match=refused):
        async with EvidenceStore(sqlite_url(db_path)):
            pass


# -- refusals ----------------------------------------------------------------------------------


def make_newer(path: Path, *, keep_alembic: bool = True) -> None:
    """What a newer cxprobe leaves: a revision (and schema_version) beyond this code's."""
    newer = SCHEMA_VERSION + 1
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, '2030-01-01 00:00:00.000000')", (newer,)
        )
        if keep_alembic:
            conn.execute("UPDATE alembic_version SET version_num = ?", (f"{newer:04d}",))
        else:
            conn.execute("DROP TABLE alembic_version")


@pytest.mark.parametrize("keep_alembic", [True, False], ids=["alembic", "schema_version"])
async def test_a_store_of_a_newer_cxprobe_is_refused_and_left_as_it_is(
    db_path: Path, keep_alembic: bool
) -> None:
    async with EvidenceStore(sqlite_url(db_path)):
        pass
    make_newer(db_path, keep_alembic=keep_alembic)
    schema = ddl(db_path)
    with pytest.raises(SchemaVersionError) as refused:
        async with EvidenceStore(sqlite_url(db_path)):
            pass
    message = str(refused.value)
    assert str(db_path) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"up to {SCHEMA_VERSION} (revision {HEAD_REVISION})" in message
    assert "Upgrade cxprobe" in message
    assert ddl(db_path) == schema


async def test_an_unknown_revision_name_is_refused(db_path: Path) -> None:
    async with EvidenceStore(sqlite_url(db_path)):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ae1027a6acf'")
    with pytest.raises(SchemaVersionError, match=r"schema revision 'ae1027a6acf'.*newer cxprobe"):
        async with EvidenceStore(sqlite_url(db_path)):
            pass


async def test_tables_without_a_schema_version_are_refused(db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("CREATE TABLE runs (id INTEGER)")
    with pytest.raises(SchemaVersionError, match="no schema_version or alembic_version"):
        async with EvidenceStore(sqlite_url(db_path)):
            pass


async def test_inspecting_changes_nothing(db_path: Path, tmp_path: Path) -> None:
    async with EvidenceStore(sqlite_url(db_path), upgrade_schema=False) as store:
        assert store.schema is not None
        assert (store.schema.found, store.schema.revision) == (None, None)
        assert store.schema.pending
    assert query(db_path, "SELECT name FROM sqlite_master") == []


# -- the command line --------------------------------------------------------------------------


def test_db_current_and_upgrade_on_a_version_1_store(db_path: Path, tmp_path: Path) -> None:
    asyncio.run(populated_store(db_path, tmp_path))
    old = tmp_path / "old.db"
    as_old_store(db_path, old, 1)
    config = str(write_config(tmp_path, old))
    runner = CliRunner()
    env = {**SECRETS, "COLUMNS": "400"}
    current = runner.invoke(app, ["db", "current", "-c", config], env=env)
    assert current.exit_code == 0, current.output
    assert f"{old}: revision 0001 (schema_version 1, from before Alembic)" in current.output
    assert "cxprobe db upgrade" in current.output
    assert ddl(old) == old_ddl(1)  # current changed nothing
    upgraded = runner.invoke(app, ["db", "upgrade", "-c", config], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    upgraded_from = "upgraded from revision 0001 (schema_version 1, from before Alembic)"
    assert f"{upgraded_from} to {HEAD_REVISION} (head)" in upgraded.output
    again = runner.invoke(app, ["db", "upgrade", "-c", config], env=env)
    assert f"already at revision {HEAD_REVISION} (head), nothing to do" in again.output
    current = runner.invoke(app, ["db", "current", "-c", config], env=env)
    assert f"{old}: revision {HEAD_REVISION} (head)" in current.output
    assert chain_problems(old) == []


def test_run_refuses_a_store_of_a_newer_cxprobe_with_exit_2_and_sends_nothing(
    db_path: Path, tmp_path: Path
) -> None:
    asyncio.run(open_schema(db_path))
    make_newer(db_path)
    config = write_config(tmp_path, db_path)
    done = subprocess.run(
        [sys.executable, "-m", "cxprobe", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **SECRETS},
    )
    assert done.returncode == 2, done.stderr
    assert str(db_path) in " ".join(done.stderr.split())
    assert "Upgrade cxprobe" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    # A contact is only ever sent after its slot is claimed in the store.
    assert counts(db_path) == dict.fromkeys(DATA_TABLES, 0)
