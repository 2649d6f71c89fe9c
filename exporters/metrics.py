"""Prometheus metrics: with :mod:`exporters.exposition`, which renders them for ``/metrics``,
the only modules that import ``prometheus_client``.

Names and labels are a contract with dashboards and alert rules (``docs/metrics.md``): prefix
``cxprobe_``, base units, counters end in ``_total``, and label values come only from bounded
config values (target, channel, scenario, location ids and enum values), never from addresses,
message ids or error text.

:class:`MonitorMetrics` registers everything on the :class:`CollectorRegistry` it is given (never
the global one), so tests and several monitors in one process do not share state. Series of
configured checks are created at zero up front (``declare_checks``): a counter that appears
only with its first increment hides that increment from ``rate()``/``increase()``. A reload
removes the series of checks that are no longer configured.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from probes import CHANNEL_TYPES
from scenarios.model import (
    AnswerVerdict,
    LanguageVerdict,
    Outcome,
    Period,
    RoutingResult,
    RunResult,
    SkipReason,
    Thresholds,
)

#: Time to first answer spans a chat bot (sub-second) to an email desk (a day).
RESPONSE_BUCKETS = (
    0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400,
)  # fmt: skip

#: A channel's own figures (a call's post-dial delay, time on hold, time to a person).
MEASURE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)

#: A slot normally starts within milliseconds; seconds mean an overloaded event loop and
#: minutes a process that was stopped or suspended.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

#: A rubric score is 0-100: tenths show where a team's runs fall.
RUBRIC_SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)

#: SLOs whose events a run can produce (``scenarios.verdicts.slo_events``).

_CHECK_LABELS = ("target", "channel", "scenario", "location")
_Series = tuple[MetricWrapperBase, tuple[str, ...]]
_M = TypeVar("_M", bound=MetricWrapperBase)


@dataclass(frozen=True)
class CheckSeries:
    """What the metrics need to know about one configured check."""

    check_id: str
    target: str
    channel: str
    scenario: str
    location: str
    thresholds: Thresholds
    objective: float  # share of good probes the target's SLA promises on this channel
    #: Whether the check's scenario has answer expectations / names a language (its quality
    #: series are declared at zero only then).
    judges_answers: bool = False
    judges_language: bool = False
    #: The ids of the scenario's rubric items (empty: no rubric, no rubric series).
    rubric_items: tuple[str, ...] = ()
    #: The target's contact mode and whether it is a competitor (``cxprobe_target_info``).
    contact_mode: str = "declared"
    competitor: bool = False

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.target, self.channel, self.scenario, self.location)

    def slos(self) -> list[tuple[str, float]]:
        """The SLOs this check can produce events for, with their thresholds (seconds)."""
        return self.thresholds.slos()


class MonitorMetrics:
    """Every metric cxprobe exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, version: str) -> None:
        self._declare_run_metrics(registry)
        self._declare_check_metrics(registry)
        self._declare_monitor_metrics(registry)
        self._declare_lease_metrics(registry)
        self._declare_courtesy_metrics(registry)
        self._declare_budget_metrics(registry)
        self._declare_quality_metrics(registry)
        self._declare_conversation_metrics(registry)
        self._declare_rubric_metrics(registry)
        self._declare_target_metrics(registry)
        self._declare_channel_measures(registry)
        self.build_info.labels(version, platform.python_version()).set(1)
        # Series that follow the configuration, and which configuration object owns the
        # series created by recording, so a reload can remove exactly what became stale.
        self._declared: set[_Series] = set()
        self._owned: dict[Hashable, set[_Series]] = {}
        self._budget_series: set[tuple[str, str, str]] = set()

    def _declare_run_metrics(self, registry: CollectorRegistry) -> None:
        """What the runs measured, and the runs under way."""
        check = _CHECK_LABELS
        self.runs = Counter(
            "cxprobe_runs_total",
            "Finished runs by business-hours period and outcome.",
            [*check, "period", "outcome"],
            registry=registry,
        )
        self.first_response = Histogram(
            "cxprobe_first_response_seconds",
            "Seconds from the contact being accepted to the first reply of each responder kind.",
            [*check, "period", "responder"],
            buckets=RESPONSE_BUCKETS,
            registry=registry,
        )
        self.routing = Counter(
            "cxprobe_routing_total",
            "Runs whose contact was sent, by routing verdict.",
            [*check, "result"],
            registry=registry,
        )
        self.slo_events = Counter(
            "cxprobe_slo_events_total",
            "SLO events (one per run and applicable SLO), good or bad.",
            ["target", "channel", "slo", "result"],
            registry=registry,
        )
        self.last_run_timestamp = Gauge(
            "cxprobe_last_run_timestamp_seconds",
            "Unix time the last run of the check finished.",
            check,
            registry=registry,
        )
        self.last_run_success = Gauge(
            "cxprobe_last_run_success",
            "1 if the last run of the check met its expectations, else 0.",
            check,
            registry=registry,
        )
        self.open_runs = Gauge(
            "cxprobe_open_runs",
            "Runs whose contact was sent and that are still waiting for answers.",
            ["channel"],
            registry=registry,
        )
        self.probes_in_flight = Gauge(
            "cxprobe_probes_in_flight",
            "Probes currently executing (holding a concurrency slot).",
            ["channel"],
            registry=registry,
        )

    def _declare_courtesy_metrics(self, registry: CollectorRegistry) -> None:
        """Slots skipped on purpose, maintenance windows and paused recipients (issue 12)."""
        pair = ["target", "channel"]
        self.runs_skipped = Counter(
            "cxprobe_runs_skipped_total",
            "Slots that sent no contact on purpose (recorded as skipped runs), by reason.",
            [*pair, "reason"],
            registry=registry,
        )
        self.maintenance_active = Gauge(
            "cxprobe_maintenance_active",
            "1 while a declared maintenance window covers the target's channel (the SLO and "
            "probe alerts are silent then).",
            pair,
            registry=registry,
        )
        self.opted_out = Gauge(
            "cxprobe_opted_out",
            "1 while contacts to the target's channel are paused by an opt-out or a permanent "
            "bounce (until cxprobe optout clear).",
            pair,
            registry=registry,
        )

    def _declare_quality_metrics(self, registry: CollectorRegistry) -> None:
        """What the human answers said, their language and resolution (issue 13)."""
        check = _CHECK_LABELS
        self.answer_verdicts = Counter(
            "cxprobe_answer_verdicts_total",
            "Judged runs by what their human answers said against the scenario's expectations.",
            [*check, "verdict"],
            registry=registry,
        )
        self.language_mismatches = Counter(
            "cxprobe_language_mismatch_total",
            "Runs whose human answers were in another language than the scenario's.",
            check,
            registry=registry,
        )
        self.resolved = Counter(
            "cxprobe_resolved_total",
            "Judged runs by whether an answer before any follow-up resolved them (FCR proxy).",
            [*check, "resolved"],
            registry=registry,
        )

    def _declare_rubric_metrics(self, registry: CollectorRegistry) -> None:
        """The mystery-shopping rubric: each scored run's score (0-100) and each item's result.
        ``item`` is a rubric item id from the configuration (bounded)."""
        self.rubric_score = Histogram(
            "cxprobe_rubric_score",
            "Mystery-shopping rubric score (0-100 points) of each scored run's human answers.",
            _CHECK_LABELS,
            buckets=RUBRIC_SCORE_BUCKETS,
            registry=registry,
        )
        self.rubric_items = Counter(
            "cxprobe_rubric_items_total",
            "Scored runs by rubric item and whether it was met (not applicable: not counted).",
            [*_CHECK_LABELS, "item", "result"],
            registry=registry,
        )

    def _declare_target_metrics(self, registry: CollectorRegistry) -> None:
        self.target_info = Gauge(
            "cxprobe_target_info",
            "Configured targets (value 1): their contact mode and whether they are competitors.",
            ["target", "contact_mode", "competitor"],
            registry=registry,
        )

    def _declare_conversation_metrics(self, registry: CollectorRegistry) -> None:
        """Scripted conversations: each message the probe sent and how fast it was answered.
        ``turn`` is the message's number (0: the opening), bounded by the scenario's
        ``max_turns``."""
        turn = [*_CHECK_LABELS, "turn"]
        self.turn_response = Histogram(
            "cxprobe_turn_response_seconds",
            "Seconds from a message of a scripted conversation to the next reply (any responder).",
            turn,
            buckets=RESPONSE_BUCKETS,
            registry=registry,
        )
        self.turn_human_response = Histogram(
            "cxprobe_turn_human_response_seconds",
            "Seconds from a message of a scripted conversation to the next human reply.",
            turn,
            buckets=RESPONSE_BUCKETS,
            registry=registry,
        )
        self.turns_sent = Counter(
            "cxprobe_turns_sent_total",
            "Conversation turns the probe sent answering an agent's question (not chasers).",
            _CHECK_LABELS,
            registry=registry,
        )

    def _declare_channel_measures(self, registry: CollectorRegistry) -> None:
        """Each channel type's own figures (``ChannelType.measures``), one histogram each:
        ``cxprobe_<kind>_<name>_seconds``, e.g. ``cxprobe_phone_time_on_hold_seconds``."""
        self.channel_measures: dict[tuple[str, str], Histogram] = {
            (kind, name): Histogram(
                f"cxprobe_{kind}_{name}_seconds",
                measure.help,
                [*_CHECK_LABELS, "period"],
                buckets=MEASURE_BUCKETS,
                registry=registry,
            )
            for kind, channel_type in CHANNEL_TYPES.items()
            for name, measure in channel_type.measures.items()
        }

    def _declare_check_metrics(self, registry: CollectorRegistry) -> None:
        """The configured checks and their thresholds (for dashboards and rules)."""
        check = _CHECK_LABELS
        self.check_info = Gauge(
            "cxprobe_check_info",
            "Configured checks (value 1); joins a check id to its series labels.",
            [*check, "check"],
            registry=registry,
        )
        self.slo_threshold = Gauge(
            "cxprobe_slo_threshold_seconds",
            "Configured time limits of a check: first_response, human_response, "
            "after_hours_response and deadline.",
            [*check, "slo"],
            registry=registry,
        )
        self.slo_objective = Gauge(
            "cxprobe_slo_objective_ratio",
            "Share of good SLO events the target promises on the channel.",
            ["target", "channel", "slo"],
            registry=registry,
        )

    def _declare_monitor_metrics(self, registry: CollectorRegistry) -> None:
        """The monitor's own health: scheduling, configuration, build, refused input."""
        self.scheduler_lag = Histogram(
            "cxprobe_scheduler_lag_seconds",
            "Seconds between a slot's scheduled time (plus jitter) and the run's start.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.reload_successful = Gauge(
            "cxprobe_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded, else 0.",
            registry=registry,
        )
        self.reload_timestamp = Gauge(
            "cxprobe_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.",
            registry=registry,
        )
        self.build_info = Gauge(
            "cxprobe_build_info",
            "cxprobe version and Python version (value 1).",
            ["version", "python"],
            registry=registry,
        )
        self.unmatched_replies = Counter(
            "cxprobe_unmatched_replies_total",
            "Replies no open run claimed (late replies to closed runs, or strangers).",
            ["channel"],
            registry=registry,
        )
        self.rejected_webhooks = Counter(
            "cxprobe_webhooks_rejected_total",
            "Provider webhook requests refused: a missing or wrong signature (403), or a media "
            "stream for a call this monitor did not place (404).",
            ["channel"],
            registry=registry,
        )
        self.late_replies = Counter(
            "cxprobe_late_replies_total",
            "Replies to runs that had already been judged (after the deadline).",
            ["target", "channel"],
            registry=registry,
        )
        self.start_failures = Counter(
            "cxprobe_run_start_failures_total",
            "Scheduled runs that could not start (the store failed while claiming the slot).",
            ["target", "channel"],
            registry=registry,
        )

    def _declare_lease_metrics(self, registry: CollectorRegistry) -> None:
        """Leases on open runs (several monitors sharing a store, cxprobe.store.leases)."""
        location = ["location"]
        self.leases_held = Gauge(
            "cxprobe_leases_held",
            "Open runs whose lease this monitor process holds (renewed every sixth of "
            "monitor.lease_timeout).",
            location,
            registry=registry,
        )
        self.runs_taken_over = Counter(
            "cxprobe_runs_taken_over_total",
            "Open runs this monitor took over: their monitor stopped renewing its lease, or "
            "was an earlier process of this monitor.",
            location,
            registry=registry,
        )
        self.leases_lost = Counter(
            "cxprobe_leases_lost_total",
            "Runs this monitor was driving whose lease another monitor took over (this one "
            "was paused or cut off from the store for longer than the lease timeout).",
            location,
            registry=registry,
        )
        self.lease_renewal_failures = Counter(
            "cxprobe_lease_renewal_failures_total",
            "Lease renewals that failed (the store could not be reached or refused).",
            location,
            registry=registry,
        )

    def _declare_budget_metrics(self, registry: CollectorRegistry) -> None:
        """Contact quotas and money budgets (docs/metrics.md "Courtesy and cost")."""
        pair = ["target", "channel"]
        budget = ["budget", "window", "currency"]
        self.contact_quota_used = Gauge(
            "cxprobe_contact_quota_used",
            "Contacts to the target on the channel counted against its hourly quota at the "
            "last claim (sent in the last hour or in flight, from any monitor).",
            pair,
            registry=registry,
        )
        self.contact_quota_limit = Gauge(
            "cxprobe_contact_quota_limit",
            "Contacts allowed per hour to the target on the channel (max_contacts_per_hour).",
            pair,
            registry=registry,
        )
        self.budget_spent = Gauge(
            "cxprobe_budget_spent",
            "Money spent in the budget's current day or month window (actual provider prices "
            "where known, else estimates), in the budget's currency, as of the last claim.",
            budget,
            registry=registry,
        )
        self.budget_limit = Gauge(
            "cxprobe_budget_limit",
            "The budget's limit for the window, in its currency.",
            budget,
            registry=registry,
        )
        self.budget_left = Gauge(
            "cxprobe_budget_left",
            "What is left of the budget in the current window (limit - spent, at least 0).",
            budget,
            registry=registry,
        )

    # -- configuration ---------------------------------------------------------------------

    def declare_checks(self, checks: Sequence[CheckSeries]) -> None:
        """Create the series of ``checks`` at zero and drop those of checks no longer listed.

        Call at start and after every successful reload, with the full list of checks.
        """
        wanted: dict[_Series, float | None] = {}  # gauges get a value; counters stay as they are

        def want(metric: MetricWrapperBase, labels: tuple[str, ...], value: float | None) -> None:
            wanted[(metric, tuple(str(label) for label in labels))] = value

        owners: set[Hashable] = set()
        for check in checks:
            owners |= {("check", *check.key), ("pair", check.target, check.channel)}
            owners.add(("channel", check.channel))
            want(self.check_info, (*check.key, check.check_id), 1)
            competitor = "true" if check.competitor else "false"
            want(self.target_info, (check.target, check.contact_mode, competitor), 1)
            for period in Period:
                for outcome in Outcome:
                    want(self.runs, (*check.key, period, outcome), None)
            for routing in RoutingResult:
                want(self.routing, (*check.key, routing), None)
            if check.judges_answers:
                for verdict in AnswerVerdict:
                    want(self.answer_verdicts, (*check.key, verdict), None)
                for resolved in ("true", "false"):
                    want(self.resolved, (*check.key, resolved), None)
            if check.judges_language:
                want(self.language_mismatches, check.key, None)
            if check.rubric_items:
                want(self.rubric_score, check.key, None)
                for item in check.rubric_items:
                    for met in ("met", "missed"):
                        want(self.rubric_items, (*check.key, item, met), None)
            for name, limit in [*check.slos(), ("deadline", check.thresholds.deadline)]:
                want(self.slo_threshold, (*check.key, name), limit)
            for name, _ in check.slos():
                want(self.slo_objective, (check.target, check.channel, name), check.objective)
                for result in ("good", "bad"):
                    want(self.slo_events, (check.target, check.channel, name, result), None)
            want(self.late_replies, (check.target, check.channel), None)
            for reason in SkipReason:
                want(self.runs_skipped, (check.target, check.channel, reason), None)
            for courtesy_gauge in (self.maintenance_active, self.opted_out):
                want(courtesy_gauge, (check.target, check.channel), None)
            want(self.start_failures, (check.target, check.channel), None)
            for per_channel in (
                self.open_runs,
                self.probes_in_flight,
                self.unmatched_replies,
                self.rejected_webhooks,
            ):
                want(per_channel, (check.channel,), None)

        for metric, labels in self._declared - wanted.keys():
            metric.remove(*labels)
        for owner in self._owned.keys() - owners:
            for metric, labels in self._owned.pop(owner):
                metric.remove(*labels)  # a no-op when it went with the declared ones
        for (metric, labels), value in wanted.items():
            child = metric.labels(*labels)
            if value is not None and isinstance(child, Gauge):
                child.set(value)
        self._declared = set(wanted)

    def config_reloaded(self, success: bool) -> None:
        """Record the outcome of loading the configuration (at start or on reload)."""
        self.reload_successful.set(1 if success else 0)
        if success:
            self.reload_timestamp.set(time.time())

    # -- runs ------------------------------------------------------------------------------

    def record_run(self, result: RunResult, slo_events: Sequence[tuple[str, bool]]) -> None:
        """Count a finished run: outcome, time to first answer per responder kind, routing,
        the SLO events it produced (``(slo, good)`` pairs) and the check's last-run gauges."""
        if result.outcome is None:
            raise ValueError(f"run {result.run_id} is still open; record it once it is judged")
        key = (result.target, result.channel, result.scenario, result.location)
        owner = ("check", *key)
        self._child(owner, self.runs, *key, result.period, result.outcome).inc()
        for responder, seconds in result.first_by_responder().items():
            self.observe_first_response(result, responder, seconds)
        # Routing says something only about contacts that reached the service.
        if result.sent_at is not None:
            self._child(owner, self.routing, *key, result.routing).inc()
        pair = ("pair", result.target, result.channel)
        for slo, good in slo_events:
            verdict = "good" if good else "bad"
            self._child(pair, self.slo_events, result.target, result.channel, slo, verdict).inc()
        self.record_answer_quality(result)
        for name, seconds in result.measures.items():
            histogram = self.channel_measures.get((result.channel, name))
            if histogram is not None:
                self._child(owner, histogram, *key, result.period).observe(seconds)
        finished = result.finished_at.timestamp() if result.finished_at else time.time()
        self._child(owner, self.last_run_timestamp, *key).set(finished)
        if result.outcome is not Outcome.SKIPPED:  # a skipped slot says nothing of the service
            self._child(owner, self.last_run_success, *key).set(
                1 if result.outcome is Outcome.MET else 0
            )

    def record_answer_quality(self, result: RunResult) -> None:
        """Count the run's answer verdict, resolution and language mismatch, where judged."""
        key = (result.target, result.channel, result.scenario, result.location)
        owner = ("check", *key)
        if result.answer is not None:
            self._child(owner, self.answer_verdicts, *key, result.answer).inc()
        if result.resolved is not None:
            resolved = "true" if result.resolved else "false"
            self._child(owner, self.resolved, *key, resolved).inc()
        if result.language is LanguageVerdict.MISMATCH:
            self._child(owner, self.language_mismatches, *key).inc()
        if result.rubric_score is not None:
            self._child(owner, self.rubric_score, *key).observe(result.rubric_score)
            for item in result.rubric_items:
                if item.met is not None:
                    met = "met" if item.met else "missed"
                    self._child(owner, self.rubric_items, *key, item.item, met).inc()

    def record_conversation(self, result: RunResult) -> None:
        """A finished scripted run's turns: how many were sent, and each one's answer times."""
        if not result.turns:
            return
        key = (result.target, result.channel, result.scenario, result.location)
        owner = ("check", *key)
        self._child(owner, self.turns_sent, *key).inc(len(result.turns) - 1)
        for turn in result.turns:
            number = str(turn.index)
            if turn.next_reply_seconds is not None:
                histogram = self._child(owner, self.turn_response, *key, number)
                histogram.observe(turn.next_reply_seconds)
            if turn.next_human_seconds is not None:
                histogram = self._child(owner, self.turn_human_response, *key, number)
                histogram.observe(turn.next_human_seconds)

    def observe_first_response(self, result: RunResult, responder: str, seconds: float) -> None:
        """The run's first reply of ``responder``'s kind: at judgement, or later if it was late."""
        key = (result.target, result.channel, result.scenario, result.location)
        histogram = self._child(
            ("check", *key), self.first_response, *key, result.period, responder
        )
        histogram.observe(seconds)

    def record_late_reply(self, target: str, channel: str) -> None:
        """A reply arrived for a run that had already been judged."""
        self._child(("pair", target, channel), self.late_replies, target, channel).inc()

    def record_skipped(self, target: str, channel: str, reason: SkipReason) -> None:
        """A slot sent no contact on purpose (its skipped run is counted by record_run)."""
        pair = ("pair", target, channel)
        self._child(pair, self.runs_skipped, target, channel, reason).inc()

    def set_maintenance_active(self, target: str, channel: str, active: bool) -> None:
        """Whether a declared maintenance window covers the target's channel now."""
        pair = ("pair", target, channel)
        self._child(pair, self.maintenance_active, target, channel).set(1 if active else 0)

    def set_opted_out(self, target: str, channel: str, paused: bool) -> None:
        """Whether an opt-out (or a permanent bounce) pauses contacts to the target's channel."""
        pair = ("pair", target, channel)
        self._child(pair, self.opted_out, target, channel).set(1 if paused else 0)

    def record_start_failure(self, target: str, channel: str) -> None:
        """A scheduled run could not start; its slot has no run to show for it."""
        self._child(("pair", target, channel), self.start_failures, target, channel).inc()

    def record_unmatched(self, channel: str) -> None:
        """A reply arrived that no run claimed."""
        self._child(("channel", channel), self.unmatched_replies, channel).inc()

    def record_rejected_webhook(self, channel: str) -> None:
        """A webhook request whose signature did not verify (refused with 403)."""
        self._child(("channel", channel), self.rejected_webhooks, channel).inc()

    def set_open_runs(self, channel: str, count: int) -> None:
        """How many runs on ``channel`` are waiting for answers now."""
        self._child(("channel", channel), self.open_runs, channel).set(count)

    @contextmanager
    def in_flight(self, channel: str) -> Iterator[None]:
        """Counts a probe as executing on ``channel`` for the duration of the block."""
        gauge = self._child(("channel", channel), self.probes_in_flight, channel)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def observe_scheduler_lag(self, seconds: float) -> None:
        """How late a slot started compared with its scheduled time."""
        # A slot started early (clock step, coarse timer) is on time, not negative lag: a
        # negative observation would corrupt the histogram's _sum.
        self.scheduler_lag.observe(max(0.0, seconds))

    def set_contact_quota(self, target: str, channel: str, counted: int, allowed: int) -> None:
        """The hourly contact quota of a target on a channel, as the last claim found it."""
        pair = ("pair", target, channel)
        self._child(pair, self.contact_quota_used, target, channel).set(counted)
        self._child(pair, self.contact_quota_limit, target, channel).set(allowed)

    def show_budgets(self, windows: Sequence[tuple[str, str, str, float, float]]) -> None:
        """Every configured budget window as ``(budget, window, currency, spent, limit)``;
        series of budgets no longer configured are removed (after a reload)."""
        wanted = {(budget, window, currency) for budget, window, currency, _, _ in windows}
        for gauge in (self.budget_spent, self.budget_limit, self.budget_left):
            for labels in self._budget_series - wanted:
                gauge.remove(*labels)
        self._budget_series = wanted
        for budget, window, currency, spent, limit in windows:
            self.set_budget_spend(budget, window, currency, spent, limit)

    def set_budget_spend(
        self, budget: str, window: str, currency: str, spent: float, limit: float
    ) -> None:
        """A money budget's ``window`` (daily, monthly): spent, limit and what is left (as of
        the last claim)."""
        labels = (budget, window, currency)
        self.budget_spent.labels(*labels).set(spent)
        self.budget_limit.labels(*labels).set(limit)
        self.budget_left.labels(*labels).set(max(0.0, limit - spent))

    def set_leases_held(self, location: str, count: int) -> None:
        """How many open runs this process holds the lease of, as its last renewal found."""
        self.leases_held.labels(location).set(count)

    def record_taken_over(self, location: str, count: int) -> None:
        """``count`` open runs were just taken over."""
        self.runs_taken_over.labels(location).inc(count)

    def record_lease_lost(self, location: str) -> None:
        """A run this process drove is leased to another monitor now."""
        self.leases_lost.labels(location).inc()

    def record_lease_renewal_failure(self, location: str) -> None:
        """A renewal of this process's leases failed."""
        self.lease_renewal_failures.labels(location).inc()

    # -- internals -------------------------------------------------------------------------

    def _child(self, owner: Hashable, metric: _M, *labels: str) -> _M:
        """``metric.labels(*labels)``, remembered as owned by ``owner`` for removal."""
        self._owned.setdefault(owner, set()).add((metric, tuple(str(v) for v in labels)))
        return metric.labels(*labels)
