"""Model validation on a training dataset's holdout: metrics, "not worse than the deployed version" and minimum
quality per slice. Plain Python (the Dagster face turns the reports into blocking asset checks).

Every model is scored on the same rows: the holdout split of the candidate's training dataset, read raw with its
keys, then turned into each model's own input (its features, with the transformations fitted on its own training
split). A deployed version trained on an older dataset of the same view is therefore scored on exactly the
candidate's holdout rows, the way it would see them when served. A deployed version of another view (another
version with more features, say) gets its features for the same rows and event times from its own view, point in
time, as of the candidate's pinned commits.

Example:
    rules = ModelValidation(metric="roc_auc", tolerance=0.01, deployment="delays_api", slice_column="origin",
                            slice_minimum=0.65)
    holdout = Holdout(td)
    candidate = holdout.scores(clf)
    report = compare_with_deployed(store, holdout, candidate, rules)      # .passed, .description
    slices = slice_quality(holdout, candidate, rules)                      # .failing names the slices below
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError, NotFoundError
from fs_dagster.core.extras import require
from fs_dagster.core.models.flavors import Flavor, flavor_for, flavor_named

if TYPE_CHECKING:
    from fs_dagster.core.models.registry import ModelVersion
    from fs_dagster.core.store import FeatureStore
    from fs_dagster.core.training.training_dataset import TrainingDataset
    from fs_dagster.core.transformations import FittedTransformations

Direction = Literal["max", "min"]
NULL_SLICE = "<null>"


# --- metrics ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A named metric: how to compute it from labels and :class:`Scores`, and which direction is better."""

    name: str
    direction: Direction
    compute: Callable[[np.ndarray, Scores], float]
    needs_probabilities: bool = False


def _metrics() -> Any:
    """``sklearn.metrics``, or :class:`MissingDependencyError` naming the [models] extra."""
    return require("models", "model validation metrics", "sklearn.metrics")


def _positive(scores: Scores) -> np.ndarray:
    """Probability of the positive class of a binary classifier (the second of its classes)."""
    proba = scores.require_probabilities()
    if proba.ndim == 1:
        return proba
    if proba.shape[1] != 2:
        raise InvalidDataError(f"this metric needs a binary classifier; the model gives {proba.shape[1]} classes")
    return proba[:, 1]


def _binary_truth(y: np.ndarray, scores: Scores) -> np.ndarray:
    classes = scores.classes
    if classes is not None and len(classes) == 2:
        return np.asarray([v == classes[1] for v in y], dtype=bool)
    return np.asarray(y).astype(bool)


def _roc_auc(y: np.ndarray, scores: Scores) -> float:
    roc_auc_score = _metrics().roc_auc_score

    proba = scores.require_probabilities()
    if proba.ndim == 2 and proba.shape[1] > 2:
        return float(roc_auc_score(y, proba, multi_class="ovr", labels=scores.classes))
    truth = _binary_truth(y, scores)
    if truth.all() or not truth.any():
        return float("nan")  # undefined with one class only
    return float(roc_auc_score(truth, _positive(scores)))


def _average_precision(y: np.ndarray, scores: Scores) -> float:
    average_precision_score = _metrics().average_precision_score

    truth = _binary_truth(y, scores)
    return float(average_precision_score(truth, _positive(scores))) if truth.any() else float("nan")


def _log_loss(y: np.ndarray, scores: Scores) -> float:
    log_loss = _metrics().log_loss

    proba = scores.require_probabilities()
    return float(log_loss(y, proba, labels=scores.classes))


def _brier(y: np.ndarray, scores: Scores) -> float:
    return float(np.mean((_positive(scores) - _binary_truth(y, scores)) ** 2))


def _accuracy(y: np.ndarray, scores: Scores) -> float:
    return float(np.mean(np.asarray(scores.predictions) == np.asarray(y)))


def _f1(y: np.ndarray, scores: Scores) -> float:
    f1_score = _metrics().f1_score

    truth = _binary_truth(y, scores)
    predicted = _binary_truth(np.asarray(scores.predictions), scores)
    return float(f1_score(truth, predicted, zero_division=0.0))


def _rmse(y: np.ndarray, scores: Scores) -> float:
    return float(np.sqrt(np.mean((np.asarray(scores.predictions, dtype=float) - np.asarray(y, dtype=float)) ** 2)))


def _mae(y: np.ndarray, scores: Scores) -> float:
    return float(np.mean(np.abs(np.asarray(scores.predictions, dtype=float) - np.asarray(y, dtype=float))))


def _r2(y: np.ndarray, scores: Scores) -> float:
    r2_score = _metrics().r2_score

    return float(r2_score(np.asarray(y, dtype=float), np.asarray(scores.predictions, dtype=float)))


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("roc_auc", "max", _roc_auc, needs_probabilities=True),
    Metric("average_precision", "max", _average_precision, needs_probabilities=True),
    Metric("log_loss", "min", _log_loss, needs_probabilities=True),
    Metric("brier", "min", _brier, needs_probabilities=True),
    Metric("accuracy", "max", _accuracy),
    Metric("f1", "max", _f1),
    Metric("rmse", "min", _rmse),
    Metric("mae", "min", _mae),
    Metric("r2", "max", _r2),
)}


def metric_named(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise InvalidDataError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None


def better_or_equal(value: float, reference: float, direction: Direction) -> bool:
    return value >= reference if direction == "max" else value <= reference


# --- the rules -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelValidation:
    """What a new model version must satisfy before it may be deployed.

    Args:
        metric: the metric compared (a name of :data:`METRICS`, e.g. ``"roc_auc"``, ``"log_loss"``, ``"rmse"``).
        direction: ``"max"`` or ``"min"``: which way is better (default: the metric's own).
        split: the training dataset's holdout split every model is scored on.
        deployment: the deployment whose served version the candidate must not be worse than (None: no such
            rule). Nothing deployed yet passes.
        tolerance: how much worse than the deployed version the candidate may be (``0.01`` ROC AUC: within
            0.01 of it).
        minimum: a floor (a ceiling for ``"min"`` metrics) of the metric on the whole holdout (None: none).
        slice_column: a column of the holdout rows (a feature, a key or the event time) whose values are
            slices, e.g. ``"origin"``; the metric must reach ``slice_minimum`` in every slice.
        slice_minimum: the floor per slice (a ceiling for ``"min"`` metrics).
        slice_metric: the metric per slice (default: ``metric``).
        min_slice_rows: slices with fewer holdout rows are listed but not judged (a metric on a handful of rows
            is noise); so is a slice where the metric is undefined (ROC AUC of a slice with one class).
    """

    metric: str = "roc_auc"
    direction: Direction | None = None
    split: str = "test"
    deployment: str | None = None
    tolerance: float = 0.0
    minimum: float | None = None
    slice_column: str | None = None
    slice_minimum: float | None = None
    slice_metric: str | None = None
    min_slice_rows: int = 50

    def __post_init__(self) -> None:
        metric_named(self.metric)
        if self.slice_metric is not None:
            metric_named(self.slice_metric)
        if self.direction not in (None, "max", "min"):
            raise InvalidDataError(f"direction must be 'max' or 'min', got {self.direction!r}")
        for name in ("tolerance", "minimum", "slice_minimum"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise InvalidDataError(f"ModelValidation.{name} must be a finite number, got {value!r}")
        if self.tolerance < 0:
            raise InvalidDataError(f"ModelValidation.tolerance must be >= 0, got {self.tolerance}")
        if (self.slice_column is None) != (self.slice_minimum is None):
            raise InvalidDataError("ModelValidation: give slice_column and slice_minimum together")
        if isinstance(self.min_slice_rows, bool) or not isinstance(self.min_slice_rows, int) or self.min_slice_rows < 1:
            raise InvalidDataError(f"ModelValidation.min_slice_rows must be an integer >= 1, got {self.min_slice_rows!r}")

    @property
    def better(self) -> Direction:
        return self.direction or metric_named(self.metric).direction

    @property
    def slice_better(self) -> Direction:
        name = self.slice_metric or self.metric
        return self.direction if self.slice_metric is None and self.direction else metric_named(name).direction


# --- scoring ---------------------------------------------------------------------------------------------------


@dataclass
class Scores:
    """A model's output on the holdout rows: predictions and, for classifiers, class probabilities."""

    predictions: np.ndarray
    probabilities: np.ndarray | None
    classes: list[Any] | None

    def require_probabilities(self) -> np.ndarray:
        if self.probabilities is None:
            raise InvalidDataError("this metric needs class probabilities; the model has no predict_proba")
        return self.probabilities

    def subset(self, mask: np.ndarray) -> Scores:
        return Scores(self.predictions[mask], None if self.probabilities is None else self.probabilities[mask],
                      self.classes)


def predict_scores(model: Any, flavor: Flavor, inputs: pd.DataFrame) -> Scores:
    predictions = np.asarray(flavor.predict(model, inputs))
    probabilities = flavor.predict_proba(model, inputs)
    classes = getattr(model, "classes_", None)
    return Scores(predictions, None if probabilities is None else np.asarray(probabilities),
                  None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes])


class Holdout:
    """The rows every model is scored on: one split of a training dataset, raw (untransformed) with its keys and
    event time, and the label.

    Args:
        td: the candidate's training dataset.
        split: its holdout split (``"test"``).
    """

    def __init__(self, td: TrainingDataset, split: str = "test") -> None:
        labels = list(td.spec.get("labels") or [])
        if len(labels) != 1:
            raise InvalidDataError(f"training dataset {td.view.name} v{td.view.version} / v{td.version}: model "
                                   f"validation needs exactly one label, it has {labels}")
        self.td = td
        self.split = split
        self.label = labels[0]
        self.rows: pd.DataFrame = td.read(split, transformed=False, with_keys=True)
        if not len(self.rows):
            raise InvalidDataError(f"training dataset {td.view.name} v{td.view.version} / v{td.version}: split "
                                   f"{split!r} has no rows to validate on")
        self.y = self.rows[self.label].to_numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self, features: Sequence[str], transformations: FittedTransformations | None) -> pd.DataFrame:
        """The model input for these rows: ``features`` in order, with ``transformations`` applied."""
        missing = [f for f in features if f not in self.rows.columns]
        if missing:
            raise InvalidDataError(f"the holdout rows lack feature(s) {missing}")
        frame = self.rows[list(features)]
        return transformations.transform_frame(frame) if transformations is not None else frame

    def scores(self, model: Any, features: Sequence[str] | None = None) -> Scores:
        """An in-memory model (trained on this dataset) scored on the rows."""
        features = list(features or self.td.spec["features"])
        return predict_scores(model, flavor_for(model), self.inputs(features, self.td.transformations))

    def version_scores(self, store: FeatureStore, mv: ModelVersion) -> Scores:
        """A registered version scored on the same rows, as its own input (see module doc)."""
        model = mv.load()
        flavor = flavor_named(mv.flavor)
        features = mv.features
        lineage = mv.training_dataset or {}
        same_view = (lineage.get("feature_view"), lineage.get("feature_view_version")) == (
            self.td.view.name, self.td.view.version)
        transformations = _fitted(store, mv)
        if same_view or (not lineage and all(f in self.rows.columns for f in features)):
            return predict_scores(model, flavor, self.inputs(features, transformations))
        return predict_scores(model, flavor, self._other_view_inputs(store, mv, transformations))

    def _other_view_inputs(self, store: FeatureStore, mv: ModelVersion,
                           transformations: FittedTransformations | None) -> pd.DataFrame:
        """``mv``'s features for the same rows and event times from its own view, as of the candidate's pins."""
        view_ref = (mv.training_dataset or {}).get("feature_view"), (mv.training_dataset or {}).get(
            "feature_view_version")
        if view_ref[0] is None and mv.feature_view:
            view_ref = mv.feature_view["name"], mv.feature_view["version"]
        if view_ref[0] is None:
            raise InvalidDataError(f"model {mv.name} v{mv.version} records no feature view; cannot build its input")
        view = store.get_feature_view(view_ref[0], int(view_ref[1]))
        event_time = self.td.spec["spine"]["event_time"]
        missing = [k for k in view.join_keys if k not in self.rows.columns]
        if missing:
            raise InvalidDataError(f"model {mv.name} v{mv.version} reads feature view {view.name} v{view.version}, "
                                   f"whose join keys {missing} the holdout rows lack")
        groups = {fg.spec.key for fg in view._groups}
        pins = {k: v for k, v in self.td.pinned_commits.items() if k in groups}
        spine = self.rows[[*view.join_keys, event_time]]
        data = view.get_batch_data(spine=spine, spine_event_time=event_time, as_of=pins or None, with_keys=False)
        frame = data[list(mv.features)].reset_index(drop=True)
        return transformations.transform_frame(frame) if transformations is not None else frame


def _fitted(store: FeatureStore, mv: ModelVersion) -> FittedTransformations | None:
    """The transformations ``mv`` was trained with (fitted on its own training dataset's train split)."""
    lineage = mv.training_dataset
    if not lineage:
        return None
    try:
        view = store.get_feature_view(lineage["feature_view"], int(lineage["feature_view_version"]))
        return view.get_training_dataset(int(lineage["version"])).transformations
    except (NotFoundError, FeatureStoreError) as exc:
        raise NotFoundError(f"model {mv.name} v{mv.version}: its training dataset {lineage['feature_view']} "
                            f"v{lineage['feature_view_version']} / v{lineage['version']} (and so its fitted "
                            f"transformations) is not available: {exc}") from exc


def score(metric: str, y: np.ndarray, scores: Scores) -> float:
    return metric_named(metric).compute(np.asarray(y), scores)


def evaluate(holdout: Holdout, scores: Scores, metrics: Sequence[str]) -> dict[str, float]:
    """``{metric: value}`` on the whole holdout (undefined values are left out)."""
    out = {}
    for name in dict.fromkeys(metrics):
        value = score(name, holdout.y, scores)
        if math.isfinite(value):
            out[name] = value
    return out


# --- the two rules ---------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """Outcome of "not worse than the deployed version" (``deployed_version`` None: nothing deployed)."""

    passed: bool
    description: str
    metric: str
    direction: Direction
    tolerance: float
    candidate: float
    deployed: float | None = None
    deployment: str | None = None
    deployed_model: str | None = None
    deployed_version: int | None = None
    rows: int = 0


def compare_with_deployed(store: FeatureStore, holdout: Holdout, candidate: Scores, rules: ModelValidation,
                          candidate_version: ModelVersion | None = None) -> Comparison:
    """Scores the candidate and the version ``rules.deployment`` serves on the same holdout rows.

    Passes when nothing is deployed yet, when the deployment serves the candidate itself, or when the candidate
    is at most ``rules.tolerance`` worse. A deployed version that cannot be scored (its artifact or training
    dataset gone, features the holdout cannot give) fails, naming why: there is nothing to compare with.
    """
    from fs_dagster.core.serving.deployment import get_deployment

    metric, direction, tolerance = rules.metric, rules.better, rules.tolerance
    value = score(metric, holdout.y, candidate)
    result = Comparison(False, "", metric, direction, tolerance, value, deployment=rules.deployment,
                        rows=len(holdout))
    if rules.deployment is None:
        result.passed, result.description = True, "no deployment to compare with"
        return result
    try:
        deployment = get_deployment(store, rules.deployment)
    except NotFoundError:
        result.passed, result.description = True, f"nothing deployed as {rules.deployment} yet"
        return result
    result.deployed_model, result.deployed_version = deployment.model_name, deployment.model_version
    served = f"{deployment.model_name} v{deployment.model_version}"
    if candidate_version is not None and (candidate_version.name, candidate_version.version) == (
            deployment.model_name, deployment.model_version):
        result.passed, result.deployed = True, value
        result.description = f"{rules.deployment} already serves this version ({served})"
        return result
    try:
        deployed_mv = store.get_model_registry().get_model(deployment.model_name, deployment.model_version)
        deployed = score(metric, holdout.y, holdout.version_scores(store, deployed_mv))
    except FeatureStoreError as exc:
        result.description = f"the deployed version {served} cannot be scored on the holdout: {exc}"
        return result
    result.deployed = deployed
    if not math.isfinite(value) or not math.isfinite(deployed):
        result.description = f"{metric} is undefined on the holdout (candidate {value}, deployed {deployed})"
        return result
    bound = deployed - tolerance if direction == "max" else deployed + tolerance
    result.passed = better_or_equal(value, bound, direction)
    if result.passed:
        result.description = (f"{metric} {value:.4f} vs {deployed:.4f} of the deployed {served} on the same "
                              f"{len(holdout)} holdout rows: not worse (tolerance {tolerance:g})")
    else:
        result.description = (f"{metric} {value:.4f} is worse than {deployed:.4f} of the deployed {served} by more "
                               f"than the tolerance {tolerance:g} (the same {len(holdout)} holdout rows)")
    return result


@dataclass
class SliceScore:
    value: Any
    rows: int
    score: float | None
    judged: bool
    passed: bool


@dataclass
class SliceReport:
    """Outcome of the minimum quality per slice; ``failing`` are the judged slices below the minimum."""

    passed: bool
    description: str
    column: str
    metric: str
    minimum: float
    slices: list[SliceScore] = field(default_factory=list)

    @property
    def failing(self) -> list[SliceScore]:
        return [s for s in self.slices if s.judged and not s.passed]


def slice_quality(holdout: Holdout, scores: Scores, rules: ModelValidation) -> SliceReport:
    """The metric per value of ``rules.slice_column`` over the holdout rows (see :class:`ModelValidation`).

    Raises:
        InvalidDataError: the rows have no such column (naming the columns they have).
    """
    column, minimum = rules.slice_column, rules.slice_minimum
    if column is None or minimum is None:
        raise InvalidDataError("slice_quality needs ModelValidation(slice_column=..., slice_minimum=...)")
    if column not in holdout.rows.columns:
        raise InvalidDataError(f"slice column {column!r} is not a column of the holdout rows; they have "
                               f"{list(holdout.rows.columns)}")
    metric = rules.slice_metric or rules.metric
    direction = rules.slice_better
    values = holdout.rows[column]
    keys = values.astype(object).where(values.notna(), NULL_SLICE).to_numpy()
    report = SliceReport(True, "", column, metric, float(minimum))
    for value in sorted(set(keys.tolist()), key=str):
        mask = keys == value
        rows = int(mask.sum())
        result = score(metric, holdout.y[mask], scores.subset(mask)) if rows >= rules.min_slice_rows else None
        judged = result is not None and math.isfinite(result)
        passed = not judged or better_or_equal(result, minimum, direction)
        report.slices.append(SliceScore(value, rows, result if judged else None, judged, passed))
    failing = report.failing
    judged = [s for s in report.slices if s.judged]
    report.passed = not failing
    word = "minimum" if direction == "max" else "maximum"
    if failing:
        names = ", ".join(f"{s.value} ({s.score:.4f}, {s.rows} rows)" for s in failing)
        side = "below" if direction == "max" else "above"
        report.description = f"{metric} {side} the {word} {minimum:g} in {len(failing)} {column} slice(s): {names}"
    elif judged:
        worst = min(judged, key=lambda s: s.score if direction == "max" else -s.score)
        report.description = (f"{metric} reaches the {word} {minimum:g} in all {len(judged)} judged {column} slices "
                              f"(worst: {worst.value} {worst.score:.4f})")
    else:
        report.description = (f"no {column} slice has {rules.min_slice_rows}+ holdout rows and a defined {metric}; "
                              "nothing judged")
    skipped = len(report.slices) - len(judged)
    if skipped:
        report.description += f"; {skipped} slice(s) not judged (fewer than {rules.min_slice_rows} rows or undefined)"
    return report
