"""Monitoring verdicts (``OK`` / ``WARN`` / ``ERROR``, :mod:`fs_dagster.core.monitoring.verdicts`) as Dagster asset
check results, and the links to a saved report in a materialization's metadata.

``OK`` passes; ``WARN`` fails with severity WARN; ``ERROR`` fails with severity ERROR (what a retraining sensor
reacts to, :mod:`fs_dagster.retraining_sensor`). The description is the monitor's own paragraph (the drifted features
or tripped rules named), the metadata its flat key figures, so the UI plots them per check evaluation too.
"""

from __future__ import annotations

from typing import Any, Mapping

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue

from fs_dagster.core.monitoring.reports import ReportPaths
from fs_dagster.core.monitoring.verdicts import Verdict

NOTHING_TO_COMPARE = "nothing_to_compare"


def verdict_check_result(asset_key: AssetKey, check_name: str, verdict: Verdict, description: str,
                         metadata: Mapping[str, Any]) -> AssetCheckResult:
    """The check result of a verdict (see module doc)."""
    return AssetCheckResult(
        asset_key=asset_key, check_name=check_name, passed=verdict == "OK",
        severity=AssetCheckSeverity.ERROR if verdict == "ERROR" else AssetCheckSeverity.WARN,
        description=description[:4000], metadata=dict(metadata),
    )


def nothing_to_compare(asset_key: AssetKey, check_name: str, reason: str,
                       metadata: Mapping[str, Any] | None = None) -> AssetCheckResult:
    """A WARN failure saying why nothing was compared (no rows in the window, no labels yet): a monitor that sees
    nothing must not pass silently, and must not raise an ERROR that would retrain a model."""
    return AssetCheckResult(
        asset_key=asset_key, check_name=check_name, passed=False, severity=AssetCheckSeverity.WARN,
        description=f"Nothing compared: {reason}.", metadata={NOTHING_TO_COMPARE: True, **dict(metadata or {})},
    )


def report_metadata(paths: ReportPaths, prefix: str) -> dict[str, Any]:
    """Links to a saved report: ``<prefix>/report`` (the Evidently page, or the JSON without one),
    ``<prefix>/report_json``, and ``dagster/uri`` (the asset's location, shown on its page in the UI)."""
    main = paths.html or paths.json
    out: dict[str, Any] = {f"{prefix}/report": MetadataValue.path(str(main)),
                           f"{prefix}/report_json": MetadataValue.path(str(paths.json)),
                           "dagster/uri": main.as_uri()}
    return out
