"""Answer expectations and language on whole email runs: the sandbox desk (real Dovecot) answers
correctly, incompletely, wrongly or in another language at configured rates and records which in
its ground truth; every run's verdicts, stored record, evidence and metrics must agree with it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from scenarios.model import AnswerVerdict, LanguageVerdict, Outcome, RunResult
from tests.integration.test_email_runs import monitoring
from tests.support import desk_profile, monitor_config, require_binary

#: The desk's scripted answers to the billing question, one of each kind.
ANSWERS = {
    "correct": (
        "The extra charge is the price increase of our new tariff from 1 March. You can ask "
        "for a refund within 14 days, and the refund has been issued to your card today."
    ),
    "incomplete": "The extra charge is the price increase of our new tariff from 1 March.",
    "wrong": "The extra charge is the price increase of our new tariff. Refunds: within 30 days.",
    "other_language": (
        "Der zusätzliche Betrag ist die Preiserhöhung unseres neuen Tarifs ab dem 1. März. "
        "Eine Erstattung ist innerhalb von 14 Tagen möglich."
    ),
}
#: What cxprobe must conclude from each kind of answer (the library's billing-question, en).
EXPECTED = {
    "correct": (AnswerVerdict.CORRECT, True, LanguageVerdict.MATCH),
    "incomplete": (AnswerVerdict.INCOMPLETE, False, LanguageVerdict.MATCH),
    "wrong": (AnswerVerdict.WRONG, False, LanguageVerdict.MATCH),
    "other_language": (AnswerVerdict.INCOMPLETE, False, LanguageVerdict.MISMATCH),
}
RUNS = 8


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    require_binary("dovecot")
    monkeypatch.setenv("CXPROBE_TEST_IMAP_PASSWORD", "probe-secret")


def answers_profile() -> dict[str, Any]:
    kinds = {kind: {"rate": 0.25, "text": text} for kind, text in ANSWERS.items()}
    profile = desk_profile(True, human_seconds=1.0, answers={"kinds": kinds})
    profile["seed"] = 13
    return profile


def answer_kinds(desk: MailDesk) -> dict[str, str]:
    """The desk's ground truth: the kind of each human answer, by its Message-ID."""
    return {
        event["message_id"]: event["answer"]
        for event in desk.ground_truth()
        if event["event"] == "reply_sent" and event["kind"] == "human"
    }


def human_reply_id(result: RunResult) -> str:
    (human,) = [reply for reply in result.replies if reply.responder == "human"]
    return human.external_id


async def test_answer_verdicts_and_language_agree_with_the_desks_ground_truth(
    tmp_path: Path,
) -> None:
    profile = Profile.model_validate(answers_profile())
    async with MailDesk(profile, tmp_path / "desk") as desk:
        path = monitor_config(tmp_path, smtp_port=desk.smtp_port, imap_port=desk.imap_port)
        async with monitoring(path) as monitor:
            check = monitor.config.checks[0]
            slot = datetime.now(UTC).replace(microsecond=0)
            async with asyncio.timeout(90):
                results = await asyncio.gather(
                    *(
                        monitor.runner.execute(check, slot + timedelta(seconds=i))
                        for i in range(RUNS)
                    )
                )
            stored = {
                run.run_id: run
                for run in await monitor.store.runs_between(slot, slot + timedelta(hours=1))
            }
            evidence = {}
            for result in results:
                assert result is not None
                (quality,) = [
                    a
                    for a in await monitor.store.artifacts(result.run_id)
                    if a.kind == "answer-quality"
                ]
                content = await monitor.store.artifact_content(quality.id)
                assert content is not None
                evidence[result.run_id] = json.loads(content)
            samples = {
                verdict: monitor.registry.get_sample_value(
                    "cxprobe_answer_verdicts_total",
                    {
                        "target": "acme",
                        "channel": "email",
                        "scenario": "billing-question",
                        "location": monitor.config.monitor.location,
                        "verdict": verdict,
                    },
                )
                for verdict in AnswerVerdict
            }
        truth = answer_kinds(desk)

    seen_kinds = set()
    for result in results:
        assert result is not None
        assert result.outcome is Outcome.MET, result.reason
        kind = truth[human_reply_id(result)]
        seen_kinds.add(kind)
        verdicts = (result.answer, result.resolved, result.language)
        assert verdicts == EXPECTED[kind], (kind, evidence[result.run_id])
        record = stored[result.run_id]
        assert (record.answer, record.resolved, record.language) == verdicts
        document = evidence[result.run_id]
        assert document["answer"] == str(result.answer)
        if kind == "wrong":
            assert [span["text"] for span in document["wrong"]] == ["30 days"]
        if kind == "other_language":
            assert document["reply_language"] == record.reply_language == "de"
    assert len(seen_kinds) >= 3, f"seed 13 gave only {seen_kinds}: pick another seed"
    for verdict in AnswerVerdict:
        wanted = sum(1 for result in results if result is not None and result.answer is verdict)
        assert samples[verdict] == wanted


async def test_a_huge_html_answer_is_judged_and_the_run_completes(tmp_path: Path) -> None:
    """A 3 MB HTML answer in mixed scripts: judged on its bounded text, the run unharmed."""
    hostile = (
        "<html><body>"
        + "<div><b>Привет 你好 مرحبا</b> the price increase applies; refunds within 30 days "
        * 40_000
        + "</body></html>"
    )
    kinds = {"wrong": {"rate": 1.0, "text": hostile}}
    profile = Profile.model_validate(
        desk_profile(True, human_seconds=1.0, answers={"kinds": kinds})
    )
    async with MailDesk(profile, tmp_path / "desk") as desk:
        path = monitor_config(tmp_path, smtp_port=desk.smtp_port, imap_port=desk.imap_port)
        async with monitoring(path) as monitor:
            check = monitor.config.checks[0]
            async with asyncio.timeout(60):
                result = await monitor.runner.execute(
                    check, datetime.now(UTC).replace(microsecond=0)
                )
            assert result is not None
            (quality,) = [
                a
                for a in await monitor.store.artifacts(result.run_id)
                if a.kind == "answer-quality"
            ]
            content = await monitor.store.artifact_content(quality.id)
    assert len(hostile) > 3_000_000
    assert result.outcome is Outcome.MET, result.reason
    assert result.answer is AnswerVerdict.WRONG
    assert content is not None
    document = json.loads(content)
    assert document["truncated"] is True
    assert document["evaluated_chars"] <= 64 * 1024
