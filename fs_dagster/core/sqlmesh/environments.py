"""Comparing what a development environment's pipelines produce with prod's, before promoting them.

The workflow (see README, "SQLMesh environments"): run the changed SQLMesh project in a development environment
whose feature groups go to a project of their own in the same store (``SQLMeshResource(environment="dev",
feature_store=FeatureStoreResource(project="flights_dev"))``), build the same feature view's training dataset in
both projects, compare their statistics with :func:`compare_statistics`, then promote with a plan of prod
(:meth:`ProjectSession.plan_and_apply`: SQLMesh reuses the tables the dev environment built).

Statistics are those :func:`fs_dagster.core.monitoring.statistics.compute_statistics` gives (a training dataset's
``statistics[split]``, a feature group's ``statistics()``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fs_dagster.core.errors import InvalidDataError


@dataclass(frozen=True)
class FeatureShift:
    """How one feature differs between a candidate (dev) and a baseline (prod).

    Attributes:
        mean_shift: ``|mean - baseline mean| / baseline std`` (None: not numeric, or no spread in the baseline).
        null_fraction_change: candidate null fraction minus the baseline's.
        changed: the shift or the null change passes its threshold, the type differs, or the feature is new/gone.
    """

    feature: str
    baseline_type: str | None
    candidate_type: str | None
    baseline_mean: float | None
    candidate_mean: float | None
    mean_shift: float | None
    baseline_null_fraction: float | None
    candidate_null_fraction: float | None
    null_fraction_change: float | None
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatisticsComparison:
    """Every feature's :class:`FeatureShift`, the row counts, and the names of the changed features."""

    baseline_rows: int
    candidate_rows: int
    features: list[FeatureShift]

    @property
    def changed(self) -> list[str]:
        return [f.feature for f in self.features if f.changed]

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per feature (for a table in the Dagster UI or a report)."""
        return [f.to_dict() for f in self.features]


def compare_statistics(candidate: dict[str, Any], baseline: dict[str, Any], *, max_mean_shift: float = 0.1,
                       max_null_change: float = 0.01) -> StatisticsComparison:
    """Compares two statistics documents feature by feature.

    Args:
        candidate: e.g. the dev training dataset's ``statistics["train"]``.
        baseline: prod's statistics of the same features.
        max_mean_shift: a numeric feature whose mean moved by more than this many baseline standard deviations
            counts as changed.
        max_null_change: ... or whose null fraction moved by more than this.

    Raises:
        InvalidDataError: an argument is not a statistics document (no ``features``).
    """
    for name, stats in (("candidate", candidate), ("baseline", baseline)):
        if not isinstance(stats, dict) or not isinstance(stats.get("features"), dict):
            raise InvalidDataError(f"{name} is not a statistics document (expected compute_statistics' output)")
    base, cand = baseline["features"], candidate["features"]
    shifts = []
    for feature in list(base) + [f for f in cand if f not in base]:
        b, c = base.get(feature), cand.get(feature)
        b_mean, c_mean = _number(b, "mean"), _number(c, "mean")
        b_std = _number(b, "std")
        shift = None
        if b_mean is not None and c_mean is not None:
            if b_std:
                shift = abs(c_mean - b_mean) / b_std
            elif c_mean != b_mean:
                shift = math.inf
            else:
                shift = 0.0
        b_null, c_null = _number(b, "null_fraction"), _number(c, "null_fraction")
        null_change = c_null - b_null if b_null is not None and c_null is not None else None
        changed = (
            b is None or c is None or b.get("type") != c.get("type")
            or (shift is not None and shift > max_mean_shift)
            or (null_change is not None and abs(null_change) > max_null_change)
        )
        shifts.append(FeatureShift(
            feature, b.get("type") if b else None, c.get("type") if c else None, b_mean, c_mean, shift,
            b_null, c_null, null_change, changed,
        ))
    return StatisticsComparison(int(baseline.get("row_count") or 0), int(candidate.get("row_count") or 0), shifts)


def _number(stats: dict[str, Any] | None, key: str) -> float | None:
    if not stats:
        return None
    value = stats.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
