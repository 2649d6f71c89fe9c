"""Prometheus rules generated from the configured SLOs and schedules (SLO burn rates, health)."""
