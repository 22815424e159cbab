"""The Dagster face: feature-group assets, IO manager, pandera checks, partitions, data versions, sensor."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest
from dagster import (
    AssetIn,
    AssetKey,
    AssetCheckSeverity,
    BackfillPolicy,
    DailyPartitionsDefinition,
    Definitions,
    MonthlyPartitionsDefinition,
    asset,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest
from pandera.typing import Series

from fs_dagster import (
    FeatureGroupIOManager,
    FeatureGroupSpec,
    FeatureGroupTranslator,
    FeatureStoreResource,
    feature_group_asset,
)
from fs_dagster.sensors import build_external_commit_sensor

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SPEC = FeatureGroupSpec(
    "sensor_readings",
    primary_key=("sensor",),
    event_time="ts",
    description="Latest reading per sensor",
    tags=("iot",),
)
DAILY_SPEC = FeatureGroupSpec("daily_readings", primary_key=("sensor", "ts"), event_time="ts", partition_key=("sensor",))
DAILY = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-06")


class Readings(pa.DataFrameModel):
    sensor: Series[str]
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    value: Series[float] = pa.Field(ge=0)
    quality: Series[float] = pa.Field(le=1, raise_warning=True)


def _frame(values: list[float], quality: float = 0.5, start: datetime = T0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sensor": [f"s{i}" for i in range(len(values))],
            "ts": pd.Series([start] * len(values)).astype("datetime64[ns, UTC]"),
            "value": values,
            "quality": [quality] * len(values),
        }
    )


@pytest.fixture()
def resources(tmp_path):
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="test")
    return {"feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}


def _readings_asset(frame: pd.DataFrame):
    @feature_group_asset(SPEC, schema=Readings)
    def sensor_readings() -> pd.DataFrame:
        return frame

    return sensor_readings


def _store(resources):
    return resources["feature_store"].get_store()


def test_materialization_metadata_data_version_and_downstream_load(resources) -> None:
    fg_asset = _readings_asset(_frame([1.0, 2.0, 3.0]))
    seen = {}

    @asset(ins={"sensor_readings": AssetIn()})
    def mean_value(sensor_readings: pd.DataFrame) -> float:
        seen["rows"] = len(sensor_readings)
        return float(sensor_readings["value"].mean())

    result = materialize([fg_asset, mean_value], resources=resources)
    assert result.success and seen["rows"] == 3 and result.output_for_node("mean_value") == 2.0
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey("sensor_readings"))
    md = event.materialization.metadata
    instant = _store(resources).get_feature_group("sensor_readings").latest_commit()
    assert md["fs_dagster/commit"].value == instant
    assert event.materialization.tags["dagster/data_version"] == instant
    assert md["dagster/row_count"].value == 3 and md["fs_dagster/rows_inserted"].value == 3
    columns = {c.name: c for c in md["dagster/column_schema"].value.columns}
    assert columns["sensor"].constraints.nullable is False and columns["value"].type == "double"
    assert _statistics_count(md["fs_dagster/statistics"].value, "value") == 3 and "s0" in md["fs_dagster/preview"].value
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.check_name == "pandera_schema"


def test_error_level_check_blocks_the_write(resources) -> None:
    materialize([_readings_asset(_frame([1.0]))], resources=resources)
    fg = _store(resources).get_feature_group("sensor_readings")
    before = fg.commit_details()

    result = materialize([_readings_asset(_frame([5.0, -1.0, -2.0]))], resources=resources, raise_on_error=False)
    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert check.metadata["num_failures"].value == 2
    cases = check.metadata["failure_cases"].value.records
    assert {r.data["failure_case"] for r in cases} == {"-1.0", "-2.0"} and cases[0].data["column"] == "value"
    assert not result.get_asset_materialization_events()
    assert fg.commit_details() == before and fg.count() == 1


def test_warning_level_check_writes_and_warns(resources) -> None:
    result = materialize([_readings_asset(_frame([1.0], quality=7.0))], resources=resources)
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert _store(resources).get_feature_group("sensor_readings").count() == 1


def test_store_refusal_is_a_failure_naming_the_column(resources) -> None:
    @feature_group_asset(SPEC)
    def sensor_readings() -> pd.DataFrame:
        return _frame([1.0]).assign(sensor=None)

    result = materialize([sensor_readings], resources=resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    # the frame's Dagster type (non-null primary key) refuses it before the store is reached
    message = failure.step_failure_data.error.message
    assert 'for column "sensor"' in message and "null value(s) in primary-key column" in message, message
    assert "nothing was written" in message and _store(resources).get_feature_groups() == []


def test_pinned_commit_input_reads_time_travel(resources) -> None:
    materialize([_readings_asset(_frame([1.0]))], resources=resources)
    first = _store(resources).get_feature_group("sensor_readings").latest_commit()
    materialize([_readings_asset(_frame([10.0, 20.0]))], resources=resources)

    @asset(ins={"sensor_readings": AssetIn(metadata={"fs_dagster/as_of": first})})
    def pinned(sensor_readings: pd.DataFrame) -> list[float]:
        return sorted(sensor_readings["value"])

    result = materialize(
        [_readings_asset(_frame([10.0, 20.0])), pinned], resources=resources, selection=[AssetKey("pinned")]
    )
    assert result.output_for_node("pinned") == [1.0]


def _pinned_assets(forms: dict[str, object]) -> list:
    """One asset per ``fs_dagster/as_of`` form, each returning the values of the commit it read."""

    def build(name: str, as_of: object):
        @asset(name=name, ins={"sensor_readings": AssetIn(metadata={"fs_dagster/as_of": as_of})})
        def _pinned(sensor_readings: pd.DataFrame) -> list[float]:
            return sorted(sensor_readings["value"])

        return _pinned

    return [build(name, as_of) for name, as_of in forms.items()]


def test_pinned_input_accepts_instants_iso_times_and_datetimes(resources) -> None:
    from dagster import MetadataValue

    from fs_dagster.core.offline.hudi_timeline import instant_to_datetime

    materialize([_readings_asset(_frame([1.0]))], resources=resources)
    first = _store(resources).get_feature_group("sensor_readings").latest_commit()
    materialize([_readings_asset(_frame([10.0, 20.0]))], resources=resources)
    moment = instant_to_datetime(first)  # the first commit's time: as of then, the table held [1.0]
    forms = {
        "instant": first,
        "instant_int": int(first),
        "instant_text_value": MetadataValue.text(first),
        "iso_utc": moment.isoformat(),
        "iso_z": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "iso_naive_is_utc": moment.replace(tzinfo=None).isoformat(),
        "iso_other_offset": moment.astimezone(timezone(timedelta(hours=-5))).isoformat(),
        "datetime_aware": moment,
        "datetime_naive_is_utc": moment.replace(tzinfo=None),
        "pandas_timestamp": pd.Timestamp(moment),
        "timestamp_value": MetadataValue.timestamp(moment),
    }
    pinned = _pinned_assets(forms)
    result = materialize([_readings_asset(_frame([10.0, 20.0])), *pinned], resources=resources,
                         selection=[AssetKey(name) for name in forms])
    assert {name: result.output_for_node(name) for name in forms} == {name: [1.0] for name in forms}
    assert materialize([_readings_asset(_frame([])), *_pinned_assets({"later": moment + timedelta(days=1)})],
                       resources=resources, selection=[AssetKey("later")]).output_for_node("later") == [10.0, 20.0]


def test_pinned_input_refuses_what_is_not_a_point_in_time(resources) -> None:
    from datetime import date

    materialize([_readings_asset(_frame([1.0]))], resources=resources)
    refused = {"a_float": 1.5, "a_word": "yesterday", "a_date": date(2024, 1, 1), "a_bool": True,
               "short_digits": "2024010112"}
    result = materialize([_readings_asset(_frame([1.0])), *_pinned_assets(refused)], resources=resources,
                         selection=[AssetKey(name) for name in refused], raise_on_error=False)
    failures = {e.step_key: e.step_failure_data.error.message for e in result.all_events if e.is_step_failure}
    assert set(failures) == set(refused)
    for name, value in refused.items():
        message = failures[name]
        assert f"input 'sensor_readings': fs_dagster/as_of = {value!r} ({type(value).__name__})" in message, message
        assert "is not a point in time; accepted: a 17-digit commit instant" in message and "ISO 8601" in message


def _daily_asset(frames: dict[str, pd.DataFrame]):
    @feature_group_asset(DAILY_SPEC, partitions_def=DAILY)
    def daily_readings(context) -> pd.DataFrame:
        window = context.partition_time_window
        return pd.concat([frames[k] for k in sorted(frames) if window.start <= pd.Timestamp(k) < window.end])

    return daily_readings


def _day(day: int, values: list[float]) -> pd.DataFrame:
    return _frame(values, start=T0 + timedelta(days=day, hours=3))


def test_partition_runs_backfills_and_idempotent_reruns(resources) -> None:
    frames = {(T0 + timedelta(days=d)).isoformat(): _day(d, [float(d)] * 3) for d in range(5)}
    daily = _daily_asset(frames)
    fg_of = lambda: _store(resources).get_feature_group("daily_readings")  # noqa: E731

    assert materialize([daily], resources=resources, partition_key="2024-01-02").success
    assert fg_of().count() == 3
    first = fg_of().latest_commit()
    again = materialize([daily], resources=resources, partition_key="2024-01-02")
    event = again.get_asset_materialization_events()[0].materialization
    md = event.metadata
    assert fg_of().count() == 3  # re-run: no duplicates, and the same data is no new commit
    assert (md["fs_dagster/rows_updated"].value, md["fs_dagster/rows_unchanged"].value) == (0, 3)
    # (a partition's data version: the newest commit among its rows / their count)
    assert fg_of().latest_commit() == first and event.tags["dagster/data_version"] == f"{first}/3"

    with instance_for_test() as instance:  # single-run backfill over a range of partitions
        ranged = materialize(
            [daily],
            resources=resources,
            instance=instance,
            tags={"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-05"},
        )
        assert ranged.success
    assert fg_of().count() == 15
    assert sorted(fg_of().read()["value"].unique()) == [0.0, 1.0, 2.0, 3.0, 4.0]


MONTHLY_SPEC = FeatureGroupSpec("monthly_readings", primary_key=("sensor", "ts"), event_time="ts",
                                partition_key=("sensor",))
MONTHLY = MonthlyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")
RANGE = {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-03-01"}


def _month(month: int, values: list[float]) -> pd.DataFrame:
    return _frame(values, start=datetime(2024, month, 3, tzinfo=timezone.utc))


def _monthly_asset(frames: dict[int, pd.DataFrame]):
    """The rows of ``frames`` (month -> rows) whose month falls in the run's window (one partition or a range)."""

    @feature_group_asset(MONTHLY_SPEC, partitions_def=MONTHLY)
    def monthly_readings(context) -> pd.DataFrame:
        window = context.partition_time_window
        return pd.concat([frames[m] for m in sorted(frames)
                          if window.start <= datetime(2024, m, 1, tzinfo=timezone.utc) < window.end]
                         + [_frame([1.0]).iloc[:0]])

    return monthly_readings


def _events_by_partition(result) -> dict[str, object]:
    return {e.partition: e.materialization for e in result.get_asset_materialization_events()}


def _statistics_count(table, column: str) -> int:
    """The ``count`` of ``column``'s row in a statistics table (``fs_dagster/statistics``)."""
    [record] = [r.data for r in table.records if r.data["feature"] == column]
    return record["count"]


def test_single_run_backfill_gives_each_partition_its_own_figures(resources) -> None:
    sizes = {1: 5, 2: 2, 3: 9}  # months of different sizes, the second nearly empty
    frames = {m: _month(m, [float(m * 10 + i) for i in range(n)]) for m, n in sizes.items()}
    with instance_for_test() as instance:
        result = materialize([_monthly_asset(frames)], resources=resources, instance=instance, tags=RANGE)
        events = _events_by_partition(result)
        assert sorted(events) == ["2024-01-01", "2024-02-01", "2024-03-01"]
        fg = _store(resources).get_feature_group("monthly_readings")
        instant = fg.latest_commit()
        for month, n in sizes.items():
            md = events[f"2024-{month:02d}-01"].metadata
            assert md["dagster/row_count"].value == md["fs_dagster/batch_rows"].value == n, month
            assert (md["fs_dagster/rows_inserted"].value, md["fs_dagster/rows_updated"].value) == (n, 0), month
            assert _statistics_count(md["fs_dagster/statistics"].value, "value") == n, month
            assert md["fs_dagster/partition_window"].value.startswith(f"[2024-{month:02d}-01T00:00:00+00:00, ")
            assert md["fs_dagster/preview"].value.count("\n| s") == n  # the partition's own rows
            # the commit and the table are the same for all: under their own names
            assert md["fs_dagster/commit"].value == instant and md["fs_dagster/table_row_count"].value == 16
            assert md["fs_dagster/commit_rows_inserted"].value == 16
        assert {e.tags["dagster/data_version"] for e in events.values()} == {f"{instant}/16"}

        # the backfill again, with one row more in February: January and March are sent unchanged (not rewritten),
        # February grows
        frames[2] = _month(2, [20.0, 21.0, 22.0])
        again = _events_by_partition(
            materialize([_monthly_asset(frames)], resources=resources, instance=instance, tags=RANGE))
        figures = {k: (md.metadata["fs_dagster/rows_inserted"].value, md.metadata["fs_dagster/rows_updated"].value,
                       md.metadata["dagster/row_count"].value) for k, md in again.items()}
        assert figures == {"2024-01-01": (0, 0, 5), "2024-02-01": (1, 0, 3), "2024-03-01": (0, 0, 9)}
        md = again["2024-02-01"].metadata
        assert (md["fs_dagster/commit_rows_inserted"].value, md["fs_dagster/commit_rows_updated"].value) == (1, 0)

        # a single partition run describes its partition the same way
        [event] = materialize([_monthly_asset(frames)], resources=resources, instance=instance,
                              partition_key="2024-03-01").get_asset_materialization_events()
        md = event.materialization.metadata
        assert (md["dagster/row_count"].value, md["fs_dagster/rows_updated"].value) == (9, 0)
        assert md["fs_dagster/table_row_count"].value == 17
        # nothing changed in March since the first backfill: its content version is that commit's
        assert event.materialization.tags["dagster/data_version"] == f"{instant}/9" != f"{fg.latest_commit()}/9"


def test_io_manager_gives_each_partition_its_own_figures(resources) -> None:
    metadata = FeatureGroupTranslator().get_asset_spec(MONTHLY_SPEC).metadata
    sizes = {1: 3, 2: 1, 3: 4}

    @asset(name="monthly_readings", io_manager_key="fs_io_manager", metadata=metadata, partitions_def=MONTHLY,
           backfill_policy=BackfillPolicy.single_run())
    def plain(context) -> pd.DataFrame:
        window = context.partition_time_window
        return pd.concat([_month(m, [1.0] * n) for m, n in sizes.items()
                          if window.start <= datetime(2024, m, 1, tzinfo=timezone.utc) < window.end])

    events = _events_by_partition(materialize([plain], resources=resources, tags=RANGE))
    assert {k: md.metadata["dagster/row_count"].value for k, md in events.items()} == {
        "2024-01-01": 3, "2024-02-01": 1, "2024-03-01": 4}
    assert {md.metadata["fs_dagster/rows_inserted"].value for md in events.values()} == {3, 1, 4}
    assert {md.metadata["fs_dagster/table_row_count"].value for md in events.values()} == {8}


def test_partition_keeps_its_data_version_while_other_partitions_commit(resources) -> None:
    frames = {1: _month(1, [1.0, 2.0]), 2: _month(2, [3.0])}
    monthly = _monthly_asset(frames)

    @asset(partitions_def=MONTHLY, deps=[monthly])
    def monthly_report() -> None: ...

    defs = Definitions(assets=[monthly, monthly_report], resources=resources)
    with instance_for_test() as instance:
        assert materialize([monthly, monthly_report], resources=resources, instance=instance,
                           partition_key="2024-01-01").success
        fg = _store(resources).get_feature_group("monthly_readings")
        january = _latest_version(instance, "2024-01-01")
        assert materialize([monthly], resources=resources, instance=instance, partition_key="2024-02-01").success

        # January again with nothing new: no commit, and January's data version stays what it was
        frames.pop(1)
        assert materialize([monthly], resources=resources, instance=instance, partition_key="2024-01-01").success
        assert _latest_version(instance, "2024-01-01") == january
        resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        assert resolver.get_status(AssetKey("monthly_report"), "2024-01-01") == StaleStatus.FRESH

        # a commit that does change January (a row deleted outside Dagster) shows: the report becomes stale
        fg.delete(_month(1, [1.0])[["sensor", "ts"]])
        assert materialize([monthly], resources=resources, instance=instance, partition_key="2024-01-01").success
        assert _latest_version(instance, "2024-01-01") == january.replace("/2", "/1")
        resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        assert resolver.get_status(AssetKey("monthly_report"), "2024-01-01") == StaleStatus.STALE


def test_pinned_input_of_several_partitions_takes_a_datetime_as_text(resources) -> None:
    frames = {1: _month(1, [1.0]), 2: _month(2, [2.0, 3.0])}
    monthly = _monthly_asset(frames)
    later, seen = datetime(2030, 1, 1, tzinfo=timezone.utc), {}

    def pinned(as_of):
        @asset(name="pinned_months", partitions_def=MONTHLY, backfill_policy=BackfillPolicy.single_run(),
               ins={"monthly_readings": AssetIn(metadata={"fs_dagster/as_of": as_of})})
        def _pinned(monthly_readings: pd.DataFrame) -> None:
            seen["rows"] = len(monthly_readings)

        return _pinned

    with instance_for_test() as instance:
        assert materialize([monthly], resources=resources, instance=instance, tags=RANGE).success
        result = materialize([monthly, pinned(later)], resources=resources, instance=instance, tags=RANGE,
                             selection=[AssetKey("pinned_months")], raise_on_error=False)
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert ("fs_dagster/as_of is the datetime 2030-01-01T00:00:00+00:00, which Dagster cannot record for an input "
                "of 3 partitions; give it as ISO text ('2030-01-01T00:00:00+00:00')") in (
                    failure.step_failure_data.error.message)
        assert materialize([monthly, pinned(later.isoformat())], resources=resources, instance=instance, tags=RANGE,
                           selection=[AssetKey("pinned_months")]).success
        assert seen["rows"] == 3


def _latest_version(instance, partition: str) -> str:
    record = instance.get_latest_data_version_record(AssetKey("monthly_readings"), False, partition)
    return record.asset_materialization.tags["dagster/data_version"]


def test_partition_run_refuses_rows_outside_its_window(resources) -> None:
    @feature_group_asset(DAILY_SPEC, partitions_def=DAILY)
    def daily_readings() -> pd.DataFrame:
        return _day(3, [1.0])

    result = materialize([daily_readings], resources=resources, partition_key="2024-01-01", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "outside the partition window" in failure.step_failure_data.error.message


def test_io_manager_writes_plain_assets(resources) -> None:
    metadata = FeatureGroupTranslator().get_asset_spec(SPEC).metadata

    @asset(name="sensor_readings", io_manager_key="fs_io_manager", metadata=metadata)
    def plain() -> pd.DataFrame:
        return _frame([4.0, 5.0])

    result = materialize([plain], resources=resources)
    md = result.get_asset_materialization_events()[0].materialization.metadata
    assert md["fs_dagster/rows_inserted"].value == 2
    assert _store(resources).get_feature_group("sensor_readings").count() == 2


def test_external_commit_sensor_reports_commits_once(resources) -> None:
    with instance_for_test() as instance:
        materialize([_readings_asset(_frame([1.0]))], resources=resources, instance=instance)
        fg = _store(resources).get_feature_group("sensor_readings")
        external = fg.insert(_frame([7.0, 8.0, 9.0]))  # e.g. a notebook, outside Dagster
        sensor = build_external_commit_sensor([SPEC])

        with build_sensor_context(instance=instance, resources=resources) as context:
            result = sensor.evaluate_tick(context)
        reported = [e.metadata["fs_dagster/commit"] for e in result.asset_events]
        assert [getattr(v, "value", v) for v in reported] == [external.instant]
        assert result.asset_events[0].tags["dagster/data_version"] == external.instant

        with build_sensor_context(instance=instance, resources=resources, cursor=result.cursor) as context:
            again = sensor.evaluate_tick(context)
        assert again.asset_events == []



def test_online_enabled_group_syncs_and_reports_it(resources) -> None:
    from dataclasses import replace

    from fs_dagster.core.online.embedded import EmbeddedValkey

    online_spec = replace(SPEC, name="online_readings", online_enabled=True)

    @feature_group_asset(online_spec)
    def online_readings() -> pd.DataFrame:
        return _frame([1.0, 2.0])

    store = _store(resources)
    try:
        result = materialize([online_readings], resources=resources)
        md = result.get_asset_materialization_events()[0].materialization.metadata
        assert md["fs_dagster/online_sync"].value == "full" and md["fs_dagster/online_keys_written"].value == 2
        assert md["fs_dagster/online_sync_ms"].value >= 0
        assert store.get_feature_group("online_readings").get_online([("s1",)])[0]["value"] == 2.0
    finally:
        EmbeddedValkey(store.root).stop()


def test_online_consistency_check_lists_mismatches(resources) -> None:
    from dataclasses import replace

    from fs_dagster.consistency_check import build_online_consistency_checks
    from fs_dagster.core.online.codec import OnlineLayout
    from fs_dagster.core.online.embedded import EmbeddedValkey

    online_spec = replace(SPEC, name="online_readings", online_enabled=True)

    @feature_group_asset(online_spec)
    def online_readings() -> pd.DataFrame:
        return _frame([1.0, 2.0, 3.0])

    [check] = build_online_consistency_checks([online_spec, SPEC], sample_size=10)
    store = _store(resources)
    try:
        result = materialize([online_readings, check], resources=resources)
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.passed and evaluation.metadata["sampled_keys"].value == 3

        fg = store.get_feature_group("online_readings")
        online = store.online_store
        layout = OnlineLayout.build("fs:", "test", fg.name, fg.version, fg.schema(), fg.primary_key, fg.event_time)
        table = fg.read(where="sensor = 's1'", dataframe_type="arrow")
        bad = table.set_column(table.schema.get_field_index("value"), "value", pa_array([42.0]))
        online.client.set(layout.encode_keys(bad)[0], layout.encode_values(bad, "99999999999999999")[0])
        online.client.delete(layout.key_for(("s2",)))

        from dagster import AssetSelection

        only_check = AssetSelection.checks_for_assets(online_readings)
        result = materialize([online_readings, check], resources=resources, selection=only_check)
        [evaluation] = result.get_asset_check_evaluations()
        assert not evaluation.passed
        assert evaluation.metadata["missing_online"].value == 1
        assert evaluation.metadata["mismatching_values"].value == 1
        assert "42.0" in evaluation.metadata["mismatches"].value
    finally:
        EmbeddedValkey(store.root).stop()


def pa_array(values):
    import pyarrow

    return pyarrow.array(values)


def test_materializing_the_same_data_again_keeps_the_data_version(resources) -> None:
    """Identical data (or data older than what is stored) makes no commit, so the data version stays and
    downstream assets are not marked stale; changed data is a new commit and a new data version."""
    frame = _frame([1.0, float("nan"), 3.0])  # NaN equals NaN here

    def _readings_asset(data: pd.DataFrame):  # (no pandera schema: it would refuse the NaN)
        @feature_group_asset(SPEC)
        def sensor_readings() -> pd.DataFrame:
            return data

        return sensor_readings

    with instance_for_test() as instance:
        def versions() -> list[str]:
            events = instance.fetch_materializations(AssetKey("sensor_readings"), limit=100).records
            return [e.asset_materialization.tags["dagster/data_version"] for e in reversed(events)]

        assert materialize([_readings_asset(frame)], resources=resources, instance=instance).success
        assert materialize([_readings_asset(frame.copy())], resources=resources, instance=instance).success
        older = frame.assign(ts=frame["ts"] - pd.Timedelta(hours=1), value=[7.0, 8.0, 9.0])
        assert materialize([_readings_asset(older)], resources=resources, instance=instance).success
        first, second, third = versions()
        assert first == second == third
        fg = _store(resources).get_feature_group("sensor_readings")
        assert len(fg.commit_details()) == 1 and fg.read()["value"].tolist()[0] == 1.0

        changed = frame.assign(value=[1.0, 2.0, 3.0])
        assert materialize([_readings_asset(changed)], resources=resources, instance=instance).success
        assert versions()[-1] != first and versions()[-1] == fg.latest_commit()
        md = instance.fetch_materializations(AssetKey("sensor_readings"), limit=1).records[0]
        assert md.asset_materialization.metadata["fs_dagster/rows_updated"].value == 1


def test_offline_integrity_check_names_a_corrupt_file(resources) -> None:
    from dagster import AssetSelection

    from fs_dagster import build_offline_integrity_checks
    from hudi_testing import flip_bit_in_data_page

    @feature_group_asset(SPEC)
    def sensor_readings() -> pd.DataFrame:
        return _frame([float(i) for i in range(50)])

    fg_asset = sensor_readings
    check, _ = build_offline_integrity_checks([SPEC, DAILY_SPEC])
    result = materialize([fg_asset, check], resources=resources)
    integrity = next(e for e in result.get_asset_check_evaluations() if e.check_name == "offline_integrity")
    assert integrity.passed and integrity.metadata["files_checked"].value == 1
    assert integrity.metadata["rows_checked"].value == 50

    fg = _store(resources).get_feature_group("sensor_readings")
    [live] = fg._reader().base_files()
    flip_bit_in_data_page(Path(live), "value")
    only_check = AssetSelection.checks_for_assets(fg_asset)
    result = materialize([fg_asset, check], resources=resources, selection=only_check)
    [integrity] = [e for e in result.get_asset_check_evaluations() if e.check_name == "offline_integrity"]
    assert not integrity.passed and integrity.severity == AssetCheckSeverity.ERROR
    assert integrity.metadata["bad_files"].value == 1
    [record] = integrity.metadata["bad_file_list"].value.records
    assert record.data["file"] == Path(live).name and "column 'value'" in record.data["reason"]
    assert Path(live).name in integrity.description


def test_consistency_check_fails_with_error_on_a_corrupt_offline_file(resources) -> None:
    from dataclasses import replace

    from dagster import AssetSelection

    from fs_dagster import build_online_consistency_checks
    from fs_dagster.core.online.embedded import EmbeddedValkey
    from hudi_testing import flip_bit_in_data_page

    online_spec = replace(SPEC, name="online_readings", online_enabled=True)

    @feature_group_asset(online_spec)
    def online_readings() -> pd.DataFrame:
        return _frame([float(i) for i in range(50)])

    [check] = build_online_consistency_checks([online_spec], sample_size=10)
    store = _store(resources)
    try:
        [evaluation] = materialize([online_readings, check], resources=resources).get_asset_check_evaluations()
        assert evaluation.passed and evaluation.metadata["offline_bad_files"].value == 0
        [live] = store.get_feature_group("online_readings")._reader().base_files()
        flip_bit_in_data_page(Path(live), "value")
        only_check = AssetSelection.checks_for_assets(online_readings)
        result = materialize([online_readings, check], resources=resources, selection=only_check)
        [evaluation] = result.get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR
        [record] = evaluation.metadata["offline_bad_file_list"].value.records
        assert record.data["file"] == Path(live).name and "checksum" in record.data["reason"]
    finally:
        EmbeddedValkey(store.root).stop()
