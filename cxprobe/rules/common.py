"""What the rule generator knows about the configuration, and the small helpers its rule
builders share (PromQL durations and selectors, runbook and dashboard links).

The generator lives in ``cxprobe.rules`` and must not import ``cxprobe.settings`` (dependency
direction), so ``cxprobe`` hands it :class:`ProbedCheck` values built from the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

#: A rule as it is written to the YAML file: alert/record, expr, for, labels, annotations.
Rule = dict[str, Any]

#: Where the runbooks live unless ``--docs-url`` says otherwise (a path in this repository).
DEFAULT_DOCS_URL = "docs/alerting.md"
#: The per-target dashboard; its uid is agreed with the dashboards in ``grafana/``.
DASHBOARD_UID = "cxprobe-target"


@dataclass(frozen=True)
class ProbedCheck:
    """One enabled check, as the rules need it."""

    check_id: str
    target: str
    target_name: str
    channel: str
    scenario: str
    #: Share of good SLO events the target's SLA promises on this channel.
    objective: float
    #: The SLOs its runs produce events for, with their time limits (seconds).
    slos: tuple[tuple[str, float], ...]
    #: How long a run waits for answers before it is judged (seconds).
    deadline: float
    #: Starts are spread by up to this much (seconds).
    jitter: float
    #: Mean seconds between slots (the event rate is its inverse).
    interval: float
    #: The longest time from a slot to the third slot after it: ``3 * every``, or for a cron
    #: schedule the longest such span (a business-hours cron has one across every night).
    three_slots: float

    @property
    def stale_after(self) -> float:
        """Seconds without a finished run after which the check is stale: three slots, plus
        the deadline (a run is counted when it is judged, up to ``deadline`` after its slot)
        and the jitter."""
        return self.three_slots + self.deadline + self.jitter


@dataclass(frozen=True)
class RuleOptions:
    """How the rules link out, and (for tests only) how fast they react."""

    #: The published ``docs/alerting.md``; runbook links are ``<docs_url>#<alert name>``.
    docs_url: str = DEFAULT_DOCS_URL
    #: Grafana's base URL; empty for a path (``/d/cxprobe-target/...``).
    grafana_url: str = ""
    #: TEST ONLY. Multiplies the SLO windows and the burn-rate alerts' ``for`` so that a live
    #: test sees an alert in seconds (e.g. 1/60: the 1h window becomes 1m). Rule names keep the
    #: nominal windows. Never use it for a real Prometheus: the burn rates assume real windows.
    window_scale: float = 1.0

    def runbook(self, alert: str) -> str:
        return f"{self.docs_url}#{alert.lower()}"

    def dashboard(self, target: str, channel: str) -> str:
        query = urlencode({"var-target": target, "var-channel": channel})
        return f"{self.grafana_url.rstrip('/')}/d/{DASHBOARD_UID}/{DASHBOARD_UID}?{query}"


_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def prom_duration(seconds: float) -> str:
    """A Prometheus duration in one unit, the largest that is exact: ``3d``, ``90s``,
    ``2500ms`` (millisecond resolution, the finest Prometheus reads)."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError(f"a window or duration must be positive, not {seconds}s")
    unit, size = next((unit, size) for unit, size in _UNITS if millis % size == 0)
    return f"{millis // size}{unit}"


def selector(metric: str, labels: Mapping[str, str], **matchers: str) -> str:
    """``metric{a="x", b=~"y"}``: ``labels`` match exactly, ``matchers`` are written as given
    (e.g. ``outcome='=~"error|interrupted"'``). Label values are config ids: quoted with JSON
    escaping, which PromQL string literals accept."""
    parts = [f"{name}={_quote(value)}" for name, value in labels.items()]
    parts += [f"{name}{matcher}" for name, matcher in matchers.items()]
    return f"{metric}{{{', '.join(parts)}}}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(text: str) -> str:
    """Config text (a brand name, a target key) as alert templates print it: Prometheus expands
    labels and annotations as Go templates, where ``{{`` would open an action."""
    return text.replace("{{", '{{ "{{" }}')


def number(value: float) -> str:
    """A threshold as PromQL and people read it: ``0.72``, not ``0.7200000000000001``."""
    return f"{value:.10g}"


def percent(ratio: float) -> str:
    return f"{ratio * 100:.10g}%"
