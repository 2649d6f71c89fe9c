"""Commands that contact no channel run without the channels' secrets: ``rules``, ``plan`` and
``validate`` need none, the store's commands only ``monitor``'s; ``run`` and ``once`` refuse,
naming each unset variable with its file, line and key, before anything connects."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cxprobe.app import open_monitor
from cxprobe.cli import app
from cxprobe.errors import ConfigError
from cxprobe.settings import load_config
from tests.unit.test_cli_output import CHECK, config_data

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "config" / "sandbox.yaml"
UNSET_SECRET = ROOT / "tests" / "config" / "unset-secret.yaml"


#: What the shipped sandbox config references, none of it set here.
def _lines_naming(names: list[str]) -> dict[str, int]:
    """The line of config/sandbox.yaml that references each variable (the messages name it)."""
    lines = SANDBOX.read_text().splitlines()
    return {
        name: next(number for number, text in enumerate(lines, 1) if f"${{{name}}}" in text)
        for name in names
    }


SANDBOX_VARIABLES = _lines_naming(
    [
        "CXPROBE_SANDBOX_IMAP_PASSWORD",
        "CXPROBE_SANDBOX_TWILIO_TOKEN",
        "CXPROBE_SANDBOX_PEER_TOKEN",
        "CXPROBE_SANDBOX_PEER_SECRET",
    ]
)


def without_secrets() -> dict[str, str | None]:
    """CliRunner's env: every CXPROBE_* variable of this process unset."""
    unset: dict[str, str | None] = {name: None for name in os.environ if name.startswith("CXPROBE")}
    return {"COLUMNS": None, **unset}


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=without_secrets())
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_rules_need_no_channel_secret(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    code, _, err = cli("rules", "-c", str(SANDBOX), "-o", str(out))
    assert code == 0, err
    assert "not set" not in err
    # The rules committed (generated with the secrets set): they depend on no secret.
    committed = (ROOT / "prometheus" / "rules" / "cxprobe.yml").read_text()
    assert yaml.safe_load(out.read_text()) == yaml.safe_load(committed)


def test_plan_needs_no_channel_secret() -> None:
    code, out, err = cli("plan", "-c", str(SANDBOX), "--start", "2026-12-21", "--json")
    assert code == 0, err
    assert '"checks"' in out


def test_validate_warns_of_unset_variables_and_require_env_fails() -> None:
    code, out, err = cli("validate", str(SANDBOX))
    assert code == 0, err
    assert out.startswith(f"OK: {SANDBOX} — ")
    for name, line in SANDBOX_VARIABLES.items():
        assert (
            f"warning: {SANDBOX}:{line}: " in err
            and f"environment variable {name} is not set" in err
        )
    code, _, err = cli("validate", "--require-env", str(SANDBOX))
    assert code == 2
    for name, line in SANDBOX_VARIABLES.items():
        assert f"{SANDBOX}:{line}: " in err
        assert f"environment variable {name} is not set; export {name}=..." in err


def test_once_refuses_naming_the_variable_before_anything_connects() -> None:
    code, out, err = cli("once", "-c", str(UNSET_SECRET), "acme-email-billing")
    assert code == 2
    assert out == ""
    assert (
        f"{UNSET_SECRET}:15: channels.email.mailboxes.probe.imap.password: environment "
        "variable CXPROBE_CORPUS_UNSET_PASSWORD is not set; export "
        "CXPROBE_CORPUS_UNSET_PASSWORD=... before starting cxprobe"
    ) in err
    code, _, err = cli("run", "-c", str(UNSET_SECRET))
    assert code == 2 and "CXPROBE_CORPUS_UNSET_PASSWORD is not set" in err


def test_store_commands_need_only_the_store_url_s_variables(tmp_path: Path) -> None:
    data = config_data(tmp_path)  # its generic platform's two secrets are unset here
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for command in (("runs",), ("maintenance", "list"), ("optout", "list"), ("db", "current")):
        code, _, err = cli(*command, "-c", str(path))
        assert code == 0, (command, err)
    code, _, err = cli("once", "-c", str(path), CHECK)
    assert code == 2 and "CXPROBE_TEST_PEER_TOKEN is not set" in err

    data["monitor"]["store_url"] = "postgresql+asyncpg://cxprobe:${CXPROBE_TEST_DB}@db/cxprobe"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = cli("runs", "-c", str(path))
    assert code == 2
    assert "monitor.store_url: environment variable CXPROBE_TEST_DB is not set" in err
    assert "CXPROBE_TEST_PEER_TOKEN" not in err  # not needed by runs: not reported


def test_a_deferred_secret_is_a_placeholder_that_never_reaches_a_channel(tmp_path: Path) -> None:
    config = load_config(UNSET_SECRET, {}, environment="deferred")
    (unset,) = config.unset
    assert unset.name == "CXPROBE_CORPUS_UNSET_PASSWORD"
    assert unset.where == f"{UNSET_SECRET}:15: channels.email.mailboxes.probe.imap.password"
    mailbox = config.channels.email.mailboxes["probe"]  # type: ignore[attr-defined]
    assert mailbox.imap.password.get_secret_value() == "<unset ${CXPROBE_CORPUS_UNSET_PASSWORD}>"
    with pytest.raises(ConfigError) as refused:
        config.require_environment()
    assert refused.value.problems == [unset.problem()]
    config.require_environment(("monitor",))  # the store's section has none


async def test_open_monitor_refuses_a_config_with_deferred_secrets() -> None:
    config = load_config(UNSET_SECRET, {}, environment="deferred")
    with pytest.raises(ConfigError, match="CXPROBE_CORPUS_UNSET_PASSWORD is not set"):
        async with open_monitor(config, logging.getLogger("cxprobe.test.secrets")):
            pytest.fail("the monitor opened with a placeholder for a secret")


def test_a_typed_value_from_an_unset_variable_says_so(tmp_path: Path) -> None:
    source = UNSET_SECRET.read_text().replace("port: 993", "port: ${CXPROBE_TEST_IMAP_PORT}")
    path = tmp_path / "port.yaml"
    path.write_text(source)
    code, _, err = cli("validate", str(path))
    assert code == 2
    assert (
        f"{path}:12: channels.email.mailboxes.probe.imap.port: environment variable "
        "CXPROBE_TEST_IMAP_PORT is not set, and this value cannot be checked without it"
    ) in err


def test_the_strict_loader_is_unchanged() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(UNSET_SECRET, {})
    assert raised.value.problems == [
        f"{UNSET_SECRET}:15: channels.email.mailboxes.probe.imap.password: environment "
        "variable CXPROBE_CORPUS_UNSET_PASSWORD is not set; export "
        "CXPROBE_CORPUS_UNSET_PASSWORD=... before starting cxprobe"
    ]
