"""What the dashboards share: the datasource, the product's names, query expressions, the
panel shapes, variables and the dashboard frame."""

from __future__ import annotations

import enum
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus as prom_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from probes.base import Responder
from scenarios.model import Outcome, Period, RoutingResult, SloName

#: The uid of the datasource ``provisioning/datasources/prometheus.yml`` declares; the
#: ``datasource`` variable selects it by default.
DATASOURCE_UID = "cxprobe-prometheus"
DATASOURCE_NAME = "Prometheus"
DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")

OVERVIEW_UID = "cxprobe-overview"
TARGET_UID = "cxprobe-target"  # alert rules link to /d/cxprobe-target/…?var-target=&var-channel=
MONITOR_UID = "cxprobe-monitor"
LOCATIONS_UID = "cxprobe-locations"
QUALITY_UID = "cxprobe-quality"
TAG = "cxprobe"

#: Minimum interval of over-time panels of probe results (quantiles, counts per bar): one probe
#: per check every few minutes to hours leaves most shorter windows without an observation.
SPARSE_INTERVAL = "1h"
#: Minimum interval of the count bars on Monitor health (events of all checks together). Any
#: count bar needs one: ``increase()`` needs two scrapes inside its window, so a bar as narrow
#: as the scrape interval (Grafana's default $__interval) would always be empty.
MONITOR_INTERVAL = "5m"

Panel = cogbuilder.Builder[model.Panel]
Steps = Sequence[tuple[float | None, str]]
_Query = cogbuilder.Builder[cogvariants.Dataquery]
_Name = TypeVar("_Name", bound=enum.StrEnum)


# -- names of the product --------------------------------------------------------------------

#: The SLOs a run can produce events for; the dashboards take them from here alone.
SLOS: tuple[str, ...] = tuple(SloName)


def slo_name(name: str) -> str:
    """``name``, checked against :data:`SLOS`: a misspelt SLO would select no series and its
    panel would silently show "No data"."""
    if name not in SLOS:
        raise ValueError(f"{name!r} is not one of cxprobe's SLOs {SLOS}")
    return name


AFTER_HOURS_SLO = slo_name("after_hours_response")


def one_of(values: Iterable[str]) -> str:
    """A PromQL regex matching exactly ``values`` (label values, which hold no regex syntax)."""
    return "|".join(values)


def listed(values: Iterable[str]) -> str:
    """``values`` for a description: ``a, b, c``."""
    return ", ".join(values)


def colours_of(kind: type[_Name], colours: Mapping[_Name, str]) -> dict[str, str]:
    """A Grafana colour per value of ``kind``; all of them, so no series falls back to the
    palette, where its colour would change with the other series in the panel."""
    missing = [value for value in kind if value not in colours]
    if missing:
        raise ValueError(f"no colour for {kind.__name__} {missing}")
    return {str(value): colour for value, colour in colours.items()}


#: Colours Grafana knows by name; one per run outcome, so every panel reads the same way.
OUTCOME_COLOURS = colours_of(
    Outcome,
    {
        Outcome.MET: "green",
        Outcome.BREACHED: "orange",
        Outcome.FAILED: "red",
        Outcome.ERROR: "purple",
        Outcome.INTERRUPTED: "text",
        Outcome.SKIPPED: "blue",  # not sent on purpose: neither good nor bad
    },
)
ROUTING_COLOURS = colours_of(
    RoutingResult,
    {RoutingResult.CORRECT: "green", RoutingResult.WRONG: "red", RoutingResult.UNKNOWN: "text"},
)


# -- thresholds ------------------------------------------------------------------------------

#: One colour for figures that are neither good nor bad.
NEUTRAL: Steps = ((None, "blue"),)
#: 0 (not met, down, failed) red, 1 green.
STATUS_STEPS: Steps = ((None, "red"), (1, "green"))
#: Counts of things that should not happen: any is a warning.
ANY_IS_A_WARNING: Steps = ((None, "green"), (1, "orange"))
#: Shares of good events, against objectives of 90 % and 99 %.
COMPLIANCE_STEPS: Steps = ((None, "red"), (0.9, "orange"), (0.99, "green"))
#: Error budget left: spent red, the last quarter orange.
BUDGET_STEPS: Steps = ((None, "red"), (0, "orange"), (0.25, "green"))


def thresholds(steps: Steps) -> builders.ThresholdsConfig:
    return (
        builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=colour) for value, colour in steps])
    )


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


def instant(expr: str, legend: str) -> prom_builders.Dataquery:
    return query(expr, legend, instant=True)


def table_query(expr: str) -> prom_builders.Dataquery:
    return query(expr, table_format=True)


def legend_of(by: str) -> str:
    """The series name of a ``sum by (by)``: its labels' values, ``a · b``."""
    return " · ".join(f"{{{{{label}}}}}" for label in by.split(", "))


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


def objective(match: str, by: str) -> str:
    """The share of good events the SLA promises, once however many monitors export it."""
    return f"max by ({by}) (cxprobe_slo_objective_ratio{{{match}}})"


def error_budget_left(match: str, window: str, by: str) -> str:
    """1 = untouched, 0 = spent, below 0 = overspent; ``by`` must include target, channel, slo."""
    bad_share = ratio(
        increase("cxprobe_slo_events_total", f'{match}, result="bad"', window, by),
        increase("cxprobe_slo_events_total", match, window, by),
    )
    return f"1 - ({bad_share}) / on ({by}) (1 - {objective(match, by)})"


def histogram_quantile(q: float, metric: str, match: str, window: str, by: str) -> str:
    """The ``q`` quantile of the histogram ``metric``; ``by`` without ``le``."""
    buckets = f"{metric}_bucket{{{match}}}"
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({buckets}[{window}])))"


def answer_quantile(q: float, match: str, window: str, by: str, *, drop_nan: bool = True) -> str:
    """The ``q`` quantile of time to first answer; ``by`` without ``le``."""
    expr = histogram_quantile(q, "cxprobe_first_response_seconds", match, window, by)
    return f"{expr} >= 0" if drop_nan else expr


def routed_correctly_share(match: str, window: str, by: str) -> str:
    """Of the contacts some team answered, the share the expected team answered. "unknown" (no
    team recognised, e.g. a bot-only after-hours answer) says nothing about routing."""
    return ratio(
        increase("cxprobe_routing_total", f'{match}, result="{RoutingResult.CORRECT}"', window, by),
        increase(
            "cxprobe_routing_total",
            f'{match}, result=~"{one_of([RoutingResult.CORRECT, RoutingResult.WRONG])}"',
            window,
            by,
        ),
    )


def after_hours_bot_share(match: str, window: str, by: str) -> str:
    """Of the after-hours and holiday runs the probe could perform, the share a bot answered
    (at any time): the first-answer histogram counts one observation per responder kind."""
    out_of_hours = f'{match}, period!="{Period.BUSINESS}"'
    return ratio(
        increase(
            "cxprobe_first_response_seconds_count",
            f'{out_of_hours}, responder="{Responder.BOT}"',
            window,
            by,
        ),
        increase(
            "cxprobe_runs_total",
            f'{out_of_hours}, outcome!~"{one_of([Outcome.ERROR, Outcome.INTERRUPTED])}"',
            window,
            by,
        ),
    )


def checks_never_run(match: str, check_labels: str) -> str:
    """How many configured checks have not finished a run since their monitor started."""
    return (
        f"count(cxprobe_check_info{{{match}}} unless on ({check_labels}) "
        "cxprobe_last_run_timestamp_seconds) or vector(0)"
    )


def drill_down_url(target: str, channel: str) -> str:
    """The per-target dashboard for one target and channel, keeping the time range."""
    return (
        f"/d/{TARGET_UID}/cxprobe-target?var-target={target}&var-channel={channel}"
        "&var-datasource=${datasource}&${__url_time_range}"
    )


# -- panels ----------------------------------------------------------------------------------


class _PanelBuilder(Protocol):
    """What every panel builder has (each returns its own type)."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: common.DataSourceRef) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...


_P = TypeVar("_P", bound=_PanelBuilder)


def _framed(panel: _P, title: str, description: str, unit: str, width: int, height: int) -> _P:
    """What every panel has: title, description, the datasource variable, unit and size."""
    return (
        panel.title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
    )


def refs(queries: Sequence[prom_builders.Dataquery]) -> list[_Query]:
    """The queries with refIds A, B, C… in order (Grafana's own naming; tables refer to them
    as ``Value #A``…)."""
    return [q.ref_id(ref) for q, ref in zip(queries, string.ascii_uppercase, strict=False)]


def drill_down_link(target: str, channel: str) -> builders.DashboardLink:
    return builders.DashboardLink("Open the target's dashboard").url(
        drill_down_url(target, channel)
    )


def _last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def colour_overrides(
    panel: timeseries.Panel, colours: Mapping[str, str], *, prefix: bool = False
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


def _time_series_frame(
    title: str,
    description: str,
    queries: Sequence[prom_builders.Dataquery],
    *,
    unit: str,
    width: int,
    height: int,
    min_interval: str | None,
) -> timeseries.Panel:
    panel = _framed(timeseries.Panel(), title, description, unit, width, height).legend(
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
    )
    if min_interval is not None:
        panel = panel.interval(min_interval)
    return panel.targets(refs(queries))


def time_series(
    title: str,
    description: str,
    queries: Sequence[prom_builders.Dataquery],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    min_interval: str | None = None,
) -> timeseries.Panel:
    """Values over time. Probe data is sparse: points show where observations are, lines do
    not invent any."""
    panel = _time_series_frame(
        title,
        description,
        queries,
        unit=unit,
        width=width,
        height=height,
        min_interval=min_interval,
    )
    return panel.show_points(common.VisibilityMode.ALWAYS).point_size(5).min(0)


def count_bars(
    title: str,
    description: str,
    metric: str,
    match: str,
    by: str,
    *,
    min_interval: str,
    width: int = 12,
    hide_zero: bool = False,
) -> timeseries.Panel:
    """Counts of the counter ``metric`` per interval, stacked bars per series of ``by``; the
    minimum interval is required (see :data:`MONITOR_INTERVAL`). ``hide_zero`` leaves out
    series without events in the interval (the always-present zeros of configured checks)."""
    expr = increase(metric, match, "$__interval", by)
    return (
        _time_series_frame(
            title,
            description,
            [query(f"{expr} > 0" if hide_zero else expr, legend_of(by))],
            unit="short",
            width=width,
            height=8,
            min_interval=min_interval,
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .min(0)
    )


def routing_verdicts(description: str, match: str) -> timeseries.Panel:
    """Sent contacts per routing verdict, in the verdicts' colours."""
    bars = count_bars(
        "Routing verdicts",
        description,
        "cxprobe_routing_total",
        match,
        "result",
        width=16,
        hide_zero=True,
        min_interval=SPARSE_INTERVAL,
    )
    return colour_overrides(bars, ROUTING_COLOURS)


def runs_by_outcome(
    title: str, description: str, match: str, by: str, *, width: int, min_interval: str
) -> timeseries.Panel:
    """Finished runs per outcome (and any further labels in ``by``), in the outcomes'
    colours: matched by name when the outcome is the whole series name, else by prefix."""
    bars = count_bars(
        title,
        description,
        "cxprobe_runs_total",
        match,
        by,
        width=width,
        hide_zero=True,
        min_interval=min_interval,
    )
    return colour_overrides(bars, OUTCOME_COLOURS, prefix=by != "outcome")


def single_stat(
    title: str,
    description: str,
    queries: Sequence[prom_builders.Dataquery],
    *,
    unit: str,
    width: int = 6,
    height: int = 5,
    steps: Steps = NEUTRAL,
    mappings: dict[str, tuple[str, str]] | None = None,
    no_value: str | None = None,
) -> stat.Panel:
    panel = (
        _framed(stat.Panel(), title, description, unit, width, height)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(_last_value())
        .thresholds(thresholds(steps))
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


def status_stat(
    title: str, description: str, expr: str, legend: str, *, states: tuple[str, str], width: int
) -> stat.Panel:
    """A 0/1 gauge per series, shown as the words ``states`` (for 0, for 1) in red or green."""
    off, on = states
    return single_stat(
        title,
        description,
        [instant(expr, legend)],
        unit="none",
        width=width,
        steps=STATUS_STEPS,
        mappings={"0": (off, "red"), "1": (on, "green")},
    )


def bar_gauge(
    title: str,
    description: str,
    queries: Sequence[prom_builders.Dataquery],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    steps: Steps = NEUTRAL,
    ratio_scale: bool = False,
    link_labels: bool = False,
) -> bargauge.Panel:
    """Horizontal bars; ``link_labels``: each opens the drill-down of its series' target and
    channel labels."""
    panel = (
        _framed(bargauge.Panel(), title, description, unit, width, height)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(_last_value())
        .thresholds(thresholds(steps))
        .min(0)
    )
    if ratio_scale:
        panel = panel.max(1)
    if link_labels:
        panel = panel.data_links(
            [drill_down_link("${__field.labels.target}", "${__field.labels.channel}")]
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
    panel = _framed(table.Panel(), title, description, unit, width, height)
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
            [drill_down_link("${__data.fields.target}", "${__data.fields.channel}")]
        )
    return panel.targets(refs(queries))


def quantile_table(
    title: str,
    description: str,
    match: str,
    by: str,
    *,
    quantiles: tuple[float, float] = (0.5, 0.9),
    width: int = 12,
    height: int = 8,
    link_target: bool = False,
) -> table.Panel:
    """Two quantiles (p50 and p90 unless told) of time to first answer over the dashboard
    range, a row per ``by``."""
    low, high = quantiles
    return data_table(
        title,
        description,
        [
            table_query(answer_quantile(low, match, "$__range", by)),
            table_query(answer_quantile(high, match, "$__range", by)),
        ],
        unit="s",
        width=width,
        height=height,
        labels=by.split(", "),
        values={"Value #A": percentile_name(low), "Value #B": percentile_name(high)},
        link_target=link_target,
    )


def percentile_name(q: float) -> str:
    """``0.95`` -> ``p95``."""
    return f"p{round(q * 100)}"


# -- variables -------------------------------------------------------------------------------


def datasource_variable() -> builders.DatasourceVariable:
    return (
        builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def label_variable(
    name: str,
    query_text: str,
    description: str,
    *,
    label: str | None = None,
    multi: bool = True,
) -> builders.QueryVariable:
    """Values of a label (of ``cxprobe_check_info``, the configured checks, for most),
    refreshed with the time range so newly configured targets appear."""
    variable = (
        builders.QueryVariable(name)
        .label(label or name.capitalize())
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


def targets_channels_locations() -> list[builders.QueryVariable]:
    """The targets, their channels and the locations to show (each several or all)."""
    return [
        label_variable(
            "target", "label_values(cxprobe_check_info, target)", "Targets (config keys)."
        ),
        label_variable(
            "channel",
            'label_values(cxprobe_check_info{target=~"$target"}, channel)',
            "Channel kinds probed for the selected targets.",
        ),
        label_variable(
            "location",
            "label_values(cxprobe_check_info, location)",
            "Where the monitors probe from.",
        ),
    ]


def scenario_variable(description: str) -> builders.QueryVariable:
    """One scenario of the selected targets and channels (single-value)."""
    return label_variable(
        "scenario",
        'label_values(cxprobe_check_info{target=~"$target", channel=~"$channel"}, scenario)',
        description,
        multi=False,
    )


# -- dashboards ------------------------------------------------------------------------------

#: A dashboard's body: rows, each a title and its panels in layout order.
Rows = Sequence[tuple[str, Sequence[Panel]]]


def dashboard(
    uid: str,
    title: str,
    description: str,
    *,
    time_from: str,
    variables: Sequence[builders.QueryVariable],
    rows: Rows,
) -> builders.Dashboard:
    """A cxprobe dashboard: the datasource variable, then ``variables``, then ``rows``."""
    board = (
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
    for variable in variables:
        board = board.with_variable(variable)
    for row_title, panels in rows:
        board = board.with_row(builders.Row(row_title).collapsed(False))
        for panel in panels:
            board = board.with_panel(panel)
    return board
