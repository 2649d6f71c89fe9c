"""The benchmarks' own arithmetic: percentiles, series counts and the scheduler's window
figures (the benchmarks themselves are run by ``python -m bench``, not by the tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from bench.metrics import checks_for, count_series, filled_metrics, series_by_kind
from bench.scheduler import StartRecorder, bench_checks, window_figures
from bench.stats import percentile, summary_ms


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    with pytest.raises(ValueError):
        percentile([], 0.5)
    assert summary_ms([0.001, 0.002, 0.003])["max_ms"] == 3


def test_series_counts_sample_lines_by_kind() -> None:
    exposition = (
        b"# HELP a_total A.\n# TYPE a_total counter\n"
        b'a_total{x="1"} 1.0\na_created{x="1"} 1.7e9\n'
        b'h_bucket{le="1"} 0.0\nh_count 0.0\n\n'
    )
    assert count_series(exposition) == 4
    assert series_by_kind(exposition) == {
        "histogram_buckets": 1,
        "created_timestamps": 1,
        "other": 2,
    }


def test_checks_for_gives_the_fewest_checks_reaching_the_series() -> None:
    checks = checks_for(3000)
    assert count_series(generate_latest(filled_metrics(checks))) >= 3000
    assert count_series(generate_latest(filled_metrics(checks - 1))) < 3000
    # The recorded runs left histogram and last-run series, not only the declared zeros.
    exposition = generate_latest(filled_metrics(1))
    assert b"cxprobe_first_response_seconds_bucket{" in exposition
    assert b"cxprobe_last_run_timestamp_seconds{" in exposition


def test_spread_checks_have_distinct_intervals_and_aligned_ones_share_one() -> None:
    spread = bench_checks(100, 5.0, 10.0, aligned=False)
    assert len({check.schedule.every for check in spread}) == 100
    assert all(5.0 <= (check.schedule.every or 0) < 10.0 for check in spread)
    assert all(check.schedule.jitter == 0 for check in spread)
    assert {check.schedule.every for check in bench_checks(10, 5.0, 10.0, aligned=True)} == {5.0}


def testwindow_figures_count_missed_repeated_and_late_starts() -> None:
    checks = bench_checks(2, 5.0, 10.0, aligned=True)  # both every 5 s
    begin = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a slot of a 5 s interval
    recorder = StartRecorder()
    late = timedelta(milliseconds=20)
    recorder.starts += [
        (checks[0].id, begin, begin + late),
        (checks[0].id, begin, begin + late),  # twice
        (checks[0].id, begin + timedelta(seconds=5), begin + timedelta(seconds=5) + late),
        (checks[1].id, begin, begin + late),  # its second slot never starts
    ]
    figures = window_figures(checks, recorder, (begin, begin + timedelta(seconds=10)))
    assert figures["slots_due"] == 4
    assert figures["slots_started"] == 3
    assert figures["missed"] == 1
    assert figures["started_twice"] == 1
    assert figures["unexpected"] == 0
    assert figures["start_lag"]["p99_ms"] == pytest.approx(20)
