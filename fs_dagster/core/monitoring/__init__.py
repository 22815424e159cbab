"""Monitoring: descriptive statistics of feature tables, data drift and model quality (Evidently), feature
monitoring rules on per-commit statistics.

Modules: :mod:`.statistics` (per-commit statistics), :mod:`.drift` (``compute_drift``), :mod:`.quality`
(``compute_quality``), :mod:`.feature_monitoring` (``monitor_feature_group``), :mod:`.sources` (the frames they
compare, read from the store), :mod:`.reports` (report files), :mod:`.verdicts`. Names other than the statistics
are imported on first use, so importing statistics does not load the monitors (nor Evidently, which only the
monitors import, when they run).
"""

from __future__ import annotations

import importlib
from typing import Any

from fs_dagster.core.monitoring.statistics import compute_statistics, summarize

_LAZY = {
    "compute_drift": "drift", "DriftResult": "drift", "DriftThresholds": "drift", "FeatureDrift": "drift",
    "FeatureDriftRule": "drift", "DEFAULT_SAMPLE_ROWS": "drift",
    "compute_quality": "quality", "QualityResult": "quality", "QualityRule": "quality",
    "DEFAULT_QUALITY_RULES": "quality",
    "FeatureMonitoringRule": "feature_monitoring", "FeatureMonitoringResult": "feature_monitoring",
    "monitor_feature_group": "feature_monitoring", "evaluate_rules": "feature_monitoring",
    "histogram_distance": "feature_monitoring",
    "ReportPaths": "reports",
}

__all__ = ["compute_statistics", "summarize", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fs_dagster.core.monitoring' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fs_dagster.core.monitoring.{module}"), name)
