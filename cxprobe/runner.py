"""The runner: executes runs of checks and turns everything that happens into a recorded outcome.

It owns the per-channel concurrency limits, the timeouts and the translation of exceptions into
outcomes; probes and the engine never see the store or the metrics. A run is claimed in the
store (check, slot) before anything is sent, its contact and every reply are persisted as they
happen, and runs left open by a previous process are resumed (or marked ``interrupted`` when
there is nothing to resume).

Several monitors may share one store: each open run is leased to the process that claimed it
(:mod:`cxprobe.store.leases`, kept by :class:`~cxprobe.lease_keeper.LeaseKeeper`). A run whose
monitor died is taken over and resumed here; a run this process drove and lost (it was paused
past its lease) is dropped without another write, and its new owner finishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections import Counter
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from cxprobe.courtesy import Courtesy, Skip, rate_limit_skip
from cxprobe.lease_keeper import LeaseKeeper
from cxprobe.pricing import PriceCollector
from cxprobe.settings import Check, Config
from cxprobe.store.database import (
    Claim,
    ContactCost,
    EvidenceStore,
    LeaseLostError,
    OpenRun,
    StoredMessage,
)
from exporters.metrics import MonitorMetrics
from probes import CHANNEL_TYPES
from probes.base import (
    Channel,
    ChannelServices,
    Contact,
    Conversation,
    Measured,
    Reply,
    Sent,
    Webhooks,
    json_evidence,
    new_token,
)
from probes.errors import OptedOut, ProbeError, describe_error
from scenarios.answers import EVIDENCE_KIND as ANSWER_QUALITY_EVIDENCE
from scenarios.answers import assess_answers
from scenarios.conversation import EVIDENCE_KIND as CONVERSATION_EVIDENCE
from scenarios.conversation import ConversationScript
from scenarios.engine import (
    RESUME_SETTLE_SECONDS,
    Clock,
    build_contact,
    build_follow_ups,
    build_script,
    listen,
    send_contact,
    utc_now,
)
from scenarios.hours import BusinessCalendar
from scenarios.language import ReplyLanguages
from scenarios.model import (
    ContactMode,
    ObservedReply,
    Outcome,
    RunResult,
    SkipReason,
    TurnRecord,
)
from scenarios.rubric import EVIDENCE_KIND as RUBRIC_EVIDENCE
from scenarios.rubric import score_rubric
from scenarios.verdicts import Judge, slo_events

#: Why a run whose contact never left is ``interrupted``.
NOT_SENT = "the monitor stopped before the contact was sent"
#: Why a run taken over from another monitor before its contact was recorded is ``interrupted``.
NOT_RECORDED_SENT = (
    "the monitor that claimed this slot stopped before it recorded the contact as sent "
    "(the contact may have left; it is not sent again)"
)
#: Default runs in progress at once per channel, when the config does not say.
DEFAULT_CONCURRENCY = 8
#: Longest a channel may take to end a conversation (hang up a call, leave a chat).
CLOSE_TIMEOUT = 60.0


@dataclass
class _Hooks:
    """Persists what the engine reports (the engine's RunHooks)."""

    store: EvidenceStore
    logger: logging.Logger

    async def sent(self, result: RunResult, sent: Sent) -> None:
        await self.store.record_sent(result.run_id, sent, result.expected_queue)

    async def reply(self, result: RunResult, reply: Reply, observed: ObservedReply) -> None:
        await self.store.record_reply(result.run_id, reply, observed)

    async def may_send(self, result: RunResult) -> None:
        # A paused monitor whose run was taken over must not send a follow-up the new owner
        # sends too: the lease is checked right before (its writes are fenced as well).
        await self.store.check_lease(result.run_id)

    async def followed_up(self, result: RunResult, sent: Sent) -> None:
        await self.store.record_follow_up(result.run_id, sent)
        self.logger.info("follow-up sent", extra={"run_id": result.run_id})

    async def follow_up_failed(self, result: RunResult, error: ProbeError) -> None:
        # The opening contact's figures stand; the run goes on listening.
        self.logger.warning(
            "follow-up not sent",
            extra={"run_id": result.run_id, "error": describe_error(error)},
        )

    async def turn_sent(self, result: RunResult, sent: Sent, turn: TurnRecord) -> None:
        # Marked as a turn: a restart neither sends it again nor counts it as a chaser.
        await self.store.record_follow_up(result.run_id, sent, turn=turn.as_dict())
        self.logger.info(
            "conversation turn sent",
            extra={"run_id": result.run_id, "turn": turn.index, "when": turn.matched},
        )

    async def turn_failed(self, result: RunResult, error: ProbeError) -> None:
        # The script ends here; the run goes on listening for a qualifying answer.
        self.logger.warning(
            "conversation turn not sent",
            extra={"run_id": result.run_id, "error": describe_error(error)},
        )


@dataclass(frozen=True)
class _RunParts:
    """What driving one run takes: its channel and address, its judge, what it sends."""

    channel: Channel[Any]
    address: BaseModel
    judge: Judge
    hooks: _Hooks
    contact: Contact
    #: ``(seconds after the opening, contact)``, in time order.
    follow_ups: list[tuple[float, Contact]]
    #: The answers to the agent's questions, when the scenario is scripted.
    script: ConversationScript | None = None


@dataclass(frozen=True)
class StoredChannelState:
    """A channel's durable state, kept in the evidence store under the channel's kind."""

    store: EvidenceStore
    channel: str

    async def load(self, key: str) -> Mapping[str, Any] | None:
        return await self.store.load_channel_state(self.channel, key)

    async def save(self, key: str, value: Mapping[str, Any]) -> None:
        await self.store.save_channel_state(self.channel, key, value)

    async def hold(self, key: str, token: str) -> str | None:
        return await self.store.hold_pair(self.channel, key, token)

    async def release(self, key: str, token: str) -> None:
        await self.store.release_pair(self.channel, key, token)


@dataclass
class Runner:
    """Runs checks of one configuration against the channels it configures."""

    config: Config
    store: EvidenceStore
    metrics: MonitorMetrics
    logger: logging.Logger
    clock: Clock = utc_now
    #: The clock business hours are judged by; None means ``clock``. Shifting it (and only it)
    #: simulates a night or a weekend while every timing stays on the real clock.
    calendar_clock: Clock | None = None
    #: Where channel drivers mount provider webhooks (the monitor's HTTP server).
    webhooks: Webhooks = field(default_factory=Webhooks)
    #: Each kind's driver; its addresses are checked against its address model when used.
    channels: dict[str, Channel[Any]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[RunResult | None]] = field(default_factory=set)
    _limits: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _open: Counter[str] = field(default_factory=Counter)
    _calendars: dict[str, BusinessCalendar] = field(default_factory=dict)
    #: Runs this process drives (or is about to resume), each set once it is finished.
    _driven: dict[str, asyncio.Event] = field(default_factory=dict)
    _late_replies: set[asyncio.Task[None]] = field(default_factory=set)
    #: The task driving each run, to stop it when its lease is lost.
    _drivers: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    #: Runs whose lease another monitor took over while this process drove them.
    _lost: set[str] = field(default_factory=set)
    leases: LeaseKeeper | None = None
    prices: PriceCollector | None = None
    _courtesy: Courtesy = field(init=False)
    #: Set once the runs resumed at start have re-attached to their conversations (channels
    #: hand on what they spooled before a restart only then: ChannelServices.runs_resumed).
    _runs_resumed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Resumed runs not yet re-attached, each event set once it is (or failed to).
    _attaching: dict[str, asyncio.Event] = field(default_factory=dict)
    #: The process's one reply-language detector (its models load on first use); languages a
    #: reload adds beyond :data:`scenarios.language.COMMON_REPLY_LANGUAGES` need a restart.
    _reply_languages: ReplyLanguages = field(init=False)

    def __post_init__(self) -> None:
        self._courtesy = Courtesy(self.store, self.metrics, self.logger.getChild("courtesy"))
        self._reply_languages = ReplyLanguages(
            scenario.language
            for scenario in self.config.scenarios.values()
            if scenario.language is not None
        )

    async def start(self, stack: AsyncExitStack) -> None:
        """Create and start the channels the configuration uses; resume open runs."""
        used = {check.channel for check in self.config.checks_here()}
        for kind in sorted(used):
            services = ChannelServices(
                logger=self.logger.getChild(f"probes.{kind}"),
                on_unmatched=functools.partial(self._unmatched, kind),
                state=StoredChannelState(self.store, kind),
                webhooks=self.webhooks,
                on_rejected_webhook=functools.partial(self.metrics.record_rejected_webhook, kind),
                spool_dir=self.config.monitor.data_dir / "spool" / kind,
                runs_resumed=self._runs_resumed,
                monitor_name=self.config.monitor.name,
            )
            channel_type = CHANNEL_TYPES[kind]
            channel = channel_type.create(
                channel_type.settings_of(self.config.channel_settings(kind)), services
            )
            addresses = [
                channel_type.address_of(self.config.targets[check.target].address(kind))
                for check in self.config.checks_here()
                if check.channel == kind
            ]
            await channel.start(stack, addresses)
            self.channels[kind] = channel
            limit = self.config.monitor.concurrency.get(kind, DEFAULT_CONCURRENCY)
            self._limits[kind] = asyncio.Semaphore(limit)
            self.metrics.set_open_runs(kind, 0)
        for target_id, target in self.config.targets.items():
            self._calendars[target_id] = BusinessCalendar(target.business_hours)
        gauges = asyncio.create_task(
            self._courtesy.keep_gauges_fresh(lambda: self.config, self.clock), name="courtesy"
        )
        stack.push_async_callback(_cancel_and_wait, gauges)
        stack.push_async_callback(self.stop)
        self.leases = LeaseKeeper(
            self.store,
            self.config.monitor.location,
            self.metrics,
            self.logger.getChild("leases"),
            driven=lambda: list(self._driven),
            lost=self._lease_lost,
            resume=self._resume,
        )
        await self.leases.start(stack)
        self.prices = PriceCollector(
            self.store,
            self.channels,
            self.logger.getChild("prices"),
            clock=self.clock,
            metrics=self.metrics,
            estimator=lambda: self.config.cost_estimator(),
        )
        await self.prices.start(stack)

    def reconfigure(self, config: Config) -> None:
        """Start later runs on ``config`` (a reload, cxprobe.app.Monitor.reload); runs in
        progress keep what they started with. Its channel and monitor sections must be the
        running ones: channels are created at start only."""
        self.config = config
        self._calendars = {
            target_id: BusinessCalendar(target.business_hours)
            for target_id, target in config.targets.items()
        }

    # -- starting runs ---------------------------------------------------------------------

    async def start_slot(self, check: Check, slot: datetime) -> asyncio.Task[RunResult | None]:
        """Start the run of ``check`` for ``slot`` in the background."""
        task = asyncio.create_task(self.execute(check, slot), name=f"run:{check.id}:{slot:%FT%T}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(functools.partial(self._log_start_failure, check, slot))
        return task

    def _log_start_failure(
        self, check: Check, slot: datetime, task: asyncio.Task[RunResult | None]
    ) -> None:
        """A run that could not even start (the store failed while claiming its slot): the
        slot has no run to record it in, so say so in the log and the metrics."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        assert error is not None
        self.logger.error(
            "run could not start",
            extra={"check": check.id, "slot": slot.isoformat(), "error": describe_error(error)},
        )
        self.metrics.record_start_failure(check.target, check.channel)

    async def execute(self, check: Check, slot: datetime) -> RunResult | None:
        """Run ``check`` for ``slot`` to its end. None when the slot was already taken; a
        ``skipped`` run when no contact may be sent (an opt-out, a maintenance window, the
        target's contact quota spent, a money budget that would be exceeded). Never raises
        for a probe's failure."""
        target = self.config.targets[check.target]
        result = self._new_result(check, slot)
        skip = await self._courtesy.screen(self.config, check, result, self.clock())
        # The quota, the budgets and the claim are one transaction: checks firing together
        # (on any monitor) cannot all slip under a limit.
        since = self.clock() - timedelta(hours=1)
        limit = target.contacts_per_hour()
        if skip is None:
            cost = self._estimate_cost(check, result)
            claim = await self.store.claim_slot(result, max_contacts=limit, since=since, cost=cost)
            await self._show_budgets(check, cost, limit, since)
        else:
            claim = await self.store.claim_slot(result)  # the skipped run has the slot
        if claim is Claim.SKIPPED:
            # Over a money budget: the claim itself recorded (and sealed) the skipped run.
            self.logger.warning(
                "slot skipped",
                extra={"check": check.id, "run_id": result.run_id, "reason": result.reason},
            )
            self.metrics.record_skipped(check.target, check.channel, SkipReason.BUDGET)
            self.metrics.record_run(result, slo_events(result))
            return result
        if claim is Claim.OVER_BUDGET:
            skip = rate_limit_skip(limit)
            claim = await self.store.claim_slot(result)  # the skipped run has the slot
        if claim is not Claim.CLAIMED:
            self.logger.info(
                "slot already claimed", extra={"check": check.id, "slot": slot.isoformat()}
            )
            return None
        if skip is not None:
            return await self._skipped(result, skip)
        self.logger.info(
            "run started",
            extra={"check": check.id, "run_id": result.run_id, "period": str(result.period)},
        )
        return await self._drive(check, result, resume=None)

    async def _skipped(self, result: RunResult, skip: Skip) -> RunResult:
        """Record a slot that sends no contact on purpose: a closed run, never a breach."""
        result.outcome = Outcome.SKIPPED
        result.reason = skip.run_reason
        self.metrics.record_skipped(result.target, result.channel, skip.reason)
        self.logger.warning(
            "slot skipped",
            extra={"check": result.check_id, "run_id": result.run_id, "reason": skip.run_reason},
        )
        await self._finish(result)
        return result

    def _estimate_cost(self, check: Check, result: RunResult) -> ContactCost:
        """What the run's contact will cost, by the channel's units and the price table."""
        target = self.config.targets[check.target]
        units = CHANNEL_TYPES[check.channel].cost_units(
            self.config.channel_settings(check.channel),
            target.address(check.channel),
            self._contact(check, result),
        )
        return self.config.cost_estimator().cost(check.channel, check.target, units, self.clock())

    async def _show_budgets(
        self, check: Check, cost: ContactCost, limit: int, since: datetime
    ) -> None:
        """The quota's and the budgets' state after a claim, in the metrics. Best effort: the
        claim is made, and a failed read must not stop its run (the next claim refreshes)."""
        try:
            counted = await self.store.count_contacts_since(check.target, check.channel, since)
            spends = await self.store.budget_spends(cost) if cost.windows else []
        except Exception as exc:
            self.logger.warning("budget metrics not updated", extra={"error": describe_error(exc)})
            return
        self.metrics.set_contact_quota(check.target, check.channel, counted, limit)
        for spend in spends:
            window = spend.window
            self.metrics.set_budget_spend(
                window.budget, window.period, window.currency, spend.spent, window.limit
            )

    def _new_result(self, check: Check, slot: datetime) -> RunResult:
        scenario = self.config.scenarios[check.scenario]
        return RunResult(
            run_id=str(uuid.uuid4()),
            check_id=check.id,
            target=check.target,
            channel=check.channel,
            scenario=check.scenario,
            location=self.config.monitor.location,
            slot=slot,
            token=new_token(),
            period=self._calendars[check.target].period_at((self.calendar_clock or self.clock)()),
            thresholds=self.config.thresholds(check),
            expected_queue=check.expected_queue or scenario.expected_queue,
        )

    # -- driving a run ---------------------------------------------------------------------

    async def _drive(self, check: Check, result: RunResult, resume: OpenRun | None) -> RunResult:
        finished = self._driven.setdefault(result.run_id, asyncio.Event())
        driver = asyncio.current_task()
        assert driver is not None
        self._drivers[result.run_id] = driver
        try:
            return await self._drive_to_the_end(check, result, resume)
        except LeaseLostError as exc:
            self._log_lease_lost(result, exc)
            return result
        except asyncio.CancelledError:
            if result.run_id not in self._lost:
                raise
            driver.uncancel()  # stopped by _lease_lost, not by a shutdown
            self._log_lease_lost(result, None)
            return result
        finally:
            self._attached(result.run_id)  # a resumed run that ended before it re-attached
            del self._driven[result.run_id]
            self._drivers.pop(result.run_id, None)
            self._lost.discard(result.run_id)
            finished.set()

    async def _drive_to_the_end(
        self, check: Check, result: RunResult, resume: OpenRun | None
    ) -> RunResult:
        run: _RunParts | None = None
        self._count_open(check.channel, +1)
        try:
            # Inside the try: a run that cannot even be assembled is still a recorded outcome.
            run = self._run_parts(check, result)
            if resume is None:
                await self._contact_and_listen(check, result, run)
            else:
                await self._resume_and_listen(result, run, resume)
        except asyncio.CancelledError:
            # Shutdown. A sent contact stays open in the store and is resumed by the next
            # process; one that was never sent cannot be, and is recorded as interrupted.
            # A run whose lease was lost is not this process's to record.
            if result.sent_at is None and result.run_id not in self._lost:
                result.outcome = Outcome.INTERRUPTED
                result.reason = NOT_SENT
                await asyncio.shield(self._finish(result))
            raise
        except ProbeError as exc:
            result.outcome = Outcome(exc.outcome)
            result.reason = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, OptedOut):
                await self._courtesy.opted_out(result, exc, self.clock())
        except LeaseLostError:
            raise  # another monitor drives the run now (handled by _drive)
        except Exception as exc:
            # A probe bug must never kill the scheduler: record it as the run's outcome.
            self.logger.exception("run crashed", extra={"check": check.id})
            result.outcome = Outcome.ERROR
            result.reason = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._count_open(check.channel, -1)
        if result.outcome is None and run is not None:
            run.judge.conclude()
            await self._judge_answers(result, run.judge)
            await self._score_rubric(result, run.judge)
        if run is not None and run.script is not None and result.turns:
            await self._keep_conversation(result, run.script)
        await self._finish(result)
        return result

    async def _judge_answers(self, result: RunResult, judge: Judge) -> None:
        """What the human answers say (expectations, language), kept on the run and as
        evidence with the matched spans. Off the event loop: language detection is CPU-heavy.
        A failure here is logged and leaves the verdicts unset: the run's outcome stands."""
        try:
            quality = await asyncio.to_thread(
                assess_answers, judge.scenario, judge.answers(), self._reply_languages
            )
            if quality is None:
                return
            result.answer = quality.answer
            result.resolved = quality.resolved
            result.language = quality.language
            result.reply_language = quality.reply_language
            await self.store.record_artifacts(
                result.run_id, [json_evidence(ANSWER_QUALITY_EVIDENCE, quality.evidence())]
            )
        except LeaseLostError:
            raise
        except Exception:
            self.logger.exception("answers not judged", extra={"run_id": result.run_id})

    async def _score_rubric(self, result: RunResult, judge: Judge) -> None:
        """The mystery-shopping rubric's score of the human answers (after the answer verdict,
        which its expectations item reads), kept on the run and as evidence with each item's
        span. A failure is logged and leaves the score unset: the run's outcome stands."""
        scenario = judge.scenario
        if scenario.rubric is None:
            return
        values = {**scenario.persona, "customer_name": self.config.monitor.customer_name}
        try:
            scored = await asyncio.to_thread(
                functools.partial(
                    score_rubric,
                    scenario,
                    judge.answers(),
                    verdict=result.answer,
                    outcome=result.outcome,
                    values=values,
                )
            )
            if scored is None:
                return
            result.rubric_score = scored.score
            result.rubric_items = list(scored.items)
            await self.store.record_artifacts(
                result.run_id, [json_evidence(RUBRIC_EVIDENCE, scored.evidence())]
            )
        except LeaseLostError:
            raise
        except Exception:
            self.logger.exception("rubric not scored", extra={"run_id": result.run_id})

    async def _keep_conversation(self, result: RunResult, script: ConversationScript) -> None:
        """The scripted conversation's timeline as evidence, written before the run is sealed.
        A failure is logged: the run's outcome stands."""
        try:
            document = script.evidence(result)
            await self.store.record_artifacts(
                result.run_id, [json_evidence(CONVERSATION_EVIDENCE, document)]
            )
        except LeaseLostError:
            raise
        except Exception:
            self.logger.exception("conversation not kept", extra={"run_id": result.run_id})

    def _run_parts(self, check: Check, result: RunResult) -> _RunParts:
        """What one run needs: its channel and address, its judge, its contact and follow-ups."""
        target = self.config.targets[check.target]
        scenario = self.config.scenarios[check.scenario]
        contact = self._contact(check, result)
        hooks = _Hooks(self.store, self.logger)
        names = {"customer_name": self.config.monitor.customer_name, "target_name": target.name}
        return _RunParts(
            channel=self.channels[check.channel],
            address=CHANNEL_TYPES[check.channel].address_of(target.address(check.channel)),
            judge=Judge(scenario, target.queues, target.responders, result),
            hooks=hooks,
            contact=contact,
            follow_ups=build_follow_ups(scenario, contact, **names),
            script=build_script(scenario, contact, hooks, **names),
        )

    def _contact(self, check: Check, result: RunResult) -> Contact:
        """The opening contact of the run (the same text whenever it is built)."""
        return build_contact(
            self.config.scenarios[check.scenario],
            token=result.token,
            customer_name=self.config.monitor.customer_name,
            target_name=self.config.targets[check.target].name,
            disclosure=(
                self.config.monitor.disclosure
                if result.contact_mode is ContactMode.DECLARED
                else None
            ),
            expected_queue=result.expected_queue,
        )

    async def _contact_and_listen(self, check: Check, result: RunResult, run: _RunParts) -> None:
        """A new run: open a conversation, send the contact, listen until the run is judged."""
        async with AsyncExitStack() as conversation_scope:
            # The channel's concurrency limit covers opening and sending; a run then waits for
            # its replies (hours, for email) without holding a slot.
            async with self._active(check.channel):
                conversation = await run.channel.open(run.address, result.token)
                await conversation_scope.enter_async_context(
                    _closing(conversation, self.store, result, self.logger)
                )
                await send_contact(
                    conversation,
                    run.contact,
                    run.judge,
                    run.hooks,
                    send_timeout=self.config.monitor.send_timeout,
                    shutdown_grace=self.config.monitor.shutdown_grace,
                )
            await listen(
                conversation,
                run.judge,
                run.hooks,
                clock=self.clock,
                follow_ups=run.follow_ups,
                script=run.script,
            )

    async def _resume_and_listen(self, result: RunResult, run: _RunParts, resume: OpenRun) -> None:
        """A run a previous process sent: re-attach to its conversation and listen on."""
        persisted, result.replies = result.replies, []
        run.judge.restore(persisted)
        sent = Sent(
            at=result.sent_at or self.clock(),
            external_id=resume.sent_external_id or "",
            resume_state=resume.resume_state,
        )
        # Follow-ups and turns the previous process sent are not sent again; turns are no
        # chasers (they answer the agent's questions, they do not chase an answer).
        stored = await self.store.messages(result.run_id)
        contacts_out = sorted((m for m in stored if m.direction == "out"), key=_arrival)
        chasers = [m for m in contacts_out[1:] if m.turn is None]
        already = len(chasers)
        for follow_up in chasers:
            run.judge.followed_up(follow_up.arrived_at)
        if run.script is not None:
            run.script.restore(result, [m.turn for m in contacts_out if m.turn is not None])
        for message in stored:
            # Human answers stored before the restart count even where the channel's back-fill
            # does not deliver them again.
            if message.direction == "in" and message.responder == "human" and not message.late:
                run.judge.remember_answer(message.external_id, message.arrived_at, message.text)
        try:
            conversation = await run.channel.resume(run.address, result.token, sent)
        finally:
            self._attached(result.run_id)
        async with _closing(conversation, self.store, result, self.logger):
            await listen(
                conversation,
                run.judge,
                run.hooks,
                clock=self.clock,
                settle=RESUME_SETTLE_SECONDS,
                follow_ups=run.follow_ups[already:],
                script=run.script,
            )

    async def _finish(self, result: RunResult) -> None:
        result.finished_at = self.clock()
        await self.store.finish(result)
        self.metrics.record_run(result, slo_events(result))
        self.metrics.record_conversation(result)
        if self.prices is not None and result.sent_at is not None:
            await self.prices.collect(result.run_id)  # the estimate, replaced where it can be
        self.logger.info(
            "run finished",
            extra={
                "check": result.check_id,
                "run_id": result.run_id,
                "outcome": str(result.outcome),
                "reason": result.reason,
                "first_response_seconds": result.first_response_seconds,
                "first_human_seconds": result.first_human_seconds,
                "routing": str(result.routing),
            },
        )

    @asynccontextmanager
    async def _active(self, kind: str) -> Any:
        async with self._limits[kind]:
            with self.metrics.in_flight(kind):
                yield

    def _count_open(self, kind: str, delta: int) -> None:
        self._open[kind] += delta
        self.metrics.set_open_runs(kind, self._open[kind])

    # -- restarts and late replies ---------------------------------------------------------

    async def resume_open_runs(self) -> int:
        """At start: take over and continue the open runs of this location that no live
        monitor holds (an earlier process of this monitor's, a dead monitor's, runs from before
        leases); from then on the lease keeper takes over expired leases as they lapse.
        Returns how many runs were resumed."""
        assert self.leases is not None, "start() first"
        resumed = await self.leases.take_over()
        attaching = [event.wait() for event in self._attaching.values()]
        task = asyncio.create_task(self._signal_resumed(attaching), name="runs-resumed")
        self._late_replies.add(task)
        task.add_done_callback(self._late_replies.discard)
        return resumed

    async def _signal_resumed(self, attaching: list[Coroutine[Any, Any, Any]]) -> None:
        await asyncio.gather(*attaching)
        self._runs_resumed.set()

    def _attached(self, run_id: str) -> None:
        event = self._attaching.pop(run_id, None)
        if event is not None:
            event.set()

    async def _resume(self, open_runs: list[OpenRun]) -> int:
        """Continue runs whose lease this process has just taken; a run that cannot be resumed
        is finished as ``interrupted``. Returns how many are resumed."""
        resumed = 0
        for open_run in open_runs:
            result = open_run.result
            if result.run_id in self._driven:
                continue  # already driven here (cannot happen: leases are per process)
            check = self.config.check(result.check_id)
            resumable = (
                check is not None
                and result.sent_at is not None
                and check.channel in self.channels
                and CHANNEL_TYPES[check.channel].resumable
            )
            if not resumable or check is None:
                result.outcome = Outcome.INTERRUPTED
                result.reason = (
                    NOT_RECORDED_SENT
                    if result.sent_at is None
                    else _cannot_resume(check.channel)
                    if check is not None
                    else f"check {result.check_id!r} is no longer configured"
                )
                await self._finish(result)
                continue
            self.logger.info("run resumed", extra={"check": check.id, "run_id": result.run_id})
            self._driven[result.run_id] = asyncio.Event()  # before a reply can reach _unmatched
            self._attaching[result.run_id] = asyncio.Event()
            task = asyncio.create_task(self._drive(check, result, resume=open_run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            resumed += 1
        return resumed

    def _lease_lost(self, run_id: str) -> None:
        """Another monitor holds the lease of a run this process drives: stop driving it,
        without writing anything more (the new owner resumes and finishes it)."""
        self._lost.add(run_id)
        driver = self._drivers.get(run_id)
        if driver is not None:
            driver.cancel()

    def _log_lease_lost(self, result: RunResult, error: LeaseLostError | None) -> None:
        self.logger.warning(
            "run lease lost: another monitor took the run over, this one leaves it",
            extra={
                "check": result.check_id,
                "run_id": result.run_id,
                "error": describe_error(error) if error is not None else None,
            },
        )

    async def _unmatched(self, kind: str, reply: Reply) -> None:
        """A reply no open conversation claimed: a late reply to a finished run, or noise."""
        result = await self.store.find_run_by_thread_keys(reply.thread_keys)
        if result is None or result.sent_at is None:
            self.metrics.record_unmatched(kind)
            self.logger.info("reply matched no run", extra={"sender_domain": _domain(reply)})
            reply.release()
            return
        if result.finished_at is None:
            finished = self._driven.get(result.run_id)
            if finished is None:
                # Open and driven by another monitor (or not yet resumed): only the lease
                # holder writes to it; its channel's own listing or back-fill collects it.
                self.logger.info(
                    "reply for a run another monitor drives",
                    extra={"run_id": result.run_id, "sender_domain": _domain(reply)},
                )
                reply.release()
                return
            # Its conversation has just closed and the run is being stored: record the reply
            # once it is, without holding up the watcher that handed it over.
            task = asyncio.create_task(self._after_finish(kind, reply, finished))
            self._late_replies.add(task)
            task.add_done_callback(self._late_replies.discard)
            return
        await self._record_late(kind, result, reply)

    async def _after_finish(self, kind: str, reply: Reply, finished: asyncio.Event) -> None:
        await finished.wait()
        result = await self.store.find_run_by_thread_keys(reply.thread_keys)
        if result is not None and result.finished_at is not None:
            await self._record_late(kind, result, reply)
        else:
            reply.release()

    async def _record_late(self, kind: str, result: RunResult, reply: Reply) -> None:
        """Attribute a reply to its already judged run; a reply seen before is kept once.

        The outcome stands (it was judged at the time); the figures, the evidence and, for a
        reply after the deadline, the late-reply count take it in.
        """
        check = self.config.check(result.check_id)
        if check is None:
            self.metrics.record_unmatched(kind)
            self.logger.info(
                "reply to a run of a check no longer configured",
                extra={"run_id": result.run_id, "check": result.check_id},
            )
            reply.release()
            return
        target = self.config.targets[check.target]
        scenario = self.config.scenarios[check.scenario]
        judge = Judge(
            scenario, target.queues, target.responders, dataclasses.replace(result, replies=[])
        )
        judge.restore(result.replies)
        answered_before = judge.result.first_by_responder()
        observed = judge.observe(reply)
        if not await self.store.record_reply(result.run_id, reply, observed):
            return  # already recorded
        await self.store.update_figures(judge.result)
        if observed.responder not in answered_before:
            self.metrics.observe_first_response(result, observed.responder, observed.seconds)
        if observed.late:
            self.metrics.record_late_reply(result.target, result.channel)
        self.logger.info(
            "late reply recorded" if observed.late else "reply after the run was judged recorded",
            extra={"run_id": result.run_id, "seconds": round(observed.seconds, 3)},
        )

    async def stop(self) -> None:
        """Cancel runs in progress; sent contacts stay open in the store, and their leases are
        released so that another monitor of the location (or this one, restarted) takes them
        over at once rather than after the lease timeout."""
        if self.leases is not None:
            await self.leases.stop()
        tasks = [*self._tasks, *self._late_replies]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            released = await self.store.release_leases()
        except Exception as exc:  # the leases then expire after the timeout instead
            self.logger.warning("leases not released", extra={"error": describe_error(exc)})
            return
        if released:
            self.logger.info("leases released", extra={"runs": released})

    def health(self) -> Mapping[str, Any]:
        return {
            "runs_in_progress": len(self._tasks),
            "open_runs": dict(self._open),
            "leases": self.leases.health() if self.leases is not None else None,
            "channels": {kind: channel.health() for kind, channel in self.channels.items()},
        }


@asynccontextmanager
async def _closing(
    conversation: Conversation, store: EvidenceStore, result: RunResult, logger: logging.Logger
) -> Any:
    """Close the conversation however the run ends, and keep the evidence it hands back (and
    the figures of a conversation that measures its own, in the result)."""
    try:
        yield conversation
    finally:
        await asyncio.shield(_close_and_keep(conversation, store, result.run_id, logger))
        if isinstance(conversation, Measured):
            result.measures = dict(conversation.measures())


async def _close_and_keep(
    conversation: Conversation, store: EvidenceStore, run_id: str, logger: logging.Logger
) -> None:
    # Closing is best effort: the run's outcome is already known and must be recorded even
    # if the channel fails (or hangs) while ending the conversation.
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            evidence = await conversation.close()
    except Exception as exc:
        logger.error(
            "conversation did not close cleanly",
            extra={"run_id": run_id, "error": describe_error(exc)},
        )
        return
    try:
        await store.record_artifacts(run_id, evidence)
    except Exception as exc:  # the run's outcome must still be recorded
        logger.error(
            "conversation evidence not stored",
            extra={"run_id": run_id, "error": describe_error(exc)},
        )


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _arrival(message: StoredMessage) -> datetime:
    return message.arrived_at


def _domain(reply: Reply) -> str:
    return reply.sender.rpartition("@")[2].strip(">").lower()


def _cannot_resume(kind: str) -> str:
    """Why a run of a channel that cannot resume a conversation is interrupted."""
    because = CHANNEL_TYPES[kind].cannot_resume if kind in CHANNEL_TYPES else ""
    reason = "the monitor stopped and this channel cannot resume a conversation"
    return f"{reason}: {because}" if because else reason
