"""Rubric scores on whole runs against the sandbox's ground truth, on email (real Dovecot) and
SMS (the Twilio sandbox): the desks compose each human answer from rubric parts (greeting, the
customer's name, an apology, a case number, a sign-off), each included by its rate, around an
answer of a scripted kind (correct, incomplete, wrong, another language), and record the kind
and the parts on ``reply_sent``. The monitor's score of every run must equal the score the
ground truth gives under the library scenario ``delivery-complaint``'s rubric, exactly, and the
answer and language verdicts must still match the kind."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from sandbox.clock import WeeklyHours
from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import AnswerVerdict, LanguageVerdict, Outcome, RunResult
from tests.integration.test_email_runs import monitoring
from tests.support import (
    PROBE_NUMBER,
    PROBE_PASSWORD,
    brand_number,
    default_profile_data,
    desk_profile,
    messaging_config,
    messaging_profile,
    monitor_config,
    one_check,
    require_binary,
    twilio_messaging,
    weekly,
)

SCENARIO = "delivery-complaint"
#: The library rubric's weights (scenarios/library/rubrics/mystery-shopper.yaml), written out:
#: the expected scores are computed here, not by the code under test.
WEIGHTS = {
    "greeting": 10,
    "name": 15,
    "empathy": 15,
    "sign_off": 10,
    "reference": 10,
    "expectations": 25,
    "sla": 15,
}
#: The desks' answers to the complaint, one per kind.
ANSWERS = {
    "correct": "The replacement has been sent today by courier; it will reach you within two days.",
    "incomplete": "We have noted the damage to your parcel and passed it to our warehouse team.",
    "wrong": "We can offer a replacement once you confirm the card 4111 1111 1111 1111 you used.",
    "other_language": (
        "Wir haben Ihre Nachricht erhalten und schicken Ihnen heute eine neue Lampe. Das Paket "
        "wird morgen von unserem Kurierdienst abgeholt und innerhalb von zwei Werktagen "
        "zugestellt. Die beschädigte Lampe müssen Sie nicht zurückschicken."
    ),
}
#: The manners the desks compose the answers with (monitor.customer_name is Alex Morgan).
PARTS = {
    "greeting": {"rate": 0.5, "text": "Hello"},
    "name": {"rate": 0.5, "text": "Alex"},
    "empathy": {"rate": 0.5, "text": "I am very sorry that your order arrived damaged."},
    "reference": {"rate": 0.5, "text": "Your case number is {case}."},
    "sign_off": {"rate": 0.5, "text": "Kind regards"},
}
#: What cxprobe must conclude from each kind of answer.
VERDICTS = {
    "correct": (AnswerVerdict.CORRECT, LanguageVerdict.MATCH),
    "incomplete": (AnswerVerdict.INCOMPLETE, LanguageVerdict.MATCH),
    "wrong": (AnswerVerdict.WRONG, LanguageVerdict.MATCH),
    "other_language": (AnswerVerdict.INCOMPLETE, LanguageVerdict.MISMATCH),
}
#: The human-answer SLA of these runs (seconds): the desks answer in about one.
HUMAN_SLA = 10.0


def scripted_answers() -> dict[str, Any]:
    kinds = {kind: {"rate": 0.25, "text": text} for kind, text in ANSWERS.items()}
    return {"kinds": kinds, "parts": PARTS}


def truth_score(kind: str, parts: Sequence[str], answered_in: float) -> float:
    """The score the ground truth gives: every item applies (a complaint with expectations)."""
    met = {
        **{name: name in parts for name in PARTS},
        "expectations": kind == "correct",
        "sla": answered_in <= HUMAN_SLA,
    }
    earned = sum(weight for item, weight in WEIGHTS.items() if met[item])
    return round(earned * 100 / sum(WEIGHTS.values()), 2)


async def rubric_evidence(monitor: Monitor, result: RunResult) -> dict[str, Any]:
    (artifact,) = [a for a in await monitor.store.artifacts(result.run_id) if a.kind == "rubric"]
    content = await monitor.store.artifact_content(artifact.id)
    assert content is not None
    document: dict[str, Any] = json.loads(content)
    return document


async def check_against_truth(
    monitor: Monitor,
    channel: str,
    results: Sequence[RunResult],
    truth: Mapping[str, tuple[str, list[str], float]],
) -> None:
    """Each run's score, items, stored record, evidence and verdicts against ``truth`` (by run
    id: the answer's kind, its parts and how fast the desk answered), then the metrics."""
    slot = min(result.slot for result in results)
    stored = {
        run.run_id: run for run in await monitor.store.runs_between(slot, slot + timedelta(hours=1))
    }
    seen_parts: set[tuple[str, bool]] = set()
    for result in results:
        assert result.outcome is Outcome.MET, result.reason
        kind, parts, answered_in = truth[result.run_id]
        expected = truth_score(kind, parts, answered_in)
        evidence = await rubric_evidence(monitor, result)
        assert result.rubric_score == expected, (kind, parts, evidence)
        assert (result.answer, result.language) == VERDICTS[kind], (kind, result.reply_language)
        met = {item.item: item.met for item in result.rubric_items}
        assert {name: met[name] for name in PARTS} == {name: name in parts for name in PARTS}
        seen_parts |= {(name, name in parts) for name in PARTS}
        record = stored[result.run_id]
        assert record.rubric_score == expected and record.rubric_items == result.rubric_items
        assert evidence["score"] == expected
        assert [item["met"] for item in evidence["items"]] == [
            item.met for item in result.rubric_items
        ]
    kinds = {kind for kind, _, _ in truth.values()}
    assert len(kinds) >= 3, f"the seed gave only {kinds}: pick another"
    assert seen_parts == {(name, present) for name in PARTS for present in (True, False)}, (
        "the seed did not vary every part: pick another"
    )
    labels = {
        "target": "acme",
        "channel": channel,
        "scenario": SCENARIO,
        "location": monitor.config.monitor.location,
    }
    count = monitor.registry.get_sample_value("cxprobe_rubric_score_count", labels)
    total = monitor.registry.get_sample_value("cxprobe_rubric_score_sum", labels)
    assert count == len(results)
    assert total == pytest.approx(sum(r.rubric_score or 0 for r in results))


async def test_email_rubric_scores_equal_the_desks_ground_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("dovecot")
    monkeypatch.setenv("CXPROBE_TEST_IMAP_PASSWORD", PROBE_PASSWORD)
    raw = desk_profile(True, human_seconds=1.0, answers=scripted_answers())
    raw["seed"] = 5
    runs = 8
    async with MailDesk(Profile.model_validate(raw), tmp_path / "desk") as desk:
        path = monitor_config(
            tmp_path,
            smtp_port=desk.smtp_port,
            imap_port=desk.imap_port,
            sla={"human_response": f"{HUMAN_SLA:g}s", "deadline": "20s"},
            checks=[one_check("acme-email-complaint", "email", SCENARIO)],
        )
        async with monitoring(path) as monitor:
            check = monitor.config.checks[0]
            slot = datetime.now(UTC).replace(microsecond=0)
            async with asyncio.timeout(90):
                done = await asyncio.gather(
                    *(
                        monitor.runner.execute(check, slot + timedelta(seconds=i))
                        for i in range(runs)
                    )
                )
            results = [result for result in done if result is not None]
            assert len(results) == runs
            events = desk.ground_truth()
            received = {
                e["message_id"]: datetime.fromisoformat(e["at"])
                for e in events
                if e["event"] == "received"
            }
            humans = {
                e["message_id"]: e
                for e in events
                if e["event"] == "reply_sent" and e["kind"] == "human"
            }
            truth = {}
            for result in results:
                (reply,) = [r for r in result.replies if r.responder == "human"]
                event = humans[reply.external_id]
                answered_in = datetime.fromisoformat(event["at"]) - received[event["in_reply_to"]]
                truth[result.run_id] = (
                    event["answer"],
                    event["rubric"],
                    answered_in.total_seconds(),
                )
            await check_against_truth(monitor, "email", results, truth)


async def test_sms_rubric_scores_equal_the_lines_ground_truth(tmp_path: Path) -> None:
    # Agents whose names are not the customer's (Alex Morgan): a signature "— Alex, Acme
    # Technical Support" would be found as the customer's name (pattern matching, not
    # understanding), and the ground truth would not know it.
    queues = {
        name: {**queue, "agents": ["Sam"], "latency": {"distribution": "fixed", "seconds": 0.5}}
        for name, queue in default_profile_data()["messaging"]["queues"].items()
    }
    loaded = messaging_profile(queues=queues, answers=scripted_answers())
    assert loaded.twilio is not None
    hours = WeeklyHours.model_validate(weekly(True))
    runs = 8
    async with TwilioSandbox(
        loaded.twilio, workdir=tmp_path / "lines", hours=hours, messaging=loaded.messaging
    ) as sandbox:
        path = messaging_config(
            tmp_path,
            "sms",
            {"to": brand_number(loaded, "sms")},
            {"sms": twilio_messaging(sandbox.base_url, loaded)},
            scenario=SCENARIO,
            sla={"human_response": f"{HUMAN_SLA:g}s", "deadline": "15s"},
        )
        async with open_monitor(load_config(path), logging.getLogger("test")) as monitor:
            assert monitor.server is not None
            sandbox.messaging.set_inbound_webhook(
                PROBE_NUMBER, f"{monitor.server.url}/webhooks/twilio/sms"
            )
            check = monitor.config.checks[0]
            slot = datetime.now(UTC).replace(microsecond=0)
            results = []
            for i in range(runs):  # one conversation at a time on the pair
                async with asyncio.timeout(30):
                    result = await monitor.runner.execute(check, slot + timedelta(seconds=i))
                assert result is not None
                results.append(result)
            events = sandbox.messaging.ground_truth()
            received = {
                e["token"]: datetime.fromisoformat(e["at"])
                for e in events
                if e["event"] == "message_received" and e["token"]
            }
            truth = {}
            for result in results:
                (event,) = [
                    e
                    for e in events
                    if e["event"] == "reply_sent"
                    and e["responder"] == "agent"
                    and e["in_reply_to_token"] == result.token
                ]
                answered_in = datetime.fromisoformat(event["at"]) - received[result.token]
                truth[result.run_id] = (
                    event["answer"],
                    event["rubric"],
                    answered_in.total_seconds(),
                )
            await check_against_truth(monitor, "sms", results, truth)
        assert sandbox.violations == [], sandbox.violations
