"""The demo never runs into itself: on a channel that holds one conversation per probe
number and brand (SMS, WhatsApp, the generic platform), a run must have ended, breached or not,
before its check's next run can start. Otherwise one slow or unanswered run makes the next one
wait for the pair (`pair_wait`) and start late, every slot later than the one before. (Only the
catch-up at start may still overlap its next slot: that one waits, see
tests/integration/test_messaging_runs.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from cxprobe.settings import Check, load_config
from tests.evidence_support import SECRETS

ROOT = Path(__file__).resolve().parents[2]
#: Channels whose probe holds its (probe number, brand) pair for the whole run.
ONE_CONVERSATION_PER_PAIR = ("sms", "whatsapp", "generic")
#: From a run's start to its contact being accepted (API request, retries), at most.
SEND_SECONDS = 5.0

CONFIG = load_config(ROOT / "config" / "sandbox.yaml", environ=SECRETS)
PAIRED = [check for check in CONFIG.checks if check.channel in ONE_CONVERSATION_PER_PAIR]


def test_the_demo_has_paired_checks() -> None:
    assert {check.channel for check in PAIRED} == set(ONE_CONVERSATION_PER_PAIR)


@pytest.mark.parametrize("check", PAIRED, ids=lambda check: check.id)
def test_a_paired_run_ends_before_its_next_slot_can_start(check: Check) -> None:
    schedule = check.schedule
    assert schedule.every is not None, "the demo's checks run at intervals"
    # A run starts up to `jitter` after its slot; the next one no earlier than the next slot.
    latest_end = schedule.jitter + SEND_SECONDS + CONFIG.thresholds(check).deadline
    assert latest_end <= schedule.every, (
        f"{check.id}: a run may last until {latest_end:g} s after its slot, but the next one "
        f"starts {schedule.every:g} s after it; shorten the deadline or the jitter, or run "
        "less often"
    )
