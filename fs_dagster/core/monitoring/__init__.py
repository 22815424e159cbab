"""Monitoring: descriptive statistics of feature tables."""

from fs_dagster.core.monitoring.statistics import compute_statistics, summarize

__all__ = ["compute_statistics", "summarize"]
