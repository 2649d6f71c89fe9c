"""The fast /metrics exposition: byte for byte what prometheus_client renders, for the same
registry, after every kind of write; what it does not know goes to prometheus_client."""

from __future__ import annotations

import threading
from functools import partial
from typing import NamedTuple

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    Summary,
    disable_created_metrics,
    enable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from bench.metrics import PROMETHEUS_ACCEPT, count_series, filled_metrics, fleet_check, runs_of
from exporters.exposition import Exposition, Format, negotiate
from exporters.metrics import CheckSeries, MonitorMetrics
from scenarios.model import Outcome

#: Prometheus 3's Accept header (UTF-8 names allowed).
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


def library(registry: CollectorRegistry, fmt: Format) -> bytes:
    """What prometheus_client itself renders."""
    if fmt is Format.TEXT:
        return generate_latest(registry)
    return openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call, no-any-return]


def assert_same(exposition: Exposition, registry: CollectorRegistry) -> None:
    for fmt in Format:
        assert exposition.render_format(fmt).decode() == library(registry, fmt).decode(), fmt


class Fleet(NamedTuple):
    """A monitor's metrics with six checks declared, and the exposition of its registry."""

    registry: CollectorRegistry
    metrics: MonitorMetrics
    exposition: Exposition
    checks: list[CheckSeries]


@pytest.fixture
def fleet() -> Fleet:
    registry = CollectorRegistry(auto_describe=True)
    metrics = MonitorMetrics(registry, "1.2.3")
    checks = [fleet_check(index) for index in range(6)]
    metrics.declare_checks(checks)
    return Fleet(registry, metrics, Exposition(registry), checks)


def test_a_filled_monitor_renders_the_same_bytes_and_samples() -> None:
    registry = filled_metrics(12)  # 12 checks that each ran three times
    exposition = Exposition(registry)
    text = exposition.render_format(Format.TEXT)
    assert count_series(text) > 1000
    assert text == generate_latest(registry)
    assert list(parse_text(text.decode())) == list(parse_text(generate_latest(registry).decode()))
    expected = library(registry, Format.OPENMETRICS)
    rendered = exposition.render_format(Format.OPENMETRICS)
    assert rendered == expected
    assert list(parse_openmetrics(rendered.decode())) == list(parse_openmetrics(expected.decode()))
    assert_same(exposition, registry)  # the second render, from the templates, too


def test_every_write_shows_in_the_next_render(fleet: Fleet) -> None:
    registry, metrics, exposition, checks = fleet
    assert_same(exposition, registry)
    before = exposition.render_format(Format.TEXT)
    result = runs_of(checks[0])[0]
    metrics.record_run(result, [("first_response", True)])  # new histogram and gauge children
    after = exposition.render_format(Format.TEXT)
    assert after != before
    assert_same(exposition, registry)
    metrics.record_run(result, [("first_response", False)])  # existing children change value
    assert exposition.render_format(Format.TEXT) != after
    assert_same(exposition, registry)
    metrics.set_open_runs("email", 7)
    metrics.observe_scheduler_lag(0.02)
    metrics.config_reloaded(True)
    with metrics.in_flight("sms"):
        assert b'cxprobe_probes_in_flight{channel="sms"} 1.0' in exposition.render_format(
            Format.TEXT
        )
        assert_same(exposition, registry)
    assert_same(exposition, registry)


def test_removed_and_recreated_series_follow_the_registry(fleet: Fleet) -> None:
    registry, metrics, exposition, checks = fleet
    metrics.record_run(runs_of(checks[-1])[0], [])
    assert_same(exposition, registry)
    metrics.declare_checks(checks[:-1])  # a reload drops the last check's series
    text = exposition.render_format(Format.TEXT)
    assert b"check-00005" not in text
    assert_same(exposition, registry)
    # Their templates went too: a monitor reloading for months must not keep them all.
    for collector, template in exposition._templates.items():
        assert template is not None
        assert set(template.series) == set(getattr(collector, "_metrics", {(): None}))
    # Back again: new children, whose _created differs from the templates' first children.
    metrics.declare_checks(checks)
    assert_same(exposition, registry)


def test_a_reset_counter_renders_its_new_created_time() -> None:
    registry = CollectorRegistry()
    counter = Counter("jobs_total", "Jobs.", ["kind"], registry=registry)
    counter.labels("a").inc(3)
    exposition = Exposition(registry)
    assert_same(exposition, registry)
    counter.labels("a").reset()
    counter.labels("a")._created += 12.5  # type: ignore[attr-defined]  # a later restart
    assert_same(exposition, registry)


def test_values_labels_and_help_that_need_care() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("odd_values", 'Help with a \\ backslash,\na newline and a "quote".', ["v"])
    registry.register(gauge)
    for label, value in [
        ("negative zero", -0.0),
        ("zero", 0),
        ("int", 7),
        ("true", True),
        ("nan", float("nan")),
        ("inf", float("inf")),
        ("minus inf", float("-inf")),
        ("big", 12345678.9),
        ("tiny", 1e-9),
        ('quote " back \\ newline \n', 0.5),
        ("unicode ünïcödé", 2.0),
    ]:
        gauge.labels(label).set(value)
    Histogram("below_zero", "Buckets from -1.", buckets=(-1, 0, 1), registry=registry).observe(-2)
    Gauge("request_size", "With a unit.", unit="bytes", registry=registry).set(3)
    Counter("unlabelled_total", "No labels.", registry=registry).inc()
    Counter("labelled_but_empty", "No children yet.", ["kind"], registry=registry)
    exposition = Exposition(registry)
    for _ in range(2):  # the first render builds the templates, the second uses them
        assert_same(exposition, registry)


def test_what_the_fast_path_does_not_know_is_rendered_by_prometheus_client() -> None:
    class Custom:
        def collect(self) -> list[Metric]:
            return [GaugeMetricFamily("custom_value", "From a custom collector.", value=4)]

    class Doubled(Counter):  # a subclass may sample differently: not ours to assume
        pass

    registry = CollectorRegistry()
    Counter("before_total", "Fast.", ["kind"], registry=registry).labels("x").inc()
    registry.register(Custom())  # type: ignore[arg-type]
    Gauge("computed", "set_function.", registry=registry).set_function(lambda: 42)
    Summary("latency_seconds", "A summary.", registry=registry).observe(0.3)
    Info("build", "An info.", registry=registry).info({"version": "1"})
    Doubled("doubled_total", "A subclass.", registry=registry).inc()
    Gauge("after", "Fast again.", registry=registry).set(1)
    exposition = Exposition(registry)
    assert_same(exposition, registry)
    body, _ = exposition.render(PROMETHEUS_ACCEPT)
    assert b"computed 42.0" in body and body[-6:] == b"# EOF\n"
    assert body.count(b"# EOF") == 1


def test_target_info_and_created_switch_match_prometheus_client() -> None:
    registry = CollectorRegistry(target_info={"location": "london"})
    Counter("runs_total", "Runs.", registry=registry).inc()
    exposition = Exposition(registry)
    for accept in ("", PROMETHEUS_ACCEPT):
        encoder, _ = choose_encoder(accept)
        assert exposition.render(accept)[0] == encoder(registry)
    plain = CollectorRegistry()
    Counter("runs_total", "Runs.", ["kind"], registry=plain).labels("a").inc()
    Histogram("lag_seconds", "Lag.", registry=plain).observe(1)
    disable_created_metrics()
    try:
        assert b"_created" not in Exposition(plain).render_format(Format.TEXT)
        assert_same(Exposition(plain), plain)
    finally:
        enable_created_metrics()
    assert b"_created" in Exposition(plain).render_format(Format.TEXT)


@pytest.mark.parametrize(
    ("accept", "fast"),
    [
        ("", Format.TEXT),
        ("text/plain;version=0.0.4", Format.TEXT),
        ("*/*", Format.TEXT),
        (PROMETHEUS_ACCEPT, Format.OPENMETRICS),
        (PROMETHEUS_3_ACCEPT, Format.OPENMETRICS),
        ("application/openmetrics-text", Format.OPENMETRICS),
        # Legacy names render the same whether UTF-8 is allowed or not.
        ("text/plain;version=1.0.0;escaping=allow-utf-8", Format.TEXT),
        ("text/plain;version=1.0.0;escaping=dots", None),  # '_' becomes '__': the library's
        ("application/openmetrics-text;version=2.0.0", None),
    ],
)
def test_negotiation_is_prometheus_clients(accept: str, fast: Format | None) -> None:
    registry = filled_metrics(1)
    encoder, content_type = choose_encoder(accept)
    negotiated = negotiate(accept)
    assert negotiated.content_type == content_type
    assert negotiated.fast_format is fast
    body, served_type = Exposition(registry).render(accept)
    assert (body, served_type) == (encoder(registry), content_type)


def test_renders_in_threads_while_the_metrics_change(fleet: Fleet) -> None:
    registry, metrics, exposition, checks = fleet
    stop = threading.Event()
    failures: list[BaseException] = []

    def scrape() -> None:
        try:
            while not stop.is_set():
                for fmt, parse in [(Format.TEXT, parse_text), (Format.OPENMETRICS, None)]:
                    body = exposition.render_format(fmt).decode()
                    list((parse or parse_openmetrics)(body))  # always well-formed
        except BaseException as error:  # reported to the test below
            failures.append(error)

    scrapers = [threading.Thread(target=scrape) for _ in range(2)]
    for thread in scrapers:
        thread.start()
    try:
        for round_ in range(30):
            declared = checks if round_ % 2 else checks[:3]  # reloads add and remove series
            metrics.declare_checks(declared)
            for check in declared:
                for result in runs_of(check):
                    record = partial(metrics.record_run, result)
                    record([("first_response", result.outcome is Outcome.MET)])
    finally:
        stop.set()
        for thread in scrapers:
            thread.join()
    assert failures == []
    assert_same(exposition, registry)


def test_templates_of_unregistered_collectors_are_dropped() -> None:
    registry = CollectorRegistry()
    gone = Counter("gone_total", "Unregistered later.", registry=registry)
    exposition = Exposition(registry)
    exposition.render_format(Format.TEXT)
    registry.unregister(gone)
    assert b"gone_total" not in exposition.render_format(Format.TEXT)
    assert gone not in exposition._templates


def test_value_cells_read_through_get_render_the_same(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path for value cells other than the in-process one (multiprocess mode).
    monkeypatch.setattr("exporters.exposition._PLAIN_CELLS", False)
    registry, metrics, exposition, checks = fleet
    assert_same(exposition, registry)
    for result in runs_of(checks[1]):
        metrics.record_run(result, [("first_response", result.outcome is Outcome.MET)])
        assert_same(exposition, registry)
