"""Benchmarks: ``python -m bench`` (or ``make bench``); figures go to BENCHMARKS.md."""
