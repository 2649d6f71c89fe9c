"""``cxprobe evidence export`` and ``verify`` on a real store: a clean export verifies; any
edited byte, removed line or run deleted from the store is found and named."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cxprobe.store.database import EvidenceStore
from probes.base import Responder
from scenarios.maintenance import MaintenanceWindow
from tests.evidence_support import (
    SECRETS,
    WEEK_START,
    load,
    populate,
    write_config,
)
from tests.unit.test_store import reply

DAY_END = WEEK_START + timedelta(days=1)


def cli(*args: str) -> Result:
    from cxprobe.cli_evidence import evidence_app

    return CliRunner().invoke(evidence_app, list(args), env={**SECRETS, "COLUMNS": "400"})


def export(config: Path, out: Path, *extra: str, file_format: str = "csv") -> Result:
    return cli(
        "export",
        "-c",
        str(config),
        "--from",
        WEEK_START.isoformat(),
        "--to",
        DAY_END.isoformat(),
        "--format",
        file_format,
        "--out",
        str(out),
        *extra,
    )


def verify(directory: Path) -> Result:
    return cli("verify", str(directory))


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A store with a day of runs (48), built once; tests copy it before changing it."""
    directory = tmp_path_factory.mktemp("evidence")
    db_path = directory / "store.db"
    config = write_config(directory, db_path)

    async def build() -> None:
        async with EvidenceStore(load(config).monitor.store_url) as store:
            await populate(store, load(config), hours=24)

    asyncio.run(build())
    yield config, db_path


@pytest.fixture
def store_copy(populated: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the populated store (and its config)."""
    _, db_path = populated
    copy = tmp_path / "store.db"
    with sqlite3.connect(db_path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    target.close()
    return write_config(tmp_path, copy)


@pytest.fixture(scope="module")
def csv_export(populated: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    config, _ = populated
    out = tmp_path_factory.mktemp("csv") / "export"
    result = export(config, out)
    assert result.exit_code == 0, result.output
    return out


def test_a_csv_export_verifies_and_opens_cleanly(csv_export: Path) -> None:
    result = verify(csv_export)
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output and "48 run(s)" in result.output
    raw = (csv_export / "runs.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM spreadsheets need
    with (csv_export / "runs.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 48
    for row in rows:
        utc = datetime.fromisoformat(row["slot_at_utc"])
        local = datetime.fromisoformat(row["slot_at_local"])
        assert row["slot_at_utc"].endswith("Z") and utc == local and utc.utcoffset() == timedelta(0)
        assert row["time_zone"] == "Europe/London" and row["record_hash"] and row["chain_seq"]
    with (csv_export / "messages.csv").open(encoding="utf-8-sig", newline="") as file:
        messages = list(csv.DictReader(file))
    multiline = [m for m in messages if "\n" in m["text"]]
    assert multiline, "reply texts keep their line breaks (RFC 4180 quoting)"
    manifest = json.loads((csv_export / "manifest.json").read_text())
    assert manifest["counts"]["runs"] == 48
    assert manifest["chain"]["head"]["seq"] >= manifest["chain"]["last_seq"]
    assert len(manifest["config_sha256"]) == 64 and manifest["cxprobe_version"]
    attachments = list((csv_export / "attachments").rglob("*.eml"))
    assert len(attachments) == manifest["counts"]["attachments"] > 48


def test_no_secret_reaches_an_export(csv_export: Path) -> None:
    for path in csv_export.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in SECRETS.values():
                assert secret.encode() not in content, f"{secret} in {path}"


def all_files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def copy_export(source: Path, target: Path) -> Path:
    for relative in all_files(source):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes((source / relative).read_bytes())
    return target


@pytest.mark.parametrize(
    "name",
    [
        "runs.csv",
        "messages.csv",
        "artifacts.csv",
        "measures.csv",
        "chain.csv",
        "gaps.csv",
        "courtesy.json",
        "manifest.json",
        "manifest.sha256",
        "attachment",
    ],
)
def test_one_edited_byte_in_any_file_fails_and_is_named(
    csv_export: Path, tmp_path: Path, name: str
) -> None:
    export_dir = copy_export(csv_export, tmp_path / "export")
    relative = (
        next(r for r in all_files(export_dir) if r.startswith("attachments/"))
        if name == "attachment"
        else name
    )
    path = export_dir / relative
    data = bytearray(path.read_bytes())
    position = len(data) // 2 if len(data) > 4 else len(data) - 1
    data[position] = ord("x") if data[position] != ord("x") else ord("y")
    path.write_bytes(bytes(data))
    result = verify(export_dir)
    assert result.exit_code == 1, result.output
    named = "manifest.json" if name == "manifest.sha256" else relative
    assert named in result.output


def drop_line(path: Path, run_id: str) -> None:
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(run_id) and f'"{run_id}"' not in line]
    assert len(kept) == len(lines) - 1
    bom = "\ufeff" if path.suffix == ".csv" else ""
    path.write_text(bom + "".join(kept), encoding="utf-8", newline="")


def test_a_run_deleted_from_runs_csv_is_named(csv_export: Path, tmp_path: Path) -> None:
    export_dir = copy_export(csv_export, tmp_path / "export")
    with (export_dir / "runs.csv").open(encoding="utf-8-sig", newline="") as file:
        victim = list(csv.DictReader(file))[5]["run_id"]
    drop_line(export_dir / "runs.csv", victim)
    result = verify(export_dir)
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"run {victim}" in output and "missing from runs.csv" in output
    assert "runs.csv: its SHA-256 differs from the manifest" in output


def test_jsonl_export_verifies_and_a_deleted_line_is_named(
    populated: tuple[Path, Path], tmp_path: Path
) -> None:
    config, _ = populated
    out = tmp_path / "jsonl"
    assert export(config, out, file_format="jsonl").exit_code == 0
    assert verify(out).exit_code == 0, verify(out).output
    first = json.loads((out / "runs.jsonl").read_text().splitlines()[0])
    assert first["local"]["slot_at"] and first["chain"]["record_hash"] and first["messages"]
    lines = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert {line["run_id"]: line["measures"] for line in lines if "measures" in line} == (
        stored_measures(config)
    )
    victim = json.loads((out / "runs.jsonl").read_text().splitlines()[3])["run_id"]
    lines = (out / "runs.jsonl").read_text().splitlines(keepends=True)
    (out / "runs.jsonl").write_text("".join(line for line in lines if victim not in line))
    result = verify(out)
    assert result.exit_code == 1
    assert f"run {victim}" in " ".join(result.output.split())


def test_a_run_deleted_from_the_store_before_export_is_named(
    store_copy: Path, tmp_path: Path
) -> None:
    db_path = tmp_path / "store.db"
    with sqlite3.connect(db_path) as conn:
        victim, check_id = conn.execute(
            "SELECT run_id, check_id FROM runs ORDER BY slot_at LIMIT 1 OFFSET 7"
        ).fetchone()
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM runs WHERE run_id = ?", (victim,))
    conn.close()
    out = tmp_path / "export"
    exported = export(store_copy, out)
    assert exported.exit_code == 1  # export warns: the store was altered
    assert f"run {victim}" in " ".join(exported.output.split())
    result = verify(out)
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"run {victim} ({check_id}@local" in output and "missing from runs.csv" in output
    assert f"slot {check_id}@local" in output  # its claimed slot has no run either


def test_an_edit_in_the_store_after_sealing_is_named(store_copy: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "store.db"
    with sqlite3.connect(db_path) as conn:
        victim = conn.execute(
            "SELECT run_id FROM runs WHERE outcome = 'breached' LIMIT 1"
        ).fetchone()[0]
        conn.execute("UPDATE runs SET outcome = 'met' WHERE run_id = ?", (victim,))
    conn.close()
    out = tmp_path / "export"
    assert export(store_copy, out).exit_code == 1
    result = verify(out)
    assert result.exit_code == 1
    assert f"run {victim}: its exported content does not match" in " ".join(result.output.split())


def test_a_late_reply_is_an_amendment_and_still_verifies(store_copy: Path, tmp_path: Path) -> None:
    config = load(store_copy)

    async def late_reply() -> str:
        async with EvidenceStore(config.monitor.store_url) as store:
            [run] = await store.recent_runs(1)
            channel_reply, observed = reply("<late@acme.test>", 9999.0, Responder.HUMAN, late=True)
            await store.record_reply(run.run_id, channel_reply, observed)
            return run.run_id

    run_id = asyncio.run(late_reply())
    out = tmp_path / "export"
    result = export(store_copy, out)
    assert result.exit_code == 0, result.output
    assert verify(out).exit_code == 0, verify(out).output
    with (out / "chain.csv").open(encoding="utf-8-sig", newline="") as file:
        amendments = [row for row in csv.DictReader(file) if row["kind"] == "amendment"]
    assert [row["run_id"] for row in amendments] == [run_id]


def test_filters_and_a_used_directory(populated: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = populated
    out = tmp_path / "email"
    assert export(config, out, "--channel", "email").exit_code == 0
    with (out / "runs.csv").open(encoding="utf-8-sig", newline="") as file:
        assert {row["channel"] for row in csv.DictReader(file)} == {"email"}
    assert verify(out).exit_code == 0, verify(out).output
    again = export(config, out)
    assert again.exit_code == 2 and "not an empty directory" in again.output
    typo = export(config, tmp_path / "typo", "--target", "acmee")
    assert typo.exit_code == 2 and "acmee" in typo.output


def test_the_export_lists_contact_modes_and_the_maintenance_windows_of_its_period(
    store_copy: Path, tmp_path: Path
) -> None:
    config = load(store_copy)

    async def declare() -> None:
        async with EvidenceStore(config.monitor.store_url) as store:
            await store.add_maintenance(
                MaintenanceWindow(
                    target="acme",
                    reason="desk move",
                    starts_at=WEEK_START + timedelta(hours=2),
                    ends_at=WEEK_START + timedelta(hours=4),
                ),
                created_by="test",
            )

    asyncio.run(declare())
    out = tmp_path / "export"
    assert export(store_copy, out).exit_code == 0
    assert verify(out).exit_code == 0
    courtesy = json.loads((out / "courtesy.json").read_text())
    assert {run["contact_mode"] for run in courtesy["runs"]} == {"declared"}
    assert len(courtesy["runs"]) == 48
    [window] = courtesy["maintenance_windows"]
    described = (window["source"], window["reason"], window["mode"])
    assert described == ("store #1", "desk move", "pause")
    assert window["openings"] == [
        {"from": "2025-03-03T02:00:00.000000Z", "to": "2025-03-03T04:00:00.000000Z"}
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)


def reseal_manifest(export_dir: Path, relative: str) -> None:
    """Make the manifest agree with an edited file, as someone rewriting the export would."""
    manifest_path = export_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for item in manifest["files"]:
        if item["path"] == relative:
            item["sha256"] = hashlib.sha256((export_dir / relative).read_bytes()).hexdigest()
    data = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    manifest_path.write_bytes(data)
    (export_dir / "manifest.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  manifest.json\n", encoding="ascii"
    )


def stored_measures(config: Path) -> dict[str, dict[str, float]]:
    async def read() -> dict[str, dict[str, float]]:
        async with EvidenceStore(load(config).monitor.store_url) as store:
            runs = await store.runs_between(WEEK_START, DAY_END)
        return {run.run_id: run.measures for run in runs if run.measures}

    return asyncio.run(read())


def test_the_channel_measures_are_exported_and_sealed(
    populated: tuple[Path, Path], csv_export: Path, tmp_path: Path
) -> None:
    config, _ = populated
    stored = stored_measures(config)
    assert stored and {run_id for run_id in stored} <= {
        row["run_id"] for row in read_csv(csv_export / "runs.csv") if row["channel"] == "phone"
    }
    rows = read_csv(csv_export / "measures.csv")
    exported: dict[str, dict[str, float]] = {}
    for row in rows:
        exported.setdefault(row["run_id"], {})[row["measure"]] = float(row["seconds"])
    assert exported == stored
    # A measure changed in the export, its manifest made to agree: the chain still finds it.
    export_dir = copy_export(csv_export, tmp_path / "export")
    rows[0]["seconds"] = repr(float(rows[0]["seconds"]) + 1.0)
    write_csv(export_dir / "measures.csv", rows)
    reseal_manifest(export_dir, "measures.csv")
    result = verify(export_dir)
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"run {rows[0]['run_id']}: its exported content does not match" in output
    assert "manifest" not in output
