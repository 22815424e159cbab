"""What fails after an offline commit never passes silently: statistics that cannot be computed raise
``StatisticsError`` naming the kept commit (core), fail the Dagster step after the commit was materialized
(feature-group assets and the IO manager), still let the online sync run, and are computed by the next sync.

The statistics failure is injected on purpose (DuckDB 2's relation API once broke them this way: the run reported
success and the registry kept the commit without statistics for good)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pandas as pd
import pytest
from dagster import AssetKey, asset, instance_for_test, materialize

from fs_dagster import (
    FeatureGroupIOManager,
    FeatureGroupSpec,
    FeatureGroupTranslator,
    FeatureStore,
    FeatureStoreResource,
    feature_group_asset,
)
from fs_dagster.core.feature_group import RegistrySyncError, StatisticsError
from fs_dagster.core.monitoring import statistics as statistics_module
from fs_dagster.core.online.embedded import EmbeddedValkey

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SPEC = FeatureGroupSpec("readings", primary_key=("sensor",), event_time="ts")


def _frame(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"sensor": [f"s{i}" for i in range(len(values))], "ts": [T0] * len(values), "value": values})


def _resources(store: FeatureStoreResource) -> dict:
    return {"feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}


@pytest.fixture()
def broken_statistics(monkeypatch):
    """Makes every statistics computation fail, as an incompatible DuckDB did; ``restore()`` undoes it."""

    def fail(*_args, **_kwargs):
        raise AttributeError("Relations no longer have fetchone()")

    monkeypatch.setattr(statistics_module, "compute_statistics", fail)
    return monkeypatch


def test_insert_raises_naming_the_kept_commit_and_the_next_sync_computes_the_statistics(
    tmp_path, broken_statistics
) -> None:
    fs = FeatureStore(root=tmp_path / "store", project="p")
    fg = fs.get_or_create_feature_group("readings", primary_key=["sensor"], event_time="ts")
    with pytest.raises(StatisticsError) as caught:
        fg.insert(_frame([1.0, 2.0]))
    error = caught.value
    assert isinstance(error, RegistrySyncError)  # callers that handle "commit kept" handle this too
    assert error.instant == fg.latest_commit() and error.result.rows_inserted == 2
    message = str(error)
    assert f"offline commit {error.instant} is kept and recorded" in message
    assert "AttributeError: Relations no longer have fetchone()" in message and "computes them again" in message
    assert fg.count() == 2 and [c.instant for c in fs.registry.commits("p", "readings", 1)] == [error.instant]

    with pytest.raises(StatisticsError):  # a statistics read retries, and says so while it still fails
        fg.statistics()
    broken_statistics.undo()
    stats = fg.statistics()  # computed now, for the commit that had none
    assert stats is not None and stats["row_count"] == 2
    assert fs.registry.statistics_instants("p", "readings", 1) == [error.instant]


def test_online_sync_still_runs_when_the_statistics_fail(tmp_path, broken_statistics) -> None:
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        fg = fs.get_or_create_feature_group("readings", primary_key=["sensor"], event_time="ts", online_enabled=True)
        with pytest.raises(StatisticsError):
            fg.insert(_frame([1.0, 2.0]))
        assert fg.get_online([("s1",)])[0]["value"] == 2.0
    finally:
        EmbeddedValkey(fs.root).stop()


def test_feature_group_asset_is_materialized_and_the_step_fails(tmp_path, broken_statistics) -> None:
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="p")

    @feature_group_asset(SPEC)
    def readings() -> pd.DataFrame:
        return _frame([1.0, 2.0])

    with instance_for_test() as instance:
        result = materialize([readings], resources=_resources(store), instance=instance, raise_on_error=False)
        assert not result.success
        instant = store.get_store().get_feature_group("readings").latest_commit()
        [event] = result.get_asset_materialization_events()  # the commit is the asset's data version
        assert event.materialization.tags["dagster/data_version"] == instant
        assert event.materialization.metadata["fs_dagster/registry_sync"].value.startswith("failed: ")
        [failure] = [e for e in result.all_events if e.is_step_failure]
        text = failure.step_failure_data.user_failure_data.description
        assert f"commit {instant} written offline (kept)" in text and "statistics failed" in text


def test_io_manager_write_fails_the_step_naming_the_kept_commit(tmp_path, broken_statistics) -> None:
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="p")

    @asset(io_manager_key="fs_io_manager", metadata=FeatureGroupTranslator().get_asset_spec(SPEC).metadata)
    def readings() -> pd.DataFrame:
        return _frame([1.0])

    result = materialize([readings], resources=_resources(store), raise_on_error=False)
    assert not result.success
    instant = store.get_store().get_feature_group("readings").latest_commit()
    assert instant is not None
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert f"commit {instant} written offline (kept)" in failure.step_failure_data.error.message


def test_online_failure_of_an_io_manager_write_fails_the_step(tmp_path) -> None:
    """The IO manager path used to put a failed online sync in the metadata only and report success."""
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="p", online_url="valkey://127.0.0.1:9/0")
    online = replace(SPEC, online_enabled=True)

    @asset(io_manager_key="fs_io_manager", metadata=FeatureGroupTranslator().get_asset_spec(online).metadata)
    def readings() -> pd.DataFrame:
        return _frame([1.0])

    result = materialize([readings], resources=_resources(store), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "written offline (kept), but online sync failed" in failure.step_failure_data.error.message
    assert "127.0.0.1:9" in failure.step_failure_data.error.message
    assert AssetKey("readings") not in {e.asset_key for e in result.get_asset_materialization_events()}
