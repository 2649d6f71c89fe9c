"""cxprobe / Monitor health: the monitor itself, not the targets it probes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders

from .common import (
    MONITOR_INTERVAL,
    MONITOR_UID,
    Panel,
    checks_never_run,
    count_bars,
    dashboard,
    data_table,
    histogram_quantile,
    instant,
    label_variable,
    query,
    runs_by_outcome,
    single_stat,
    status_stat,
    table_query,
    time_series,
)

#: The selected monitors.
MONITOR = 'instance=~"$instance"'


def monitor_health() -> builders.Dashboard:
    return dashboard(
        MONITOR_UID,
        "cxprobe / Monitor health",
        "The monitor itself: is it scraped, is its configuration loaded, does it start runs on "
        "time, and do replies find their runs.",
        time_from="now-6h",
        variables=[
            label_variable(
                "location",
                "label_values(cxprobe_check_info, location)",
                "Where the monitors probe from (monitor.location): selects their monitors.",
            ),
            label_variable(
                "instance",
                # The monitors' own metrics carry no location: cxprobe_check_info joins the
                # two (every monitor exports its configured checks with its location).
                'label_values(cxprobe_check_info{location=~"$location"}, instance)',
                "The scraped cxprobe monitors (Prometheus' instance label) at the selected "
                "locations.",
                label="Monitor",
            ),
        ],
        rows=[
            ("Status", _status()),
            ("Scheduling", _scheduling()),
            ("Faults", _faults()),
        ],
    )


def _status() -> list[Panel]:
    return [
        status_stat(
            "Scraped",
            "Whether Prometheus' last scrape of the monitor succeeded (up).",
            f"up{{{MONITOR}}}",
            "{{instance}}",
            states=("down", "up"),
            width=4,
        ),
        status_stat(
            "Configuration loaded",
            "Whether the last configuration load (start-up or reload) succeeded. After a "
            "failed reload the monitor keeps running the previous configuration.",
            f"cxprobe_config_last_reload_successful{{{MONITOR}}}",
            "{{instance}}",
            states=("failed", "ok"),
            width=4,
        ),
        single_stat(
            "Since last successful load",
            "Time since the configuration was last loaded successfully.",
            [
                instant(
                    f"time() - cxprobe_config_last_reload_success_timestamp_seconds{{{MONITOR}}}",
                    "{{instance}}",
                )
            ],
            unit="s",
            width=4,
        ),
        single_stat(
            "Checks without a finished run",
            "Configured checks that have not finished a run since their monitor started "
            "(of how many are configured).",
            [
                instant(
                    checks_never_run(MONITOR, "instance, target, channel, scenario, location"),
                    "never ran",
                ),
                instant(f"count(cxprobe_check_info{{{MONITOR}}})", "configured"),
            ],
            unit="short",
            width=4,
        ),
        data_table(
            "Build",
            "The running cxprobe and Python versions per monitor.",
            [table_query(f"cxprobe_build_info{{{MONITOR}}}")],
            unit="none",
            width=8,
            height=5,
            labels=["instance", "version", "python"],
            values={},
        ),
    ]


def _scheduling() -> list[Panel]:
    def lag(q: float) -> str:
        return histogram_quantile(
            q, "cxprobe_scheduler_lag_seconds", MONITOR, "$__rate_interval", "instance"
        )

    return [
        time_series(
            "Scheduler lag (p50 / p99)",
            "How late runs start compared with their slot plus jitter. Seconds mean an "
            "overloaded event loop; minutes a suspended process.",
            [query(lag(0.5), "p50 · {{instance}}"), query(lag(0.99), "p99 · {{instance}}")],
            unit="s",
            width=8,
            min_interval="5m",
        ),
        time_series(
            "Probes in flight",
            "Probes executing now, per channel (each holds one of the channel's "
            "concurrency slots).",
            [query(f"sum by (channel) (cxprobe_probes_in_flight{{{MONITOR}}})", "{{channel}}")],
            unit="short",
            width=8,
        ),
        time_series(
            "Open runs",
            "Runs whose contact was sent and that wait for answers, per channel.",
            [query(f"sum by (channel) (cxprobe_open_runs{{{MONITOR}}})", "{{channel}}")],
            unit="short",
            width=8,
        ),
    ]


def _faults() -> list[Panel]:
    return [
        count_bars(
            "Run start failures",
            "Scheduled runs that could not start because the evidence store failed while "
            "claiming the slot. Any is a monitor fault: the slot has no run.",
            "cxprobe_run_start_failures_total",
            MONITOR,
            "target, channel",
            width=8,
            min_interval=MONITOR_INTERVAL,
        ),
        count_bars(
            "Unmatched replies",
            "Replies no run claimed, per channel: strangers writing to a probe address, "
            "or replies to runs the configuration no longer has.",
            "cxprobe_unmatched_replies_total",
            MONITOR,
            "channel",
            width=8,
            min_interval=MONITOR_INTERVAL,
        ),
        runs_by_outcome(
            "Runs finished by outcome",
            "All checks' finished runs per outcome; error and interrupted are runs the probe "
            "could not perform.",
            MONITOR,
            "outcome",
            width=8,
            min_interval=MONITOR_INTERVAL,
        ),
    ]
