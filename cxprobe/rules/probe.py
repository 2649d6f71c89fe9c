"""Probe-health alerts: a check that cannot run, and a check that has gone quiet.

They are not SLA breaches: they say the monitor is blind for a target and channel, and
Alertmanager uses them to inhibit that target and channel's SLA alerts. All are per check
(thresholds follow each check's schedule) and have severity ``warning``:

* ``CxprobeProbeCannotRun``: over the last three slots at least two runs ended ``error`` or
  ``interrupted`` (the probe could not perform them; they produce no SLO events) and they
  outnumber the runs that were judged. One error among good runs, or a run interrupted by a
  restart, is not alerted.
* ``CxprobeRunsNotStarting``: a scheduled run could not start at all (the evidence store failed
  while claiming the slot). Any is a monitor fault.
* ``CxprobeCheckStale``: the check's last finished run is older than three slots plus its
  deadline and jitter (a run is counted when judged, up to ``deadline`` after its slot).
* ``CxprobeCheckNeverRan``: the monitor exports the check (``cxprobe_check_info``) but no run
  has finished for that long since it appeared: ``cxprobe_last_run_*`` appear only with the
  first finished run, so the stale rule alone could never see this.
* ``CxprobeCheckNotExported``: no monitor exports the check at all (down, not scraped, or
  running a configuration without it): every other rule would go silent.
"""

from __future__ import annotations

from collections.abc import Iterable

from cxprobe.rules.common import (
    ProbedCheck,
    Rule,
    RuleOptions,
    literal,
    prom_duration,
    selector,
)
from scenarios.durations import format_duration

CANNOT_RUN = "CxprobeProbeCannotRun"
NOT_STARTING = "CxprobeRunsNotStarting"
STALE = "CxprobeCheckStale"
NEVER_RAN = "CxprobeCheckNeverRan"
NOT_EXPORTED = "CxprobeCheckNotExported"
#: Every probe-health alert: each inhibits the SLA alerts of its target and channel.
ALERTS = (CANNOT_RUN, NOT_STARTING, STALE, NEVER_RAN, NOT_EXPORTED)
#: A monitor restart takes seconds; this long without a check's series is not a restart.
NOT_EXPORTED_FOR = 600
#: Runs that could not be performed, out of the last three slots, before alerting.
MIN_ERRORS = 2

_CHECK_KEYS = "target, channel, scenario, location"
_ERRORS = '=~"error|interrupted"'


def probe_alerts(checks: Iterable[ProbedCheck], options: RuleOptions) -> list[Rule]:
    """Probe-health alerts of ``checks``: per check, then per target and channel."""
    ordered = sorted(checks, key=lambda check: check.check_id)
    rules: list[Rule] = []
    for check in ordered:
        rules += [
            _cannot_run(check, options),
            _stale(check, options),
            _never_ran(check, options),
            _not_exported(check, options),
        ]
    pairs: dict[tuple[str, str], list[ProbedCheck]] = {}
    for check in ordered:
        pairs.setdefault((check.target, check.channel), []).append(check)
    rules += [_not_starting(pair, options) for _, pair in sorted(pairs.items())]
    return rules


def _series(check: ProbedCheck) -> dict[str, str]:
    return {"target": check.target, "channel": check.channel, "scenario": check.scenario}


def _links(alert: str, check: ProbedCheck, options: RuleOptions) -> dict[str, str]:
    return {
        "runbook_url": options.runbook(alert),
        "dashboard_url": options.dashboard(check.target, check.channel),
    }


def _what(check: ProbedCheck) -> str:
    return (
        f"check {check.check_id} ({literal(check.target_name)} on {check.channel}, "
        f"scenario {literal(check.scenario)})"
    )


def _cannot_run(check: ProbedCheck, options: RuleOptions) -> Rule:
    window = prom_duration(check.three_slots + check.jitter)
    runs = "cxprobe_runs_total"
    errors = (
        f"sum by ({_CHECK_KEYS}) (increase("
        f"{selector(runs, _series(check), outcome=_ERRORS)}[{window}]))"
    )
    total = f"sum by ({_CHECK_KEYS}) (increase({selector(runs, _series(check))}[{window}]))"
    expr = f"{errors}\n/\n({total} > 0)\n> 0.5\nand on ({_CHECK_KEYS})\n{errors} >= {MIN_ERRORS}\n"
    return {
        "alert": CANNOT_RUN,
        "expr": expr,
        "labels": {"severity": "warning", "check": check.check_id},
        "annotations": {
            "summary": (
                f"{check.check_id} cannot run: {{{{ $value | humanizePercentage }}}} of its "
                f"runs over {window} could not be performed"
            ),
            "description": (
                f"{{{{ $value | humanizePercentage }}}} of the runs of {_what(check)} at "
                f"{{{{ $labels.location }}}} over the last {window} (three slots) ended as error "
                f"or interrupted, at least {MIN_ERRORS} of them: the probe could not perform "
                "them, so they measure nothing and the SLA alerts of this target and channel "
                "are inhibited. The run's reason says why (cxprobe runs -c CONFIG --check "
                f"{check.check_id})."
            ),
            **_links(CANNOT_RUN, check, options),
        },
    }


def _stale_terms(check: ProbedCheck) -> str:
    every = format_duration(check.interval)
    return (
        f"it should finish a run about every {every} (runs wait up to "
        f"{format_duration(check.deadline)} for answers); the limit, "
        f"{format_duration(check.stale_after)}, is three slots plus the deadline"
        + (f" and the {format_duration(check.jitter)} jitter" if check.jitter else "")
    )


def _stale(check: ProbedCheck, options: RuleOptions) -> Rule:
    limit = f"{check.stale_after:.10g}"
    last = selector("cxprobe_last_run_timestamp_seconds", _series(check))
    return {
        "alert": STALE,
        "expr": f"time() - {last} > {limit}",
        "labels": {"severity": "warning", "check": check.check_id},
        "annotations": {
            "summary": (
                f"{check.check_id} has not finished a run for {{{{ $value | humanizeDuration }}}}"
            ),
            "description": (
                f"The last run of {_what(check)} at {{{{ $labels.location }}}} finished "
                f"{{{{ $value | humanizeDuration }}}} ago: {_stale_terms(check)}. The scheduler "
                "may be stuck or the process suspended, or runs never get judged. Its SLA "
                "alerts are inhibited meanwhile."
            ),
            **_links(STALE, check, options),
        },
    }


def _never_ran(check: ProbedCheck, options: RuleOptions) -> Rule:
    info = selector("cxprobe_check_info", {"check": check.check_id})
    return {
        "alert": NEVER_RAN,
        "expr": f"{info}\nunless on ({_CHECK_KEYS})\ncxprobe_last_run_timestamp_seconds\n",
        "for": prom_duration(check.stale_after),
        "labels": {"severity": "warning", "check": check.check_id},
        "annotations": {
            "summary": (
                f"{check.check_id} has not finished a run in "
                f"{format_duration(check.stale_after)} since the monitor started"
            ),
            "description": (
                f"The monitor at {{{{ $labels.location }}}} exports {_what(check)} but no run "
                f"of it has finished since it started: {_stale_terms(check)}. Runs may fail to "
                "start, hang before their deadline, or the scheduler may not run at all."
            ),
            **_links(NEVER_RAN, check, options),
        },
    }


def _not_exported(check: ProbedCheck, options: RuleOptions) -> Rule:
    info = selector("cxprobe_check_info", {"check": check.check_id, **_series(check)})
    return {
        "alert": NOT_EXPORTED,
        "expr": f"absent({info})",
        "for": prom_duration(NOT_EXPORTED_FOR),
        "labels": {"severity": "warning", "check": check.check_id},
        "annotations": {
            "summary": f"No monitor exports {check.check_id}",
            "description": (
                f"Prometheus has had no series of {_what(check)} for "
                f"{format_duration(NOT_EXPORTED_FOR)}: the monitor is down, is not scraped, or "
                "runs a configuration without this check (reload it, or regenerate the rules "
                "from the configuration it runs). Nothing about this check can alert meanwhile."
            ),
            **_links(NOT_EXPORTED, check, options),
        },
    }


def _not_starting(checks: list[ProbedCheck], options: RuleOptions) -> Rule:
    first = checks[0]
    pair = {"target": first.target, "channel": first.channel}
    target, name = literal(first.target), literal(first.target_name)
    window = prom_duration(max(check.three_slots + check.jitter for check in checks))
    failures = selector("cxprobe_run_start_failures_total", pair)
    return {
        "alert": NOT_STARTING,
        "expr": f"sum by (target, channel) (increase({failures}[{window}])) > 0",
        "labels": {"severity": "warning", "target": target, "channel": first.channel},
        "annotations": {
            "summary": f"Runs of {target} on {first.channel} could not start",
            "description": (
                f'{{{{ $value | printf "%.0f" }}}} scheduled run(s) of {name} '
                f"on {first.channel} could not start in the last {window}: the evidence store "
                'failed while claiming their slots (logged as "run could not start"). Those '
                "slots have no run at all."
            ),
            **_links(NOT_STARTING, first, options),
        },
    }
