"""What the command line prints when its output is not a terminal (a pipe, a log file): one
line per line however long, user and peer text exactly as written (Rich markup never read in
it), and ``--json`` documents for scripts.

The commands run for real: ``python -m cxprobe`` in a subprocess with its output piped, or the
Typer app under ``CliRunner`` (output captured, not a terminal, and no COLUMNS set). The run
they print is a real one: ``once`` on a target paused by a maintenance window, whose reason
quotes a selector, so no peer is contacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cxprobe.cli import app
from tests.support import monitor_section

ROOT = Path(__file__).resolve().parents[2]
SELECTOR = "li[data-author=assistant]"
#: A reason well past 80 columns, quoting a selector and something that looks like markup.
REASON = (
    f"the chat widget moved: {SELECTOR} no longer matches the agent's messages, and "
    "[bold]nothing[/bold] is probed until the new widget's selectors are in the config "
    "(ticket OPS-4711, owner: the web team)"
)
TARGET = "acme[bold]"
SCENARIO = "billing[red]question"
CHECK = "acme-generic"
SECRETS = {"CXPROBE_TEST_PEER_TOKEN": "peer-token", "CXPROBE_TEST_PEER_SECRET": "peer-secret"}


def config_data(tmp_path: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "monitor": monitor_section(tmp_path),
        "locations": {"test": {}},
        "channels": {
            "generic": {
                "platforms": {
                    "social": {
                        "send": {
                            # Never reached: the target is paused.
                            "url": "http://127.0.0.1:9/v1/messages",
                            "headers": {"Authorization": "Bearer ${CXPROBE_TEST_PEER_TOKEN}"},
                            "body": {"to": "{recipient}", "text": "{text}"},
                        },
                        "signature": {"secret": "${CXPROBE_TEST_PEER_SECRET}"},
                        "inbound": {
                            "messages": "$.events[?@.type == 'message']",
                            "sender": "$.from",
                            "recipient": "$.to",
                            "text": "$.text",
                            "id": "$.id",
                        },
                    }
                }
            }
        },
        "targets": {
            TARGET: {
                "name": "Acme [bold]Telecom[/bold]",
                "business_hours": {"timezone": "UTC", "weekly": {"mon": ["09:00-17:00"]}},
                "channels": {
                    "generic": {"platform": "social", "recipient": "acme", "sender": "probe-1"}
                },
            }
        },
        "scenarios": {
            SCENARIO: {
                "intent": "billing-question",
                "subject": "A question about my bill",
                "opening": "Hello, my bill looks wrong. {token}",
            }
        },
        "checks": [
            {"id": CHECK, "target": TARGET, "channel": "generic", "scenario": SCENARIO,
             "schedule": {"every": "1h"}},
        ],
        "maintenance": [
            {"reason": REASON, "target": TARGET,
             "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2100-01-01T00:00:00Z"},
        ],
    }  # fmt: skip


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(config_data(tmp_path), sort_keys=False))
    return path


def cli(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    """The app under CliRunner: exit code, stdout, stderr (COLUMNS unset: Rich's default)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": None, **SECRETS, **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def cxprobe_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cxprobe`` with stdout and stderr piped (not terminals), no COLUMNS."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | SECRETS
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "cxprobe", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_once_piped_prints_a_long_reason_on_one_line_with_its_brackets(config_path: Path) -> None:
    process = cxprobe_process("once", "-c", str(config_path), CHECK)
    assert process.returncode == 4, process.stdout + process.stderr  # skipped: nothing probed
    outcome = [line for line in process.stdout.splitlines() if line.startswith("outcome")]
    assert len(outcome) == 1, process.stdout
    assert outcome[0].split(None, 1)[1].rstrip() == f"skipped skipped: maintenance: {REASON} " + (
        "(maintenance window, config)"
    )
    assert len(outcome[0]) > 200
    (target,) = [line for line in process.stdout.splitlines() if line.startswith("target")]
    assert f"{TARGET} · generic · {SCENARIO}" in target
    assert "Traceback" not in process.stderr


def test_once_json_is_one_document_with_the_run(config_path: Path) -> None:
    code, out, _ = cli("once", "-c", str(config_path), CHECK, "--json")
    assert code == 4
    document = json.loads(out)
    run = document["run"]
    assert document["not_run"] is None
    assert run["check_id"] == CHECK and run["target"] == TARGET and run["scenario"] == SCENARIO
    assert run["outcome"] == "skipped"
    assert run["reason"] == f"skipped: maintenance: {REASON} (maintenance window, config)"
    assert run["sent_at"] is None and run["replies"] == [] and run["routing"] == "unknown"
    assert run["thresholds"]["deadline"] > 0
    assert isinstance(document["evidence"], list)


def test_runs_lists_the_run_on_one_line_and_as_json(config_path: Path) -> None:
    assert cli("once", "-c", str(config_path), CHECK)[0] == 4
    code, out, _ = cli("runs", "-c", str(config_path))
    assert code == 0
    (row,) = [line for line in out.splitlines() if CHECK in line]
    assert "skipped" in row
    code, out, _ = cli("runs", "-c", str(config_path), "--json")
    assert code == 0
    (run,) = json.loads(out)["runs"]
    assert (run["check_id"], run["outcome"], run["period"]) == (CHECK, "skipped", run["period"])
    assert SELECTOR in run["reason"] and "[bold]nothing[/bold]" in run["reason"]
    assert set(run) >= {
        "run_id", "check_id", "target", "channel", "scenario", "location", "slot", "token",
        "period", "outcome", "reason", "sent_at", "first_response_seconds",
        "first_response_responder", "first_human_seconds", "routing", "routed_queue",
        "expected_queue", "replies", "thresholds",
    }  # fmt: skip


def test_maintenance_list_keeps_brackets_and_has_json(config_path: Path) -> None:
    code, out, _ = cli("maintenance", "list", "-c", str(config_path))
    assert code == 0
    (line,) = out.splitlines()
    assert line.startswith("config: [OPEN] ")
    assert REASON in line and f"target {TARGET}" in line
    code, out, _ = cli("maintenance", "list", "-c", str(config_path), "--json")
    (window,) = json.loads(out)["windows"]
    assert window["source"] == "config" and window["id"] is None and window["open"] is True
    assert window["reason"] == REASON and window["target"] == TARGET
    assert window["starts_at"].startswith("2020-01-01T00:00:00")
    assert window["mode"] == "pause" and window["ended_at"] is None


def test_optout_list_json_is_an_empty_list_when_there_are_none(config_path: Path) -> None:
    code, out, _ = cli("optout", "list", "-c", str(config_path), "--json")
    assert code == 0
    assert json.loads(out) == {"opt_outs": []}
    assert cli("optout", "list", "-c", str(config_path))[1] == "no opt-outs\n"


def test_validate_prints_names_as_written_and_json(config_path: Path) -> None:
    code, out, _ = cli("validate", str(config_path))
    assert code == 0
    assert out == f"OK: {config_path} — 1 target(s), 1 check(s), 1 at location 'test'\n"
    code, out, _ = cli("validate", str(config_path), "--json")
    assert code == 0
    document = json.loads(out)
    assert document == {
        "ok": True,
        "config": str(config_path),
        "location": "test",
        "targets": [TARGET],
        "checks": [CHECK],
        "checks_here": [CHECK],
        "unset_variables": [],
        "problems": [],
        "warnings": [],
    }


def test_config_problems_print_user_text_as_written(tmp_path: Path) -> None:
    data = config_data(tmp_path)
    data["targets"][TARGET]["[bold]colour"] = "red"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = cli("validate", str(path))
    assert code == 2
    problem = [line for line in err.splitlines() if "unknown key" in line]
    assert len(problem) == 1, err
    assert (
        f"targets.{TARGET}.[bold]colour: unknown key '[bold]colour' under targets.{TARGET};"
        in (problem[0])
    )
    code, out, _ = cli("validate", str(path), "--json")
    assert code == 2
    document = json.loads(out)
    assert document["ok"] is False and len(document["problems"]) == 1
    assert "'[bold]colour'" in document["problems"][0]


def test_plan_prints_a_bracketed_target_as_written(config_path: Path) -> None:
    code, out, _ = cli("plan", "-c", str(config_path), "--start", "2026-12-21")
    assert code == 0
    assert out.splitlines()[0].startswith(f"{CHECK} · {TARGET} · generic · every 1h · UTC")
    code, out, _ = cli("plan", "-c", str(config_path), "--start", "2026-12-21", "--json")
    (check,) = json.loads(out)["checks"]
    assert check["target"] == TARGET and len(check["weeks"][0]["contacts"]) == 7 * 24


def test_a_usage_error_piped_is_one_plain_line(config_path: Path) -> None:
    value = "2026-12-21 [bold]and a date that goes on well past eighty columns[/bold] " * 2
    process = cxprobe_process("plan", "-c", str(config_path), "--start", value)
    assert process.returncode == 2
    (error,) = [line for line in process.stderr.splitlines() if line.startswith("Error:")]
    assert error == (
        f"Error: Invalid value for --start: {value!r} is not an ISO 8601 date (e.g. 2026-12-21)"
    )


def test_store_and_evidence_commands_have_json(config_path: Path, tmp_path: Path) -> None:
    assert cli("once", "-c", str(config_path), CHECK)[0] == 4
    code, out, _ = cli("db", "current", "-c", str(config_path), "--json")
    assert code == 0
    schema = json.loads(out)
    assert schema["revision"] == schema["head"] and schema["pending"] is False
    assert schema["store"].endswith("cxprobe.db")

    export = tmp_path / "export"
    code, _, err = cli("evidence", "export", "-c", str(config_path), "--from", "1d", "--out",
                       str(export))  # fmt: skip
    assert code == 0, err
    code, out, _ = cli("evidence", "verify", str(export), "--json")
    assert code == 0
    verified = json.loads(out)
    assert verified["ok"] is True and verified["runs"] == 1 and verified["problems"] == []
    assert verified["directory"] == str(export) and verified["files"] > 1

    (export / "runs.csv").write_text("tampered\n")
    code, out, _ = cli("evidence", "verify", str(export), "--json")
    assert code == 1
    assert json.loads(out)["ok"] is False and json.loads(out)["problems"]

    code, out, _ = cli("evidence", "purge", "-c", str(config_path), "--dry-run", "--json")
    assert code == 0
    purge = json.loads(out)
    assert purge["dry_run"] is True and purge["purged"] == [] and purge["entries"] == []
    assert purge["policy"]["older_than_seconds"] == 90 * 86400
