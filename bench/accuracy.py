"""First-answer accuracy: cxprobe's measured reply times against the sandbox desk's log.

The desk logs the instant LMTP accepted each reply into the probe mailbox (ground truth). For
every reply of every run, the error is ``arrived_at - truth`` (what cxprobe reports, from
IMAP INTERNALDATE) and ``observed_at - truth`` (when the IDLE watcher saw it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cxprobe.app import open_monitor
from cxprobe.settings import load_config
from cxprobe.store.database import StoredMessage
from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from scenarios.model import RunResult
from tests.support import desk_profile, monitor_config


def _summary(errors: list[float]) -> dict[str, float]:
    ordered = sorted(errors)
    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "max_abs": max(abs(value) for value in ordered),
    }


def _bench_profile() -> Profile:
    """The desk with lognormal agents and a quick auto-acknowledgement."""
    latency = {"distribution": "lognormal", "median": 2.0, "p95": 6.0}
    profile_data = desk_profile()
    for queue in profile_data["mail"]["queues"].values():
        queue["latency"] = latency
    profile_data["mail"]["auto_ack"]["delay"] = {"distribution": "uniform", "low": 0.2, "high": 1.5}
    return Profile.model_validate(profile_data)


async def _run_against_desk(
    runs: int,
) -> tuple[list[RunResult], dict[str, StoredMessage], dict[str, dict[str, Any]]]:
    """``runs`` runs at once against a fresh desk: results, received messages, desk truth."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        async with MailDesk(_bench_profile(), workdir / "desk") as desk:
            path = monitor_config(
                workdir,
                smtp_port=desk.smtp_port,
                imap_port=desk.imap_port,
                sla={"human_response": "60s", "first_response": "30s", "deadline": "60s"},
            )
            config = load_config(path)
            logger = logging.getLogger("bench")
            logger.addHandler(logging.NullHandler())
            logger.propagate = False
            check = config.checks[0]
            async with open_monitor(config, logger, serve_http=False) as monitor:
                base = datetime(2030, 1, 1, tzinfo=UTC)
                finished = await asyncio.gather(
                    *(
                        monitor.runner.execute(check, base + timedelta(hours=index))
                        for index in range(runs)
                    )
                )
                results = [result for result in finished if result is not None]
                assert len(results) == runs
                messages = {}
                for result in results:
                    for message in await monitor.store.messages(result.run_id):
                        if message.direction == "in":
                            messages[message.external_id] = message
            truth = {
                event["message_id"]: event
                for event in desk.ground_truth()
                if event["event"] == "reply_sent"
            }
    return results, messages, truth


async def measure(runs: int = 30) -> dict[str, Any]:
    os.environ["CXPROBE_TEST_IMAP_PASSWORD"] = "probe-secret"
    results, messages, truth = await _run_against_desk(runs)
    arrived: dict[str, list[float]] = {"auto_ack": [], "human": []}
    observed: dict[str, list[float]] = {"auto_ack": [], "human": []}
    for message_id, message in messages.items():
        event = truth.get(message_id)
        if event is None:
            continue
        at = datetime.fromisoformat(event["at"])
        kind = "human" if event["kind"] == "human" else "auto_ack"
        arrived[kind].append((message.arrived_at - at).total_seconds())
        observed[kind].append((message.observed_at - at).total_seconds())
    outcomes = Counter(str(result.outcome) for result in results)
    return {
        "runs": runs,
        "outcomes": dict(outcomes),
        "replies_matched_to_truth": sum(len(v) for v in arrived.values()),
        "arrived_error": {kind: _summary(v) for kind, v in arrived.items() if v},
        "observed_error": {kind: _summary(v) for kind, v in observed.items() if v},
    }
