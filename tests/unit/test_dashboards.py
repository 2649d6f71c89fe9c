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

from probes import CHANNEL_TYPES
from probes.base import Responder
from scenarios.model import AnswerVerdict, Outcome, Period, RoutingResult, SloName

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
REGENERATE = "python grafana/generate.py"
UIDS = {
    "overview.json": "cxprobe-overview",
    "target.json": "cxprobe-target",
    "monitor.json": "cxprobe-monitor",
    "locations.json": "cxprobe-locations",
    "quality.json": "cxprobe-quality",
}
LABELS = {"target", "channel", "scenario", "location", "check", "period"}
LABELS |= {"outcome", "responder", "result", "slo", "version", "python", "instance", "job"}
LABELS |= {"verdict", "resolved", "item", "contact_mode", "competitor"}
#: The values cxprobe gives the labels it defines (``result`` is the SLO event's or the routing
#: verdict, by metric).
PRODUCT_VALUES: dict[str, set[str]] = {
    "slo": set(SloName),
    "responder": set(Responder),
    "outcome": set(Outcome),
    "period": set(Period),
    "result": {"good", "bad", "met", "missed"} | set(RoutingResult),
    "verdict": set(AnswerVerdict),
    "resolved": {"true", "false"},
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


#: The metrics that carry a location label (docs/metrics.md).
LOCATION_METRICS = {
    "cxprobe_runs_total",
    "cxprobe_first_response_seconds",
    "cxprobe_routing_total",
    "cxprobe_last_run_timestamp_seconds",
    "cxprobe_last_run_success",
    "cxprobe_check_info",
    "cxprobe_slo_threshold_seconds",
}
SELECTOR = re.compile(r"\b(cxprobe_\w+)\{([^}]*)\}")


@pytest.mark.parametrize("name", sorted(UIDS))
def test_every_dashboard_selects_locations(name: str) -> None:
    """A location variable (several or all), and every series that has a location follows it,
    directly or through the monitors (instances) it selects."""
    variables = {v["name"]: v for v in load(name)["templating"]["list"]}
    location = variables["location"]
    assert location["multi"] and location["includeAll"], name
    assert location["current"]["value"] == ["$__all"], name
    assert re.fullmatch(r"label_values\(cxprobe_check_info(\{.*\})?, location\)", location["query"])
    followed = 0
    for expr in exprs(load(name)):
        for metric, match in SELECTOR.findall(expr):
            if re.sub(r"_(bucket|count|sum)$", "", metric) not in LOCATION_METRICS:
                continue
            followed += 1
            assert 'location=~"$location"' in match or 'instance=~"$instance"' in match, (
                f"{name}: {metric}{{{match}}} ignores the location variable"
            )
    assert followed, name
    if "instance" in variables:
        assert '{location=~"$location"}' in variables["instance"]["query"]


def by_title(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {panel["title"]: panel for panel in panels(board)}


def test_locations_dashboard_compares_each_target_and_channel_per_location() -> None:
    shown = by_title(load("locations.json"))
    table = shown["Locations side by side"]
    organize = next(t for t in table["transformations"] if t["id"] == "organize")["options"]
    assert sorted(organize["indexByName"], key=organize["indexByName"].get) == [
        "target",
        "channel",
        "location",
        *[f"Value #{ref}" for ref in "ABCDE"],
    ]
    assert [organize["renameByName"][f"Value #{ref}"] for ref in "ABCDE"] == [
        "Runs",
        "Met",
        "Routed correctly",
        "After hours: bot",
        "Human answer p95",
    ]
    figures = [target["expr"] for target in table["targets"]]
    assert "cxprobe_runs_total" in figures[0]
    assert 'outcome="met"' in figures[1] and 'outcome=~"met|breached|failed"' in figures[1]
    assert 'result="correct"' in figures[2] and 'result=~"correct|wrong"' in figures[2]
    assert 'period!="business", responder="bot"' in figures[3]
    assert figures[4].startswith("histogram_quantile(0.95, ") and 'responder="human"' in figures[4]
    quantiles = shown["Time to first answer by responder (p50 / p95)"]
    assert [t["expr"].split(",")[0] for t in quantiles["targets"]] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
    ]
    compared = [table, quantiles]
    compared += [
        shown["Runs met per location"],
        shown["Time to first human answer (p95) per location"],
    ]
    for panel in compared:
        for target in panel["targets"]:
            for grouping in re.findall(r"\bby \(([^)]*)\)", target["expr"]):
                assert {"target", "channel", "location"} <= {
                    label.strip() for label in grouping.split(",")
                }, (panel["title"], target["expr"])
    for title in ("Monitors up", "Monitors seen in the range", "Time since the last finished run"):
        (target,) = shown[title]["targets"]
        assert target["expr"].startswith(("count by (location)", "time() - max by (location)"))
        assert target["legendFormat"] == "{{location}}"


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
            r'\b(slo|responder|outcome|period|result|verdict|resolved)(?:=~|!~|!=|=)"([^"]*)"', expr
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


def test_quality_dashboard_shows_quality_per_channel_and_ranks_brands() -> None:
    board = load("quality.json")
    shown = {panel["title"]: panel for panel in panels(board)}
    table = shown["Answer quality by target and channel"]
    headers = table["transformations"][-1]["options"]["renameByName"]
    assert list(headers.values()) == [
        "Correct",
        "Resolved at first contact",
        "Language mismatches",
        "Rubric score",
    ]
    assert "cxprobe_rubric_score_sum" in exprs({"panels": [table]})[3]
    side_by_side = shown["Rubric score per channel"]
    assert side_by_side["targets"][0]["legendFormat"] == "{{channel}}"
    assert 'scenario="$scenario"' in side_by_side["targets"][0]["expr"]
    ranking = shown["Brands ranked"]
    columns = ranking["transformations"][-1]["options"]["indexByName"]
    assert sorted(columns, key=columns.__getitem__)[:3] == ["target", "contact_mode", "competitor"]
    for target in ranking["targets"]:
        assert "group_left (contact_mode, competitor)" in target["expr"]
        assert "cxprobe_target_info" in target["expr"]


def test_the_drill_down_shows_each_channels_own_measures() -> None:
    """A row per channel type with measures, headed as it names them, with every measure's
    histogram in the table over the range (runs, p50, p95) and in the p50 and p95 panels."""
    board = load("target.json")
    rows = [panel["title"] for panel in board["panels"] if panel["type"] == "row"]
    shown = by_title(board)
    measured = {kind: t for kind, t in CHANNEL_TYPES.items() if t.measures}
    assert measured  # not vacuous: the phone's audio
    for kind, channel_type in measured.items():
        heading = channel_type.measures_heading
        assert heading in rows
        table = shown[f"{heading} over the range"]
        runs, p50, p95 = (target["expr"] for target in table["targets"])
        quantiles = {
            "0.5": (p50, shown[f"{heading} (p50)"]),
            "0.95": (p95, shown[f"{heading} (p95)"]),
        }
        for name, measure in channel_type.measures.items():
            metric = f"cxprobe_{kind}_{name}_seconds"
            labelled = f'"measure", "{measure.label}"'
            assert f"increase({metric}_count{{" in runs and labelled in runs
            for q, (expr, panel) in quantiles.items():
                quantile = f"histogram_quantile({q}, sum by (channel, location, le) (rate({metric}"
                assert f"{quantile}_bucket{{" in expr and labelled in expr
                (target,) = [t for t in panel["targets"] if metric in t["expr"]]
                assert target["expr"].startswith(quantile)
                assert target["legendFormat"] == f"{measure.label} · {{{{location}}}}"
        headers = table["transformations"][-1]["options"]["renameByName"]
        assert list(headers.values()) == ["Runs", "p50", "p95"]
