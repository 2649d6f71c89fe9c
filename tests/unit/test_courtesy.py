"""Courtesy without a channel: maintenance window arithmetic, contact-mode configuration, the
email's test marking, SLO events of skipped and excluded runs, the skip metrics, and the
``maintenance`` / ``optout`` commands on a real SQLite store."""

from __future__ import annotations

import asyncio
import email
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from typer.testing import CliRunner

from cxprobe.cli import app
from cxprobe.errors import ConfigError
from cxprobe.settings import load_config
from cxprobe.store.courtesy import OptOut
from cxprobe.store.database import EvidenceStore
from exporters.metrics import MonitorMetrics
from probes import CHANNEL_TYPES
from probes.base import Contact
from probes.email.channel import build_message
from probes.email.settings import EmailAddress, Mailbox
from scenarios.maintenance import DeclaredWindow, MaintenanceMode, MaintenanceWindow, open_windows
from scenarios.model import ContactMode, Outcome, Period, SkipReason, Thresholds
from scenarios.verdicts import slo_events
from tests.evidence_support import SECRETS, new_result, write_config

ROOT = Path(__file__).resolve().parents[2]
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, midnight UTC


def window(**fields: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"target": "acme", "reason": "upgrade", **fields})


# -- windows ----------------------------------------------------------------------------------


def test_a_one_off_window_is_open_from_its_start_to_its_end() -> None:
    one_off = window(starts_at="2026-03-02T22:00:00Z", ends_at="2026-03-03T01:00:00Z")
    assert not one_off.open_at(MONDAY + timedelta(hours=21, minutes=59))
    assert one_off.open_at(MONDAY + timedelta(hours=22))
    assert one_off.open_at(MONDAY + timedelta(hours=24, minutes=59))
    assert not one_off.open_at(MONDAY + timedelta(hours=25))


def test_naive_times_and_crons_are_read_in_the_windows_time_zone() -> None:
    # 02:00 in New York (EST, UTC-5) is 07:00 UTC; the cron fires at 02:00 local every day.
    one_off = window(
        starts_at="2026-03-02T02:00:00", ends_at="2026-03-02T03:00:00", timezone="America/New_York"
    )
    assert one_off.open_at(MONDAY + timedelta(hours=7, minutes=30))
    assert not one_off.open_at(MONDAY + timedelta(hours=2, minutes=30))
    nightly = window(cron="0 2 * * *", duration="1h", timezone="America/New_York")
    assert nightly.open_at(MONDAY + timedelta(hours=7, minutes=30))
    assert not nightly.open_at(MONDAY + timedelta(hours=8))


def test_a_recurring_window_lists_every_opening_in_a_range() -> None:
    sundays = window(cron="0 22 * * sun", duration="3h")  # crontab: 0 is Sunday
    openings = list(sundays.openings(MONDAY - timedelta(hours=1), MONDAY + timedelta(days=14)))
    # The one that opened Sunday 22:00 before the range still overlaps it.
    assert openings == [
        (MONDAY - timedelta(hours=2), MONDAY + timedelta(hours=1)),
        (MONDAY + timedelta(days=6, hours=22), MONDAY + timedelta(days=7, hours=1)),
        (MONDAY + timedelta(days=13, hours=22), MONDAY + timedelta(days=14, hours=1)),
    ]


def test_an_ended_window_closes_for_good() -> None:
    nightly = window(cron="0 1 * * *", duration="2h")
    ended = DeclaredWindow(nightly, "store #1", ended_at=MONDAY + timedelta(hours=2))
    assert ended.open_at(MONDAY + timedelta(hours=1, minutes=30))
    assert not ended.open_at(MONDAY + timedelta(hours=2, minutes=30))
    assert not ended.open_at(MONDAY + timedelta(days=1, hours=1, minutes=30))


def test_a_pausing_window_wins_over_an_exclusion_and_scope_is_respected() -> None:
    now = MONDAY + timedelta(hours=1)
    spans = {"starts_at": MONDAY, "ends_at": MONDAY + timedelta(hours=2)}
    exclude = DeclaredWindow(window(**spans, mode="exclude_from_slo"), "config")
    pause = DeclaredWindow(window(**spans, target=None, channel="sms"), "store #2")
    found = open_windows([exclude, pause], "acme", "sms", now)
    assert [w.window.mode for w in found] == [
        MaintenanceMode.PAUSE,
        MaintenanceMode.EXCLUDE_FROM_SLO,
    ]
    assert open_windows([exclude, pause], "acme", "email", now) == [exclude]
    assert open_windows([exclude, pause], "globex", "email", now) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"starts_at": MONDAY}, "never ends: give ends_at"),
        ({"cron": "0 2 * * *"}, "never ends: give duration"),
        ({"cron": "0 2 * * *", "duration": "8d"}, "it would never end"),
        ({"starts_at": MONDAY, "ends_at": MONDAY}, "never opens"),
        ({"starts_at": MONDAY, "ends_at": MONDAY, "cron": "0 2 * * *"}, "either one-off"),
        ({"target": None, "cron": "0 2 * * *", "duration": 60}, "a target, a channel, or both"),
        ({"cron": "0 2 * *", "duration": 60}, "invalid cron"),
    ],
)
def test_windows_that_cannot_be_right_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        window(**fields)


# -- configuration ----------------------------------------------------------------------------


def sandbox_config(tmp_path: Path, **acme: Any) -> Path:
    data = yaml.safe_load((ROOT / "config" / "sandbox.yaml").read_text())
    data["targets"]["acme"].update(acme)
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_only_public_channels_may_probe_a_competitor(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(sandbox_config(tmp_path, competitor=True), environ=SECRETS)
    private = [kind for kind, channel_type in CHANNEL_TYPES.items() if not channel_type.public]
    assert private == ["generic"]
    [problem] = raised.value.problems
    assert ".channel: target 'acme' is a competitor" in problem
    assert "generic is not a public channel" in problem


def test_mystery_targets_get_a_lower_default_rate(tmp_path: Path) -> None:
    mystery = {"contact_mode": "mystery", "mystery": {"reason": "benchmark"}, "rate_limit": {}}
    config = load_config(sandbox_config(tmp_path, **mystery), environ=SECRETS)
    assert config.targets["acme"].contact_mode is ContactMode.MYSTERY
    assert config.targets["acme"].contacts_per_hour() == 1
    declared = load_config(sandbox_config(tmp_path, rate_limit={}), environ=SECRETS)
    assert declared.targets["acme"].contacts_per_hour() == 6


def test_a_reason_without_mystery_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mystery is set but contact_mode is declared"):
        load_config(sandbox_config(tmp_path, mystery={"reason": "x"}), environ=SECRETS)


# -- what contacts and runs carry ---------------------------------------------------------------


@pytest.mark.parametrize("disclosed", [True, False])
def test_email_marks_declared_contacts_and_mystery_ones_carry_no_cxprobe_header(
    disclosed: bool,
) -> None:
    mailbox = Mailbox.model_validate(
        {
            "address": "probe@cxprobe.test",
            "smtp": {"host": "127.0.0.1", "port": 25, "tls": "none"},
            "imap": {
                "host": "127.0.0.1",
                "port": 143,
                "tls": "none",
                "username": "probe",
                "password": "x",
            },
        }
    )
    address = EmailAddress(to="support@acme.test", mailbox="probe")
    token = "CXP-ABCDEFGHJK"
    contact = Contact(token, "Refund", f"Where? Ref {token}", "Alex", disclosed=disclosed)
    raw = build_message(mailbox, address, contact, "<m@cxprobe.test>").as_bytes()
    message = email.message_from_bytes(raw, policy=default_policy)
    cxprobe_headers = [name for name in message if name.lower().startswith("x-cxprobe")]
    if disclosed:
        assert message["X-Cxprobe-Test"] == f"yes; ref={token}"
        assert message["X-Cxprobe-Token"] == token
    else:
        assert cxprobe_headers == []
    assert token in str(message["Subject"])  # replies are still routed by the token


def finished(outcome: Outcome, **fields: Any) -> Any:
    result = new_result(
        load_config(ROOT / "config" / "sandbox.yaml", environ=SECRETS), "acme-email-billing", MONDAY
    )
    result.period = Period.BUSINESS
    result.thresholds = Thresholds(
        first_response=60, human_response=600, after_hours_response=None, deadline=900
    )
    result.outcome = outcome
    result.first_response_seconds = 5.0
    result.first_human_seconds = 50.0
    for name, value in fields.items():
        setattr(result, name, value)
    return result


def test_skipped_and_excluded_runs_produce_no_slo_events() -> None:
    assert slo_events(finished(Outcome.MET)) != []
    assert slo_events(finished(Outcome.SKIPPED)) == []
    assert slo_events(finished(Outcome.MET, slo_excluded="maintenance (config)")) == []


def test_a_skipped_run_is_counted_apart_and_leaves_the_last_run_success_alone() -> None:
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry, "test")
    labels = {"target": "acme", "channel": "email"}
    check = {**labels, "scenario": "billing-question", "location": "local"}
    metrics.record_run(finished(Outcome.MET), [])
    metrics.record_run(finished(Outcome.SKIPPED), [])
    metrics.record_skipped("acme", "email", SkipReason.MAINTENANCE)
    assert registry.get_sample_value("cxprobe_last_run_success", check) == 1
    skipped = {**check, "period": "business", "outcome": "skipped"}
    assert registry.get_sample_value("cxprobe_runs_total", skipped) == 1
    assert (
        registry.get_sample_value("cxprobe_runs_skipped_total", {**labels, "reason": "maintenance"})
        == 1
    )


# -- the commands -------------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400", **SECRETS})


def test_maintenance_add_list_end(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, tmp_path / "cxprobe.db"))
    added = invoke(
        "maintenance", "add", "-c", config, "--target", "acme", "--channel", "sms",
        "--reason", "carrier migration", "--end", "2099-01-01T00:00:00", "--by", "ops",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "maintenance window 1 added: target acme channel sms" in added.output
    listed = invoke("maintenance", "list", "-c", config)
    assert "store #1: [OPEN] target acme channel sms" in listed.output
    assert invoke("maintenance", "end", "-c", config, "1").exit_code == 0
    assert "no maintenance windows" in invoke("maintenance", "list", "-c", config).output
    assert "ended" in invoke("maintenance", "list", "-c", config, "--all").output
    assert invoke("maintenance", "end", "-c", config, "1").exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nobody", "--end", "2099-01-01"], "--target 'nobody': not a target"),
        (["--target", "acme", "--cron", "0 2 * * *"], "never ends: give duration"),
        (["--channel", "fax", "--end", "2099-01-01"], "--channel 'fax': not a channel kind"),
    ],
)
def test_maintenance_add_refuses_bad_windows(tmp_path: Path, args: list[str], message: str) -> None:
    config = str(write_config(tmp_path, tmp_path / "cxprobe.db"))
    result = invoke("maintenance", "add", "-c", config, "--reason", "x", *args)
    assert result.exit_code == 2 and message in " ".join(result.output.split())


def test_optout_list_and_clear(tmp_path: Path) -> None:
    db = tmp_path / "cxprobe.db"
    config = str(write_config(tmp_path, db))

    async def opt_out() -> None:
        async with EvidenceStore(f"sqlite+aiosqlite:///{db}") as store:
            await store.record_opt_out(
                OptOut(0, "acme", "sms", "+442071234568", "replied STOP", "run-1", MONDAY)
            )

    asyncio.run(opt_out())
    listed = invoke("optout", "list", "-c", config)
    assert "acme sms +442071234568: since 2026-03-02 00:00 UTC (run run-1): replied STOP" in (
        listed.output
    )
    cleared = invoke("optout", "clear", "-c", config, "--target", "acme", "--by", "ops")
    assert "1 opt-out(s) cleared for acme" in cleared.output
    assert "no opt-outs" in invoke("optout", "list", "-c", config).output
    assert "cleared 20" in invoke("optout", "list", "-c", config, "--all").output
    assert "by ops" in invoke("optout", "list", "-c", config, "--all").output
