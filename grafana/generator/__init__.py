"""cxprobe's Grafana dashboards, written as code with ``grafana-foundation-sdk``: one module per
dashboard, what they share in :mod:`.common`; ``grafana/generate.py`` writes them.

The output is deterministic (sorted keys, panel ids and query ``refId``s numbered in layout
order), so a diff shows exactly what a change did.

Every query reads only the metric contract of ``docs/metrics.md``, and label values the product
defines (outcomes, periods, responders, routing verdicts, SLOs) come from the product's own
definitions. Why the queries look as they do:

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

import json
from collections.abc import Callable, Mapping
from typing import Any

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from .locations import locations
from .monitor_health import monitor_health
from .overview import overview
from .quality import quality
from .target_drill_down import target_drill_down

#: Each dashboard's file name in ``grafana/dashboards/`` and its builder.
DASHBOARDS: Mapping[str, Callable[[], builders.Dashboard]] = {
    "overview.json": overview,
    "target.json": target_drill_down,
    "monitor.json": monitor_health,
    "locations.json": locations,
    "quality.json": quality,
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


__all__ = ["DASHBOARDS", "render"]
