"""Model validation (plain Python): every model is scored on the candidate's holdout rows as its own input (its
features, its own fitted transformations, its own view), the tolerance works both ways, slices too small or
undefined are listed but not judged, and bad rules are refused naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from fs_dagster import FeatureStore, InvalidDataError, RandomSplit
from fs_dagster.core.models.validation import (
    Holdout,
    ModelValidation,
    compare_with_deployed,
    evaluate,
    slice_quality,
)

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
TRAFFIC = {"north": 0.2, "south": 0.9, "east": 0.5, "jam": 5.0, "tiny": 0.4}
COUNTS = {"north": 400, "south": 400, "east": 400, "jam": 120, "tiny": 12}


@pytest.fixture(scope="module")
def fs(tmp_path_factory) -> FeatureStore:
    fs = FeatureStore(root=tmp_path_factory.mktemp("validation") / "store", project="rides", durable=False)
    rng = np.random.default_rng(5)
    zone = np.repeat(list(COUNTS), list(COUNTS.values()))
    n = len(zone)
    distance = rng.uniform(1, 30, n)
    passengers = rng.integers(1, 5, n)
    late = distance / 30 + np.vectorize(TRAFFIC.get)(zone) + 0.15 * passengers + rng.normal(0, 0.3, n) > 1.3
    trips = fs.get_or_create_feature_group("trips", primary_key=["trip_id"], event_time="ts")
    trips.insert(pd.DataFrame({"trip_id": np.arange(n), "ts": [T0 + timedelta(minutes=i) for i in range(n)],
                               "zone": zone, "distance": distance, "passengers": passengers, "late": late}))
    zones = fs.get_or_create_feature_group("zones", primary_key=["zone"], event_time="updated")
    zones.insert(pd.DataFrame({"zone": list(TRAFFIC), "updated": [T0 - timedelta(days=1)] * len(TRAFFIC),
                               "traffic": list(TRAFFIC.values())}))
    return fs


def _view(fs: FeatureStore, version: int):
    trips, zones = fs.get_feature_group("trips"), fs.get_feature_group("zones")
    if version == 1:  # distance, passengers, traffic; distance standardised
        query = trips.select(["distance", "passengers", "late"]).join(zones.select(["traffic"]), left_on=["zone"])
        functions = {"distance": "standard_scaler"}
    else:  # v2: no passengers, distance scaled to [0, 1]
        query = trips.select(["distance", "late"]).join(zones.select(["traffic"]), left_on=["zone"])
        functions = {"distance": "min_max_scaler"}
    return fs.get_or_create_feature_view("trip_delays", version, query, labels=["late"],
                                         transformation_functions=functions)


def _fit(td, model=None):
    x, y = td.feature_label_split("train")
    return (model or LogisticRegression()).fit(x, y.squeeze().astype(bool))


def _raw(fs: FeatureStore, trip_ids: pd.Series) -> pd.DataFrame:
    """The trips' raw features straight from the feature groups (the oracle)."""
    trips = fs.get_feature_group("trips").read().set_index("trip_id").loc[trip_ids.to_numpy()]
    return pd.DataFrame({"distance": trips["distance"].to_numpy(), "passengers": trips["passengers"].to_numpy(),
                         "traffic": trips["zone"].map(TRAFFIC).to_numpy()})


def test_a_deployed_version_of_another_view_is_scored_on_the_same_rows_as_its_own_input(fs) -> None:
    td1 = _view(fs, 1).create_training_data(RandomSplit({"train": 0.7, "test": 0.3}, seed=1))
    deployed = fs.get_model_registry().create_model("late", _fit(td1), training_dataset=td1)
    fs.create_deployment("late_api", deployed)  # registered, not started: validation needs no server
    td2 = _view(fs, 2).create_training_data(RandomSplit({"train": 0.7, "test": 0.3}, seed=2))
    holdout = Holdout(td2)
    candidate = holdout.scores(_fit(td2))
    rules = ModelValidation(deployment="late_api", tolerance=0.0)
    result = compare_with_deployed(fs, holdout, candidate, rules)

    # the oracle: v1's features of exactly these trips, with v1's own fitted scaler, through the deployed model
    rows = holdout.rows
    expected_input = td1.transformations.transform_frame(_raw(fs, rows["trip_id"]))
    proba = deployed.load().predict_proba(expected_input[deployed.features])[:, 1]
    assert result.deployed == pytest.approx(roc_auc_score(rows["late"], proba), abs=1e-12)
    assert result.candidate == pytest.approx(roc_auc_score(rows["late"], candidate.probabilities[:, 1]), abs=1e-12)
    assert (result.deployed_model, result.deployed_version, result.rows) == ("late", 1, len(rows))
    assert "passengers" not in td2.spec["features"]  # (so the deployed model's input must come from its own view)
    assert result.passed == (result.candidate >= result.deployed)
    assert result.description == (
        f"roc_auc {result.candidate:.4f} vs {result.deployed:.4f} of the deployed late v1 on the same {len(rows)} "
        "holdout rows: not worse (tolerance 0)" if result.passed else
        f"roc_auc {result.candidate:.4f} is worse than {result.deployed:.4f} of the deployed late v1 by more than "
        f"the tolerance 0 (the same {len(rows)} holdout rows)")


def test_a_deployed_version_of_an_older_dataset_of_the_same_view_uses_its_own_fitted_transformations(fs) -> None:
    view = _view(fs, 1)
    old = view.create_training_data(RandomSplit({"train": 0.5, "test": 0.5}, seed=7))
    new = view.create_training_data(RandomSplit({"train": 0.8, "test": 0.2}, seed=8))
    assert old.transformations.params["distance"] != new.transformations.params["distance"]
    mv = fs.get_model_registry().create_model("late_old", _fit(old), training_dataset=old)
    holdout = Holdout(new)
    scores = holdout.version_scores(fs, mv)
    expected = mv.load().predict_proba(old.transformations.transform_frame(_raw(fs, holdout.rows["trip_id"]))[
        mv.features])
    assert np.allclose(scores.probabilities, expected, rtol=0, atol=1e-12)
    # ... not the candidate's: with the new dataset's scaler the same model would answer differently
    wrong = mv.load().predict_proba(new.transformations.transform_frame(_raw(fs, holdout.rows["trip_id"]))[
        mv.features])
    assert not np.allclose(scores.probabilities, wrong, atol=1e-6)


def test_the_tolerance_works_for_metrics_to_maximise_and_to_minimise(fs) -> None:
    td = _view(fs, 1).get_training_dataset()
    good = fs.get_model_registry().create_model("late_tol", _fit(td), training_dataset=td)
    try:
        fs.get_deployment("late_tol_api")
    except Exception:  # noqa: BLE001
        fs.create_deployment("late_tol_api", good)
    holdout = Holdout(td)
    dummy = holdout.scores(_fit(td, DummyClassifier(strategy="prior")))
    same = holdout.scores(good.load())
    auc_gap = evaluate(holdout, same, ["roc_auc"])["roc_auc"] - 0.5
    for metric, worse_by in (("roc_auc", auc_gap),
                             ("log_loss", log_loss(holdout.y, dummy.probabilities) - log_loss(holdout.y,
                                                                                               same.probabilities))):
        assert worse_by > 0.05
        strict = compare_with_deployed(fs, holdout, dummy, ModelValidation(metric, deployment="late_tol_api"))
        assert not strict.passed and strict.description.startswith(f"{metric} ")
        assert "worse than" in strict.description and "by more than the tolerance 0" in strict.description
        lenient = compare_with_deployed(fs, holdout, dummy, ModelValidation(
            metric, deployment="late_tol_api", tolerance=worse_by + 1e-9))
        assert lenient.passed, lenient.description
        assert compare_with_deployed(fs, holdout, dummy, ModelValidation(
            metric, deployment="late_tol_api", tolerance=worse_by - 1e-6)).passed is False
        equal = compare_with_deployed(fs, holdout, same, ModelValidation(metric, deployment="late_tol_api"))
        assert equal.passed and equal.candidate == pytest.approx(equal.deployed, abs=1e-12)
    itself = compare_with_deployed(fs, holdout, same, ModelValidation(deployment="late_tol_api"), candidate_version=good)
    assert itself.passed and itself.description == "late_tol_api already serves this version (late_tol v1)"
    nothing = compare_with_deployed(fs, holdout, dummy, ModelValidation(deployment="no_such_api"))
    assert nothing.passed and nothing.description == "nothing deployed as no_such_api yet"


def test_slices_too_small_or_undefined_are_listed_but_not_judged(fs) -> None:
    td = _view(fs, 1).create_training_data(RandomSplit({"train": 0.5, "test": 0.5}, seed=3))
    holdout = Holdout(td)
    scores = holdout.scores(_fit(td))
    report = slice_quality(holdout, scores, ModelValidation(slice_column="zone", slice_minimum=0.6, min_slice_rows=30))
    by_zone = {s.value: s for s in report.slices}
    assert set(by_zone) == set(TRAFFIC)
    assert by_zone["tiny"].rows < 30 and not by_zone["tiny"].judged and by_zone["tiny"].score is None
    assert holdout.rows.loc[holdout.rows["zone"] == "jam", "late"].all()  # one class: ROC AUC is undefined
    assert by_zone["jam"].rows >= 30 and not by_zone["jam"].judged
    for zone in ("north", "south", "east"):
        mask = (holdout.rows["zone"] == zone).to_numpy()
        assert by_zone[zone].score == pytest.approx(roc_auc_score(holdout.y[mask], scores.probabilities[mask, 1]))
    assert report.passed and report.description.endswith(
        "; 2 slice(s) not judged (fewer than 30 rows or undefined)")
    strict = slice_quality(holdout, scores, ModelValidation(slice_column="zone", slice_minimum=0.99,
                                                            min_slice_rows=30))
    assert not strict.passed and [s.value for s in strict.failing] == ["east", "north", "south"]
    assert strict.description.startswith("roc_auc below the minimum 0.99 in 3 zone slice(s): east (")
    # a metric to minimise: its bound is a maximum
    ceiling = slice_quality(holdout, scores, ModelValidation(metric="log_loss", slice_column="zone",
                                                             slice_minimum=0.01, min_slice_rows=30))
    assert not ceiling.passed and ceiling.description.startswith("log_loss above the maximum 0.01 in ")
    assert {"north", "south", "east"} <= {s.value for s in ceiling.failing}
    with pytest.raises(InvalidDataError, match=r"slice column 'weather' is not a column of the holdout rows"):
        slice_quality(holdout, scores, ModelValidation(slice_column="weather", slice_minimum=0.5))


@pytest.mark.parametrize("rules, words", [
    (dict(metric="auc"), "unknown metric 'auc'; known: ["),
    (dict(slice_metric="gini"), "unknown metric 'gini'"),
    (dict(tolerance=-0.1), "ModelValidation.tolerance must be >= 0"),
    (dict(tolerance=float("nan")), "ModelValidation.tolerance must be a finite number"),
    (dict(minimum=True), "ModelValidation.minimum must be a finite number"),
    (dict(direction="up"), "direction must be 'max' or 'min'"),
    (dict(slice_column="zone"), "give slice_column and slice_minimum together"),
    (dict(min_slice_rows=0), "ModelValidation.min_slice_rows must be an integer >= 1"),
])
def test_bad_rules_are_refused_naming_the_field(rules, words) -> None:
    with pytest.raises(InvalidDataError) as caught:
        ModelValidation(**rules)
    assert words in str(caught.value)


def test_a_holdout_needs_one_label_and_rows(fs) -> None:
    td = _view(fs, 1).get_training_dataset()
    with pytest.raises(InvalidDataError, match=r"has no split 'validation'"):
        Holdout(td, "validation")
    trips = fs.get_feature_group("trips")
    unlabelled = fs.get_or_create_feature_view("trip_features", 1, trips.select(["distance", "passengers"]),
                                               labels=[])
    with pytest.raises(InvalidDataError, match=r"model validation needs exactly one label, it has \[\]"):
        Holdout(unlabelled.create_training_data(RandomSplit({"train": 0.5, "test": 0.5}, seed=1)))
