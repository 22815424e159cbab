"""Feature monitoring without a model (as Hopsworks' feature monitoring): user rules on the statistics the registry
records per commit (:mod:`.statistics`), comparing a commit with an earlier one.

A :class:`FeatureMonitoringRule` names a feature, a metric and the largest change it tolerates:

- ``mean``, ``std``, ``min``, ``max`` (numeric features), ``null_share`` (nulls / rows), ``distinct_count``
  (HyperLogLog estimate, ~1.6% error): change = |after - before|, or that over |before| when ``relative``;
- ``histogram_distance`` (numeric features): the Jensen-Shannon distance (base 2, in [0, 1]) or the PSI between
  the two commits' histograms. Each commit's histogram spans that commit's own min..max, so both are first
  re-binned onto the union of their edges, assuming values spread evenly inside a bin; identical histograms give
  exactly 0, and a commit whose range moved gets a small floor from the re-binning.

:func:`monitor_feature_group` compares the latest commit with statistics (or ``commit``) with the previous one
that has statistics (or ``baseline``; ``"first"`` = the oldest). Statistics missing for a commit given explicitly
are computed from the table as of that commit (the same function the registry uses), not recorded.

Example:
    rules = [FeatureMonitoringRule("temp", "mean", max_change=5.0),
             FeatureMonitoringRule("temp", "null_share", max_change=0.05, severity="ERROR"),
             FeatureMonitoringRule("temp", "histogram_distance", max_change=0.2)]
    result = monitor_feature_group(fs.get_feature_group("weather_hourly"), rules)
    result.verdict, [r.message for r in result.tripped]
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.monitoring.reports import ReportPaths, write_report
from fs_dagster.core.monitoring.verdicts import Severity, Verdict, check_severity, worst

if TYPE_CHECKING:
    from fs_dagster.core.feature_group import FeatureGroup
    from fs_dagster.core.store import FeatureStore

MonitoredMetric = Literal["mean", "std", "min", "max", "null_share", "distinct_count", "histogram_distance"]
MONITORED_METRICS: tuple[MonitoredMetric, ...] = ("mean", "std", "min", "max", "null_share", "distinct_count",
                                                  "histogram_distance")
NUMERIC_ONLY = {"mean", "std", "min", "max", "histogram_distance"}
HistogramDistance = Literal["jensen_shannon", "psi"]
_STAT_KEY = {"mean": "mean", "std": "std", "min": "min", "max": "max", "null_share": "null_fraction",
             "distinct_count": "approx_distinct"}
_NUMERIC_TYPE = re.compile(r"^(u?int(8|16|32|64)|halffloat|float|double|float(16|32|64)|decimal)")
PSI_FLOOR = 0.0001  # an empty bin's share in PSI (as Evidently does), so the logarithm stays finite


@dataclass(frozen=True)
class FeatureMonitoringRule:
    """A rule on one feature's statistic (see module doc).

    Attributes:
        feature: the column.
        metric: one of :data:`MONITORED_METRICS`.
        max_change: the largest tolerated change (for ``histogram_distance``: the largest distance).
        relative: change as a fraction of the baseline value (not for ``histogram_distance``).
        severity: ``"WARN"`` or ``"ERROR"`` when the rule trips.
        distance: ``"jensen_shannon"`` or ``"psi"`` (``histogram_distance`` only).
    """

    feature: str
    metric: MonitoredMetric
    max_change: float
    relative: bool = False
    severity: Severity = "WARN"
    distance: HistogramDistance = "jensen_shannon"

    def __post_init__(self) -> None:
        what = f"feature monitoring rule on {self.feature!r}"
        if not isinstance(self.feature, str) or not self.feature:
            raise InvalidDataError(f"feature monitoring rule: feature must be a column name, got {self.feature!r}")
        if self.metric not in MONITORED_METRICS:
            raise InvalidDataError(f"{what}: metric must be one of {list(MONITORED_METRICS)}, got {self.metric!r}")
        if (isinstance(self.max_change, bool) or not isinstance(self.max_change, (int, float))
                or not math.isfinite(self.max_change) or self.max_change < 0):
            raise InvalidDataError(f"{what}: max_change must be a finite number >= 0, got {self.max_change!r}")
        if self.distance not in ("jensen_shannon", "psi"):
            raise InvalidDataError(f"{what}: distance must be 'jensen_shannon' or 'psi', got {self.distance!r}")
        if self.relative and self.metric == "histogram_distance":
            raise InvalidDataError(f"{what}: a histogram distance is not relative; drop relative=True")
        check_severity(what, self.severity)

    @property
    def label(self) -> str:
        metric = f"histogram_distance ({self.distance})" if self.metric == "histogram_distance" else self.metric
        return f"{self.feature} {metric}"


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome: the statistic before and after (for ``histogram_distance``: None, the distance is the
    change), the change, whether it tripped, and a sentence saying so."""

    rule: FeatureMonitoringRule
    before: float | None
    after: float | None
    change: float | None
    tripped: bool
    message: str


@dataclass
class FeatureMonitoringResult:
    """The rules of one feature group evaluated on ``commit`` against ``baseline``."""

    feature_group: str
    version: int
    commit: str | None
    baseline: str | None
    results: list[RuleResult]
    verdict: Verdict
    computed_at: datetime
    notes: list[str] = field(default_factory=list)

    @property
    def tripped(self) -> list[RuleResult]:
        return [r for r in self.results if r.tripped]

    def describe(self) -> str:
        """One paragraph for a check's description: the verdict, the rules that tripped, the commits compared."""
        head = (f"{self.verdict}: " + ("; ".join(r.message for r in self.tripped) if self.tripped
                                       else f"all {len(self.results)} rule(s) within limits") + ".")
        return " ".join([head, f"Commit {self.commit} against {self.baseline}.", *(n + "." for n in self.notes)])

    def metadata(self) -> dict[str, Any]:
        """Flat figures for Dagster: verdict, commits, rules tripped, and per rule the value after and the change."""
        out: dict[str, Any] = {"feature_monitoring/verdict": self.verdict,
                               "feature_monitoring/commit": self.commit or "",
                               "feature_monitoring/baseline": self.baseline or "",
                               "feature_monitoring/tripped": len(self.tripped),
                               "feature_monitoring/rules": len(self.results)}
        for r in self.results:
            key = f"feature_monitoring/{r.rule.feature}/{r.rule.metric}"
            if r.after is not None:
                out[key] = r.after
            if r.change is not None and math.isfinite(r.change):
                out[f"{key}/change"] = r.change
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "feature_monitoring", "feature_group": self.feature_group, "version": self.version,
            "commit": self.commit, "baseline": self.baseline, "verdict": self.verdict,
            "results": [{**asdict(r), "rule": asdict(r.rule)} for r in self.results],
            "notes": list(self.notes), "computed_at": self.computed_at.isoformat(),
        }

    def save(self, target: FeatureStore | str | Path, name: str | None = None, *,
             kind: str = "feature_monitoring") -> ReportPaths:
        """Writes ``<root>/<project>/reports/<kind>/<name>/<timestamp>.json`` (no HTML: no Evidently here);
        ``name`` defaults to ``<group>_v<version>``."""
        return write_report(target, kind, name or f"{self.feature_group}_v{self.version}", self.computed_at,
                            self.to_dict())


# ---------------------------------------------------------------------------------------------- histograms


def _cdf(edges: np.ndarray, counts: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Mass at or below each point of ``at`` for a histogram, values spread evenly inside each bin; a zero-width
    bin (a constant column) is a point mass."""
    low, high = edges[:-1], edges[1:]
    width = high - low
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(width > 0, np.clip((at[:, None] - low) / width, 0.0, 1.0),
                         (at[:, None] >= low).astype(np.float64))
    return share @ counts


def histogram_distance(before: Mapping[str, Any], after: Mapping[str, Any],
                       distance: HistogramDistance = "jensen_shannon") -> float:
    """Distance between two recorded histograms (``{"edges": [...], "counts": [...]}``), re-binned onto the union
    of their edges (see module doc): Jensen-Shannon (base 2, in [0, 1]) or PSI.

    Example:
        >>> histogram_distance({"edges": [0, 1, 2], "counts": [5, 5]}, {"edges": [0, 1, 2], "counts": [5, 5]})
        0.0
    """
    a_edges, b_edges = np.asarray(before["edges"], dtype=float), np.asarray(after["edges"], dtype=float)
    a_counts, b_counts = np.asarray(before["counts"], dtype=float), np.asarray(after["counts"], dtype=float)
    if a_counts.sum() <= 0 or b_counts.sum() <= 0:
        raise InvalidDataError("histogram distance: a histogram without values")
    grid = np.union1d(a_edges, b_edges)
    # mass per grid interval; the first point's own mass (a point mass at the lowest edge) joins the first interval
    p = np.diff(np.concatenate([[0.0], _cdf(a_edges, a_counts, grid)]))
    q = np.diff(np.concatenate([[0.0], _cdf(b_edges, b_counts, grid)]))
    p, q = np.clip(p, 0, None) / a_counts.sum(), np.clip(q, 0, None) / b_counts.sum()
    if distance == "psi":
        p, q = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
        return float(np.sum((q - p) * np.log(q / p)))
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, (kl_p + kl_q) / 2)))


# ---------------------------------------------------------------------------------------------- rules


def _number(value: Any) -> float | None:
    return None if value is None or isinstance(value, (str, bool)) else float(value)


def _change(before: float, after: float, relative: bool) -> float:
    difference = abs(after - before)
    if not relative:
        return difference
    if before == 0:
        return 0.0 if difference == 0 else math.inf
    return difference / abs(before)


def evaluate_rules(before: Mapping[str, Any] | None, after: Mapping[str, Any],
                   rules: Sequence[FeatureMonitoringRule]) -> list[RuleResult]:
    """The ``rules`` on two statistics documents (``compute_statistics`` output); ``before`` None = no baseline
    (nothing trips).

    Raises:
        InvalidDataError: a rule names a feature the ``after`` statistics lack, or a numeric metric of a
            non-numeric feature (naming both).
    """
    features_after = after.get("features", {})
    features_before = (before or {}).get("features", {})
    results = []
    for rule in rules:
        if not isinstance(rule, FeatureMonitoringRule):
            raise InvalidDataError(f"feature monitoring: rules must be FeatureMonitoringRule objects, got {rule!r}")
        stats = features_after.get(rule.feature)
        if stats is None:
            raise InvalidDataError(f"feature monitoring: no feature {rule.feature!r} in the statistics; features: "
                                   f"{list(features_after)}")
        if rule.metric in NUMERIC_ONLY and not _NUMERIC_TYPE.match(str(stats.get("type", ""))):
            raise InvalidDataError(f"feature monitoring: {rule.metric} needs a numeric feature; {rule.feature!r} is "
                                   f"{stats.get('type')} (use null_share or distinct_count)")
        old = features_before.get(rule.feature)
        if before is None:
            results.append(RuleResult(rule, None, _value(stats, rule), None, False, f"{rule.label}: no baseline"))
        elif old is None:
            results.append(RuleResult(rule, None, _value(stats, rule), None, False,
                                      f"{rule.label}: new feature (not in the baseline)"))
        elif rule.metric == "histogram_distance":
            results.append(_histogram_rule(rule, old, stats))
        else:
            results.append(_value_rule(rule, old, stats))
    return results


def _value(stats: Mapping[str, Any], rule: FeatureMonitoringRule) -> float | None:
    return None if rule.metric == "histogram_distance" else _number(stats.get(_STAT_KEY[rule.metric]))


def _value_rule(rule: FeatureMonitoringRule, old: Mapping[str, Any], new: Mapping[str, Any]) -> RuleResult:
    before, after = _value(old, rule), _value(new, rule)
    if before is None or after is None:
        side = "baseline" if before is None else "commit"
        return RuleResult(rule, before, after, None, False, f"{rule.label}: no value at the {side} (no values?)")
    change = _change(before, after, rule.relative)
    tripped = change > rule.max_change
    unit = " (relative)" if rule.relative else ""
    verb = "changed" if tripped else "within"
    message = (f"{rule.label} {verb}: {before:.6g} -> {after:.6g}, change {change:.4g}{unit} "
               f"{'>' if tripped else '<='} {rule.max_change:g}" + (f": {rule.severity}" if tripped else ""))
    return RuleResult(rule, before, after, change, tripped, message)


def _histogram_rule(rule: FeatureMonitoringRule, old: Mapping[str, Any], new: Mapping[str, Any]) -> RuleResult:
    a, b = old.get("histogram"), new.get("histogram")
    if not a or not b or not sum(a["counts"]) or not sum(b["counts"]):
        side = "baseline" if not a or not sum(a["counts"]) else "commit"
        return RuleResult(rule, None, None, None, False, f"{rule.label}: no histogram at the {side} (no values?)")
    value = histogram_distance(a, b, rule.distance)
    tripped = value > rule.max_change
    message = (f"{rule.label} {value:.4g} {'>' if tripped else '<='} {rule.max_change:g}"
               + (f": {rule.severity}" if tripped else ""))
    return RuleResult(rule, None, None, value, tripped, message)


# ---------------------------------------------------------------------------------------------- feature groups


def monitor_feature_group(fg: FeatureGroup, rules: Sequence[FeatureMonitoringRule], *, commit: str | None = None,
                          baseline: str | None = None) -> FeatureMonitoringResult:
    """Evaluates ``rules`` on a feature group's per-commit statistics (see module doc).

    Args:
        commit: the commit to judge (default: the latest commit with recorded statistics).
        baseline: the commit to compare with: an instant, ``"first"`` (the oldest with statistics), or None (the
            latest with statistics before ``commit``; none: nothing trips and a note says so).

    Raises:
        InvalidDataError: the group records no statistics (``statistics_enabled`` off), a bad rule, or a baseline
            that is not older than the commit.
        CommitNotFoundError: a commit the table does not have.
    """
    store = fg._store
    fg.sync_registry()
    recorded = store.registry.statistics_instants(store.project, fg.spec.name, fg.spec.version)
    notes: list[str] = []
    if commit is None:
        if not recorded:
            raise InvalidDataError(f"feature group {fg.spec.key} has no recorded statistics "
                                   f"(statistics_enabled={fg.spec.statistics_enabled}); nothing to monitor")
        commit = recorded[-1]
    if baseline is None:
        earlier = [i for i in recorded if i < commit]
        baseline = earlier[-1] if earlier else None
        if baseline is None:
            notes.append("no earlier commit with statistics: no baseline")
    elif baseline == "first":
        baseline = recorded[0] if recorded and recorded[0] < commit else None
        if baseline is None:
            notes.append("no earlier commit with statistics: no baseline")
    elif baseline >= commit:
        raise InvalidDataError(f"feature monitoring of {fg.spec.key}: baseline {baseline} is not older than "
                               f"commit {commit}")
    after = _statistics(fg, commit, recorded, notes)
    before = _statistics(fg, baseline, recorded, notes) if baseline is not None else None
    results = evaluate_rules(before, after, rules)
    return FeatureMonitoringResult(
        feature_group=fg.spec.name, version=fg.spec.version, commit=commit, baseline=baseline, results=results,
        verdict=worst(r.rule.severity for r in results if r.tripped), computed_at=datetime.now(timezone.utc),
        notes=notes,
    )


def _statistics(fg: FeatureGroup, instant: str, recorded: list[str], notes: list[str]) -> dict[str, Any]:
    if instant in recorded:
        stats = fg.statistics(instant)
        if stats is not None:
            return stats
    notes.append(f"statistics of {instant} computed now (none recorded for it)")
    return fg.compute_statistics(instant)
