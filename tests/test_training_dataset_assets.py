"""Training datasets as Dagster assets: data version = content hash, staleness after a feature commit, reuse of
identical content, and the eager automation condition requesting a refresh."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    AutomationCondition,
    DagsterInstance,
    Definitions,
    evaluate_automation_conditions,
    instance_for_test,
    materialize,
)
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from fs_dagster import (
    FeatureGroupIOManager,
    FeatureGroupSpec,
    FeatureStoreResource,
    RandomSplit,
    build_training_dataset_asset,
    feature_group_asset,
)
from fs_dagster.core.online.embedded import EmbeddedValkey

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
ORDERS = FeatureGroupSpec("orders", primary_key=("order_id",), event_time="ts")
CUSTOMERS = FeatureGroupSpec("customers", primary_key=("customer",), event_time="since")
STATE = {"spend": 10.0}


@feature_group_asset(ORDERS)
def orders() -> pd.DataFrame:
    return pd.DataFrame({
        "order_id": [f"o{i}" for i in range(20)],
        "ts": [T0 + timedelta(hours=i) for i in range(20)],
        "customer": [f"c{i % 3}" for i in range(20)],
        "amount": [float(i) for i in range(20)],
        "returned": [i % 4 == 0 for i in range(20)],
    })


@feature_group_asset(CUSTOMERS)
def customers() -> pd.DataFrame:
    return pd.DataFrame({"customer": ["c0", "c1", "c2"], "since": [T0] * 3,
                         "spend": [STATE["spend"], 20.0, 30.0]})


def _view(store):
    o = store.get_feature_group("orders")
    c = store.get_feature_group("customers")
    return store.get_or_create_feature_view(
        "returns", 1, o.select(["amount", "returned"]).join(c.select(["spend"]), on=["customer"]),
        labels=["returned"], transformation_functions={"amount": "min_max_scaler"},
    )


returns_training_data = build_training_dataset_asset(
    "returns", 1, deps=["orders", "customers"], split=RandomSplit({"train": 0.75, "test": 0.25}, seed=4),
    get_view=_view, automation_condition=AutomationCondition.eager(),
)


@pytest.fixture()
def resources(tmp_path):
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="shop")
    yield {"feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    EmbeddedValkey(tmp_path / "store").stop()


def _latest(instance: DagsterInstance, key: str):
    event = instance.get_latest_materialization_event(AssetKey(key))
    return event.asset_materialization


def test_training_dataset_asset_versions_staleness_and_automation(resources) -> None:
    STATE["spend"] = 10.0
    assets = [orders, customers, returns_training_data]
    defs = Definitions(assets=assets, resources=resources)
    with instance_for_test() as instance:
        assert materialize(assets, resources=resources, instance=instance).success
        first = _latest(instance, "returns_training_data")
        metadata = first.metadata
        assert metadata["dagster/row_count"].value == 20
        rows = metadata["fs_dagster/rows_per_split"].value
        assert set(rows) == {"train", "test"} and rows["train"] + rows["test"] == 20
        assert set(metadata["fs_dagster/pinned_commits"].value) == {"orders:1", "customers:1"}
        assert "amount" in metadata["fs_dagster/transformations"].value["params"]
        content_hash = metadata["fs_dagster/content_hash"].value
        assert first.tags["dagster/data_version"] == content_hash

        # same inputs again: the same dataset version, the same data version
        assert materialize([returns_training_data], resources=resources, instance=instance,
                           selection=[returns_training_data]).success
        again = _latest(instance, "returns_training_data")
        assert again.metadata["fs_dagster/content_hash"].value == content_hash
        store = resources["feature_store"].get_store()
        assert len(_view(store).get_training_datasets()) == 1

        # a new commit of a source feature group: Dagster shows the training data as stale ...
        ticks = evaluate_automation_conditions(defs=defs, instance=instance)  # (the sensor's previous tick)
        assert ticks.total_requested == 0
        STATE["spend"] = 99.0
        assert materialize([customers], resources=resources, instance=instance, selection=[customers]).success
        resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        assert resolver.get_status(AssetKey("returns_training_data")) == StaleStatus.STALE
        # ... and the eager condition asks for a refresh
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticks.cursor)
        assert result.get_requested_partitions(AssetKey("returns_training_data")) == {None}

        assert materialize([returns_training_data], resources=resources, instance=instance,
                           selection=[returns_training_data]).success
        refreshed = _latest(instance, "returns_training_data")
        assert refreshed.metadata["fs_dagster/content_hash"].value != content_hash
        assert len(_view(store).get_training_datasets()) == 2
        resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        assert resolver.get_status(AssetKey("returns_training_data")) == StaleStatus.FRESH


def test_identical_feature_data_keeps_the_training_data_version(resources) -> None:
    """The data version is the content hash: feature groups written again with the same rows give the same
    training data, reported under the same version (no new dataset version), so nothing downstream goes stale."""
    STATE["spend"] = 10.0
    assets = [orders, customers, returns_training_data]
    with instance_for_test() as instance:
        assert materialize(assets, resources=resources, instance=instance).success
        first = _latest(instance, "returns_training_data").tags["dagster/data_version"]
        assert materialize(assets, resources=resources, instance=instance).success  # the same rows again
        again = _latest(instance, "returns_training_data")
        assert again.tags["dagster/data_version"] == first == again.metadata["fs_dagster/content_hash"].value
        assert len(_view(resources["feature_store"].get_store()).get_training_datasets()) == 1
