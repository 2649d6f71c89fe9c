"""cxprobe / Locations: the same targets and channels probed from several locations, side by
side, and which locations are reporting at all.

Every figure is grouped by ``location`` (``monitor.location``, a label of every run metric), so
a location whose customers get slower or worse-routed answers stands out next to the others.
Several monitors of one location (a pair sharing the work) add up into the location's figures.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as model

from probes.base import Responder
from scenarios.model import Outcome

from .common import (
    COMPLIANCE_STEPS,
    LOCATIONS_UID,
    STATUS_STEPS,
    Panel,
    after_hours_bot_share,
    answer_quantile,
    bar_gauge,
    dashboard,
    data_table,
    increase,
    instant,
    legend_of,
    one_of,
    quantile_table,
    ratio,
    routed_correctly_share,
    single_stat,
    table_query,
    targets_channels_locations,
)

#: The selected targets, channels and locations (multi-value variables).
CHECK = 'target=~"$target", channel=~"$channel", location=~"$location"'
#: The selected locations, whatever they probe.
AT_LOCATION = 'location=~"$location"'
#: A row per target, channel and location: the comparison's unit.
BY_PAIR_LOCATION = "target, channel, location"
JUDGED = one_of([Outcome.MET, Outcome.BREACHED, Outcome.FAILED])


def locations() -> builders.Dashboard:
    return dashboard(
        LOCATIONS_UID,
        "cxprobe / Locations",
        "The same targets and channels probed from several locations, side by side: share of "
        "runs met, time to first answer, time to a human, routing and after-hours bots per "
        "location; and which locations are reporting at all.",
        time_from="now-7d",
        variables=targets_channels_locations(),
        rows=[
            ("Locations reporting", _reporting()),
            ("Each target and channel per location", _side_by_side()),
        ],
    )


def monitors_up(window: str) -> str:
    """Monitors per location whose series are current (Prometheus marks a target's series
    stale at its first failed scrape, so this is the monitors ``up`` now), 0 for a location
    whose monitors exported checks earlier in ``window`` but none is up now."""
    checks = f"cxprobe_check_info{{{AT_LOCATION}}}"
    current = f"count by (location) (max by (instance, location) ({checks}))"
    return f"{current} or (0 * {monitors_seen(window)})"


def monitors_seen(window: str) -> str:
    """Monitors per location that exported their checks at some time in ``window``."""
    seen = f"max_over_time(cxprobe_check_info{{{AT_LOCATION}}}[{window}])"
    return f"count by (location) (max by (instance, location) ({seen}))"


def _reporting() -> list[Panel]:
    last_run = f"max_over_time(cxprobe_last_run_timestamp_seconds{{{AT_LOCATION}}}[$__range])"
    return [
        single_stat(
            "Monitors up",
            "Monitors per location that Prometheus scrapes now (their series are current). "
            "0: the location's monitors exported checks earlier in the dashboard range but "
            "none is reachable now, so nothing is probed from there.",
            [instant(monitors_up("$__range"), "{{location}}")],
            unit="short",
            width=8,
            steps=STATUS_STEPS,
        ),
        single_stat(
            "Monitors seen in the range",
            "Monitors per location (Prometheus instances) that exported checks at some time "
            "in the dashboard range: more than Monitors up means some stopped reporting.",
            [instant(monitors_seen("$__range"), "{{location}}")],
            unit="short",
            width=8,
        ),
        single_stat(
            "Time since the last finished run",
            "How long ago the location's most recent run (of any check) finished, looking "
            "back over the dashboard range; 'none in range' when none did. A location whose "
            "monitors are up but whose runs stopped finishing shows here first.",
            [instant(f"time() - max by (location) ({last_run})", "{{location}}")],
            unit="s",
            width=8,
            no_value="none in range",
        ),
    ]


def met_share(match: str, window: str, by: str) -> str:
    """Runs met of the runs judged (met, breached, failed: error and interrupted are the
    monitor's own failures), as the report's compliance."""
    return ratio(
        increase("cxprobe_runs_total", f'{match}, outcome="{Outcome.MET}"', window, by),
        increase("cxprobe_runs_total", f'{match}, outcome=~"{JUDGED}"', window, by),
    )


def human_p95(match: str, window: str, by: str) -> str:
    return answer_quantile(0.95, f'{match}, responder="{Responder.HUMAN}"', window, by)


def _comparison_table() -> Panel:
    by = BY_PAIR_LOCATION
    runs = increase("cxprobe_runs_total", CHECK, "$__range", by)
    seconds = [model.DynamicConfigValue("unit", "s")]
    return (
        data_table(
            "Locations side by side",
            "Per target and channel, a row per location, over the dashboard range: finished "
            "runs; runs met of those judged (met, breached, failed); the share the expected "
            "team answered of the contacts some team answered; after hours and on holidays, "
            "the share of runs a bot answered; the p95 time to the first human answer. A "
            "cell is empty when the location had no such event.",
            [
                table_query(runs),
                table_query(met_share(CHECK, "$__range", by)),
                table_query(routed_correctly_share(CHECK, "$__range", by)),
                table_query(after_hours_bot_share(CHECK, "$__range", by)),
                table_query(human_p95(CHECK, "$__range", by)),
            ],
            unit="percentunit",
            width=24,
            labels=by.split(", "),
            values={
                "Value #A": "Runs",
                "Value #B": "Met",
                "Value #C": "Routed correctly",
                "Value #D": "After hours: bot",
                "Value #E": "Human answer p95",
            },
            link_target=True,
        )
        .override_by_name("Value #A", [model.DynamicConfigValue("unit", "short")])
        .override_by_name("Value #E", seconds)
    )


def _side_by_side() -> list[Panel]:
    by = BY_PAIR_LOCATION
    return [
        _comparison_table(),
        quantile_table(
            "Time to first answer by responder (p50 / p95)",
            "Quantiles of the time from the channel accepting the contact to the first reply "
            "of each responder kind (bot, auto-reply, IVR, human), per target, channel and "
            "location over the dashboard range. Runs without that kind of reply are not in it.",
            CHECK,
            "target, channel, responder, location",
            quantiles=(0.5, 0.95),
            height=10,
            link_target=True,
        ),
        bar_gauge(
            "Runs met per location",
            "Runs met of those judged over the dashboard range, a bar per target, channel "
            "and location (each opens the target's dashboard).",
            [instant(met_share(CHECK, "$__range", by), legend_of(by))],
            unit="percentunit",
            width=6,
            height=10,
            steps=COMPLIANCE_STEPS,
            ratio_scale=True,
            link_labels=True,
        ),
        bar_gauge(
            "Time to first human answer (p95) per location",
            "p95 of the time to the first human answer over the dashboard range, a bar per "
            "target, channel and location.",
            [instant(human_p95(CHECK, "$__range", by), legend_of(by))],
            unit="s",
            width=6,
            height=10,
            link_labels=True,
        ),
    ]
