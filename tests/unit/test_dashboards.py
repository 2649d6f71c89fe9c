"""The committed Grafana dashboards: generated, valid, and true to the metric contract.

Grafana cannot run here, so the JSON is checked against the dashboard JSON Schema vendored in
``grafana/schema/`` (from ``@grafana/schema``), and against what Grafana and the rest of
cxprobe rely on: uids, variables, the datasource binding, units, descriptions, the metric names
of ``docs/metrics.md``, and the provisioning files. Whether every query returns data is
``tests/integration/test_dashboards_live.py``'s job.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from probes.base import Responder
from scenarios.model import Outcome, Period, RoutingResult, SloName

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
REGENERATE = "python grafana/generate.py"
UIDS = {
    "overview.json": "cxprobe-overview",
    "target.json": "cxprobe-target",
    "monitor.json": "cxprobe-monitor",
}
LABELS = {"target", "channel", "scenario", "location", "check", "period"}
LABELS |= {"outcome", "responder", "result", "slo", "version", "python", "instance", "job"}
#: The values cxprobe gives the labels it defines (``result`` is the SLO event's or the routing
#: verdict, by metric).
PRODUCT_VALUES: dict[str, set[str]] = {
    "slo": set(SloName),
    "responder": set(Responder),
    "outcome": set(Outcome),
    "period": set(Period),
    "result": {"good", "bad"} | set(RoutingResult),
}


def load(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DASHBOARDS / name).read_text())
    return board


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found += panel.get("panels", [])
        if panel["type"] != "row":
            found.append(panel)
    return found


def exprs(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(board) for target in panel["targets"]]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((GRAFANA / "schema" / "dashboard.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_committed_dashboards_are_what_the_generator_writes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--output", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=tmp_path,  # the output must not depend on where it is run from
    )
    generated = {path.name: path.read_text() for path in tmp_path.glob("*.json")}
    committed = {path.name: path.read_text() for path in DASHBOARDS.glob("*.json")}
    assert generated.keys() == committed.keys(), f"run `{REGENERATE}` and commit the result"
    stale = sorted(name for name in generated if generated[name] != committed[name])
    assert not stale, (
        f"{', '.join(stale)} in grafana/dashboards/ differ from what grafana/generate.py "
        f"writes: run `{REGENERATE}` and commit the result"
    )


@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_matches_the_grafana_schema(
    name: str, validator: jsonschema.Draft7Validator
) -> None:
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(load(name))]
    assert errors == []


def test_the_schema_check_is_not_vacuous(validator: jsonschema.Draft7Validator) -> None:
    board = copy.deepcopy(load("overview.json"))
    assert board["panels"][1]["type"] != "row"
    board["panels"][1]["gridPos"]["height"] = 8  # a misspelt key
    board["templating"]["list"][1]["auto_count"] = 30  # what the SDK writes on variables
    paths = {error.json_path for error in validator.iter_errors(board)}
    assert paths == {"$.panels[1]", "$.templating.list[1]"}


@pytest.mark.parametrize(("name", "uid"), sorted(UIDS.items()))
def test_uid_datasource_and_panels(name: str, uid: str) -> None:
    board = load(name)
    assert board["uid"] == uid
    assert "cxprobe" in board["tags"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        where = f"{name}: {panel['title']!r}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel.get("description"), f"{where} has no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where} has no unit"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", where


def test_the_drill_down_takes_the_variables_alerts_link_with() -> None:
    variables = {v["name"]: v for v in load("target.json")["templating"]["list"]}
    for name in ("target", "channel", "scenario", "location"):
        assert re.fullmatch(
            rf"label_values\(cxprobe_check_info(\{{.*\}})?, {name}\)", variables[name]["query"]
        ), variables[name]["query"]
    assert not variables["target"]["multi"]  # ?var-target=<t> selects exactly one


def test_queries_use_only_contract_metrics_and_no_hard_coded_targets() -> None:
    contract = (ROOT / "docs" / "metrics.md").read_text()
    for name in UIDS:
        for expr in exprs(load(name)):
            for metric in re.findall(r"\bcxprobe_\w+", expr):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                assert f"`{base}`" in contract, f"{name}: {metric} is not in docs/metrics.md"
            for label, value in re.findall(r'\b(target|scenario|location)=~?"([^"]*)"', expr):
                assert value.startswith("$"), f"{name}: hard-coded {label}={value!r} in {expr}"
            for grouping in re.findall(r"\b(?:by|on|ignoring) \(([^)]*)\)", expr):
                unknown = {label.strip() for label in grouping.split(",")} - LABELS - {"le"}
                assert not unknown, f"{name}: unknown labels {unknown} in {expr}"


def test_queries_select_only_label_values_the_product_defines() -> None:
    selectors = [
        (name, expr, label, value)
        for name in UIDS
        for expr in exprs(load(name))
        for label, value in re.findall(
            r'\b(slo|responder|outcome|period|result)(?:=~|!~|!=|=)"([^"]*)"', expr
        )
    ]
    assert {label for _, _, label, _ in selectors} == set(PRODUCT_VALUES)  # not vacuous
    for name, expr, label, value in selectors:
        unknown = set(value.split("|")) - PRODUCT_VALUES[label]
        assert not unknown, f"{name}: {label} values {unknown} are not cxprobe's in {expr}"


def test_provisioning_binds_the_datasource_and_the_dashboards() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    for name in UIDS:
        (variable,) = [v for v in load(name)["templating"]["list"] if v["name"] == "datasource"]
        assert variable["current"]["value"] == source["uid"], name
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/cxprobe.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/cxprobe"
