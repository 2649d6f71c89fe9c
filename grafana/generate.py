"""cxprobe's Grafana dashboards, written as code with ``grafana-foundation-sdk``.

Run ``python grafana/generate.py`` (dev venv, any working directory) after changing this file and
commit ``grafana/dashboards/*.json``: Grafana provisions the committed JSON
(``grafana/provisioning/``), and ``tests/unit/test_dashboards.py`` fails while those files differ
from what this script writes. The output is deterministic (sorted keys, panel ids and query
``refId``s numbered in layout order), so a diff shows exactly what a change did.

Every query reads only the metric contract of ``docs/metrics.md``. Why the queries look as they do:

- Probes are sparse (a contact per check every few minutes to hours). Headline figures are
  therefore taken over the whole dashboard range (instant queries over ``[$__range]``), and the
  over-time panels of quantiles set a minimum interval: per-pixel rates of sparse data would be
  mostly empty.
- Ratios divide by ``(… > 0)`` and quantiles end in ``>= 0``: a check without events in the
  range then shows "No data" rather than NaN (NaN compares false, so the series is dropped).
- Counters of configured checks exist at zero from start-up (``docs/metrics.md``), so
  ``increase()`` sees a check's first run and panels such as late replies have a series (a 0)
  before anything happened. Histogram children do not: they appear with their first
  observation, which ``rate()`` cannot see — over days that is noise, in a short test it is not.
- Every panel uses the ``datasource`` template variable, which provisioning binds to the
  Prometheus it declares (``DATASOURCE_UID``) and an importer can point anywhere.
- Objectives are ``max by`` their labels before they are joined: several monitors (locations)
  export the same objective, and a one-to-one match over duplicates would fail.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus as prom_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

#: Where the committed dashboards live (Grafana's file provider reads them from here).
DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"

#: The uid of the datasource ``provisioning/datasources/prometheus.yml`` declares; the
#: ``datasource`` variable selects it by default.
DATASOURCE_UID = "cxprobe-prometheus"
DATASOURCE_NAME = "Prometheus"
DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")

OVERVIEW_UID = "cxprobe-overview"
TARGET_UID = "cxprobe-target"  # alert rules link to /d/cxprobe-target/…?var-target=&var-channel=
MONITOR_UID = "cxprobe-monitor"
TAG = "cxprobe"

#: Minimum interval of over-time panels of probe results (quantiles, counts per bar): one probe
#: per check every few minutes to hours leaves most shorter windows without an observation.
SPARSE_INTERVAL = "1h"
#: Minimum interval of the count bars on Monitor health (events of all checks together). Any
#: count bar needs one: ``increase()`` needs two scrapes inside its window, so a bar as narrow
#: as the scrape interval (Grafana's default $__interval) would always be empty.
MONITOR_INTERVAL = "5m"

#: Colours Grafana knows by name; one per run outcome, so every panel reads the same way.
OUTCOME_COLOURS = {
    "met": "green",
    "breached": "orange",
    "failed": "red",
    "error": "purple",
    "interrupted": "text",
}
ROUTING_COLOURS = {"correct": "green", "wrong": "red", "unknown": "text"}

_Query = cogbuilder.Builder[cogvariants.Dataquery]


# -- queries ---------------------------------------------------------------------------------


def query(
    expr: str, legend: str = "__auto", *, instant: bool = False, table_format: bool = False
) -> prom_builders.Dataquery:
    """A Prometheus query; range-aggregated figures are instant queries (one value each)."""
    built = prom_builders.Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE)
    built = built.instant() if instant or table_format else built.range()
    if table_format:
        built = built.format(PromQueryFormat.TABLE)
    return built


def increase(metric: str, match: str, window: str, by: str) -> str:
    return f"sum by ({by}) (increase({metric}{{{match}}}[{window}]))"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator``, dropping series whose denominator is 0 (no events)."""
    return f"{numerator} / ({denominator} > 0)"


def slo_compliance(match: str, window: str, by: str) -> str:
    """The SLI: the share of good SLO events (``docs/metrics.md``, example queries)."""
    return ratio(
        increase("cxprobe_slo_events_total", f'{match}, result="good"', window, by),
        increase("cxprobe_slo_events_total", match, window, by),
    )


def error_budget_left(match: str, window: str, by: str) -> str:
    """1 = untouched, 0 = spent, below 0 = overspent; ``by`` must include target, channel, slo."""
    bad_share = ratio(
        increase("cxprobe_slo_events_total", f'{match}, result="bad"', window, by),
        increase("cxprobe_slo_events_total", match, window, by),
    )
    objective = f"max by ({by}) (cxprobe_slo_objective_ratio{{{match}}})"
    return f"1 - ({bad_share}) / on ({by}) (1 - {objective})"


def answer_quantile(q: float, match: str, window: str, by: str, *, drop_nan: bool = True) -> str:
    """The ``q`` quantile of time to first answer; ``by`` without ``le``."""
    buckets = f"cxprobe_first_response_seconds_bucket{{{match}}}"
    expr = f"histogram_quantile({q}, sum by ({by}, le) (rate({buckets}[{window}])))"
    return f"{expr} >= 0" if drop_nan else expr


def drill_down_url(target: str, channel: str) -> str:
    """The per-target dashboard for one target and channel, keeping the time range."""
    return (
        f"/d/{TARGET_UID}/cxprobe-target?var-target={target}&var-channel={channel}"
        "&var-datasource=${datasource}&${__url_time_range}"
    )


# -- panels ----------------------------------------------------------------------------------


def refs(queries: Sequence[prom_builders.Dataquery]) -> list[_Query]:
    """The queries with refIds A, B, C… in order (Grafana's own naming; tables refer to them
    as ``Value #A``…)."""
    return [q.ref_id(ref) for q, ref in zip(queries, string.ascii_uppercase, strict=False)]


def thresholds(*steps: tuple[float | None, str]) -> builders.ThresholdsConfig:
    return (
        builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=colour) for value, colour in steps])
    )


def colour_overrides(
    panel: timeseries.Panel, colours: dict[str, str], *, prefix: bool = False
) -> timeseries.Panel:
    """Fixed colours per series name (``prefix``: names starting with the key)."""
    for name, colour in colours.items():
        setting = [
            model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})
        ]
        if prefix:
            panel = panel.override_by_regexp(f"^{name}\\b.*", setting)
        else:
            panel = panel.override_by_name(name, setting)
    return panel


def time_series(
    title: str,
    description: str,
    queries: Sequence[prom_builders.Dataquery],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    bars: bool = False,
    min_interval: str | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
    )
    if bars:
        if min_interval is None:
            raise ValueError(
                f"{title!r}: count bars need a minimum interval (see MONITOR_INTERVAL)"
            )
        # Counts per interval: stacked bars, one stack per interval.
        panel = (
            panel.draw_style(common.GraphDrawStyle.BARS)
            .fill_opacity(80)
            .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
            .min(0)
        )
    else:
        # Sparse probe data: points show where observations are, lines do not invent any.
        panel = panel.show_points(common.VisibilityMode.ALWAYS).point_size(5).min(0)
    if min_interval is not None:
        panel = panel.interval(min_interval)
    return panel.targets(refs(queries))


def single_stat(
    title: str,
    description: str,
    queries: Sequence[prom_builders.Dataquery],
    *,
    unit: str,
    width: int = 6,
    height: int = 5,
    steps: Sequence[tuple[float | None, str]] = ((None, "blue"),),
    mappings: dict[str, tuple[str, str]] | None = None,
    no_value: str | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds(*steps))
    )
    if no_value is not None:
        panel = panel.no_value(no_value)
    if mappings:
        panel = panel.mappings(
            [
                model.ValueMap(
                    options={
                        value: model.ValueMappingResult(text=text, color=colour, index=index)
                        for index, (value, (text, colour)) in enumerate(sorted(mappings.items()))
                    }
                )
            ]
        )
    return panel.targets(refs(queries))


def bar_gauge(
    title: str,
    description: str,
    queries: Sequence[prom_builders.Dataquery],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    steps: Sequence[tuple[float | None, str]] = ((None, "blue"),),
    ratio_scale: bool = False,
    link_labels: bool = False,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds(*steps))
        .min(0)
    )
    if ratio_scale:
        panel = panel.max(1)
    if link_labels:
        panel = panel.data_links(
            [
                builders.DashboardLink("Open the target's dashboard").url(
                    drill_down_url("${__field.labels.target}", "${__field.labels.channel}")
                )
            ]
        )
    return panel.targets(refs(queries))


def data_table(
    title: str,
    description: str,
    queries: Sequence[prom_builders.Dataquery],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    labels: Sequence[str] = (),
    values: Mapping[str, str] | None = None,
    matrix: tuple[str, str] | None = None,
    link_target: bool = False,
) -> table.Panel:
    """A table of instant queries: the ``labels`` columns, then the value fields named in
    ``values`` (``Value`` or, for several queries, ``Value #A``…) under their headers; other
    fields (Time, job, instance…) are hidden. Label columns keep their names, so data links can
    refer to them (``${__data.fields.target}``). ``matrix`` = (rows, columns) instead pivots one
    query's label pairs into a grid."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
    )
    if matrix is not None:
        rows, cols = matrix
        panel = panel.with_transformation(
            model.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={
                    "rowField": rows,
                    "columnField": cols,
                    "valueField": "Value",
                    "emptyValue": "null",
                },
            )
        )
    else:
        if len(queries) > 1:
            panel = panel.with_transformation(
                model.DataTransformerConfig(id_val="merge", options={})
            )
        shown = [*labels, *(values or {})]
        panel = panel.with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "includeByName": dict.fromkeys(shown, True),
                    "indexByName": {name: index for index, name in enumerate(shown)},
                    "renameByName": dict(values or {}),
                },
            )
        )
    if link_target:
        panel = panel.data_links(
            [
                builders.DashboardLink("Open the target's dashboard").url(
                    drill_down_url("${__data.fields.target}", "${__data.fields.channel}")
                )
            ]
        )
    return panel.targets(refs(queries))


def row(title: str) -> builders.Row:
    return builders.Row(title).collapsed(False)


# -- variables -------------------------------------------------------------------------------


def datasource_variable() -> builders.DatasourceVariable:
    return (
        builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def label_variable(
    name: str, query_text: str, description: str, *, multi: bool = True
) -> builders.QueryVariable:
    """Values of a label from ``cxprobe_check_info`` (configured checks), refreshed with the
    time range so newly configured targets appear."""
    variable = (
        builders.QueryVariable(name)
        .label(name.capitalize())
        .description(description)
        .datasource(DATASOURCE)
        .query(query_text)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable = variable.current(
            model.VariableOption(selected=True, text=["All"], value=["$__all"])
        )
    return variable


def dashboard(uid: str, title: str, description: str, time_from: str) -> builders.Dashboard:
    return (
        builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time(time_from, "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            builders.DashboardLink("cxprobe")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(datasource_variable())
    )


# -- Overview ----------------------------------------------------------------------------------


def overview() -> builders.Dashboard:
    pair = 'target=~"$target", channel=~"$channel"'
    check = f'{pair}, location=~"$location"'
    same_scenario = f'{check}, scenario="$scenario"'
    by_pair_slo = "target, channel, slo"
    ratio_steps: list[tuple[float | None, str]] = [(None, "red"), (0.9, "orange"), (0.99, "green")]
    board = (
        dashboard(
            OVERVIEW_UID,
            "cxprobe / Overview",
            "SLA compliance, time to first answer, routing and after-hours availability of every "
            "probed target and channel.",
            "now-7d",
        )
        .with_variable(
            label_variable(
                "target", "label_values(cxprobe_check_info, target)", "Targets (config keys)."
            )
        )
        .with_variable(
            label_variable(
                "channel",
                'label_values(cxprobe_check_info{target=~"$target"}, channel)',
                "Channel kinds probed for the selected targets.",
            )
        )
        .with_variable(
            label_variable(
                "location",
                "label_values(cxprobe_check_info, location)",
                "Where the monitors probe from.",
            )
        )
        .with_variable(
            label_variable(
                "scenario",
                'label_values(cxprobe_check_info{target=~"$target", channel=~"$channel"}, '
                "scenario)",
                "The scenario the cross-channel comparison shows.",
                multi=False,
            )
        )
    )

    board = (
        board.with_row(row("SLA compliance over the dashboard range"))
        .with_panel(
            data_table(
                "SLA compliance by target and channel",
                "Share of good SLO events over the dashboard range (the SLI the alert rules "
                "read), next to the share the SLA promises. A run produces at most one event "
                "per applicable SLO; human-answer SLOs count business hours only. Empty when "
                "a target and channel had no events in the range.",
                [
                    query(slo_compliance(pair, "$__range", by_pair_slo), table_format=True),
                    query(
                        f"max by ({by_pair_slo}) (cxprobe_slo_objective_ratio{{{pair}}})",
                        table_format=True,
                    ),
                    query(
                        increase("cxprobe_slo_events_total", pair, "$__range", by_pair_slo),
                        table_format=True,
                    ),
                ],
                unit="percentunit",
                width=14,
                labels=["target", "channel", "slo"],
                values={"Value #A": "Compliance", "Value #B": "Objective", "Value #C": "Events"},
                link_target=True,
            ).override_by_name("Value #C", [model.DynamicConfigValue("unit", "short")])
        )
        .with_panel(
            bar_gauge(
                "Error budget left",
                "1 - (bad share / allowed bad share) over the dashboard range, per target, "
                "channel and SLO: 100% untouched, 0 spent, below 0 overspent. The allowed bad "
                "share is 1 - cxprobe_slo_objective_ratio.",
                [
                    query(
                        error_budget_left(pair, "$__range", by_pair_slo),
                        "{{target}} · {{channel}} · {{slo}}",
                        instant=True,
                    )
                ],
                unit="percentunit",
                width=10,
                steps=[(None, "red"), (0, "orange"), (0.25, "green")],
                link_labels=True,
            )
        )
    )

    board = (
        board.with_row(row("Time to first answer"))
        .with_panel(
            data_table(
                "Time to first answer over the range (p50 / p90)",
                "Quantiles of the time from the channel accepting the contact to the first "
                "reply of each responder kind (bot, auto-reply, IVR, human), over the "
                "dashboard range. Runs that never got that kind of reply are not in it: read "
                "it next to the compliance table.",
                [
                    query(
                        answer_quantile(0.5, check, "$__range", "target, channel, responder"),
                        table_format=True,
                    ),
                    query(
                        answer_quantile(0.9, check, "$__range", "target, channel, responder"),
                        table_format=True,
                    ),
                ],
                unit="s",
                labels=["target", "channel", "responder"],
                values={"Value #A": "p50", "Value #B": "p90"},
                link_target=True,
            )
        )
        .with_panel(
            time_series(
                "Time to first answer by responder (p90)",
                f"p90 per responder kind across the selected targets and channels, in windows "
                f"of at least {SPARSE_INTERVAL} (probes are sparse).",
                [
                    query(
                        answer_quantile(0.9, check, "$__rate_interval", "responder"),
                        "{{responder}}",
                    )
                ],
                unit="s",
                min_interval=SPARSE_INTERVAL,
            )
        )
    )

    # Of the contacts some team answered: "unknown" (no team recognised, e.g. a bot-only
    # after-hours answer) says nothing about routing and is shown in "Routing verdicts".
    routed_share = ratio(
        increase(
            "cxprobe_routing_total", f'{check}, result="correct"', "$__range", "target, channel"
        ),
        increase(
            "cxprobe_routing_total",
            f'{check}, result=~"correct|wrong"',
            "$__range",
            "target, channel",
        ),
    )
    after_hours = f'{pair}, slo="after_hours_response"'
    bot_share = ratio(
        increase(
            "cxprobe_first_response_seconds_count",
            f'{check}, period!="business", responder="bot"',
            "$__range",
            "target, channel",
        ),
        increase(
            "cxprobe_runs_total",
            f'{check}, period!="business", outcome!~"error|interrupted"',
            "$__range",
            "target, channel",
        ),
    )
    board = (
        board.with_row(row("Routing and after hours"))
        .with_panel(
            bar_gauge(
                "Correctly routed",
                "Of the sent contacts some team answered, the share the team the scenario "
                "expects answered, over the dashboard range. Contacts no team recognisably "
                "answered (unknown, e.g. bot-only after hours) are left out: see Routing "
                "verdicts.",
                [query(routed_share, "{{target}} · {{channel}}", instant=True)],
                unit="percentunit",
                width=8,
                steps=ratio_steps,
                ratio_scale=True,
                link_labels=True,
            )
        )
        .with_panel(
            colour_overrides(
                time_series(
                    "Routing verdicts",
                    "Sent contacts per routing verdict, stacked, across the selected targets "
                    "and channels.",
                    [
                        query(
                            increase("cxprobe_routing_total", check, "$__interval", "result")
                            + " > 0",
                            "{{result}}",
                        )
                    ],
                    unit="short",
                    width=16,
                    bars=True,
                    min_interval=SPARSE_INTERVAL,
                ),
                ROUTING_COLOURS,
            )
        )
        .with_panel(
            bar_gauge(
                "After-hours answer within the limit",
                "Share of after-hours and holiday probes that got an accepted answer (bot, "
                "auto-reply or closed notice, as the scenario defines it) within the "
                "after_hours_response limit, over the dashboard range.",
                [
                    query(
                        slo_compliance(after_hours, "$__range", "target, channel"),
                        "{{target}} · {{channel}}",
                        instant=True,
                    )
                ],
                unit="percentunit",
                steps=ratio_steps,
                ratio_scale=True,
                link_labels=True,
            )
        )
        .with_panel(
            bar_gauge(
                "After hours: answered by a bot",
                "Share of after-hours and holiday runs (that the probe could perform) in which "
                "a bot answered at any time, over the dashboard range.",
                [query(bot_share, "{{target}} · {{channel}}", instant=True)],
                unit="percentunit",
                steps=ratio_steps,
                ratio_scale=True,
                link_labels=True,
            )
        )
    )

    board = (
        board.with_row(row("Same scenario across channels: $scenario"))
        .with_panel(
            bar_gauge(
                "Time to first human answer per channel",
                "Median and p90 time to the first human answer to the same customer script "
                "on each channel, over the dashboard range (selected targets together).",
                [
                    query(
                        answer_quantile(
                            0.5, f'{same_scenario}, responder="human"', "$__range", "channel"
                        ),
                        "{{channel}} · median",
                        instant=True,
                    ),
                    query(
                        answer_quantile(
                            0.9, f'{same_scenario}, responder="human"', "$__range", "channel"
                        ),
                        "{{channel}} · p90",
                        instant=True,
                    ),
                ],
                unit="s",
                width=8,
            )
        )
        .with_panel(
            data_table(
                "Median time to first answer by channel and responder",
                "Median time to the first reply of each responder kind, per channel, for the "
                "same scenario over the dashboard range: where the bot, the auto-reply and the "
                "people answer fastest.",
                [
                    query(
                        answer_quantile(0.5, same_scenario, "$__range", "channel, responder"),
                        table_format=True,
                    )
                ],
                unit="s",
                width=8,
                matrix=("channel", "responder"),
            )
        )
        .with_panel(
            data_table(
                "Runs by channel and outcome",
                "Finished runs of the scenario per channel and outcome over the dashboard "
                "range (met, breached, failed = refused contact, error = the probe could not "
                "run, interrupted).",
                [
                    query(
                        increase(
                            "cxprobe_runs_total", same_scenario, "$__range", "channel, outcome"
                        )
                        + " > 0",
                        table_format=True,
                    )
                ],
                unit="short",
                width=8,
                matrix=("channel", "outcome"),
            )
        )
    )
    return board


# -- Per-target drill-down ---------------------------------------------------------------------


def target_drill_down() -> builders.Dashboard:
    pair = 'target="$target", channel=~"$channel"'
    check = f'{pair}, scenario=~"$scenario", location=~"$location"'
    check_legend = "{{channel}} · {{scenario}} · {{location}}"
    check_labels = "target, channel, scenario, location"
    last_success = (
        f"cxprobe_last_run_timestamp_seconds{{{check}}} and on ({check_labels}) "
        f"(cxprobe_last_run_success{{{check}}} == 1)"
    )
    board = (
        dashboard(
            TARGET_UID,
            "cxprobe / Target",
            "One target in detail: its checks' last runs, outcomes, time to first answer by "
            "responder and period against the configured limits, routing, late and unmatched "
            "replies. Alerts link here with var-target and var-channel.",
            "now-24h",
        )
        .with_variable(
            label_variable(
                "target",
                "label_values(cxprobe_check_info, target)",
                "The target (config key).",
                multi=False,
            )
        )
        .with_variable(
            label_variable(
                "channel",
                'label_values(cxprobe_check_info{target="$target"}, channel)',
                "Channel kinds probed for this target.",
            )
        )
        .with_variable(
            label_variable(
                "scenario",
                'label_values(cxprobe_check_info{target="$target", channel=~"$channel"}, scenario)',
                "Scenarios the target's checks run.",
            )
        )
        .with_variable(
            label_variable(
                "location",
                'label_values(cxprobe_check_info{target="$target"}, location)',
                "Where the monitors probe from.",
            )
        )
    )

    board = (
        board.with_row(row("Last runs"))
        .with_panel(
            single_stat(
                "Last run met its expectations",
                "Whether each check's most recent finished run was met (cxprobe_last_run_success).",
                [query(f"cxprobe_last_run_success{{{check}}}", check_legend, instant=True)],
                unit="none",
                steps=[(None, "red"), (1, "green")],
                mappings={"0": ("not met", "red"), "1": ("met", "green")},
            )
        )
        .with_panel(
            single_stat(
                "Time since last run",
                "How long ago each check's last run finished (was judged). Stale checks are "
                "not running: look at Monitor health.",
                [
                    query(
                        f"time() - cxprobe_last_run_timestamp_seconds{{{check}}}",
                        check_legend,
                        instant=True,
                    )
                ],
                unit="s",
            )
        )
        .with_panel(
            single_stat(
                "Time since last success",
                "How long ago the last run that met its expectations finished, looking back "
                "over the dashboard range; 'none in range' when no run met them.",
                [
                    query(
                        f"time() - max_over_time(({last_success})[$__range:$__interval])",
                        check_legend,
                        instant=True,
                    )
                ],
                unit="s",
                no_value="none in range",
            )
        )
        .with_panel(
            single_stat(
                "Checks without a finished run",
                "Configured checks of this target that have not finished a single run since "
                "their monitor started.",
                [
                    query(
                        f"count(cxprobe_check_info{{{check}}} unless on ({check_labels}) "
                        "cxprobe_last_run_timestamp_seconds) or vector(0)",
                        "checks",
                        instant=True,
                    )
                ],
                unit="short",
                steps=[(None, "green"), (1, "orange")],
            )
        )
    )

    outcomes_panel = time_series(
        "Runs by outcome",
        "Finished runs per outcome and business-hours period, stacked.",
        [
            query(
                increase("cxprobe_runs_total", check, "$__interval", "outcome, period") + " > 0",
                "{{outcome}} · {{period}}",
            )
        ],
        unit="short",
        bars=True,
        min_interval=SPARSE_INTERVAL,
    )
    board = (
        board.with_row(row("Outcomes and SLOs"))
        .with_panel(colour_overrides(outcomes_panel, OUTCOME_COLOURS, prefix=True))
        .with_panel(
            single_stat(
                "SLO compliance over the range",
                "Share of good SLO events over the dashboard range, per channel and SLO.",
                [
                    query(
                        slo_compliance(pair, "$__range", "target, channel, slo"),
                        "{{channel}} · {{slo}}",
                        instant=True,
                    )
                ],
                unit="percentunit",
                steps=[(None, "red"), (0.9, "orange"), (0.99, "green")],
                height=8,
            )
        )
        .with_panel(
            single_stat(
                "Error budget left",
                "1 - (bad share / allowed bad share) over the dashboard range: 100% untouched, "
                "below 0 overspent.",
                [
                    query(
                        error_budget_left(pair, "$__range", "target, channel, slo"),
                        "{{channel}} · {{slo}}",
                        instant=True,
                    )
                ],
                unit="percentunit",
                steps=[(None, "red"), (0, "orange"), (0.25, "green")],
                height=8,
            )
        )
    )

    limits = (
        f'cxprobe_slo_threshold_seconds{{{check}, slo=~"first_response|human_response|'
        f'after_hours_response"}}'
    )
    answers_panel = time_series(
        "Time to first answer by responder and period (p90)",
        f"p90 of the time to the first reply of each responder kind, per channel and period "
        f"(business, after_hours, holiday), in windows of at least {SPARSE_INTERVAL}; dashed: "
        f"the configured limits (cxprobe_slo_threshold_seconds).",
        [
            query(
                answer_quantile(
                    0.9, check, "$__rate_interval", "channel, responder, period", drop_nan=False
                ),
                "{{channel}} · {{responder}} · {{period}}",
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
    board = (
        board.with_row(row("Time to first answer"))
        .with_panel(answers_panel)
        .with_panel(
            data_table(
                "Over the range (p50 / p90)",
                "Quantiles of time to first answer per channel, responder kind and period over "
                "the dashboard range.",
                [
                    query(
                        answer_quantile(0.5, check, "$__range", "channel, responder, period"),
                        table_format=True,
                    ),
                    query(
                        answer_quantile(0.9, check, "$__range", "channel, responder, period"),
                        table_format=True,
                    ),
                ],
                unit="s",
                width=8,
                height=9,
                labels=["channel", "responder", "period"],
                values={"Value #A": "p50", "Value #B": "p90"},
            )
        )
        .with_panel(
            data_table(
                "SLO thresholds",
                "The checks' configured time limits (first_response, human_response, "
                "after_hours_response) and how long a run waits for answers (deadline).",
                [query(f"cxprobe_slo_threshold_seconds{{{check}}}", table_format=True)],
                unit="s",
                height=7,
                labels=["channel", "scenario", "location", "slo"],
                values={"Value": "Seconds"},
            )
        )
        .with_panel(
            data_table(
                "SLA objectives",
                "The share of good events the target's SLA promises per channel and SLO.",
                [
                    query(
                        f"max by (channel, slo) (cxprobe_slo_objective_ratio{{{pair}}})",
                        table_format=True,
                    )
                ],
                unit="percentunit",
                height=7,
                labels=["channel", "slo"],
                values={"Value": "Objective"},
            )
        )
    )

    routing_panel = time_series(
        "Routing verdicts",
        "Sent contacts per routing verdict: correct (the expected team answered), wrong "
        "(another team), unknown (no team recognised, or no expectation).",
        [
            query(
                increase("cxprobe_routing_total", check, "$__interval", "result") + " > 0",
                "{{result}}",
            )
        ],
        unit="short",
        width=16,
        bars=True,
        min_interval=SPARSE_INTERVAL,
    )
    board = (
        board.with_row(row("Routing"))
        .with_panel(colour_overrides(routing_panel, ROUTING_COLOURS))
        .with_panel(
            bar_gauge(
                "Routing over the range",
                "Sent contacts per channel, scenario and routing verdict over the dashboard range.",
                [
                    query(
                        increase(
                            "cxprobe_routing_total",
                            check,
                            "$__range",
                            "channel, scenario, result",
                        ),
                        "{{channel}} · {{scenario}} · {{result}}",
                        instant=True,
                    )
                ],
                unit="short",
                width=8,
            )
        )
    )

    board = (
        board.with_row(row("Late and unmatched replies"))
        .with_panel(
            time_series(
                "Late replies",
                "Replies that arrived after their run was judged (after its deadline); they "
                "are kept as evidence and count in time to first answer.",
                [
                    query(
                        increase("cxprobe_late_replies_total", pair, "$__interval", "channel"),
                        "{{channel}}",
                    )
                ],
                unit="short",
                width=8,
                bars=True,
                min_interval=SPARSE_INTERVAL,
            )
        )
        .with_panel(
            single_stat(
                "Late replies over the range",
                "Late replies per channel over the dashboard range.",
                [
                    query(
                        increase("cxprobe_late_replies_total", pair, "$__range", "channel"),
                        "{{channel}}",
                        instant=True,
                    )
                ],
                unit="short",
                width=4,
                height=8,
                steps=[(None, "green"), (1, "orange")],
            )
        )
        .with_panel(
            time_series(
                "Unmatched replies on the channel",
                "Replies no run claimed (strangers, replies to runs of a previous config), per "
                "channel. Not per target: an unmatched reply has no target.",
                [
                    query(
                        increase(
                            "cxprobe_unmatched_replies_total",
                            'channel=~"$channel"',
                            "$__interval",
                            "channel",
                        ),
                        "{{channel}}",
                    )
                ],
                unit="short",
                width=8,
                bars=True,
                min_interval=SPARSE_INTERVAL,
            )
        )
        .with_panel(
            single_stat(
                "Open runs on the channel",
                "Runs whose contact was sent and that wait for answers, per channel (all "
                "targets): slow channels keep runs open for hours.",
                [
                    query(
                        'sum by (channel) (cxprobe_open_runs{channel=~"$channel"})',
                        "{{channel}}",
                        instant=True,
                    )
                ],
                unit="short",
                width=4,
                height=8,
            )
        )
    )
    return board


# -- Monitor health ----------------------------------------------------------------------------


def monitor_health() -> builders.Dashboard:
    monitor = 'instance=~"$instance"'
    board = dashboard(
        MONITOR_UID,
        "cxprobe / Monitor health",
        "The monitor itself: is it scraped, is its configuration loaded, does it start runs on "
        "time, and do replies find their runs.",
        "now-6h",
    ).with_variable(
        builders.QueryVariable("instance")
        .label("Monitor")
        .description("The scraped cxprobe monitors (Prometheus' instance label).")
        .datasource(DATASOURCE)
        .query("label_values(cxprobe_build_info, instance)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )

    board = (
        board.with_row(row("Status"))
        .with_panel(
            single_stat(
                "Scraped",
                "Whether Prometheus' last scrape of the monitor succeeded (up).",
                [query(f"up{{{monitor}}}", "{{instance}}", instant=True)],
                unit="none",
                steps=[(None, "red"), (1, "green")],
                mappings={"0": ("down", "red"), "1": ("up", "green")},
                width=4,
            )
        )
        .with_panel(
            single_stat(
                "Configuration loaded",
                "Whether the last configuration load (start-up or reload) succeeded. After a "
                "failed reload the monitor keeps running the previous configuration.",
                [
                    query(
                        f"cxprobe_config_last_reload_successful{{{monitor}}}",
                        "{{instance}}",
                        instant=True,
                    )
                ],
                unit="none",
                steps=[(None, "red"), (1, "green")],
                mappings={"0": ("failed", "red"), "1": ("ok", "green")},
                width=4,
            )
        )
        .with_panel(
            single_stat(
                "Since last successful load",
                "Time since the configuration was last loaded successfully.",
                [
                    query(
                        "time() - cxprobe_config_last_reload_success_timestamp_seconds"
                        f"{{{monitor}}}",
                        "{{instance}}",
                        instant=True,
                    )
                ],
                unit="s",
                width=4,
            )
        )
        .with_panel(
            single_stat(
                "Checks without a finished run",
                "Configured checks that have not finished a run since their monitor started "
                "(of how many are configured).",
                [
                    query(
                        f"count(cxprobe_check_info{{{monitor}}} unless on (instance, target, "
                        "channel, scenario, location) cxprobe_last_run_timestamp_seconds) "
                        "or vector(0)",
                        "never ran",
                        instant=True,
                    ),
                    query(f"count(cxprobe_check_info{{{monitor}}})", "configured", instant=True),
                ],
                unit="short",
                width=4,
            )
        )
        .with_panel(
            data_table(
                "Build",
                "The running cxprobe and Python versions per monitor.",
                [query(f"cxprobe_build_info{{{monitor}}}", table_format=True)],
                unit="none",
                width=8,
                height=5,
                labels=["instance", "version", "python"],
                values={},
            )
        )
    )

    board = (
        board.with_row(row("Scheduling"))
        .with_panel(
            time_series(
                "Scheduler lag (p50 / p99)",
                "How late runs start compared with their slot plus jitter. Seconds mean an "
                "overloaded event loop; minutes a suspended process.",
                [
                    query(
                        "histogram_quantile(0.5, sum by (instance, le) "
                        f"(rate(cxprobe_scheduler_lag_seconds_bucket{{{monitor}}}"
                        "[$__rate_interval])))",
                        "p50 · {{instance}}",
                    ),
                    query(
                        "histogram_quantile(0.99, sum by (instance, le) "
                        f"(rate(cxprobe_scheduler_lag_seconds_bucket{{{monitor}}}"
                        "[$__rate_interval])))",
                        "p99 · {{instance}}",
                    ),
                ],
                unit="s",
                width=8,
                min_interval="5m",
            )
        )
        .with_panel(
            time_series(
                "Probes in flight",
                "Probes executing now, per channel (each holds one of the channel's "
                "concurrency slots).",
                [
                    query(
                        f"sum by (channel) (cxprobe_probes_in_flight{{{monitor}}})",
                        "{{channel}}",
                    )
                ],
                unit="short",
                width=8,
            )
        )
        .with_panel(
            time_series(
                "Open runs",
                "Runs whose contact was sent and that wait for answers, per channel.",
                [query(f"sum by (channel) (cxprobe_open_runs{{{monitor}}})", "{{channel}}")],
                unit="short",
                width=8,
            )
        )
    )

    finished_panel = time_series(
        "Runs finished by outcome",
        "All checks' finished runs per outcome; error and interrupted are runs the probe "
        "could not perform.",
        [
            query(
                increase("cxprobe_runs_total", monitor, "$__interval", "outcome") + " > 0",
                "{{outcome}}",
            )
        ],
        unit="short",
        width=8,
        bars=True,
        min_interval=MONITOR_INTERVAL,
    )
    board = (
        board.with_row(row("Faults"))
        .with_panel(
            time_series(
                "Run start failures",
                "Scheduled runs that could not start because the evidence store failed while "
                "claiming the slot. Any is a monitor fault: the slot has no run.",
                [
                    query(
                        increase(
                            "cxprobe_run_start_failures_total",
                            monitor,
                            "$__interval",
                            "target, channel",
                        ),
                        "{{target}} · {{channel}}",
                    )
                ],
                unit="short",
                width=8,
                bars=True,
                min_interval=MONITOR_INTERVAL,
            )
        )
        .with_panel(
            time_series(
                "Unmatched replies",
                "Replies no run claimed, per channel: strangers writing to a probe address, "
                "or replies to runs the configuration no longer has.",
                [
                    query(
                        increase(
                            "cxprobe_unmatched_replies_total", monitor, "$__interval", "channel"
                        ),
                        "{{channel}}",
                    )
                ],
                unit="short",
                width=8,
                bars=True,
                min_interval=MONITOR_INTERVAL,
            )
        )
        .with_panel(colour_overrides(finished_panel, OUTCOME_COLOURS))
    )
    return board


# -- output ------------------------------------------------------------------------------------

DASHBOARDS = {
    "overview.json": overview,
    "target.json": target_drill_down,
    "monitor.json": monitor_health,
}

#: Written by the SDK on every variable, but only interval variables have them (and the
#: dashboard schema does not list them elsewhere).
_INTERVAL_ONLY_KEYS = ("auto", "auto_count", "auto_min")


def render(board: builders.Dashboard) -> str:
    """The dashboard as stable JSON: ids and refIds numbered in order, keys sorted."""
    document: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(document.get("panels", []), start=1):
        panel["id"] = number
    for variable in document.get("templating", {}).get("list", []):
        if variable.get("type") != "interval":
            for key in _INTERVAL_ONLY_KEYS:
                variable.pop(key, None)
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        path = directory / name
        path.write_text(render(build()), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output",
        type=Path,
        default=DASHBOARDS_DIR,
        help=f"directory to write the dashboards to (default: {DASHBOARDS_DIR})",
    )
    arguments = parser.parse_args(argv)
    for path in write(arguments.output):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
