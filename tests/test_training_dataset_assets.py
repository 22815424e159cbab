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
    asset,
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


# --- a spine from an upstream asset (views whose requests carry keys the root group lacks) -------------------------

SHIPPING = FeatureGroupSpec("shipping_zones", primary_key=("zone", "at"), event_time="at")


@feature_group_asset(SHIPPING)
def shipping_zones() -> pd.DataFrame:
    return pd.DataFrame({"zone": ["north", "north", "south"], "at": [T0, T0 + timedelta(hours=10), T0],
                         "surcharge": [1.0, 5.0, 2.0]})


def _zoned_view(store):
    o = store.get_feature_group("orders")
    z = store.get_feature_group("shipping_zones")
    # the zone is what a request says (where the parcel goes), not a column of the orders group
    return store.get_or_create_feature_view(
        "zoned_returns", 1, o.select(["amount", "returned"]).join(z.select(["surcharge"]), left_on=["zone", "ts"]),
        labels=["returned"], request_keys=["zone"],
    )


@asset
def zoned_requests() -> pd.DataFrame:
    """What the model is trained on: an order, the zone it went to and when it was asked about."""
    return pd.DataFrame({"order_id": ["o1", "o12", "o12", "o15"], "zone": ["north", "north", "south", "nowhere"],
                         "ts": [T0 + timedelta(hours=h) for h in (1, 12, 12, 15)]})


zoned_training_data = build_training_dataset_asset(
    "zoned_returns", 1, deps=["orders", "shipping_zones"], spine=zoned_requests, get_view=_zoned_view,
)


def test_training_dataset_asset_takes_its_spine_from_an_upstream_asset(resources) -> None:
    graph = Definitions(assets=[orders, shipping_zones, zoned_requests, zoned_training_data],
                        resources=resources).resolve_asset_graph()
    assert graph.get(zoned_training_data.key).parent_keys == {
        AssetKey("orders"), AssetKey("shipping_zones"), AssetKey("zoned_requests")}
    with instance_for_test() as instance:
        result = materialize([orders, shipping_zones, zoned_requests, zoned_training_data], resources=resources,
                             instance=instance)
        assert result.success
        [check] = result.get_asset_check_evaluations()
        assert check.check_name == "training_data_quality"
    td = resources["feature_store"].get_store().get_feature_view("zoned_returns", 1).get_training_dataset()
    rows = td.read(with_keys=True, transformed=False)
    # one row per spine row, point in time: north's surcharge changed at hour 10, south has one, nowhere none
    assert rows["order_id"].tolist() == ["o1", "o12", "o12", "o15"]
    surcharge = rows["surcharge"].tolist()
    assert surcharge[:3] == [1.0, 5.0, 2.0] and pd.isna(surcharge[3])
    assert rows["amount"].tolist() == [1.0, 12.0, 12.0, 15.0]


def test_a_view_with_request_keys_needs_the_spine_asset(resources) -> None:
    from fs_dagster.core.errors import InvalidDataError

    without_spine = build_training_dataset_asset("zoned_returns", 1, deps=["orders", "shipping_zones"],
                                                 get_view=_zoned_view, key="zoned_without_spine")
    with instance_for_test() as instance:
        result = materialize([orders, shipping_zones, without_spine], resources=resources, instance=instance,
                             raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "zone" in failure.event_specific_data.error.message  # names the key the root group lacks
    with pytest.raises(InvalidDataError, match="spine_event_time='ts' needs spine="):
        build_training_dataset_asset("zoned_returns", 1, deps=["orders"], spine_event_time="ts")
