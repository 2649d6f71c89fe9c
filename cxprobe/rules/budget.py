"""The money-budget alert: a budget window is 80 % spent (``CxprobeBudgetMostlySpent``).

Every monitor sharing the store exports the same budget gauges (``cxprobe_budget_spent`` and
``cxprobe_budget_limit`` as of its last claim), so the rule takes the highest spend any of
them has seen per budget, window and currency. It is not an SLA alert: it says contacts will
soon be skipped (``skipped: budget``), so someone should raise the budget or slow the checks
before the evidence gets gaps. Severity ``warning``; one rule, whatever the configuration.
"""

from __future__ import annotations

from cxprobe.rules.common import Rule, RuleOptions

MOSTLY_SPENT = "CxprobeBudgetMostlySpent"
#: The share of a budget window's limit spent before the alert fires.
ALERT_AT = 0.8

_BY = "max by (budget, window, currency)"


def budget_alerts(options: RuleOptions) -> list[Rule]:
    """The budget alerts (independent of the configured budgets: they follow the gauges)."""
    return [
        {
            "alert": MOSTLY_SPENT,
            "expr": (
                f"{_BY} (cxprobe_budget_spent) / ({_BY} (cxprobe_budget_limit) > 0) >= {ALERT_AT:g}"
            ),
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Budget {{ $labels.budget }} ({{ $labels.window }}) is "
                "{{ $value | humanizePercentage }} spent",
                "description": (
                    "Contacts of budget {{ $labels.budget }} have spent "
                    "{{ $value | humanizePercentage }} of its {{ $labels.window }} limit in "
                    "{{ $labels.currency }} (actual provider prices where known, else "
                    "estimates). Once a contact would exceed the limit it is not sent and its "
                    "run is recorded as skipped: budget."
                ),
                "runbook_url": options.runbook(MOSTLY_SPENT),
            },
        }
    ]
