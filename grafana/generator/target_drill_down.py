"""cxprobe / Target: one target in detail, the dashboard alerts link to with ``var-target`` and
``var-channel``."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as model

from scenarios.model import Period

from .common import (
    ANY_IS_A_WARNING,
    BUDGET_STEPS,
    COMPLIANCE_STEPS,
    SLOS,
    SPARSE_INTERVAL,
    TARGET_UID,
    Panel,
    answer_quantile,
    bar_gauge,
    checks_never_run,
    count_bars,
    dashboard,
    data_table,
    error_budget_left,
    increase,
    instant,
    label_variable,
    legend_of,
    listed,
    objective,
    one_of,
    quantile_table,
    query,
    routing_verdicts,
    runs_by_outcome,
    single_stat,
    slo_compliance,
    status_stat,
    table_query,
    time_series,
)
from .measures import measure_rows

#: The target (one) on the selected channels.
PAIR = 'target="$target", channel=~"$channel"'
CHECK_LABELS = "target, channel, scenario, location"
#: The target's selected checks.
CHECK = f'{PAIR}, scenario=~"$scenario", location=~"$location"'
CHECK_LEGEND = legend_of("channel, scenario, location")


def target_drill_down() -> builders.Dashboard:
    return dashboard(
        TARGET_UID,
        "cxprobe / Target",
        "One target in detail: its checks' last runs, outcomes, time to first answer by "
        "responder and period against the configured limits, routing, late and unmatched "
        "replies, and the channels' own measures (a call's audio). Alerts link here with "
        "var-target and var-channel.",
        time_from="now-24h",
        variables=[
            label_variable(
                "target",
                "label_values(cxprobe_check_info, target)",
                "The target (config key).",
                multi=False,
            ),
            label_variable(
                "channel",
                'label_values(cxprobe_check_info{target="$target"}, channel)',
                "Channel kinds probed for this target.",
            ),
            label_variable(
                "scenario",
                'label_values(cxprobe_check_info{target="$target", channel=~"$channel"}, scenario)',
                "Scenarios the target's checks run.",
            ),
            label_variable(
                "location",
                'label_values(cxprobe_check_info{target="$target"}, location)',
                "Where the monitors probe from.",
            ),
        ],
        rows=[
            ("Last runs", _last_runs()),
            ("Outcomes and SLOs", _outcomes_and_slos()),
            ("Time to first answer", _time_to_first_answer()),
            ("Routing", _routing()),
            ("Late and unmatched replies", _late_and_unmatched_replies()),
            *measure_rows(CHECK),
        ],
    )


def _last_runs() -> list[Panel]:
    last_success = (
        f"cxprobe_last_run_timestamp_seconds{{{CHECK}}} and on ({CHECK_LABELS}) "
        f"(cxprobe_last_run_success{{{CHECK}}} == 1)"
    )
    return [
        status_stat(
            "Last run met its expectations",
            "Whether each check's most recent finished run was met (cxprobe_last_run_success).",
            f"cxprobe_last_run_success{{{CHECK}}}",
            CHECK_LEGEND,
            states=("not met", "met"),
            width=6,
        ),
        single_stat(
            "Time since last run",
            "How long ago each check's last run finished (was judged). Stale checks are "
            "not running: look at Monitor health.",
            [instant(f"time() - cxprobe_last_run_timestamp_seconds{{{CHECK}}}", CHECK_LEGEND)],
            unit="s",
        ),
        single_stat(
            "Time since last success",
            "How long ago the last run that met its expectations finished, looking back "
            "over the dashboard range; 'none in range' when no run met them.",
            [
                instant(
                    f"time() - max_over_time(({last_success})[$__range:$__interval])",
                    CHECK_LEGEND,
                )
            ],
            unit="s",
            no_value="none in range",
        ),
        single_stat(
            "Checks without a finished run",
            "Configured checks of this target that have not finished a single run since "
            "their monitor started.",
            [instant(checks_never_run(CHECK, CHECK_LABELS), "checks")],
            unit="short",
            steps=ANY_IS_A_WARNING,
        ),
    ]


def _outcomes_and_slos() -> list[Panel]:
    by_slo = "target, channel, slo"
    return [
        runs_by_outcome(
            "Runs by outcome",
            "Finished runs per outcome and business-hours period, stacked.",
            CHECK,
            "outcome, period",
            width=12,
            min_interval=SPARSE_INTERVAL,
        ),
        single_stat(
            "SLO compliance over the range",
            "Share of good SLO events over the dashboard range, per channel and SLO.",
            [instant(slo_compliance(PAIR, "$__range", by_slo), "{{channel}} · {{slo}}")],
            unit="percentunit",
            steps=COMPLIANCE_STEPS,
            height=8,
        ),
        single_stat(
            "Error budget left",
            "1 - (bad share / allowed bad share) over the dashboard range: 100% untouched, "
            "below 0 overspent.",
            [instant(error_budget_left(PAIR, "$__range", by_slo), "{{channel}} · {{slo}}")],
            unit="percentunit",
            steps=BUDGET_STEPS,
            height=8,
        ),
    ]


def _answers_against_limits() -> Panel:
    """p90 per responder and period, with the limits the SLOs set dashed over it."""
    by = "channel, responder, period"
    # Thresholds of every SLO, but not the run's deadline (also a threshold, not a limit).
    limits = f'cxprobe_slo_threshold_seconds{{{CHECK}, slo=~"{one_of(SLOS)}"}}'
    return time_series(
        "Time to first answer by responder and period (p90)",
        f"p90 of the time to the first reply of each responder kind, per channel and period "
        f"({listed(Period)}), in windows of at least {SPARSE_INTERVAL}; dashed: "
        f"the configured limits (cxprobe_slo_threshold_seconds).",
        [
            query(
                answer_quantile(0.9, CHECK, "$__rate_interval", by, drop_nan=False),
                legend_of(by),
            ),
            query(f"max by (channel, slo) ({limits})", "limit · {{channel}} · {{slo}}"),
        ],
        unit="s",
        width=16,
        height=9,
        min_interval=SPARSE_INTERVAL,
    ).override_by_regexp(
        "^limit .*",
        [
            model.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
            model.DynamicConfigValue("custom.showPoints", "never"),
        ],
    )


def _time_to_first_answer() -> list[Panel]:
    return [
        _answers_against_limits(),
        quantile_table(
            "Over the range (p50 / p90)",
            "Quantiles of time to first answer per channel, responder kind and period over "
            "the dashboard range.",
            CHECK,
            "channel, responder, period",
            width=8,
            height=9,
        ),
        data_table(
            "SLO thresholds",
            f"The checks' configured time limits ({listed(SLOS)}) "
            "and how long a run waits for answers (deadline).",
            [table_query(f"cxprobe_slo_threshold_seconds{{{CHECK}}}")],
            unit="s",
            height=7,
            labels=["channel", "scenario", "location", "slo"],
            values={"Value": "Seconds"},
        ),
        data_table(
            "SLA objectives",
            "The share of good events the target's SLA promises per channel and SLO.",
            [table_query(objective(PAIR, "channel, slo"))],
            unit="percentunit",
            height=7,
            labels=["channel", "slo"],
            values={"Value": "Objective"},
        ),
    ]


def _routing() -> list[Panel]:
    by = "channel, scenario, result"
    return [
        routing_verdicts(
            "Sent contacts per routing verdict: correct (the expected team answered), wrong "
            "(another team), unknown (no team recognised, or no expectation).",
            CHECK,
        ),
        bar_gauge(
            "Routing over the range",
            "Sent contacts per channel, scenario and routing verdict over the dashboard range.",
            [instant(increase("cxprobe_routing_total", CHECK, "$__range", by), legend_of(by))],
            unit="short",
            width=8,
        ),
    ]


def _late_and_unmatched_replies() -> list[Panel]:
    on_channel = 'channel=~"$channel"'
    return [
        count_bars(
            "Late replies",
            "Replies that arrived after their run was judged (after its deadline); they "
            "are kept as evidence and count in time to first answer.",
            "cxprobe_late_replies_total",
            PAIR,
            "channel",
            width=8,
            min_interval=SPARSE_INTERVAL,
        ),
        single_stat(
            "Late replies over the range",
            "Late replies per channel over the dashboard range.",
            [
                instant(
                    increase("cxprobe_late_replies_total", PAIR, "$__range", "channel"),
                    "{{channel}}",
                )
            ],
            unit="short",
            width=4,
            height=8,
            steps=ANY_IS_A_WARNING,
        ),
        count_bars(
            "Unmatched replies on the channel",
            "Replies no run claimed (strangers, replies to runs of a previous config), per "
            "channel. Not per target: an unmatched reply has no target.",
            "cxprobe_unmatched_replies_total",
            on_channel,
            "channel",
            width=8,
            min_interval=SPARSE_INTERVAL,
        ),
        single_stat(
            "Open runs on the channel",
            "Runs whose contact was sent and that wait for answers, per channel (all "
            "targets): slow channels keep runs open for hours.",
            [instant(f"sum by (channel) (cxprobe_open_runs{{{on_channel}}})", "{{channel}}")],
            unit="short",
            width=4,
            height=8,
        ),
    ]
