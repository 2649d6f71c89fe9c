"""cxprobe / Overview: SLA compliance, time to first answer, routing and after-hours
availability of every probed target and channel, and one scenario compared across channels."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as model

from probes.base import Responder

from .common import (
    AFTER_HOURS_SLO,
    BUDGET_STEPS,
    COMPLIANCE_STEPS,
    OVERVIEW_UID,
    SPARSE_INTERVAL,
    Panel,
    after_hours_bot_share,
    answer_quantile,
    bar_gauge,
    dashboard,
    data_table,
    error_budget_left,
    increase,
    instant,
    legend_of,
    objective,
    quantile_table,
    query,
    routed_correctly_share,
    routing_verdicts,
    scenario_variable,
    slo_compliance,
    table_query,
    targets_channels_locations,
    time_series,
)

#: The selected targets and channels (multi-value variables).
PAIR = 'target=~"$target", channel=~"$channel"'
#: … at the selected locations: the labels of a check but its scenario.
CHECK = f'{PAIR}, location=~"$location"'
#: … running the one scenario compared across channels.
SAME_SCENARIO = f'{CHECK}, scenario="$scenario"'
BY_PAIR_SLO = "target, channel, slo"


def overview() -> builders.Dashboard:
    return dashboard(
        OVERVIEW_UID,
        "cxprobe / Overview",
        "SLA compliance, time to first answer, routing and after-hours availability of every "
        "probed target and channel.",
        time_from="now-7d",
        variables=[
            *targets_channels_locations(),
            scenario_variable("The scenario the cross-channel comparison shows."),
        ],
        rows=[
            ("SLA compliance over the dashboard range", _sla_compliance()),
            ("Time to first answer", _time_to_first_answer()),
            ("Routing and after hours", _routing_and_after_hours()),
            ("Same scenario across channels: $scenario", _same_scenario_across_channels()),
        ],
    )


def _share_per_pair(title: str, description: str, expr: str, *, width: int = 12) -> Panel:
    """A share (0 to 1) per target and channel, each bar opening that target's dashboard."""
    return bar_gauge(
        title,
        description,
        [instant(expr, legend_of("target, channel"))],
        unit="percentunit",
        width=width,
        steps=COMPLIANCE_STEPS,
        ratio_scale=True,
        link_labels=True,
    )


def _sla_compliance() -> list[Panel]:
    return [
        data_table(
            "SLA compliance by target and channel",
            "Share of good SLO events over the dashboard range (the SLI the alert rules "
            "read), next to the share the SLA promises. A run produces at most one event "
            "per applicable SLO; human-answer SLOs count business hours only. Empty when "
            "a target and channel had no events in the range.",
            [
                table_query(slo_compliance(PAIR, "$__range", BY_PAIR_SLO)),
                table_query(objective(PAIR, BY_PAIR_SLO)),
                table_query(increase("cxprobe_slo_events_total", PAIR, "$__range", BY_PAIR_SLO)),
            ],
            unit="percentunit",
            width=14,
            labels=BY_PAIR_SLO.split(", "),
            values={"Value #A": "Compliance", "Value #B": "Objective", "Value #C": "Events"},
            link_target=True,
        ).override_by_name("Value #C", [model.DynamicConfigValue("unit", "short")]),
        bar_gauge(
            "Error budget left",
            "1 - (bad share / allowed bad share) over the dashboard range, per target, "
            "channel and SLO: 100% untouched, 0 spent, below 0 overspent. The allowed bad "
            "share is 1 - cxprobe_slo_objective_ratio.",
            [
                instant(
                    error_budget_left(PAIR, "$__range", BY_PAIR_SLO),
                    legend_of(BY_PAIR_SLO),
                )
            ],
            unit="percentunit",
            width=10,
            steps=BUDGET_STEPS,
            link_labels=True,
        ),
    ]


def _time_to_first_answer() -> list[Panel]:
    return [
        quantile_table(
            "Time to first answer over the range (p50 / p90)",
            "Quantiles of the time from the channel accepting the contact to the first "
            "reply of each responder kind (bot, auto-reply, IVR, human), over the "
            "dashboard range. Runs that never got that kind of reply are not in it: read "
            "it next to the compliance table.",
            CHECK,
            "target, channel, responder",
            link_target=True,
        ),
        time_series(
            "Time to first answer by responder (p90)",
            f"p90 per responder kind across the selected targets and channels, in windows "
            f"of at least {SPARSE_INTERVAL} (probes are sparse).",
            [query(answer_quantile(0.9, CHECK, "$__rate_interval", "responder"), "{{responder}}")],
            unit="s",
            min_interval=SPARSE_INTERVAL,
        ),
    ]


def _routing_and_after_hours() -> list[Panel]:
    pair = "target, channel"
    routed_share = routed_correctly_share(CHECK, "$__range", pair)
    bot_share = after_hours_bot_share(CHECK, "$__range", pair)
    return [
        _share_per_pair(
            "Correctly routed",
            "Of the sent contacts some team answered, the share the team the scenario "
            "expects answered, over the dashboard range. Contacts no team recognisably "
            "answered (unknown, e.g. bot-only after hours) are left out: see Routing "
            "verdicts.",
            routed_share,
            width=8,
        ),
        routing_verdicts(
            "Sent contacts per routing verdict, stacked, across the selected targets and channels.",
            CHECK,
        ),
        _share_per_pair(
            "After-hours answer within the limit",
            "Share of after-hours and holiday probes that got an accepted answer (bot, "
            "auto-reply or closed notice, as the scenario defines it) within the "
            f"{AFTER_HOURS_SLO} limit, over the dashboard range.",
            slo_compliance(f'{PAIR}, slo="{AFTER_HOURS_SLO}"', "$__range", "target, channel"),
        ),
        _share_per_pair(
            "After hours: answered by a bot",
            "Share of after-hours and holiday runs (that the probe could perform) in which "
            "a bot answered at any time, over the dashboard range.",
            bot_share,
        ),
    ]


def _same_scenario_across_channels() -> list[Panel]:
    human = f'{SAME_SCENARIO}, responder="{Responder.HUMAN}"'
    runs = increase("cxprobe_runs_total", SAME_SCENARIO, "$__range", "channel, outcome")
    return [
        bar_gauge(
            "Time to first human answer per channel",
            "Median and p90 time to the first human answer to the same customer script "
            "on each channel, over the dashboard range (selected targets together).",
            [
                instant(answer_quantile(0.5, human, "$__range", "channel"), "{{channel}} · median"),
                instant(answer_quantile(0.9, human, "$__range", "channel"), "{{channel}} · p90"),
            ],
            unit="s",
            width=8,
        ),
        data_table(
            "Median time to first answer by channel and responder",
            "Median time to the first reply of each responder kind, per channel, for the "
            "same scenario over the dashboard range: where the bot, the auto-reply and the "
            "people answer fastest.",
            [table_query(answer_quantile(0.5, SAME_SCENARIO, "$__range", "channel, responder"))],
            unit="s",
            width=8,
            matrix=("channel", "responder"),
        ),
        data_table(
            "Runs by channel and outcome",
            "Finished runs of the scenario per channel and outcome over the dashboard "
            "range (met, breached, failed = refused contact, error = the probe could not "
            "run, interrupted).",
            [table_query(f"{runs} > 0")],
            unit="short",
            width=8,
            matrix=("channel", "outcome"),
        ),
    ]
