"""The model registry: versions with metrics, lineage and schema; artifacts verified by SHA-256 on every load."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fs_dagster import FeatureStore, InvalidDataError, NotFoundError
from fs_dagster.core.models.artifacts import ModelIntegrityError
from fs_dagster.core.registry.models import DeploymentRow

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


class MeanModel:
    """A model of the PythonModel interface: predicts the mean label it was fitted on."""

    def __init__(self, mean: float) -> None:
        self.mean = mean

    def save(self, folder: Path) -> None:
        (folder / "mean.txt").write_text(repr(self.mean))

    @classmethod
    def load(cls, folder: Path) -> MeanModel:
        return cls(float((folder / "mean.txt").read_text()))

    def predict(self, features: pd.DataFrame) -> list[float]:
        return [self.mean] * len(features)


@pytest.fixture()
def fs(tmp_path) -> FeatureStore:
    return FeatureStore(root=tmp_path / "store", project="rides", durable=False)


def _training_dataset(fs: FeatureStore):
    rng = np.random.default_rng(1)
    n = 200
    trips = fs.get_or_create_feature_group("trips", primary_key=["trip_id"], event_time="ts")
    distance = rng.uniform(1, 30, n)
    trips.insert(pd.DataFrame({
        "trip_id": np.arange(n), "ts": [T0 + timedelta(minutes=i) for i in range(n)],
        "distance": distance, "passengers": rng.integers(1, 5, n), "late": distance + rng.normal(0, 5, n) > 15,
    }))
    view = fs.get_or_create_feature_view("trip_delays", 1, trips.select(["distance", "passengers", "late"]),
                                         labels=["late"])
    return view.create_train_test_split(test_size=0.25, seed=3)


def test_an_sklearn_model_with_its_lineage_and_schema(fs) -> None:
    td = _training_dataset(fs)
    X_train, X_test, y_train, y_test = td.train_test_split()
    clf = LogisticRegression().fit(X_train, y_train.squeeze())
    mr = fs.get_model_registry()
    mv = mr.create_model("late_trips", clf, metrics={"accuracy": clf.score(X_test, y_test.squeeze())},
                         params={"C": 1.0, "solver": np.str_("lbfgs")}, training_dataset=td,
                         input_example=X_train.head(3), description="logistic", tags={"team": "rides"})
    assert (mv.name, mv.version, mv.flavor) == ("late_trips", 1, "sklearn")
    assert mv.features == ["distance", "passengers"] and mv.labels == ["late"]
    assert mv.training_dataset == {"feature_view": "trip_delays", "feature_view_version": 1, "version": td.version,
                                   "content_hash": td.content_hash, "pinned_commits": td.pinned_commits}
    assert mv.feature_view == {"name": "trip_delays", "version": 1}
    assert {f["name"]: f["type"] for f in mv.input_schema} == {"distance": "double", "passengers": "int64"}
    assert mv.input_example.shape == (3, 2) and mv.params == {"C": 1.0, "solver": "lbfgs"}
    assert mv.path == fs.root / "rides" / "models" / "late_trips" / "v1" and len(mv.artifact_sha256) == 64

    again = mr.get_model("late_trips")  # a fresh handle loads from disk, verified
    assert np.array_equal(again.predict(X_test.assign(extra=1)), clf.predict(X_test))  # extra columns dropped
    assert again.predict_proba(X_test).shape == (len(X_test), 2)
    with pytest.raises(InvalidDataError, match=r"lacks feature\(s\) \['passengers'\]"):
        again.predict(X_test[["distance"]])


def test_any_python_model_through_save_load_predict(fs) -> None:
    mr = fs.get_model_registry()
    mv = mr.create_model("mean", MeanModel(0.25), features=["x"], metrics={"mae": 0.5})
    assert mv.flavor == "python"
    assert list(mr.get_model("mean", 1).predict(pd.DataFrame({"x": [1, 2]}))) == [0.25, 0.25]
    with pytest.raises(InvalidDataError, match="lacks \\['save', 'load'\\] of the PythonModel interface"):
        mr.create_model("bad", object.__new__(type("Bare", (), {"predict": lambda self, f: f})))


def test_a_changed_artifact_is_refused_naming_the_file(fs) -> None:
    mr = fs.get_model_registry()
    mv = mr.create_model("mean", MeanModel(0.25), features=["x"])
    (mv.path / "mean.txt").write_text("0.99")
    with pytest.raises(ModelIntegrityError, match=r"mean\.txt changed"):
        mr.get_model("mean").load()
    (mv.path / "mean.txt").write_text(repr(0.25))
    mr.get_model("mean").load()  # restored: accepted again
    (mv.path / "extra.bin").write_bytes(b"x")
    with pytest.raises(ModelIntegrityError, match=r"extra\.bin is not part of the registered artifact"):
        mr.get_model("mean").verify()
    (mv.path / "extra.bin").unlink()
    (mv.path / "mean.txt").unlink()
    with pytest.raises(ModelIntegrityError, match=r"mean\.txt is missing"):
        mr.get_model("mean").load()


def test_versions_best_model_tags_and_description(fs) -> None:
    mr = fs.get_model_registry()
    for mean, auc in ((0.1, 0.70), (0.2, 0.75), (0.3, 0.75), (0.4, 0.60)):
        mr.create_model("mean", MeanModel(mean), features=["x"], metrics={"auc": auc, "loss": 1 - auc})
    mr.create_model("other", MeanModel(1.0), features=["x"])
    assert [v.version for v in mr.get_models("mean")] == [1, 2, 3, 4]
    assert mr.list_models() == ["mean", "other"]
    assert mr.get_best_model("mean", "auc", "max").version == 3  # a tie goes to the newer version
    assert mr.get_best_model("mean", "loss", "min").version == 3
    assert mr.get_best_model("mean", "auc", "min").version == 4
    with pytest.raises(NotFoundError, match=r"no version has metric 'f1'; metrics recorded: \['auc', 'loss'\]"):
        mr.get_best_model("mean", "f1")
    with pytest.raises(NotFoundError, match="versions: 1, 2, 3, 4"):
        mr.get_model("mean", 9)
    with pytest.raises(NotFoundError, match="models: mean, other"):
        mr.get_model("nope")
    with pytest.raises(InvalidDataError, match="version must be a positive integer, got True"):
        mr.get_model("mean", True)

    mv = mr.get_model("mean", 2)
    mv.set_tag("stage", "candidate")
    mv.set_tag("owner", "ana")
    mv.delete_tag("owner")
    mv.set_description("second try")
    stored = mr.get_model("mean", 2)
    assert stored.tags == {"stage": "candidate"} and stored.description == "second try"
    with pytest.raises(InvalidDataError, match="tag 'when' must be JSON values"):
        mv.set_tag("when", object())


@pytest.mark.parametrize("metrics, match", [
    ({"auc": float("nan")}, "metric 'auc' must be a finite number"),
    ({"auc": True}, "metric 'auc' must be a finite number"),
    ({"auc": "0.7"}, "metric 'auc' must be a finite number"),
])
def test_bad_metrics_are_refused_and_nothing_is_left(fs, metrics, match) -> None:
    mr = fs.get_model_registry()
    with pytest.raises(InvalidDataError, match=match):
        mr.create_model("mean", MeanModel(0.1), metrics=metrics)
    assert mr.list_models() == []
    assert not (fs.root / "rides" / "models" / "mean").exists() or not any((fs.root / "rides" / "models" / "mean").iterdir())


def test_concurrent_registrations_get_distinct_versions(fs) -> None:
    mr = fs.get_model_registry()
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda i: mr.create_model("mean", MeanModel(i), features=["x"]).version, range(8)))
    assert sorted(versions) == list(range(1, 9))
    for version in versions:
        mr.get_model("mean", version).load()  # every artifact is in its own folder, intact


def test_a_served_version_cannot_be_deleted(fs) -> None:
    mr = fs.get_model_registry()
    mr.create_model("mean", MeanModel(0.1), features=["x"])
    mr.create_model("mean", MeanModel(0.2), features=["x"])

    def deploy(session):
        session.add(DeploymentRow(project="rides", name="mean_api", model_name="mean", model_version=2, state={}))

    fs.registry._write("test deployment", deploy)
    with pytest.raises(InvalidDataError, match=r"served by deployment\(s\) \['mean_api'\]"):
        mr.get_model("mean", 2).delete()
    mr.get_model("mean", 1).delete()
    assert [v.version for v in mr.get_models("mean")] == [2]
    assert not mr.model_path("mean", 1).exists()


def test_reuse_identical_returns_the_registered_version_of_the_same_artifact_and_lineage(fs) -> None:
    td = _training_dataset(fs)
    X_train, _, y_train, _ = td.train_test_split()
    mr = fs.get_model_registry()
    first = mr.create_model("late", LogisticRegression().fit(X_train, y_train.squeeze()), training_dataset=td,
                            params={"C": 1.0}, reuse_identical=True)
    # deterministic training again: the same bytes, lineage and params -> the same version, no copy on disk
    again = mr.create_model("late", LogisticRegression().fit(X_train, y_train.squeeze()), training_dataset=td,
                            params={"C": 1.0}, reuse_identical=True)
    assert (again.version, again.artifact_sha256) == (first.version, first.artifact_sha256) == (1, first.artifact_sha256)
    assert [p.name for p in mr.model_path("late", 1).parent.iterdir()] == ["v1"]  # (no temporary folder left)
    # other params, no reuse asked, or another training dataset: new versions
    assert mr.create_model("late", LogisticRegression().fit(X_train, y_train.squeeze()), training_dataset=td,
                           params={"C": 2.0}, reuse_identical=True).version == 2
    assert mr.create_model("late", LogisticRegression().fit(X_train, y_train.squeeze()), training_dataset=td,
                           params={"C": 1.0}).version == 3
    other = td.view.create_train_test_split(test_size=0.5, seed=9)
    X_other, _, y_other, _ = other.train_test_split()
    assert mr.create_model("late", LogisticRegression().fit(X_other, y_other.squeeze()), training_dataset=other,
                           params={"C": 1.0}, reuse_identical=True).version == 4
    # a damaged copy is not reused: the newest intact identical version is (v3 equals v1)
    (mr.model_path("late", 3) / "model.joblib").write_bytes(b"garbage")
    assert mr.create_model("late", LogisticRegression().fit(X_train, y_train.squeeze()), training_dataset=td,
                           params={"C": 1.0}, reuse_identical=True).version == 1
