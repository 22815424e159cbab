"""Data drift between a reference and a current table, measured by Evidently, judged by thresholds.

:func:`compute_drift` runs one Evidently ``Report`` of per-column ``ValueDrift`` metrics (what ``DataDriftPreset``
generates, without the preset's own summary widgets, which recompute every column's drift twice more and double the
run time) on at most ``sample`` rows of each side, and returns a :class:`DriftResult`: per feature the score, method,
threshold and whether it drifted; the share of drifted features; the rows compared before and after sampling; and a
verdict (OK / WARN / ERROR) from :class:`DriftThresholds`. ``result.save(store, name)`` writes the Evidently page
and JSON (see :mod:`.reports`).

Sampling: each side is cut to ``sample`` rows (default :data:`DEFAULT_SAMPLE_ROWS`) chosen uniformly without
replacement by a hash of ``(seed, row number)`` (SplitMix64, as random training splits): the same rows on every
platform and numpy version, so a result is reproducible from its seed. The choice of test per column never depends
on the sample: column kinds and methods follow Evidently's own rules applied to the *full* data (numbers: normed
Wasserstein distance, or Jensen-Shannon when there are at most 5 distinct values; integers with at most 10 distinct
values and text/bool: categorical, Jensen-Shannon distance; below 1,001 reference rows, K-S / chi-square / Z p-value
tests, as Evidently picks them). See the README for the measured effect of sampling on verdicts.

Nulls: Evidently compares the non-null values only, so the null share of each side is reported beside the score; a
feature with values in the reference and none in the current data counts as drifted (method ``"no values"``).

Example:
    result = compute_drift(training_frame, inference_frame, thresholds=DriftThresholds(
        features={"temp": FeatureDriftRule(threshold=0.2, severity="ERROR")}, warn_share=0.3, error_share=0.5))
    result.verdict, result.drifted, result.share_drifted
    paths = result.save(store, "delays_api")              # reports/drift/delays_api/<timestamp>.html|.json
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.monitoring.reports import ReportPaths, require_evidently, write_report
from fs_dagster.core.monitoring.verdicts import Severity, Verdict, check_severity, worst
from fs_dagster.core.training.splits import _uniform

if TYPE_CHECKING:
    from fs_dagster.core.store import FeatureStore

DEFAULT_SAMPLE_ROWS = 50_000
"""Rows per side Evidently sees by default (``bench/monitoring.py``, 15 features of the flights): ~1.2-1.9 s where
1M rows per side take 19-42 s, and every per-feature decision and dataset verdict of 20 seeds equal to the full
data's, on real seasonal drift and on no drift (10,000 rows: 99% of decisions, 90% of verdicts)."""

INTEGER_CARDINALITY_LIMIT = 10  # Evidently: an integer column with at most this many values is categorical
SMALL_REFERENCE_ROWS = 1000  # Evidently: up to this many reference rows, p-value tests instead of distances
NO_VALUES = "no values"

Kind = Literal["numerical", "categorical"]
TableLike = pd.DataFrame | pa.Table


@dataclass(frozen=True)
class FeatureDriftRule:
    """How one feature's drift is measured and what it means.

    Attributes:
        threshold: drift when the score reaches it (distances: score >= threshold; p-value tests: p < threshold);
            None = the method's default (0.1 for the distances, 0.05 for p-values).
        method: an Evidently stattest name (``"wasserstein"``, ``"jensenshannon"``, ``"psi"``, ``"kl_div"``,
            ``"hellinger"``, ``"ks"``, ``"chisquare"``, ...); None = Evidently's rule on the full data.
        severity: the verdict this feature's drift alone gives (``"WARN"``/``"ERROR"``); None = it only counts
            toward the share of drifted features.
    """

    threshold: float | None = None
    method: str | None = None
    severity: Severity | None = "WARN"

    def __post_init__(self) -> None:
        threshold = self.threshold
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not math.isfinite(threshold) or threshold < 0):
            raise InvalidDataError(f"drift threshold must be a finite number >= 0, got {self.threshold!r}")
        if self.method is not None and (not isinstance(self.method, str) or not self.method):
            raise InvalidDataError(f"drift method must be an Evidently stattest name, got {self.method!r}")
        check_severity("drift rule", self.severity, optional=True)


@dataclass(frozen=True)
class DriftThresholds:
    """When drift is a warning and when an error.

    The verdict is the worst of: the severity of each drifted feature (its :class:`FeatureDriftRule`, else
    ``default``), ``WARN`` when the share of drifted features reaches ``warn_share``, ``ERROR`` when it reaches
    ``error_share``. The default: any drifted feature warns; half of them drifting (Evidently's dataset-drift
    share) is an error.

    Attributes:
        features: per-feature rules (features not named use ``default``).
        default: the rule of every other feature.
        warn_share / error_share: shares of drifted features in (0, 1], or None for no such rule.
    """

    features: Mapping[str, FeatureDriftRule] = field(default_factory=dict)
    default: FeatureDriftRule = FeatureDriftRule()
    warn_share: float | None = None
    error_share: float | None = 0.5

    def __post_init__(self) -> None:
        for name, share in (("warn_share", self.warn_share), ("error_share", self.error_share)):
            if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                                      or not 0 < share <= 1):
                raise InvalidDataError(f"drift thresholds: {name} must be in (0, 1] or None, got {share!r}")
        if self.warn_share is not None and self.error_share is not None and self.warn_share > self.error_share:
            raise InvalidDataError(f"drift thresholds: warn_share {self.warn_share} is above error_share "
                                   f"{self.error_share}")
        for name, rule in self.features.items():
            if not isinstance(rule, FeatureDriftRule):
                raise InvalidDataError(f"drift thresholds: the rule of feature {name!r} must be a FeatureDriftRule, "
                                       f"got {type(rule).__name__}")

    def rule(self, feature: str) -> FeatureDriftRule:
        return self.features.get(feature, self.default)

    def to_dict(self) -> dict[str, Any]:
        return {"features": {k: asdict(v) for k, v in self.features.items()}, "default": asdict(self.default),
                "warn_share": self.warn_share, "error_share": self.error_share}


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift.

    Attributes:
        kind: ``"numerical"`` or ``"categorical"`` (how Evidently treated it).
        method: the Evidently stattest name (``"wasserstein"``, ...), or ``"no values"``.
        method_label: Evidently's display name (``"Wasserstein distance (normed)"``).
        score: the distance or p-value (None when a side has no values).
        threshold: the threshold applied.
        drifted: Evidently's drift decision with that threshold.
        severity: what this feature's drift contributes to the verdict (None when it did not drift or only
            counts toward the share).
        null_share_reference / null_share_current: nulls (and NaN) over all rows of each side, before sampling.
    """

    feature: str
    kind: Kind
    method: str
    method_label: str
    score: float | None
    threshold: float | None
    drifted: bool
    severity: Severity | None
    null_share_reference: float
    null_share_current: float


@dataclass
class DriftResult:
    """What :func:`compute_drift` found (see module doc). ``metadata()`` and ``describe()`` are made for asset
    materializations and checks; ``save()`` writes the report files."""

    features: dict[str, FeatureDrift]
    skipped: dict[str, str]
    share_drifted: float
    verdict: Verdict
    reasons: list[str]
    reference_rows: int
    current_rows: int
    reference_rows_compared: int
    current_rows_compared: int
    sample: int | None
    seed: int
    thresholds: DriftThresholds
    computed_at: datetime
    seconds: float
    _snapshot: Any = field(default=None, repr=False, compare=False)

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted features, in column order."""
        return [f.feature for f in self.features.values() if f.drifted]

    @property
    def sampled(self) -> bool:
        return (self.reference_rows_compared < self.reference_rows) or (self.current_rows_compared < self.current_rows)

    def describe(self, max_features: int = 10) -> str:
        """One paragraph for a check's description: the verdict, the drifted features (most drifted first, each
        with its score, threshold and severity), the share rule that fired, and the rows compared."""
        drifted = sorted((self.features[n] for n in self.drifted), key=_strength, reverse=True)
        named = ", ".join(f"{f.feature} ({_comparison(f)}{', ' + f.severity if f.severity else ''})"
                          for f in drifted[:max_features])
        if len(drifted) > max_features:
            named += f" and {len(drifted) - max_features} more"
        parts = [f"{self.verdict}: {len(drifted)} of {len(self.features)} features drifted "
                 f"(share {self.share_drifted:.2f})" + (f": {named}" if named else "") + "."]
        parts += [r + "." for r in self.reasons if " share " in r]
        parts.append(self.rows_text() + ".")
        if self.skipped:
            parts.append("Not compared: " + ", ".join(f"{k} ({v})" for k, v in self.skipped.items()) + ".")
        return " ".join(parts)

    def rows_text(self) -> str:
        text = (f"Rows compared: reference {self.reference_rows_compared:,} of {self.reference_rows:,}, "
                f"current {self.current_rows_compared:,} of {self.current_rows:,}")
        return text + (f" (uniform sample, seed {self.seed})" if self.sampled else "")

    def metadata(self) -> dict[str, Any]:
        """Flat key figures (numbers and short text) for a Dagster materialization or check, which the UI plots
        over time: verdict, share and count of drifted features, rows before/after sampling, run time, and one
        ``drift/score/<feature>`` per feature."""
        out: dict[str, Any] = {
            "drift/verdict": self.verdict,
            "drift/share_drifted": self.share_drifted,
            "drift/drifted_count": len(self.drifted),
            "drift/features": len(self.features),
            "drift/drifted_features": ", ".join(self.drifted),
            "drift/reference_rows": self.reference_rows,
            "drift/current_rows": self.current_rows,
            "drift/reference_rows_compared": self.reference_rows_compared,
            "drift/current_rows_compared": self.current_rows_compared,
            "drift/seconds": round(self.seconds, 3),
        }
        for feature in self.features.values():
            if feature.score is not None:
                out[f"drift/score/{feature.feature}"] = feature.score
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything but the Evidently snapshot, as JSON-ready values (the ``summary`` of a saved report)."""
        return {
            "kind": "drift",
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "share_drifted": self.share_drifted,
            "drifted": self.drifted,
            "features": {name: asdict(f) for name, f in self.features.items()},
            "skipped": dict(self.skipped),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reference_rows_compared": self.reference_rows_compared,
            "current_rows_compared": self.current_rows_compared,
            "sample": self.sample,
            "seed": self.seed,
            "thresholds": self.thresholds.to_dict(),
            "computed_at": self.computed_at.isoformat(),
            "seconds": self.seconds,
        }

    def save(self, target: FeatureStore | str | Path, name: str, *, kind: str = "drift",
             context: Mapping[str, Any] | None = None) -> ReportPaths:
        """Writes ``<root>/<project>/reports/<kind>/<name>/<timestamp>.html`` (Evidently's page) and ``.json``
        (``{"summary": to_dict() + context, "evidently": the snapshot}``).

        Args:
            target: a :class:`FeatureStore`, or the ``<root>/<project>`` folder.
            name: what was compared, e.g. the deployment or the feature group (lower case, digits, ``_``).
            context: extra JSON values for the summary (e.g. the commits or windows compared).
        """
        summary = {**self.to_dict(), **dict(context or {})}
        return write_report(target, kind, name, self.computed_at, summary, self._snapshot)


def _score_text(feature: FeatureDrift) -> str:
    if feature.score is None:
        return feature.method
    return f"{feature.method_label} {feature.score:.3g}"


# ---------------------------------------------------------------------------------------------- sampling


def sample_indices(rows: int, sample: int | None, seed: int) -> np.ndarray | None:
    """Sorted row numbers of a uniform sample of ``sample`` of ``rows`` rows, without replacement: the rows whose
    SplitMix64 hash of ``(seed, row number)`` is smallest. None when every row is kept."""
    if sample is None or rows <= sample:
        return None
    keys = _uniform(rows, seed)
    chosen = np.argpartition(keys, sample - 1)[:sample]
    chosen.sort()
    return chosen


def _check_sample(sample: object) -> None:
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
        raise InvalidDataError(f"drift sample must be a positive number of rows or None (all rows), got {sample!r}")


# ---------------------------------------------------------------------------------------------- columns


def as_arrow(data: TableLike, what: str) -> pa.Table:
    """``data`` as an Arrow table (pandas frames converted without their index)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidDataError(f"drift: the {what} frame has a column Arrow cannot type (mixed values?): "
                                   f"{exc}") from exc
    raise InvalidDataError(f"drift: the {what} data must be a pandas DataFrame or a pyarrow Table, "
                           f"got {type(data).__module__}.{type(data).__name__}")


def _base_kind(arrow_type: pa.DataType) -> str | None:
    if pa.types.is_dictionary(arrow_type):
        return _base_kind(arrow_type.value_type)
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_boolean(arrow_type)
            or pa.types.is_string_view(arrow_type)):
        return "category"
    return None


def _null_share(column: pa.ChunkedArray) -> float:
    if not len(column):
        return 0.0
    missing = column.null_count
    if pa.types.is_floating(column.type):
        missing += pc.sum(pc.is_nan(column)).as_py() or 0
    return missing / len(column)


def _distinct(column: pa.ChunkedArray) -> set[Any]:
    """Distinct values, nulls and NaN left out (Evidently counts values with ``nunique``, which skips both)."""
    values = pc.unique(column.combine_chunks() if column.num_chunks != 1 else column.chunk(0))
    if pa.types.is_floating(values.type):
        values = pc.filter(values, pc.invert(pc.is_nan(values)))
    return set(pc.drop_null(values).to_pylist())


def _union_distinct_at_most(ref: pa.ChunkedArray, cur: pa.ChunkedArray, limit: int) -> int:
    """Distinct values of both columns together, exact up to ``limit`` + 1 (the rules only ask "at most limit?")."""
    values = _distinct(ref)
    if len(values) > limit:
        return len(values)
    return len(values | _distinct(cur))


@dataclass(frozen=True)
class _Column:
    name: str
    kind: Kind
    method: str
    threshold: float | None


def _default_method(kind: Kind, reference_rows: int, n_values: int) -> str:
    """Evidently 0.7's choice of test (``_get_default_stattest``), applied to the full data."""
    if reference_rows > SMALL_REFERENCE_ROWS:
        if kind == "numerical":
            return "jensenshannon" if n_values <= 5 else "wasserstein"
        return "jensenshannon"
    if kind == "numerical":
        if n_values <= 5:
            return "chisquare" if n_values > 2 else "z"
        return "ks"
    return "chisquare" if n_values > 2 else "z"


def _stattest(method: str, kind: Kind, feature: str) -> Any:
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    try:
        return get_registered_stattest(method, column_type)
    except Exception as exc:  # StatTestNotFoundError, StatTestInvalidFeatureTypeError
        raise InvalidDataError(f"drift: feature {feature!r} ({kind}): {exc}") from exc


# ---------------------------------------------------------------------------------------------- compute


def compute_drift(
    reference: TableLike,
    current: TableLike,
    columns: Sequence[str] | None = None,
    *,
    thresholds: DriftThresholds | None = None,
    sample: int | None = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> DriftResult:
    """Drift of ``current`` against ``reference``, per feature and overall (see module doc).

    Args:
        reference: what the model was trained on, or the older data (pandas or Arrow).
        current: the data to judge (pandas or Arrow).
        columns: the features to compare; default: every column of ``reference`` whose type can be compared
            (numbers, text, bool; others are listed in ``skipped``).
        thresholds: per-feature and per-dataset rules (default :class:`DriftThresholds`).
        sample: at most this many rows per side go to Evidently (None: all rows).
        seed: chooses the sample; the same seed gives the same result.

    Raises:
        InvalidDataError: a named column is missing on a side or has an uncomparable type, the two sides have
            different kinds of values in a column, a side has no rows, or a rule names an unknown method.
        MissingDependencyError: Evidently is not installed.
    """
    evidently = require_evidently()
    from evidently.metrics import ValueDrift

    thresholds = thresholds or DriftThresholds()
    if not isinstance(thresholds, DriftThresholds):
        raise InvalidDataError(f"drift: thresholds must be DriftThresholds, got {type(thresholds).__name__}")
    _check_sample(sample)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidDataError(f"drift: seed must be an integer, got {seed!r}")
    ref, cur = as_arrow(reference, "reference"), as_arrow(current, "current")
    if not ref.num_rows or not cur.num_rows:
        side = "reference" if not ref.num_rows else "current"
        raise InvalidDataError(f"drift: the {side} data has no rows")
    names, skipped = _columns(ref, cur, columns)
    unknown = [f for f in thresholds.features if f not in names and f not in skipped]
    if unknown:
        raise InvalidDataError(f"drift thresholds name feature(s) {unknown} that are not compared; compared: {names}")
    started = time.perf_counter()

    ref_rows = sample_indices(ref.num_rows, sample, 2 * seed)
    cur_rows = sample_indices(cur.num_rows, sample, 2 * seed + 1)
    ref_sample = _frame(ref, names, ref_rows)
    cur_sample = _frame(cur, names, cur_rows)

    plans: list[_Column] = []
    empty: dict[str, FeatureDrift] = {}
    null_shares = {n: (_null_share(ref[n]), _null_share(cur[n])) for n in names}
    for name in names:
        kind = _kind(ref[name], cur[name])
        rule = thresholds.rule(name)
        ref_values, cur_values = int(ref_sample[name].count()), int(cur_sample[name].count())
        if not ref_values or not cur_values:
            # Evidently refuses an empty column; values that vanished from the current data are drift.
            drifted = ref_values > 0
            empty[name] = FeatureDrift(name, kind, NO_VALUES, NO_VALUES, None, rule.threshold, drifted,
                                       rule.severity if drifted else None, *null_shares[name])
            continue
        method = rule.method or _default_method(kind, ref.num_rows, _n_values(ref[name], cur[name], ref_sample[name],
                                                                               cur_sample[name]))
        _stattest(method, kind, name)  # an unknown method or one for the other kind: refused here, naming it
        plans.append(_Column(name, kind, method, rule.threshold))

    snapshot = None
    measured: dict[str, tuple[float, float, bool, str]] = {}
    if plans:
        definition = evidently.DataDefinition(
            numerical_columns=[p.name for p in plans if p.kind == "numerical"],
            categorical_columns=[p.name for p in plans if p.kind == "categorical"],
        )
        used = [p.name for p in plans]
        metrics = [ValueDrift(column=p.name, method=p.method, threshold=p.threshold) for p in plans]
        snapshot = evidently.Report(metrics, include_tests=True).run(
            evidently.Dataset.from_pandas(cur_sample[used], data_definition=definition),
            evidently.Dataset.from_pandas(ref_sample[used], data_definition=definition),
        )
        measured = _read_snapshot(snapshot)

    features: dict[str, FeatureDrift] = {}
    for name in names:
        if name in empty:
            features[name] = empty[name]
            continue
        plan = next(p for p in plans if p.name == name)
        score, threshold, drifted, label = measured[name]
        rule = thresholds.rule(name)
        features[name] = FeatureDrift(name, plan.kind, plan.method, label, score, threshold, drifted,
                                      rule.severity if drifted else None, *null_shares[name])
    seconds = time.perf_counter() - started
    share = sum(f.drifted for f in features.values()) / len(features) if features else 0.0
    verdict, reasons = _verdict(features, share, thresholds)
    return DriftResult(
        features=features, skipped=skipped, share_drifted=share, verdict=verdict, reasons=reasons,
        reference_rows=ref.num_rows, current_rows=cur.num_rows,
        reference_rows_compared=len(ref_sample), current_rows_compared=len(cur_sample),
        sample=sample, seed=seed, thresholds=thresholds, computed_at=datetime.now(timezone.utc),
        seconds=seconds, _snapshot=snapshot,
    )


def _columns(ref: pa.Table, cur: pa.Table, columns: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    skipped: dict[str, str] = {}
    if columns is None:
        names = []
        for name in ref.column_names:
            if name.startswith("_hoodie_"):
                continue
            if _base_kind(ref.schema.field(name).type) is None:
                skipped[name] = f"type {ref.schema.field(name).type} is not compared"
            elif name not in cur.column_names:
                skipped[name] = "not in the current data"
            else:
                names.append(name)
    else:
        if isinstance(columns, str):
            columns = [columns]
        names = list(dict.fromkeys(columns))
        for side, table in (("reference", ref), ("current", cur)):
            missing = [c for c in names if c not in table.column_names]
            if missing:
                raise InvalidDataError(f"drift: the {side} data lacks column(s) {missing}; it has {table.column_names}")
        for name in names:
            if _base_kind(ref.schema.field(name).type) is None:
                raise InvalidDataError(f"drift: column {name!r} has type {ref.schema.field(name).type}; only numbers, "
                                       "text and bool can be compared")
    for name in names:
        a, b = _base_kind(ref.schema.field(name).type), _base_kind(cur.schema.field(name).type)
        if {a, b} - {"integer", "float"} and a != b:
            raise InvalidDataError(f"drift: column {name!r} is {ref.schema.field(name).type} in the reference but "
                                   f"{cur.schema.field(name).type} in the current data")
    if not names:
        raise InvalidDataError(f"drift: no column to compare (skipped: {skipped})")
    return names, skipped


def _kind(ref: pa.ChunkedArray, cur: pa.ChunkedArray) -> Kind:
    kinds = {_base_kind(ref.type), _base_kind(cur.type)}
    if "category" in kinds:
        return "categorical"
    if kinds == {"integer"}:
        n = _union_distinct_at_most(ref, cur, INTEGER_CARDINALITY_LIMIT)
        return "categorical" if n <= INTEGER_CARDINALITY_LIMIT else "numerical"
    return "numerical"


def _n_values(ref: pa.ChunkedArray, cur: pa.ChunkedArray, ref_sample: pd.Series, cur_sample: pd.Series) -> int:
    """Distinct values of both full columns, exact up to 6 (all the method rule needs): the sample decides when it
    already has more than 5, else the full columns are counted."""
    in_sample = pd.concat([ref_sample, cur_sample]).nunique()
    if in_sample > 5:
        return int(in_sample)
    return _union_distinct_at_most(ref, cur, 5)


def _frame(table: pa.Table, names: list[str], rows: np.ndarray | None) -> pd.DataFrame:
    part = table.select(names)
    if rows is not None:
        part = part.take(pa.array(rows))
    casts = {}
    for field_ in part.schema:
        t = field_.type.value_type if pa.types.is_dictionary(field_.type) else field_.type
        if pa.types.is_decimal(t):
            casts[field_.name] = pa.float64()
        elif pa.types.is_dictionary(field_.type):
            casts[field_.name] = t
    for name, target in casts.items():
        index = part.schema.get_field_index(name)
        part = part.set_column(index, name, pc.cast(part[name], target))
    return part.to_pandas()


def _read_snapshot(snapshot: Any) -> dict[str, tuple[float, float, bool, str]]:
    """Per column: (score, threshold, drifted, method display name) from an Evidently snapshot of ValueDrift
    metrics with their default tests (FAIL = drift detected)."""
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    document = snapshot.dict()
    status = {t["metric_config"]["metric_id"]: str(getattr(t["status"], "value", t["status"]))
              for t in document.get("tests", [])}
    out: dict[str, tuple[float, float, bool, str]] = {}
    for metric in document["metrics"]:
        config = metric["config"]
        tests = _registered_stat_tests.get(config["method"])
        label = next(iter(tests.values())).display_name if tests else str(config["method"])
        out[config["column"]] = (float(metric["value"]), float(config["threshold"]),
                                 status.get(metric["id"]) == "FAIL", label)
    return out


def _is_p_value(feature: FeatureDrift) -> bool:
    return feature.method_label.lower().endswith("p_value")


def _strength(feature: FeatureDrift) -> float:
    """How far past its threshold a feature is (for ordering names in a description)."""
    if feature.score is None:
        return math.inf
    if _is_p_value(feature):
        return math.inf if feature.score == 0 else (feature.threshold or 0.0) / feature.score
    return feature.score / feature.threshold if feature.threshold else math.inf


def _verdict(features: Mapping[str, FeatureDrift], share: float,
             thresholds: DriftThresholds) -> tuple[Verdict, list[str]]:
    reasons: list[str] = []
    verdicts: list[Verdict] = []
    for feature in features.values():
        if feature.drifted and feature.severity is not None:
            verdicts.append(feature.severity)
            reasons.append(f"{feature.feature} drifted ({_comparison(feature)}): {feature.severity}")
    count, total = sum(f.drifted for f in features.values()), len(features)
    for severity, limit in (("ERROR", thresholds.error_share), ("WARN", thresholds.warn_share)):
        if limit is not None and total and share >= limit:
            verdicts.append(severity)  # type: ignore[arg-type]
            reasons.append(f"{count} of {total} features drifted, share {share:.2f} >= {severity} share {limit:.2f}")
            break
    return worst(verdicts), reasons


def _comparison(feature: FeatureDrift) -> str:
    if feature.score is None:
        return "no values in the current data"
    sign = "<" if _is_p_value(feature) else ">="
    return f"{feature.method_label} {feature.score:.3g} {sign} {feature.threshold:.3g}"
