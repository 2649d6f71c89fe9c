"""Configuration: every file of the invalid corpus fails with the message a user must see,
and the shipped configs are valid."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxprobe.cli import app
from cxprobe.settings import load_config

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "config").glob("invalid-*.yaml"))


def expectations(path: Path) -> list[str]:
    """The ``# expect:`` lines at the top of a corpus file; ``{file}`` is the file's path."""
    found = re.findall(r"^# expect: (.+)$", path.read_text(), flags=re.MULTILINE)
    return [line.replace("{file}", str(path)) for line in found]


def test_corpus_is_not_empty() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: path.stem)
def test_invalid_config_exits_2_with_its_message(path: Path) -> None:
    expected = expectations(path)
    assert expected and "TODO" not in expected[0], f"{path.name} has no '# expect:' line"
    # No COLUMNS: captured output is not a terminal, so nothing wraps at any width.
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": None})
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    for message in expected:
        # Each problem whole on one line, brackets and all (never read as markup).
        assert any(line.startswith(f"  - {message}") for line in lines), (message, result.output)


@pytest.mark.parametrize("name", ["example.yaml", "production-postgres.yaml", "sandbox.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    env = {
        "PROBE_SMTP_PASSWORD": "x",
        "PROBE_IMAP_PASSWORD": "x",
        "CXPROBE_SANDBOX_IMAP_PASSWORD": "x",
        "TWILIO_AUTH_TOKEN": "x",
        "CXPROBE_SANDBOX_TWILIO_TOKEN": "x",
        "CXPROBE_SANDBOX_PEER_TOKEN": "x",
        "CXPROBE_SANDBOX_PEER_SECRET": "x",
        "MESSENGER_PAGE_TOKEN": "x",
        "MESSENGER_APP_SECRET": "x",
        "POSTGRES_PASSWORD": "x",
    }
    config = load_config(ROOT / "config" / name, environ=env)
    assert config.checks_here()
    result = CliRunner().invoke(app, ["validate", str(ROOT / "config" / name)], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK")


def test_secrets_are_held_as_secret_strings() -> None:
    config = load_config(
        ROOT / "config" / "example.yaml",
        environ={
            "PROBE_SMTP_PASSWORD": "hunter2",
            "PROBE_IMAP_PASSWORD": "hunter3",
            "TWILIO_AUTH_TOKEN": "hunter4",
            "MESSENGER_PAGE_TOKEN": "hunter5",
            "MESSENGER_APP_SECRET": "hunter6",
        },
    )
    mailbox = config.channel_settings("email").mailboxes["probe"]
    assert mailbox.imap.password.get_secret_value() == "hunter3"
    assert config.channel_settings("phone").twilio.auth_token.get_secret_value() == "hunter4"
    for secret in ("hunter2", "hunter3", "hunter4", "hunter5", "hunter6"):
        assert secret not in repr(config) and secret not in str(config.model_dump())


def test_every_error_is_reported_not_only_the_first(tmp_path: Path) -> None:
    source = (ROOT / "tests" / "config" / "invalid-bad-duration.yaml").read_text()
    broken = source.replace("target: acme", "target: nobody").replace(
        "version: 1", "version: 1\nextra: 1"
    )
    path = tmp_path / "two-errors.yaml"
    path.write_text(broken)
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    assert "invalid duration" in result.output and "unknown key 'extra'" in result.output


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("    locations: [london]\n", "    locations: [paris]\n"),  # their series differ
        ("", "    enabled: false\n"),  # a disabled check makes no series
    ],
)
def test_same_series_at_disjoint_locations_or_disabled_is_valid(
    tmp_path: Path, first: str, second: str
) -> None:
    source = (ROOT / "tests" / "config" / "invalid-duplicate-series.yaml").read_text()
    source = source.replace("    locations: [london, paris]\n", second).replace(
        "    scenario: billing-question\n    schedule: {every: 1h}\n",
        "    scenario: billing-question\n" + first + "    schedule: {every: 1h}\n",
    )
    path = tmp_path / "config.yaml"
    path.write_text(source)
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output


def test_once_refuses_a_check_that_does_not_run_here(tmp_path: Path) -> None:
    source = (ROOT / "tests" / "config" / "invalid-duplicate-series.yaml").read_text()
    path = tmp_path / "config.yaml"
    path.write_text(source.replace("    locations: [london, paris]\n", "    enabled: false\n"))
    result = CliRunner().invoke(
        app, ["once", "-c", str(path), "acme-email-billing-again"], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 2
    assert "does not run here" in result.output


def test_an_unusable_store_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    source = (ROOT / "tests" / "config" / "invalid-duplicate-series.yaml").read_text()
    source = source.replace("    locations: [london, paris]\n", "    enabled: false\n")
    source = source.replace(
        "monitor: {location: london}",
        f"monitor: {{location: london, store_url: 'sqlite+aiosqlite:///{tmp_path}'}}",
    )
    path = tmp_path / "config.yaml"
    path.write_text(source)
    done = subprocess.run(
        [sys.executable, "-m", "cxprobe", "runs", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot open the evidence store" in done.stderr
    assert "Traceback" not in done.stderr
