"""Smoke test of a running deployment: a real HTTP prediction request for real entities, and the answer checked.

The entities come from the served model's training dataset (rows whose features are all present, so the online
store holds every feature group's row for them), or are given. The request is an ordinary one: it is answered by
the served workers and lands in the inference log like any other (its ``request_id`` is in the report, so
monitoring can leave it out).

Example:
    dep = fs.get_deployment("delays_api")
    report = smoke_test(dep, example_entities(fs, dep, rows=5))
    assert report.passed, report.description
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError

if TYPE_CHECKING:
    from fs_dagster.core.serving.deployment import Deployment
    from fs_dagster.core.store import FeatureStore


@dataclass
class SmokeReport:
    """What the smoke request got; ``problems`` lists every check that failed (empty: passed)."""

    deployment: str
    url: str | None
    expected_model: str
    expected_version: int
    entities: list[dict[str, Any]]
    answer: dict[str, Any] | None = None
    seconds: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def description(self) -> str:
        if self.passed:
            return (f"{len(self.entities)} entities predicted over HTTP by {self.expected_model} "
                    f"v{self.expected_version} at {self.url} in {self.seconds * 1000:.1f} ms")
        return f"smoke test of {self.deployment} failed: " + "; ".join(self.problems)


def _plain(value: Any) -> Any:
    """A key value as the JSON the request contract wants (ISO text for times, Python numbers)."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def example_entities(store: FeatureStore, deployment: Deployment, rows: int = 5, split: str = "test",
                     ) -> list[dict[str, Any]]:
    """``rows`` entities (the serving keys) of the served model's training dataset: rows of ``split`` whose
    features are all present, spread evenly over it (the same rows every time).

    Raises:
        InvalidDataError: the model records no training dataset, or no such row exists.
    """
    mv = store.get_model_registry().get_model(deployment.model_name, deployment.model_version)
    lineage = mv.training_dataset
    if not lineage:
        raise InvalidDataError(f"model {mv.name} v{mv.version} records no training dataset to take example "
                               "entities from; give the entities")
    view_ref = deployment.target.feature_view or (lineage["feature_view"], int(lineage["feature_view_version"]))
    serving_view = store.get_feature_view(*view_ref)
    td = store.get_feature_view(lineage["feature_view"], int(lineage["feature_view_version"])).get_training_dataset(
        int(lineage["version"]))
    if split not in td.splits:
        split = td.splits[-1]
    frame = td.read(split, transformed=False, with_keys=True)
    keys = serving_view.serving_keys
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise InvalidDataError(f"training dataset of {mv.name} v{mv.version} lacks serving key(s) {missing}")
    complete = frame.dropna(subset=[*keys, *[f for f in mv.features if f in frame.columns]])
    if not len(complete):
        raise InvalidDataError(f"training dataset of {mv.name} v{mv.version}: split {split!r} has no row with "
                               "every feature present")
    picks = np.unique(np.linspace(0, len(complete) - 1, num=min(rows, len(complete))).round().astype(int))
    chosen = complete.iloc[picks]
    return [{k: _plain(row[k]) for k in keys} for _, row in chosen.iterrows()]


def smoke_test(deployment: Deployment, entities: Sequence[Mapping[str, Any]], *,
               expected_version: int | None = None, allow_missing: bool = False) -> SmokeReport:
    """Sends one prediction request for ``entities`` over HTTP and checks the answer: it comes from the expected
    model and version (default: the deployment's), has one prediction per entity, none missing, and (for
    classifiers) one probability per class per entity, each in [0, 1], summing to 1.
    """
    deployment.refresh()
    report = SmokeReport(deployment.name, deployment.url, deployment.model_name,
                         expected_version if expected_version is not None else deployment.model_version,
                         [dict(e) for e in entities])
    if not entities:
        report.problems.append("no entities to send")
        return report
    started = time.perf_counter()
    try:
        answer = deployment.predict(report.entities, allow_missing=allow_missing)
    except FeatureStoreError as exc:  # not running, refused (PredictionError names the HTTP status)
        report.problems.append(f"the request failed: {exc}")
        return report
    report.seconds = time.perf_counter() - started
    report.url = deployment.url
    report.answer = answer
    if (answer.get("model"), answer.get("model_version")) != (report.expected_model, report.expected_version):
        report.problems.append(f"answered by {answer.get('model')} v{answer.get('model_version')}, expected "
                               f"{report.expected_model} v{report.expected_version}")
    predictions = answer.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(entities):
        report.problems.append(f"expected {len(entities)} predictions, got {predictions!r:.200}")
    elif any(p is None or (isinstance(p, float) and not math.isfinite(p)) for p in predictions):
        report.problems.append(f"missing or non-finite predictions: {predictions!r:.200}")
    probabilities, classes = answer.get("probabilities"), answer.get("classes")
    if probabilities is not None:
        rows_ok = isinstance(probabilities, list) and len(probabilities) == len(entities) and all(
            isinstance(row, list) and len(row) == len(classes or ()) and all(
                isinstance(p, (int, float)) and 0.0 <= p <= 1.0 for p in row) and abs(sum(row) - 1.0) < 1e-6
            for row in probabilities)
        if not rows_ok:
            report.problems.append(f"probabilities are not one distribution over {classes} per entity: "
                                   f"{probabilities!r:.200}")
    return report
