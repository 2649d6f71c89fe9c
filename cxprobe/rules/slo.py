"""SLO rules: error ratios per window (recording rules) and multi-window, multi-burn-rate alerts
(Google SRE workbook, "Alerting on SLOs", recipe 6) for each target, channel and SLO.

Probes are sparse: a check runs every minute at best, every hour or day at worst, so a window
may hold no SLO event at all. The rules are written so that

* **no data never fires**: an error ratio exists only for windows that hold events (its
  denominator is filtered with ``> 0``, never turned into ``0`` with ``or vector(0)``), and a
  long window must hold at least :data:`MIN_EVENTS` events: one unlucky probe pages nobody;
* **an empty short window never blocks**: the short window's job is to end the alert soon after
  the service recovers, so it is written as a veto (``unless`` the short window shows an error
  ratio at or below the threshold). With no probe in it, there is no evidence of recovery and
  the long window decides; the first good probe ends the alert. ``and short > threshold``
  instead would need a bad probe in the last 5 minutes, which a check running every 15 minutes
  can never guarantee: the page could not fire;
* **no alert that can never fire is written**: a window pair whose long window cannot hold
  :data:`MIN_EVENTS` events at the configured probe rate is left out and reported (the
  generator's caller prints it; the file's header lists it).

Business hours come from the metric itself: ``first_response`` and ``human_response`` events
are counted only from business-hours runs and ``after_hours_response`` only from after-hours
and holiday runs (``scenarios.verdicts.slo_events``), so a queue closed at night never burns
the human SLO, and the rules need no calendar.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cxprobe.rules.common import (
    ProbedCheck,
    Rule,
    RuleOptions,
    literal,
    number,
    percent,
    prom_duration,
    selector,
)
from scenarios.durations import format_duration
from scenarios.model import SloName

ALERT = "CxprobeErrorBudgetBurn"
EVENTS = "cxprobe_slo_events_total"
#: Events per window, by target, channel and slo (the minimum-events guard reads it).
EVENTS_RECORD = "cxprobe_slo:events:increase{window}"
#: Bad events / all events per window; absent when the window holds none.
ERROR_RATIO_RECORD = "cxprobe_slo:sli_error:ratio_rate{window}"
#: 1 while a declared maintenance window covers a target's channel (exporters.metrics).
MAINTENANCE_GAUGE = "cxprobe_maintenance_active"
#: A long window must hold this many events before its error ratio may alert.
MIN_EVENTS = 3
#: The budget period the burn rates are expressed against (the workbook's 30 days).
BUDGET_PERIOD = 30 * 86_400
_SLO_KEYS = ("target", "channel", "slo")


@dataclass(frozen=True)
class BurnWindow:
    """One alerting window pair: the long window measures, the short one confirms."""

    long: float
    short: float
    burn_rate: float
    severity: str
    for_: float

    @property
    def name(self) -> str:
        return prom_duration(self.long)


#: The workbook's pairs: 2 % of a 30-day budget in 1 h or 5 % in 6 h pages; 10 % in a day or
#: all of it in 3 days opens a ticket.
BURN_WINDOWS = (
    BurnWindow(long=3_600, short=300, burn_rate=14.4, severity="page", for_=120),
    BurnWindow(long=6 * 3_600, short=1_800, burn_rate=6, severity="page", for_=120),
    BurnWindow(long=86_400, short=7_200, burn_rate=3, severity="ticket", for_=900),
    BurnWindow(long=3 * 86_400, short=6 * 3_600, burn_rate=1, severity="ticket", for_=900),
)
#: Every window a rule reads: 5m, 30m, 1h, 2h, 6h, 1d, 3d.
WINDOWS = tuple(sorted({w for pair in BURN_WINDOWS for w in (pair.long, pair.short)}))

_BUSINESS_HOURS_ONLY = (
    "Business hours only: probes outside the target's business hours do not count, so a "
    "closed queue at night never burns this SLO."
)
_PERIOD_NOTE: dict[str, str] = {
    SloName.FIRST_RESPONSE: _BUSINESS_HOURS_ONLY,
    SloName.HUMAN_RESPONSE: _BUSINESS_HOURS_ONLY,
    SloName.AFTER_HOURS_RESPONSE: "After hours and holidays only: business-hours probes do not "
    "count.",
}
_WANTED: dict[str, str] = {
    SloName.FIRST_RESPONSE: "any answer within {limit}",
    SloName.HUMAN_RESPONSE: "a human answer within {limit}",
    SloName.AFTER_HOURS_RESPONSE: "an after-hours answer (bot, auto-reply or closed notice) within "
    "{limit}",
}


@dataclass(frozen=True)
class Slo:
    """One target x channel x SLO that some enabled check produces events for."""

    target: str
    target_name: str
    channel: str
    slo: str
    objective: float
    limit: float
    #: Events per second from all checks producing it (business or after hours alike).
    event_rate: float

    @property
    def labels(self) -> dict[str, str]:
        return {"target": self.target, "channel": self.channel, "slo": self.slo}

    @property
    def budget(self) -> float:
        return 1 - self.objective


@dataclass(frozen=True)
class Omission:
    """A window pair left out for an SLO because its probes are too sparse to fill it."""

    slo: Slo
    window: BurnWindow
    expected_events: float

    def __str__(self) -> str:
        return (
            f"{self.slo.target}/{self.slo.channel}/{self.slo.slo}: no {self.window.name} "
            f"{self.window.severity} alert: its checks produce about "
            f"{self.expected_events:.3g} event(s) in {self.window.name}, fewer than the "
            f"{MIN_EVENTS} a window needs"
        )


def slos_of(checks: Iterable[ProbedCheck]) -> list[Slo]:
    """The SLOs the checks produce events for, sorted by target, channel and SLO name."""
    found: dict[tuple[str, str, str], Slo] = {}
    for check in checks:
        for name, limit in check.slos:
            key = (check.target, check.channel, name)
            rate = 1 / check.interval
            if key in found:
                rate += found[key].event_rate
            found[key] = Slo(
                target=check.target,
                target_name=check.target_name,
                channel=check.channel,
                slo=name,
                objective=check.objective,
                limit=limit,
                event_rate=rate,
            )
    return [found[key] for key in sorted(found)]


def recording_rules(options: RuleOptions) -> list[Rule]:
    """Events and error ratio per target, channel and SLO, for every window the alerts read."""
    rules: list[Rule] = []
    keys = ", ".join(_SLO_KEYS)
    for window in WINDOWS:
        name = prom_duration(window)
        span = prom_duration(window * options.window_scale)
        total = f"sum by ({keys}) (increase({EVENTS}[{span}]))"
        bad = f'sum by ({keys}) (increase({EVENTS}{{result="bad"}}[{span}]))'
        rules.append({"record": EVENTS_RECORD.format(window=name), "expr": total})
        rules.append(
            {"record": ERROR_RATIO_RECORD.format(window=name), "expr": f"{bad}\n/\n({total} > 0)\n"}
        )
    return rules


def burn_alerts(slos: Sequence[Slo], options: RuleOptions) -> tuple[list[Rule], list[Omission]]:
    """The burn-rate alerts of every SLO, and the window pairs left out as unfillable."""
    rules: list[Rule] = []
    omitted: list[Omission] = []
    for slo in slos:
        for window in BURN_WINDOWS:
            expected = slo.event_rate * window.long * options.window_scale
            if expected < MIN_EVENTS:
                omitted.append(Omission(slo, window, expected))
                continue
            rules.append(_burn_alert(slo, window, options))
    return rules, omitted


def _burn_alert(slo: Slo, window: BurnWindow, options: RuleOptions) -> Rule:
    threshold = number(window.burn_rate * slo.budget)
    long_name, short_name = window.name, prom_duration(window.short)
    on = f"on ({', '.join(_SLO_KEYS)})"
    expr = (
        f"{selector(ERROR_RATIO_RECORD.format(window=long_name), slo.labels)} > {threshold}\n"
        f"and {on}\n"
        f"{selector(EVENTS_RECORD.format(window=long_name), slo.labels)} >= {MIN_EVENTS}\n"
        f"unless {on}\n"
        f"{selector(ERROR_RATIO_RECORD.format(window=short_name), slo.labels)} <= {threshold}\n"
        # A declared maintenance window is no burn: its runs make no events, and its silence
        # must not page either (DESIGN: the SLO alerts skip declared maintenance).
        f"unless on (target, channel)\n"
        f"{selector(MAINTENANCE_GAUGE, {'target': slo.target, 'channel': slo.channel})} == 1\n"
    )
    target, name = literal(slo.target), literal(slo.target_name)
    wanted = _WANTED[slo.slo].format(limit=format_duration(slo.limit))
    lasts = format_duration(BUDGET_PERIOD / window.burn_rate)
    description = (
        f"{{{{ $value | humanizePercentage }}}} of the {slo.slo} probes of {name} on "
        f"{slo.channel} were bad over the last {long_name} (at least {MIN_EVENTS} probes), and "
        f"the last {short_name} shows no recovery (as bad, or no probe yet). Threshold "
        f"{percent(window.burn_rate * slo.budget)}: {window.burn_rate:g} x the "
        f"{percent(slo.budget)} error budget of the {percent(slo.objective)} objective "
        f"({wanted}); at this rate a 30-day budget lasts {lasts}. {_PERIOD_NOTE[slo.slo]}"
    )
    return {
        "alert": ALERT,
        "expr": expr,
        "for": prom_duration(window.for_ * options.window_scale),
        "labels": {
            "severity": window.severity,
            **slo.labels,
            "target": target,
            "window": long_name,
        },
        "annotations": {
            "summary": (
                f"{target} {slo.channel}: {slo.slo} error budget burning at "
                f"{window.burn_rate:g}x ({{{{ $value | humanizePercentage }}}} bad over "
                f"{long_name})"
            ),
            "description": description,
            "runbook_url": options.runbook(ALERT),
            "dashboard_url": options.dashboard(slo.target, slo.channel),
        },
    }
