"""Mail faults on the real sandbox desk (Dovecot behind an aiosmtpd SMTP front): the IMAP
connection dropped by the server mid-run, and the SMTP server answering 4xx or 5xx at send.

Each ends as a recorded outcome in the store, and the scheduler goes on starting the check's
later slots."""

from __future__ import annotations

import contextlib
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from probes.base import Responder
from sandbox.mail.desk import MailDesk
from sandbox.mail.dovecot import MailUser
from scenarios.model import Outcome
from tests.contract.harness import Pace, Setup
from tests.contract.harnesses import HARNESSES
from tests.faults.harness import (
    descendants,
    edit_config,
    every,
    finished,
    first_run_finished,
    later_run_finished,
    log_records,
    run_in_flight,
    scheduled,
    settle,
)
from tests.support import PROBE_ADDRESS, PROBE_PASSWORD

EMAIL = HARNESSES["email"]
#: Seconds between the check's slots: a run is met in about two.
INTERVAL = 3
#: What the watcher logs each time its IMAP session ends and it reconnects.
SESSION_LOST = "imap watcher session failed; reconnecting"


def _watcher_reconnects_fast(data: dict[str, Any]) -> None:
    every(INTERVAL)(data)
    imap = data["channels"]["email"]["mailboxes"]["probe"]["imap"]
    imap["reconnect_max_backoff"] = 1


def _kill_imap_sessions(desk: MailDesk) -> list[int]:
    """SIGKILL the desk's Dovecot processes serving IMAP sessions (the watcher's one), by
    PID: the server drops the client's connection without a goodbye."""
    assert desk.dovecot.pid is not None
    sessions = descendants(psutil.Process(desk.dovecot.pid), lambda name, _: name == "imap")
    for process in sessions:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    return [process.pid for process in sessions]


async def test_imap_connection_dropped_mid_run_the_reply_is_still_matched(
    tmp_path: Path,
) -> None:
    # The desk's human answers 3 s after the contact. Right after the contact the server
    # drops the watcher's connection and, until that answer is in the mailbox, refuses its
    # login (the mailbox's password changed): the answer arrives while nobody watches.
    async with EMAIL.sandbox(tmp_path, Setup(pace=Pace.AFTER_RESTART)) as sandbox:
        desk: MailDesk = sandbox.peer
        edit_config(sandbox.config, _watcher_reconnects_fast)
        with log_records("cxprobe.test.contract", SESSION_LOST) as lost_sessions:
            async with scheduled(sandbox) as monitor:
                faulted = await run_in_flight(monitor)
                desk.dovecot.add_user(MailUser(PROBE_ADDRESS, "locked-out"))
                killed = _kill_imap_sessions(desk)
                await EMAIL.human_answered(desk, faulted)
                desk.dovecot.add_user(MailUser(PROBE_ADDRESS, PROBE_PASSWORD))
                mended_at = datetime.now(UTC)
                faulted = await finished(monitor, faulted)
                later = await later_run_finished(monitor, after=mended_at)
                figures = await settle(
                    monitor,
                    "imap-drop",
                    killed_sessions=len(killed),
                    reconnects=len(lost_sessions.records),
                )
    assert killed, "no Dovecot imap process was found to kill"
    assert lost_sessions.records, "the watcher never noticed its connection was gone"
    assert faulted.outcome is Outcome.MET, faulted.reason
    (human,) = [reply for reply in faulted.replies if reply.responder is Responder.HUMAN]
    assert human.observed_at >= mended_at  # read after the reconnect, not before the drop
    assert later.outcome is Outcome.MET, later.reason
    assert figures.lost == 0 and figures.stalled == 0
    assert figures.recorded == figures.runs


@pytest.mark.parametrize(
    ("switch", "outcome", "code"),
    [
        pytest.param("defer", Outcome.ERROR, "451 4.3.2", id="4xx"),
        pytest.param("reject", Outcome.FAILED, "550 5.1.1", id="5xx"),
    ],
)
async def test_smtp_refusal_at_send_is_recorded_with_the_code(
    tmp_path: Path, switch: str, outcome: Outcome, code: str
) -> None:
    # A 4xx says "try again later": the email channel does not retry within the run (the
    # next slot is the retry), so the run is an error, the channel's. A 5xx refuses the
    # contact for good: the run failed, the target's.
    async with EMAIL.sandbox(tmp_path, Setup()) as sandbox:
        desk: MailDesk = sandbox.peer
        refusing = {"defer": desk.set_defer, "reject": desk.set_reject}[switch]
        edit_config(sandbox.config, every(INTERVAL))
        refusing(True)
        async with scheduled(sandbox) as monitor:
            faulted = await first_run_finished(monitor)
            refusing(False)
            mended_at = datetime.now(UTC)
            later = await later_run_finished(monitor, after=mended_at)
            figures = await settle(monitor, f"smtp-{code.split()[0]}")
    assert faulted.outcome is outcome
    assert faulted.sent_at is None
    assert f"refused every recipient (support@acme.test: {code}" in (faulted.reason or "")
    refusals = [e for e in desk.ground_truth() if e["event"] in ("deferred", "rejected")]
    assert refusals, "the desk refused nothing"
    assert later.outcome is Outcome.MET, later.reason
    assert figures.lost == 0 and figures.stalled == 0
