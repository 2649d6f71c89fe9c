"""The channel contract: what every registered channel kind does against its sandbox peer.

Each test is written once and runs for every kind in ``probes.CHANNEL_TYPES``, through the
kind's harness (``tests/contract/harnesses/``): the whole monitor (runner, engine, probe, store,
metrics) against the real peer, figures checked against the peer's ground truth, metrics read
from the monitor's own registry. What is particular to one channel (email threading, widget
variants, IVR partial results, WhatsApp templates, polling) is tested in
``tests/integration/test_<channel>_runs.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cxprobe.app import Monitor
from probes import CHANNEL_TYPES
from probes.base import Responder
from scenarios.model import Outcome, Period, RoutingResult
from tests.contract.harness import (
    SCRIPTED_SCENARIO,
    STEP_TIMEOUT,
    TARGET,
    Harness,
    Pace,
    Setup,
    check_labels,
    post_statuses,
    responders,
    run_once,
    sample,
    stored_run,
)
from tests.contract.harnesses import HARNESSES

#: Why a run a restarted monitor cannot go on with is interrupted (cxprobe.runner).
CANNOT_RESUME = "the monitor stopped and this channel cannot resume a conversation"


def test_every_registered_kind_has_a_harness() -> None:
    # A channel added to the registry without a sandbox peer fails here (and in every
    # contract test of its kind).
    assert set(HARNESSES) == set(CHANNEL_TYPES)
    assert all(harness.kind == kind for kind, harness in HARNESSES.items())


async def test_happy_path_is_timed_against_the_ground_truth(
    harness: Harness[Any], tmp_path: Path
) -> None:
    async with harness.sandbox(tmp_path, Setup()) as sandbox, sandbox.monitoring() as monitor:
        result = await run_once(monitor)
        truth = await sandbox.truth(monitor, result)
        await harness.check_happy_path(sandbox.peer, monitor, result)
    assert result.period is Period.BUSINESS
    assert result.outcome is Outcome.MET, result.reason
    assert responders(result) == list(harness.business_responders)
    assert (result.routed_queue, result.routing) == ("billing", RoutingResult.CORRECT)
    assert result.first_response_seconds is not None
    assert result.first_human_seconds is not None and truth.first_human_seconds is not None
    first_answer_error = result.first_response_seconds - truth.first_answer_seconds
    assert abs(first_answer_error) < harness.tolerance.first_answer
    first_human_error = result.first_human_seconds - truth.first_human_seconds
    assert abs(first_human_error) < harness.tolerance.first_human

    labels = check_labels(harness.kind)
    runs = {**labels, "period": "business"}
    assert sample(monitor, "cxprobe_runs_total", {**runs, "outcome": "met"}) == 1
    assert sample(monitor, "cxprobe_routing_total", {**labels, "result": "correct"}) == 1
    human = {**labels, "period": "business", "responder": "human"}
    assert sample(monitor, "cxprobe_first_response_seconds_count", human) == 1
    human_sum = sample(monitor, "cxprobe_first_response_seconds_sum", human)
    assert human_sum is not None and abs(human_sum - result.first_human_seconds) < 1e-6
    slo = {"target": TARGET, "channel": harness.kind, "slo": "human_response"}
    assert sample(monitor, "cxprobe_slo_events_total", {**slo, "result": "good"}) == 1
    assert sample(monitor, "cxprobe_last_run_success", labels) == 1
    assert sample(monitor, "cxprobe_webhooks_rejected_total", {"channel": harness.kind}) == 0


async def test_a_scripted_conversation_answers_each_question_timed(
    harness: Harness[Any], tmp_path: Path
) -> None:
    """The agent asks for the order number, then the e-mail address, then answers: the probe
    answers each question in the same conversation, and each of its messages is timed to the
    agent's next reply within the kind's accuracy. The phone's sandbox agents ask nothing."""
    if not harness.scripted_agents:
        assert harness.kind == "phone", f"{harness.kind}'s peer must have scripted agents"
        return
    setup = Setup(scripted=True)
    async with harness.sandbox(tmp_path, setup) as sandbox, sandbox.monitoring() as monitor:
        result = await run_once(monitor)
        human_sent_at = await harness.human_replies(sandbox.peer, result)
    assert result.outcome is Outcome.MET, result.reason
    assert [turn.matched for turn in result.turns] == ["", "turns[0]", "turns[1]"]
    assert len(human_sent_at) == 3, human_sent_at
    for turn, truth_at in zip(result.turns, human_sent_at, strict=True):
        expected = (truth_at - turn.sent_at).total_seconds()
        assert turn.next_human_seconds is not None, turn
        assert abs(turn.next_human_seconds - expected) < harness.tolerance.first_human, turn
    labels = check_labels(harness.kind, SCRIPTED_SCENARIO)
    assert sample(monitor, "cxprobe_turns_sent_total", labels) == 2


async def test_a_restart_mid_conversation_sends_no_turn_again(
    harness: Harness[Any], tmp_path: Path
) -> None:
    """The monitor stops once it has answered the first question; the agent's second question
    arrives while nothing listens; the next monitor answers it (and only it) and finishes."""
    if not (harness.scripted_agents and harness.resumes and harness.catches_up):
        # Nothing to resume (a chat), or a reply sent meanwhile is lost (the generic peer
        # posts each once): the restart tests above cover what those kinds do.
        assert harness.kind in {"phone", "webchat", "generic"}, harness.kind
        return
    setup = Setup(scripted=True, pace=Pace.AFTER_RESTART)
    async with harness.sandbox(tmp_path, setup) as sandbox:
        async with sandbox.monitoring() as first:
            await first.runner.start_slot(first.config.checks[0], datetime.now(UTC))
            left_open = await stored_run(first, lambda stored: bool(stored.replies))
            await _turns_stored(first, left_open.run_id, 1)
        async with sandbox.monitoring() as second:
            before = await second.store.messages(left_open.run_id)
            assert sum(1 for m in before if m.turn is not None) == 1  # stopped after turn 1
            assert await second.runner.resume_open_runs() == 1
            finished = await stored_run(
                second, lambda stored: stored.outcome is not None, left_open.run_id
            )
            out = [m for m in await second.store.messages(finished.run_id) if m.direction == "out"]
            kinds = {a.kind for a in await second.store.artifacts(finished.run_id)}
        human_sent_at = await harness.human_replies(sandbox.peer, finished)
    assert finished.outcome is Outcome.MET, finished.reason
    assert [m.turn["when"] if m.turn else None for m in out] == [None, "turns[0]", "turns[1]"]
    assert len(human_sent_at) == 3 and "conversation" in kinds
    labels = check_labels(harness.kind, SCRIPTED_SCENARIO)
    assert sample(second, "cxprobe_turns_sent_total", labels) == 2  # the whole timeline


async def _turns_stored(monitor: Monitor, run_id: str, count: int) -> None:
    """Return once ``count`` turns of the run are in the store (read every 50 ms: the store
    has no change notification)."""
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            stored = await monitor.store.messages(run_id)
            if sum(1 for m in stored if m.turn is not None) >= count:
                return
            await asyncio.sleep(0.05)


async def test_misroute_gives_a_wrong_routing_verdict(
    harness: Harness[Any], tmp_path: Path
) -> None:
    setup = Setup(misroute=True)
    async with harness.sandbox(tmp_path, setup) as sandbox, sandbox.monitoring() as monitor:
        result = await run_once(monitor)
        truth = await sandbox.truth(monitor, result)
    # The peer meant the contact for the expected team and put it through to another.
    assert truth.intended_queue == result.expected_queue
    assert truth.queue not in (None, truth.intended_queue)
    assert result.routing is RoutingResult.WRONG
    assert result.routed_queue == truth.queue
    labels = check_labels(harness.kind, harness.misroute_scenario)
    assert sample(monitor, "cxprobe_routing_total", {**labels, "result": "wrong"}) == 1
    assert sample(monitor, "cxprobe_routing_total", {**labels, "result": "correct"}) == 0


async def test_after_hours_a_bot_or_automatic_answer_is_accepted(
    harness: Harness[Any], tmp_path: Path
) -> None:
    setup = Setup(after_hours=True)
    async with harness.sandbox(tmp_path, setup) as sandbox, sandbox.monitoring() as monitor:
        result = await run_once(monitor)
        truth = await sandbox.truth(monitor, result)
        await harness.check_after_hours(sandbox.peer, monitor, result)
    assert result.period is Period.AFTER_HOURS
    assert result.outcome is Outcome.MET, result.reason
    assert responders(result) == list(harness.after_hours_responders)
    assert result.first_human_seconds is None
    assert result.first_response_seconds is not None
    first_answer_error = result.first_response_seconds - truth.first_answer_seconds
    assert abs(first_answer_error) < harness.tolerance.first_answer

    labels = check_labels(harness.kind)
    runs = {**labels, "period": "after_hours"}
    assert sample(monitor, "cxprobe_runs_total", {**runs, "outcome": "met"}) == 1
    slo = {"target": TARGET, "channel": harness.kind}
    after_hours = {**slo, "slo": "after_hours_response"}
    assert sample(monitor, "cxprobe_slo_events_total", {**after_hours, "result": "good"}) == 1
    # An after-hours probe does not burn the human-answer SLO.
    for verdict in ("good", "bad"):
        human = {**slo, "slo": "human_response", "result": verdict}
        assert sample(monitor, "cxprobe_slo_events_total", human) == 0


async def test_outage_is_an_error_and_the_next_run_is_met(
    harness: Harness[Any], tmp_path: Path
) -> None:
    async with harness.sandbox(tmp_path, Setup()) as sandbox, sandbox.monitoring() as monitor:
        harness.provider_down(sandbox.peer, monitor, True)
        failed = await run_once(monitor)
        artifacts = await monitor.store.artifacts(failed.run_id)
        harness.provider_down(sandbox.peer, monitor, False)
        recovered = await run_once(monitor)
    assert failed.outcome is Outcome.ERROR, failed.reason
    # The provider's failure, said by the probe: not a crash the runner caught.
    assert not failed.reason.startswith("internal error"), failed.reason
    assert harness.outage_reason in failed.reason
    assert {a.kind for a in artifacts} == harness.failure_evidence
    assert recovered.outcome is Outcome.MET, recovered.reason
    labels = check_labels(harness.kind)
    runs = {**labels, "period": "business"}
    assert sample(monitor, "cxprobe_runs_total", {**runs, "outcome": "error"}) == 1
    assert sample(monitor, "cxprobe_runs_total", {**runs, "outcome": "met"}) == 1
    assert sample(monitor, "cxprobe_last_run_success", labels) == 1


async def test_forged_webhook_is_refused_and_changes_nothing(
    harness: Harness[Any], tmp_path: Path
) -> None:
    kind = harness.kind
    async with harness.sandbox(tmp_path, Setup()) as sandbox, sandbox.monitoring() as monitor:
        assert monitor.server is not None
        if not harness.has_webhooks:
            # Nothing to forge: the kind must really have no webhook at all.
            assert not CHANNEL_TYPES[kind].needs_http
            assert monitor.runner.webhooks.routes == []
            url = f"{monitor.server.url}/webhooks/{kind}"
            assert await post_statuses(url, [(b"{}", {})]) == [404]
            return
        assert CHANNEL_TYPES[kind].needs_http
        run = asyncio.create_task(run_once(monitor))
        live = await stored_run(monitor, lambda stored: stored.sent_at is not None)
        statuses = await harness.forge_webhooks(sandbox.peer, monitor, live)
        result = await run
        truth = await sandbox.truth(monitor, result)
        messages = await monitor.store.messages(result.run_id)
        runs = await monitor.store.recent_runs(10)
        health = monitor.runner.health()["channels"][kind]
    assert statuses == [403, 403]  # a wrong signature, then none
    # The run is judged on what the peer really sent, and the forgery is nowhere.
    assert result.outcome is Outcome.MET, result.reason
    assert responders(result) == list(harness.business_responders)
    assert result.first_human_seconds is not None and truth.first_human_seconds is not None
    assert (
        abs(result.first_human_seconds - truth.first_human_seconds) < harness.tolerance.first_human
    )
    assert len([m for m in messages if m.direction == "in"]) == len(result.replies)
    assert [stored.run_id for stored in runs] == [result.run_id]
    assert health["rejected_webhooks"] == 2
    assert sample(monitor, "cxprobe_webhooks_rejected_total", {"channel": kind}) == 2
    assert sample(monitor, "cxprobe_unmatched_replies_total", {"channel": kind}) == 0


async def test_run_left_open_at_a_restart_is_finished_by_the_next_monitor(
    harness: Harness[Any], tmp_path: Path
) -> None:
    kind = harness.kind
    assert harness.resumes is CHANNEL_TYPES[kind].resumable
    async with harness.sandbox(tmp_path, Setup(pace=Pace.AFTER_RESTART)) as sandbox:
        async with sandbox.monitoring() as first:
            await first.runner.start_slot(first.config.checks[0], datetime.now(UTC))
            # The monitor stops once the first answer is stored, before the human's.
            left_open = await stored_run(first, lambda stored: bool(stored.replies))
        if harness.catches_up:
            await harness.human_answered(sandbox.peer, left_open)  # while nothing listens
        async with sandbox.monitoring() as second:
            at_restart = await second.store.load_run(left_open.run_id)
            resumed = await second.runner.resume_open_runs()
            finished = await stored_run(
                second, lambda stored: stored.outcome is not None, left_open.run_id
            )
            truth = await sandbox.truth(second, finished) if harness.resumes else None
    assert at_restart is not None and at_restart.outcome is None  # left open by the first
    runs = {**check_labels(kind), "period": "business"}
    for outcome in Outcome:
        assert sample(first, "cxprobe_runs_total", {**runs, "outcome": str(outcome)}) == 0
    if truth is not None:
        assert resumed == 1
        assert finished.outcome is Outcome.MET, finished.reason
        assert responders(finished) == list(harness.business_responders)
        assert finished.first_human_seconds is not None and truth.first_human_seconds is not None
        first_human_error = finished.first_human_seconds - truth.first_human_seconds
        assert abs(first_human_error) < harness.tolerance.first_human
        assert sample(second, "cxprobe_runs_total", {**runs, "outcome": "met"}) == 1
    else:
        assert resumed == 0
        assert finished.outcome is Outcome.INTERRUPTED
        assert finished.reason is not None and finished.reason.startswith(CANNOT_RESUME)
        assert finished.reason.removeprefix(CANNOT_RESUME).removeprefix(": ") == (
            CHANNEL_TYPES[kind].cannot_resume
        )
        assert sample(second, "cxprobe_runs_total", {**runs, "outcome": "interrupted"}) == 1
    assert sample(second, "cxprobe_open_runs", {"channel": kind}) == 0


async def test_reply_after_the_deadline_is_recorded_late_on_the_closed_run(
    harness: Harness[Any], tmp_path: Path
) -> None:
    setup = Setup(pace=Pace.AFTER_DEADLINE)
    async with harness.sandbox(tmp_path, setup) as sandbox, sandbox.monitoring() as monitor:
        result = await run_once(monitor)
        assert result.outcome is Outcome.BREACHED, result.reason
        if harness.late_replies:
            stored = await stored_run(
                monitor, lambda run: run.first_human_seconds is not None, result.run_id
            )
            truth = await sandbox.truth(monitor, stored)
        else:
            await harness.conversation_left(sandbox.peer, result)
            loaded = await monitor.store.load_run(result.run_id)
            assert loaded is not None
            stored, truth = loaded, None
        messages = await monitor.store.messages(result.run_id)
    assert stored.outcome is Outcome.BREACHED  # a late answer does not change the outcome
    labels = check_labels(harness.kind)
    runs = {**labels, "period": "business"}
    assert sample(monitor, "cxprobe_runs_total", {**runs, "outcome": "breached"}) == 1
    late_replies = sample(
        monitor, "cxprobe_late_replies_total", {"target": TARGET, "channel": harness.kind}
    )
    if truth is not None:
        assert stored.first_human_seconds is not None and truth.first_human_seconds is not None
        first_human_error = stored.first_human_seconds - truth.first_human_seconds
        assert abs(first_human_error) < harness.tolerance.first_human
        assert [m.late for m in messages if m.responder == Responder.HUMAN] == [True]
        assert late_replies == 1
        human = {**labels, "period": "business", "responder": "human"}
        assert sample(monitor, "cxprobe_first_response_seconds_count", human) == 1
    else:
        assert stored.first_human_seconds is None
        assert [m for m in messages if m.late] == []
        assert late_replies == 0
