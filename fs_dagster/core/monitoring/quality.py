"""Model quality on labelled predictions against the training holdout, measured by Evidently, judged by rules.

:func:`compute_quality` takes two labelled frames of a binary classifier, the *reference* (usually the training
dataset's test split predicted by the model: :func:`~.sources.training_holdout`) and the *current* one (logged
predictions whose outcome arrived: :func:`~.sources.labelled_predictions`), and runs one Evidently ``Report`` of
accuracy, precision, recall and F1 on the predicted labels and ROC AUC on the positive class's probability (when
given, and when both classes occur on each side). :class:`QualityRule` s turn the figures into a verdict, e.g. ERROR
when ROC AUC dropped by more than 0.10 from the holdout's.

Example:
    result = compute_quality(training_holdout(store, mv), labelled_predictions(store, "delays_api", outcomes,
                             label="is_delayed"), label="label", prediction="prediction", probability="probability")
    result.verdict, result.current["roc_auc"], result.reference["roc_auc"]
    result.save(store, "delays_api")                 # reports/quality/delays_api/<timestamp>.html|.json
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

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.monitoring.reports import ReportPaths, require_evidently, write_report
from fs_dagster.core.monitoring.verdicts import Severity, Verdict, check_severity, worst

if TYPE_CHECKING:
    from fs_dagster.core.store import FeatureStore

QualityMetric = Literal["accuracy", "precision", "recall", "f1", "roc_auc"]
METRICS: tuple[QualityMetric, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc")


@dataclass(frozen=True)
class QualityRule:
    """One rule on one metric (higher is better for all of them).

    Attributes:
        metric: ``accuracy``, ``precision``, ``recall``, ``f1`` or ``roc_auc``.
        max_drop: trips when reference - current exceeds it (a fraction of the reference value when
            ``relative``).
        min_value: trips when the current value is below it.
        severity: ``"WARN"`` or ``"ERROR"``.
    """

    metric: QualityMetric
    max_drop: float | None = None
    min_value: float | None = None
    relative: bool = False
    severity: Severity = "ERROR"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InvalidDataError(f"quality rule: metric must be one of {list(METRICS)}, got {self.metric!r}")
        if self.max_drop is None and self.min_value is None:
            raise InvalidDataError(f"quality rule on {self.metric}: give max_drop, min_value or both")
        for name, value in (("max_drop", self.max_drop), ("min_value", self.min_value)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise InvalidDataError(f"quality rule on {self.metric}: {name} must be a finite number, got {value!r}")
        check_severity(f"quality rule on {self.metric}", self.severity)

    def text(self) -> str:
        parts = []
        if self.max_drop is not None:
            parts.append(f"drop > {self.max_drop:g}" + (" (relative)" if self.relative else ""))
        if self.min_value is not None:
            parts.append(f"value < {self.min_value:g}")
        return f"{self.metric} {' or '.join(parts)}: {self.severity}"


DEFAULT_QUALITY_RULES: tuple[QualityRule, ...] = (
    QualityRule("roc_auc", max_drop=0.05, severity="WARN"),
    QualityRule("roc_auc", max_drop=0.10, severity="ERROR"),
    QualityRule("accuracy", max_drop=0.05, severity="WARN"),
    QualityRule("accuracy", max_drop=0.10, severity="ERROR"),
)
"""ROC AUC or accuracy 0.05 below the holdout's warns, 0.10 below is an error."""


@dataclass(frozen=True)
class QualityRuleResult:
    """How one rule came out: the values, the drop (reference - current; relative when the rule is), and whether
    it tripped. A rule on a metric that could not be computed (no probabilities, one class) does not trip."""

    rule: QualityRule
    reference: float | None
    current: float | None
    drop: float | None
    tripped: bool
    message: str


@dataclass
class QualityResult:
    """What :func:`compute_quality` found; ``metadata()``/``describe()`` for Dagster, ``save()`` for the files."""

    reference: dict[str, float | None]
    current: dict[str, float | None]
    rules: list[QualityRuleResult]
    verdict: Verdict
    reference_rows: int
    current_rows: int
    dropped_rows: dict[str, int]
    positive: Any
    computed_at: datetime
    seconds: float
    notes: list[str] = field(default_factory=list)
    _snapshot: Any = field(default=None, repr=False, compare=False)

    @property
    def tripped(self) -> list[QualityRuleResult]:
        return [r for r in self.rules if r.tripped]

    def describe(self) -> str:
        """One paragraph for a check's description: verdict, tripped rules, figures side by side, rows."""
        figures = ", ".join(f"{m} {_fmt(self.current.get(m))} (holdout {_fmt(self.reference.get(m))})"
                            for m in METRICS if self.current.get(m) is not None or self.reference.get(m) is not None)
        parts = [f"{self.verdict}: " + ("; ".join(r.message for r in self.tripped) if self.tripped
                                        else "no quality rule tripped") + "."]
        parts.append(f"Current {figures}.")
        parts.append(f"Rows: current {self.current_rows:,}, reference {self.reference_rows:,}; positive class "
                     f"{self.positive!r}.")
        parts += [n + "." for n in self.notes]
        return " ".join(parts)

    def metadata(self) -> dict[str, Any]:
        """Flat key figures for Dagster: verdict, rows, and per metric current, reference and drop."""
        out: dict[str, Any] = {"quality/verdict": self.verdict, "quality/current_rows": self.current_rows,
                               "quality/reference_rows": self.reference_rows,
                               "quality/seconds": round(self.seconds, 3)}
        for metric in METRICS:
            now, then = self.current.get(metric), self.reference.get(metric)
            if now is not None:
                out[f"quality/current/{metric}"] = now
            if then is not None:
                out[f"quality/reference/{metric}"] = then
            if now is not None and then is not None:
                out[f"quality/drop/{metric}"] = then - now
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "quality", "verdict": self.verdict, "reference": dict(self.reference),
            "current": dict(self.current),
            "rules": [{**asdict(r), "rule": asdict(r.rule)} for r in self.rules],
            "reference_rows": self.reference_rows, "current_rows": self.current_rows,
            "dropped_rows": dict(self.dropped_rows), "positive": self.positive, "notes": list(self.notes),
            "computed_at": self.computed_at.isoformat(), "seconds": self.seconds,
        }

    def save(self, target: FeatureStore | str | Path, name: str, *, kind: str = "quality",
             context: Mapping[str, Any] | None = None) -> ReportPaths:
        """Writes ``<root>/<project>/reports/<kind>/<name>/<timestamp>.html|.json`` (see :mod:`.reports`)."""
        return write_report(target, kind, name, self.computed_at, {**self.to_dict(), **dict(context or {})},
                            self._snapshot)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _classes(frames: Sequence[pd.DataFrame], label: str, prediction: str) -> list[Any]:
    values: set[Any] = set()
    for frame in frames:
        for column in (label, prediction):
            values.update(v.item() if hasattr(v, "item") else v for v in frame[column].dropna().unique())
    return sorted(values, key=lambda v: (str(type(v)), v))


def _prepare(frame: pd.DataFrame, side: str, label: str, prediction: str, probability: str | None,
             positive: Any) -> tuple[pd.DataFrame, int]:
    """0/1 labels and predictions (1 = ``positive``) and the probability, rows with a missing label or
    prediction dropped (counted): Evidently's label handling is reliable on 0/1 integers."""
    needed = [label, prediction] + ([probability] if probability else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InvalidDataError(f"quality: the {side} frame lacks column(s) {missing}; it has {list(frame.columns)}")
    keep = frame[label].notna() & frame[prediction].notna()
    kept = frame[keep]
    out = pd.DataFrame({
        "target": (kept[label] == positive).astype("int64").to_numpy(),
        "prediction": (kept[prediction] == positive).astype("int64").to_numpy(),
    })
    if probability:
        values = pd.to_numeric(kept[probability], errors="coerce").to_numpy(dtype="float64")
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            raise InvalidDataError(f"quality: the {side} column {probability!r} holds {int(bad.sum())} value(s) that "
                                   f"are not probabilities in [0, 1], e.g. {values[bad][0]!r}")
        out["probability"] = values
    return out, int((~keep).sum())


def compute_quality(
    reference_labelled: pd.DataFrame,
    current_labelled: pd.DataFrame,
    label: str,
    prediction: str,
    probability: str | None = None,
    *,
    rules: Sequence[QualityRule] = DEFAULT_QUALITY_RULES,
    positive: Any = None,
) -> QualityResult:
    """Classification quality of ``current_labelled`` against ``reference_labelled`` (see module doc).

    Args:
        label / prediction: the true and the predicted class columns (present in both frames).
        probability: the column of the positive class's probability, for ROC AUC (None: no ROC AUC).
        rules: :class:`QualityRule` s giving the verdict (default :data:`DEFAULT_QUALITY_RULES`).
        positive: the positive class (default: ``True`` / ``1`` / the larger of the two classes, as
            scikit-learn's ``classes_[1]``).

    Raises:
        InvalidDataError: a missing column, more than two classes, no labelled row on a side, probabilities
            outside [0, 1], or a bad rule.
        MissingDependencyError: Evidently is not installed.
    """
    evidently = require_evidently()
    from evidently.metrics import Accuracy, F1Score, Precision, Recall, RocAuc

    for rule in rules:
        if not isinstance(rule, QualityRule):
            raise InvalidDataError(f"quality: rules must be QualityRule objects, got {rule!r}")
    for side, frame in (("reference", reference_labelled), ("current", current_labelled)):
        if not isinstance(frame, pd.DataFrame):
            raise InvalidDataError(f"quality: the {side} data must be a pandas DataFrame, got {type(frame).__name__}")
        for column in (label, prediction):
            if column not in frame.columns:
                raise InvalidDataError(f"quality: the {side} frame lacks column {column!r}; it has "
                                       f"{list(frame.columns)}")
    classes = _classes([reference_labelled, current_labelled], label, prediction)
    if len(classes) > 2:
        raise InvalidDataError(f"quality: labels and predictions hold {len(classes)} classes ({classes[:10]}); "
                               "quality monitoring covers binary classifiers")
    if positive is None:
        positive = True if set(classes) <= {True, False} else (classes[-1] if classes else 1)
    started = time.perf_counter()
    ref, ref_dropped = _prepare(reference_labelled, "reference", label, prediction, probability, positive)
    cur, cur_dropped = _prepare(current_labelled, "current", label, prediction, probability, positive)
    for side, frame in (("reference", ref), ("current", cur)):
        if not len(frame):
            raise InvalidDataError(f"quality: the {side} data has no labelled row")

    notes = [f"{n:,} {side} row(s) without a label or prediction left out"
             for side, n in (("reference", ref_dropped), ("current", cur_dropped)) if n]
    with_auc = probability is not None
    if with_auc:
        one_class = [s for s, f in (("reference", ref), ("current", cur)) if f["target"].nunique() < 2]
        if one_class:
            with_auc = False
            notes.append(f"ROC AUC not computed: only one class in the {' and '.join(one_class)} labels")
    else:
        notes.append("ROC AUC not computed: no probability column")
    classifications = [evidently.BinaryClassification(name="labels", target="target", prediction_labels="prediction",
                                                      pos_label=1)]
    if with_auc:
        classifications.append(evidently.BinaryClassification(name="probas", target="target",
                                                              prediction_probas="probability", pos_label=1))
    definition = evidently.DataDefinition(classification=classifications, categorical_columns=["target", "prediction"],
                                          numerical_columns=["probability"] if probability else [])
    metrics: list[Any] = [Accuracy(classification_name="labels"), Precision(classification_name="labels"),
                          Recall(classification_name="labels"), F1Score(classification_name="labels")]
    names: list[QualityMetric] = ["accuracy", "precision", "recall", "f1"]
    if with_auc:
        metrics.append(RocAuc(classification_name="probas"))
        names.append("roc_auc")
    snapshot = evidently.Report(metrics).run(evidently.Dataset.from_pandas(cur, data_definition=definition),
                                             evidently.Dataset.from_pandas(ref, data_definition=definition))
    current: dict[str, float | None] = dict.fromkeys(METRICS)
    reference: dict[str, float | None] = dict.fromkeys(METRICS)
    for name, metric in zip(names, snapshot.dict()["metrics"], strict=True):
        current[name] = float(metric["value"])
        reference[name] = float(snapshot.context.get_reference_metric_result(metric["id"]).value)
    results = [_evaluate(rule, reference, current) for rule in rules]
    return QualityResult(
        reference=reference, current=current, rules=results, verdict=worst(r.rule.severity for r in results
                                                                           if r.tripped),
        reference_rows=len(ref), current_rows=len(cur),
        dropped_rows={"reference": ref_dropped, "current": cur_dropped}, positive=_plain(positive),
        computed_at=datetime.now(timezone.utc), seconds=time.perf_counter() - started, notes=notes,
        _snapshot=snapshot,
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _evaluate(rule: QualityRule, reference: Mapping[str, float | None],
              current: Mapping[str, float | None]) -> QualityRuleResult:
    then, now = reference.get(rule.metric), current.get(rule.metric)
    if now is None:
        return QualityRuleResult(rule, then, now, None, False, f"{rule.metric} not computed")
    drop = None
    reasons = []
    if then is not None:
        drop = then - now
        if rule.relative:
            drop = drop / abs(then) if then else (0.0 if drop == 0 else math.inf)
        if rule.max_drop is not None and drop > rule.max_drop:
            reasons.append(f"{rule.metric} {now:.3f} is {drop:.3f}{' (relative)' if rule.relative else ''} below the "
                           f"holdout's {then:.3f}, more than {rule.max_drop:g}")
    if rule.min_value is not None and now < rule.min_value:
        reasons.append(f"{rule.metric} {now:.3f} is below {rule.min_value:g}")
    message = "; ".join(reasons) + f": {rule.severity}" if reasons else f"{rule.metric} within {rule.text()}"
    return QualityRuleResult(rule, then, now, drop, bool(reasons), message)
