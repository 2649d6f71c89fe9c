"""The generated rules pass the real ``promtool check rules`` and the rule unit tests in
``prometheus/tests`` pass ``promtool test rules``. promtool missing is a failure, never a skip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from cxprobe.cli import rule_checks
from cxprobe.rules.generate import RuleOptions, generate_rules
from cxprobe.settings import load_config
from tests.support import monitor_config, require_binary

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules" / "cxprobe.yml"
RULE_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*.yml"))
TRICKY_TARGET = 'acme "{{ x }}"\\'


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_the_committed_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_there_are_rule_tests_for_every_alert() -> None:
    alerts = set(RULES.read_text().split("alert: ")[1:])
    names = {alert.split()[0] for alert in alerts}
    tested = "".join(path.read_text() for path in RULE_TESTS)
    untested = {name for name in names if f"alertname: {name}" not in tested}
    assert not untested, f"no promtool test in prometheus/tests for {untested}"


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda path: path.stem)
def test_promtool_rule_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("scale", [1.0, 1 / 60], ids=["real-windows", "test-windows"])
def test_rules_for_other_schedules_pass_promtool_check(tmp_path: Path, scale: float) -> None:
    """Hourly and cron checks (windows left out, long staleness limits), scaled windows, and
    names with quotes, backslashes and template braces."""
    checks = [
        {
            "id": f"acme-email-{name}",
            "target": "acme",
            "channel": "email",
            "scenario": scenario,
            "schedule": schedule,
        }
        for name, scenario, schedule in [
            ("hourly", "billing-question", {"every": "1h", "jitter": "90s"}),
            ("office", "technical-fault", {"cron": "*/15 8-18 * * 1-5", "timezone": "UTC"}),
        ]
    ]
    path = monitor_config(tmp_path, smtp_port=2525, imap_port=10143, checks=checks)
    # Config text that Prometheus would read as a template, or PromQL as the end of a string.
    document = yaml.safe_load(path.read_text())
    target = document["targets"].pop("acme") | {"name": 'Café {{ .Labels }} "A\\B"'}
    document["targets"][TRICKY_TARGET] = target
    for check in document["checks"]:
        check["target"] = TRICKY_TARGET
    path.write_text(yaml.safe_dump(document))
    config = load_config(path, environ={"CXPROBE_TEST_IMAP_PASSWORD": "x"})
    generated = generate_rules(
        rule_checks(config), RuleOptions(window_scale=scale), source=str(path), command="test"
    )
    rules = tmp_path / "rules.yml"
    rules.write_text(generated.text)
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
