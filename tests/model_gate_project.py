"""A code location for the CLI test of ``test_model_assets``: the synthetic trips store of that module (root from
``FS_DAGSTER_ROOT``), a model asset gated by a separate blocking ``@asset_check`` (fails when
``FS_TEST_GATE=fail``), and a deployment asset downstream (not started: the test needs no server)."""

from __future__ import annotations

import os

from dagster import AssetCheckResult, Definitions, asset_check
from sklearn.linear_model import LogisticRegression

from fs_dagster import (
    FeatureStoreResource,
    RandomSplit,
    build_deployment_asset,
    build_model_asset,
    build_training_dataset_asset,
)


def _view(store):
    trips, zones = store.get_feature_group("trips"), store.get_feature_group("zones")
    return store.get_or_create_feature_view(
        "trip_delays", 1,
        trips.select(["distance", "passengers", "late"]).join(zones.select(["traffic"]), left_on=["zone"]),
        labels=["late"], transformation_functions={"distance": "standard_scaler"})


def _train(td):
    features, labels = td.feature_label_split("train")
    return LogisticRegression().fit(features, labels.squeeze().astype(bool))


gate_training_data = build_training_dataset_asset(
    "trip_delays", 1, deps=[], key="gate_training_data", split=RandomSplit({"train": 0.75, "test": 0.25}, seed=3),
    get_view=_view)
gate_model = build_model_asset("gate_model", _train, training_data=gate_training_data)


@asset_check(asset=gate_model, blocking=True, description="A reviewer's approval, outside the model asset")
def reviewed() -> AssetCheckResult:
    approved = os.environ.get("FS_TEST_GATE") != "fail"
    return AssetCheckResult(passed=approved, description="approved" if approved else "rejected by the reviewer")


gate_api = build_deployment_asset("gate_api", gate_model, smoke_test=None, start=False)

defs = Definitions(
    assets=[gate_training_data, gate_model, gate_api],
    asset_checks=[reviewed],
    resources={"feature_store": FeatureStoreResource(root=os.environ.get("FS_DAGSTER_ROOT", ".fs_store"),
                                                     project="rides", durable=False)},
)
