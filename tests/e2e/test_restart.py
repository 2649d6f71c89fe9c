"""Restart safety: the monitor is SIGKILLed while an email run is open; the reply that arrives
meanwhile is attributed to that run after the restart, and nothing is lost or duplicated."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from cxprobe.store.database import EvidenceStore
from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from scenarios.model import Outcome
from tests.e2e.monitor_process import MonitorProcess, wait_until
from tests.support import desk_profile, monitor_config, require_binary

HUMAN_LATENCY = 6.0


@pytest.fixture(autouse=True)
def _peers() -> None:
    require_binary("dovecot")


async def test_sigkill_with_an_open_run_then_restart(tmp_path: Path) -> None:
    profile = desk_profile()
    for queue in profile["mail"]["queues"].values():
        queue["latency"] = {"distribution": "fixed", "seconds": HUMAN_LATENCY}
    async with MailDesk(Profile.model_validate(profile), tmp_path / "desk") as desk:
        config = monitor_config(
            tmp_path,
            smtp_port=desk.smtp_port,
            imap_port=desk.imap_port,
            sla={"first_response": "5s", "human_response": "30s", "deadline": "60s"},
        )
        store_url = f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}"
        env = {"CXPROBE_TEST_IMAP_PASSWORD": "probe-secret"}
        first = MonitorProcess(config, tmp_path / "first.log", env)
        second = MonitorProcess(config, tmp_path / "second.log", env)
        try:
            async with EvidenceStore(store_url) as store:

                async def acknowledged_and_open() -> bool:
                    runs = await store.recent_runs(10)
                    if len(runs) != 1 or runs[0].sent_at is None:
                        return False
                    messages = await store.messages(runs[0].run_id)
                    return [m.direction for m in messages] == ["out", "in"]

                first.start()  # catches up the current slot at once: one email goes out
                # Killed between the auto-ack (recorded) and the human reply (not yet sent).
                await wait_until(acknowledged_and_open, 30, "the run's auto-ack to be stored")
                first.kill()
                (run,) = await store.recent_runs(10)
                assert run.outcome is None, "the run must still be open when killed"

                def human_delivered() -> bool:
                    return any(
                        e["event"] == "reply_sent" and e["kind"] == "human"
                        for e in desk.ground_truth()
                    )

                await wait_until(human_delivered, 30, "the desk's human reply")
                second.start()  # same slot again: its claim must stop a second email

                async def finished() -> bool:
                    loaded = await store.load_run(run.run_id)
                    return loaded is not None and loaded.outcome is not None

                await wait_until(finished, 30, "the resumed run to finish")
                assert second.terminate() == 0, second.log
                runs = await store.recent_runs(10)
                final = await store.load_run(run.run_id)
                messages = await store.messages(run.run_id)
        finally:
            first.ensure_stopped()
            second.ensure_stopped()
        received = [e for e in desk.ground_truth() if e["event"] == "received"]
        human = next(
            e for e in desk.ground_truth() if e["event"] == "reply_sent" and e["kind"] == "human"
        )

    assert len(runs) == 1 and len(received) == 1, "a slot ran twice"
    assert final is not None and final.sent_at is not None
    assert final.outcome is Outcome.MET, final.reason
    truth = (datetime.fromisoformat(human["at"]) - final.sent_at).total_seconds()
    assert final.first_human_seconds is not None
    assert abs(final.first_human_seconds - truth) < 1.5
    assert [m.direction for m in messages] == ["out", "in", "in"]  # no reply stored twice
    assert [r.responder for r in final.replies] == ["auto", "human"]
    assert final.first_response_seconds is not None
    assert final.first_response_seconds < final.first_human_seconds
    assert "run resumed" in second.log
    assert "probe-secret" not in first.log + second.log
