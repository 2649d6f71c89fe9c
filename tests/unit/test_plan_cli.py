"""``cxprobe plan`` and the configuration's side of coverage plans: a coverage check is
planned in its target's calendar and rate limit, seeded by its id, and the plan printed is the
one the scheduler fires."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from cxprobe.cli import app
from cxprobe.settings import load_config
from scenarios.coverage import HOURS_PER_WEEK, cell_of

ROOT = Path(__file__).resolve().parents[2]
EVERY_CHECK = """
  - id: acme-email-cancel
    target: acme
    channel: email
    scenario: technical-fault
    expected_queue: billing
    schedule: {every: 6h}
"""


def write_config(tmp_path: Path, samples: int = 24, extra: str = "") -> Path:
    source = (ROOT / "tests" / "config" / "invalid-every-and-cron.yaml").read_text()
    source = source.replace(
        'schedule: {every: 1h, cron: "0 * * * *"}',
        f"schedule: {{coverage: {{samples_per_week: {samples}}}}}",
    ).replace("    queues:\n", "    rate_limit: {max_contacts_per_hour: 4}\n    queues:\n")
    path = tmp_path / "config.yaml"
    path.write_text(source + EVERY_CHECK + extra)
    return path


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.output


def test_a_coverage_check_is_planned_in_its_targets_calendar_and_rate_limit(
    tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path))
    check = config.checks[0]
    plan = check.schedule.plan
    assert plan is not None
    assert plan.seed == check.id
    assert plan.hours == config.targets["acme"].business_hours
    assert plan.contacts_per_hour == 4 and plan.contacts_per_slot == 1
    assert config.checks[1].schedule.plan is None  # every: no plan
    # Loading the file again (another monitor, a reload) plans the same: an unchanged check.
    assert load_config(write_config(tmp_path)).checks[0] == check


def test_plan_prints_the_weeks_and_when_every_hour_is_covered(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    output = invoke("plan", "-c", str(path), "--start", "2026-12-21", "--weeks", "2")
    assert "acme-email-billing · acme · email · coverage: 24 samples a week" in output
    assert "every hour sampled within 7 week(s) from the week of 2026-12-21" in output
    assert "week of 2026-12-28: 24 contact(s)" in output
    assert "acme-email-cancel · acme · email · every 6h" in output
    assert "28 of 168 hours of the week sampled these 2 weeks" in output


def test_plan_as_json_is_what_the_scheduler_fires(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    found = json.loads(
        invoke("plan", "-c", str(path), "--start", "2026-12-21", "--weeks", "7", "--json")
    )
    coverage, every = found["checks"]
    assert coverage["weeks_to_cover"] == coverage["cycle_weeks"] == 7
    assert coverage["cells_sampled"] == HOURS_PER_WEEK
    assert every["weeks_to_cover"] is None and every["cells_sampled"] == 4 * 7
    schedule = load_config(path).checks[0].schedule
    start = datetime(2026, 12, 21, tzinfo=UTC)
    fired = list(schedule.slots(start, start + timedelta(weeks=7)))
    printed = [
        datetime.fromisoformat(contact["at"])
        for week in coverage["weeks"]
        for contact in week["contacts"]
    ]
    assert printed == fired and len(printed) == 7 * 24
    zone = ZoneInfo("Europe/London")
    cells = {str(cell_of(at, zone)) for at in printed}
    assert len(cells) == HOURS_PER_WEEK


def test_a_plan_that_cannot_fit_is_named_with_file_key_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, samples=700)
    result = CliRunner().invoke(app, ["plan", "-c", str(path)], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert (
        f"{path}:33: checks[0].schedule.coverage.samples_per_week: 700 samples a week do not "
        "fit the rate limit of 4 contact(s) an hour"
    ) in output
