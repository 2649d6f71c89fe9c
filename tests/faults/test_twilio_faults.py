"""Twilio answering 429 and 5xx, on the sandbox's Twilio API (every request validated against
Twilio's OpenAPI description) reached through the real ``twilio`` client, for SMS.

The sandbox's counted request faults (sandbox/faults.py) fail the next N requests whatever
they are: the run's first request is the best-effort listing of the brand's earlier replies
(a list page, which the SDK fails with its base ``TwilioException``), then the send. Within
the channel's ``retry_for`` the client retries (429 after its Retry-After, 5xx with back-off)
and the run is met; past it the run is a recorded ``error`` naming the HTTP status, never an
internal error; a failed listing alone does not stop the send (issue 17)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.twilio.server import TwilioSandbox
from scenarios.model import Outcome
from tests.contract.harness import Setup
from tests.contract.harnesses import HARNESSES
from tests.faults.harness import (
    edit_config,
    every,
    first_run_finished,
    later_run_finished,
    log_records,
    scheduled,
    settle,
)

SMS = HARNESSES["sms"]
#: Seconds between slots: a faulted run (retries, then the send) ends well within one.
INTERVAL = 4
#: The messaging channel's warning when the listing before a send fails.
LISTING_FAILED = "could not list earlier replies"


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[TwilioSandbox], None]
    retry_for: float
    outcome: Outcome
    #: What the run's reason says (None: a met run has none).
    reason: str | None
    #: Whether the listing before the send failed (logged, and the run went on).
    listing_fails: bool


FAULTS = [
    # Within the retry: two answers each, then the API answers again.
    Fault(
        "429-retried", lambda api: api.rate_limit(2, retry_after=1), 6.0, Outcome.MET, None, False
    ),
    Fault("503-retried", lambda api: api.server_error(2, 503), 6.0, Outcome.MET, None, False),
    # Past the retry: the API keeps failing for longer than retry_for.
    Fault(
        "429-past-retry",
        lambda api: api.rate_limit(1000, retry_after=1),
        1.5,
        Outcome.ERROR,
        "ProviderError: send the message: Twilio answered HTTP 429",
        True,
    ),
    Fault(
        "503-past-retry",
        lambda api: api.server_error(1000, 503),
        1.5,
        Outcome.ERROR,
        "ProviderError: send the message: Twilio answered HTTP 503",
        True,
    ),
    Fault(
        "500-send",  # a create is never retried after a 500: it may have been processed
        lambda api: api.server_error(1000, 500),
        1.5,
        Outcome.ERROR,
        "ProviderError: send the message: Twilio answered HTTP 500",
        True,
    ),
    # The list page alone fails: its Retry-After is beyond retry_for, so it is not retried.
    Fault(
        "list-page-429",
        lambda api: api.rate_limit(1, retry_after=30),
        1.5,
        Outcome.MET,
        None,
        True,
    ),
]


def _retrying_for(seconds: float) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        every(INTERVAL)(data)
        data["channels"]["sms"]["twilio"]["retry_for"] = seconds

    return change


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
async def test_twilio_fault_is_retried_or_recorded_with_its_status(
    tmp_path: Path, fault: Fault
) -> None:
    async with SMS.sandbox(tmp_path, Setup()) as sandbox:
        api: TwilioSandbox = sandbox.peer.sandbox
        edit_config(sandbox.config, _retrying_for(fault.retry_for))
        fault.inject(api)
        with log_records("cxprobe.test.contract", LISTING_FAILED) as listing:
            async with scheduled(sandbox) as monitor:
                faulted = await first_run_finished(monitor)
                api.rate_limit(0)
                api.server_error(0)
                mended_at = datetime.now(UTC)
                later = await later_run_finished(monitor, after=mended_at)
                sms_health = monitor.runner.health()["channels"]["sms"]
                retries = sms_health["api_retries"]
                figures = await settle(monitor, f"twilio-{fault.name}", api_retries=retries)
    assert faulted.outcome is fault.outcome, faulted.reason
    if fault.reason is None:
        assert not faulted.reason
    else:
        assert (faulted.reason or "").startswith(fault.reason), faulted.reason
        assert "internal error" not in (faulted.reason or "")
    if fault.outcome is Outcome.MET:
        assert faulted.sent_at is not None
    if fault.listing_fails:
        (warning, *_) = listing.records
        error = str(getattr(warning, "error", ""))
        assert "list replies: Twilio answered HTTP" in error, error
        assert sms_health["best_effort_failures"] >= 1  # counted where health is read
    if fault.name.endswith("-retried"):
        assert retries >= 2  # both faulted answers were retried
        assert listing.records == []
    assert later.outcome is Outcome.MET, later.reason
    assert figures.lost == 0 and figures.stalled == 0 and figures.recorded == figures.runs
