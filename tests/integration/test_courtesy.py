"""Courtesy on a real channel: SMS runs against the Twilio sandbox (every request validated
against Twilio's OpenAPI description), a real monitor and its SQLite store.

A STOP reply or Twilio's 21610 pauses the number (the next slot is ``skipped: opt_out`` and
sends nothing) until the opt-out is cleared; a maintenance window added to the store while the
monitor runs pauses the next slot, one in ``exclude_from_slo`` mode lets it run and keeps it
out of the SLO series; declared contacts disclose themselves and mystery ones do not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cxprobe.app import Monitor
from sandbox.twilio.server import TwilioSandbox
from scenarios.maintenance import MaintenanceMode, MaintenanceWindow
from scenarios.model import ContactMode, Outcome, RunResult
from tests.integration.test_messaging_runs import hook, monitoring, twilio_lines
from tests.support import brand_number, default_profile_data, messaging_config, twilio_messaging

DISCLOSURE = "This is an automated service-quality test contact"


def sms_line(**overrides: Any) -> dict[str, Any]:
    line: dict[str, Any] = default_profile_data()["messaging"]["sms"]
    return {**line, **overrides}


@asynccontextmanager
async def sms_monitor(
    tmp_path: Path, *, target: dict[str, Any] | None = None, **messaging: Any
) -> AsyncIterator[tuple[TwilioSandbox, Monitor, Path]]:
    async with twilio_lines(tmp_path, **messaging) as (sandbox, loaded):
        path = messaging_config(
            tmp_path,
            "sms",
            {"to": brand_number(loaded, "sms")},
            {"sms": twilio_messaging(sandbox.base_url, loaded)},
        )
        if target or messaging.get("maintenance"):
            data = yaml.safe_load(path.read_text())
            data["targets"]["acme"].update(target or {})
            path.write_text(yaml.safe_dump(data, sort_keys=False))
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "sms")
            yield sandbox, monitor, path


async def run_slot(monitor: Monitor, minutes: int) -> RunResult:
    slot = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)
    result = await monitor.runner.execute(monitor.config.checks[0], slot)
    assert result is not None
    return result


def sent_to_brand(sandbox: TwilioSandbox) -> list[dict[str, Any]]:
    return [m for m in sandbox.messaging.messages() if m["direction"] == "outbound-api"]


def sample(monitor: Monitor, name: str, **labels: str) -> float | None:
    return monitor.registry.get_sample_value(name, {"target": "acme", "channel": "sms", **labels})


async def test_a_stop_reply_pauses_the_number_until_the_opt_out_is_cleared(
    tmp_path: Path,
) -> None:
    stop_bot = {"enabled": True, "text": "STOP", "after_hours": True, "after_hours_text": "STOP"}
    async with sms_monitor(tmp_path, sms=sms_line(agents=False), bot=stop_bot) as (
        sandbox,
        monitor,
        _,
    ):
        first = await run_slot(monitor, 0)
        assert first.outcome is Outcome.FAILED
        assert "OptedOut" in first.reason and "'STOP'" in first.reason
        opt_out = await monitor.store.active_opt_out("acme", "sms")
        assert opt_out is not None and opt_out.run_id == first.run_id
        assert sample(monitor, "cxprobe_opted_out") == 1

        second = await run_slot(monitor, 1)
        assert second.outcome is Outcome.SKIPPED
        assert second.reason.startswith("skipped: opt_out: ")
        assert len(sent_to_brand(sandbox)) == 1  # nothing more was sent to the number
        assert sample(monitor, "cxprobe_runs_skipped_total", reason="opt_out") == 1
        stored = await monitor.store.load_run(second.run_id)
        assert stored is not None and stored.outcome is Outcome.SKIPPED
        assert stored.finished_at is not None and stored.sent_at is None

        assert await monitor.store.clear_opt_outs("acme", "sms", by="test") == 1
        await run_slot(monitor, 2)
        assert len(sent_to_brand(sandbox)) == 2


async def test_twilio_21610_at_send_pauses_the_number(tmp_path: Path) -> None:
    async with sms_monitor(tmp_path, sms=sms_line(opted_out=True)) as (sandbox, monitor, _):
        first = await run_slot(monitor, 0)
        assert first.outcome is Outcome.FAILED
        assert "21610" in first.reason
        opt_out = await monitor.store.active_opt_out("acme", "sms")
        assert opt_out is not None and "opted out" in opt_out.reason
        second = await run_slot(monitor, 1)
        assert second.outcome is Outcome.SKIPPED and "opt_out" in second.reason
        assert sent_to_brand(sandbox) == []  # the refused create left no message


async def test_a_window_added_while_running_pauses_sends_and_ending_it_resumes_them(
    tmp_path: Path,
) -> None:
    async with sms_monitor(tmp_path) as (sandbox, monitor, _):
        now = datetime.now(UTC)
        window_id = await monitor.store.add_maintenance(
            MaintenanceWindow(
                target="acme",
                reason="carrier migration",
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=1),
            ),
            created_by="test",
        )
        paused = await run_slot(monitor, 0)
        assert paused.outcome is Outcome.SKIPPED
        assert paused.reason.startswith("skipped: maintenance: carrier migration")
        assert f"store #{window_id}" in paused.reason
        assert sent_to_brand(sandbox) == []
        assert sample(monitor, "cxprobe_maintenance_active") == 1
        assert sample(monitor, "cxprobe_runs_skipped_total", reason="maintenance") == 1
        assert sample(monitor, "cxprobe_last_run_success", scenario="billing-question") is None

        assert await monitor.store.end_maintenance(window_id)
        resumed = await run_slot(monitor, 1)
        assert resumed.outcome is Outcome.MET
        assert len(sent_to_brand(sandbox)) == 1
        assert sample(monitor, "cxprobe_maintenance_active") == 0


async def test_an_exclude_from_slo_window_runs_but_counts_for_no_slo(tmp_path: Path) -> None:
    async with sms_monitor(tmp_path) as (sandbox, monitor, _):
        now = datetime.now(UTC)
        await monitor.store.add_maintenance(
            MaintenanceWindow(
                channel="sms",
                reason="desk software upgrade",
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=1),
                mode=MaintenanceMode.EXCLUDE_FROM_SLO,
            ),
            created_by="test",
        )
        result = await run_slot(monitor, 0)
        assert result.outcome is Outcome.MET and len(sent_to_brand(sandbox)) == 1
        assert result.slo_excluded is not None and "desk software upgrade" in result.slo_excluded
        stored = await monitor.store.load_run(result.run_id)
        assert stored is not None and stored.slo_excluded == result.slo_excluded
        for verdict in ("good", "bad"):
            events = sample(
                monitor, "cxprobe_slo_events_total", slo="first_response", result=verdict
            )
            assert events == 0


async def test_declared_contacts_disclose_themselves_and_mystery_ones_do_not(
    tmp_path: Path,
) -> None:
    (tmp_path / "declared").mkdir()
    async with sms_monitor(tmp_path / "declared") as (sandbox, monitor, _):
        declared = await run_slot(monitor, 0)
        [body] = [m["body"] for m in sent_to_brand(sandbox)]
        assert DISCLOSURE in body and declared.token in body
        assert declared.contact_mode is ContactMode.DECLARED
    (tmp_path / "mystery").mkdir()
    mystery = {"contact_mode": "mystery", "mystery": {"reason": "own-service audit"}}
    async with sms_monitor(tmp_path / "mystery", target=mystery) as (sandbox, monitor, _):
        result = await run_slot(monitor, 0)
        [body] = [m["body"] for m in sent_to_brand(sandbox)]
        assert DISCLOSURE not in body and result.token in body  # the token still routes replies
        stored = await monitor.store.load_run(result.run_id)
        assert stored is not None and stored.contact_mode is ContactMode.MYSTERY
