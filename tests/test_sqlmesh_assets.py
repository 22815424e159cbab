"""SQLMesh models as Dagster assets (``build_sqlmesh_assets``, ``@sqlmesh_assets``): specs from the models, runs
of a selection and a partition range through real SQLMesh on DuckDB, audits as checks, feature-group models
committed to Hudi like Python feature groups (see ``tests/sqlmesh_testing.py`` for the project)."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetSpec,
    DailyPartitionsDefinition,
    Definitions,
    instance_for_test,
    materialize,
)

from fs_dagster import FeatureGroupIOManager, FeatureStoreResource
from fs_dagster.core.errors import MissingDependencyError, PipelineError, PipelineLockedError
from fs_dagster.core.sqlmesh.feature_groups import feature_group_spec
from fs_dagster.sqlmesh import SQLMeshResource, build_sqlmesh_assets, load_project, sqlmesh_assets
from sqlmesh_testing import DAILY_SALES, START, events, expected_sales, write_events, write_project

UTC = timezone.utc
SALES, RETURNS, TOTALS = AssetKey(["daily_sales"]), AssetKey(["shop", "daily_returns"]), AssetKey(["shop", "store_totals"])


def _day(n: int) -> datetime:
    return START + timedelta(days=n)


def _range(first: int, last: int) -> dict[str, str]:
    """Tags of a single-run backfill of days ``first`` .. ``last`` (inclusive)."""
    return {"dagster/asset_partition_range_start": _day(first).strftime("%Y-%m-%d"),
            "dagster/asset_partition_range_end": _day(last).strftime("%Y-%m-%d")}


@pytest.fixture()
def shop(tmp_path):
    project = write_project(tmp_path)
    rows = events(bad_sale_day=5, big_refund_day=6)
    write_events(tmp_path, rows)
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="shop")
    resources = {"sqlmesh": SQLMeshResource(project_dir=str(project), lock_timeout=30), "feature_store": store,
                 "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    assets = build_sqlmesh_assets(str(project))
    return project, rows, resources, {key: a for a in assets for key in _keys(a)}


def _keys(definition) -> list[AssetKey]:
    return [definition.key] if isinstance(definition, AssetSpec) else list(definition.keys)


def _metadata(result, key: AssetKey) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def _checks(result) -> dict[tuple[str, str], object]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_specs_keys_deps_code_versions_schema_lineage_and_checks(shop) -> None:
    project, _, resources, assets = shop
    Definitions.validate_loadable(Definitions(assets=list({id(a): a for a in assets.values()}.values()),
                                              resources=resources))
    models = load_project(str(project)).models()
    by_name = {m.name: m for m in models.values()}
    # keys without the catalog; the feature group keyed by its name, as Python feature groups are
    assert set(assets) == {SALES, RETURNS, TOTALS, AssetKey(["raw", "events"])}
    sales_def, totals_def = assets[SALES], assets[TOTALS]
    assert sales_def is assets[RETURNS] and sales_def is not totals_def  # one multi-asset per partitioning
    assert isinstance(sales_def.partitions_def, DailyPartitionsDefinition)
    assert sales_def.partitions_def.start == datetime(2024, 1, 1, tzinfo=UTC) and totals_def.partitions_def is None
    # deps: models on their parents, external tables as upstream assets
    assert sales_def.asset_deps[SALES] == {AssetKey(["raw", "events"])}
    assert totals_def.asset_deps[TOTALS] == {SALES}
    assert isinstance(assets[AssetKey(["raw", "events"])], AssetSpec)
    # code version = SQLMesh's fingerprint of the model
    assert sales_def.code_versions_by_key[SALES] == by_name["shop.daily_sales"].data_hash
    assert totals_def.code_versions_by_key[TOTALS] == by_name["shop.store_totals"].data_hash
    # column schema with types, descriptions from the SQL comments and the key roles
    spec = {s.key: s for s in sales_def.specs}[SALES]
    columns = {c.name: c for c in spec.metadata["dagster/column_schema"].columns}
    assert (columns["revenue"].type, columns["revenue"].description) == ("DOUBLE", "Revenue of the day")
    assert columns["day"].description == "[primary key, event time] The day (UTC)"
    assert not columns["store_id"].constraints.nullable
    # column lineage where SQLMesh can trace it
    lineage = {s.key: s for s in totals_def.specs}[TOTALS].metadata["dagster/column_lineage"]
    assert [(d.asset_key, d.column_name) for d in lineage.deps_by_column["revenue"]] == [(SALES, "revenue")]
    # the feature group as Python feature groups record it; downstream assets load it through the IO manager
    group = spec.metadata["fs_dagster/feature_group"].data  # (JSON metadata, as the UI shows it)
    assert (group["primary_key"], group["event_time"], group["partition_key"]) == (["store_id", "day"], "day",
                                                                                    ["store_id"])
    assert group["owner"] == "team:shop" and group["tags"] == ["retail"] and not group["online_enabled"]
    assert sales_def.get_io_manager_key_for_asset_key(SALES) == "fs_io_manager"
    assert spec.kinds >= {"sqlmesh", "duckdb", "hudi"} and spec.owners == ["team:shop"]
    # one check per audit, blocking as the audit is
    checks = {(c.asset_key, c.name): c for c in sales_def.check_specs}
    assert {name for _, name in checks} == {"not_null", "accepted_range", "small_refunds"}
    assert checks[(SALES, "accepted_range")].blocking and not checks[(RETURNS, "small_refunds")].blocking

    # a changed model gets a new code version; its children keep theirs (Dagster marks them stale by lineage)
    (project / "models" / "daily_sales.sql").write_text(DAILY_SALES.replace("count(*)::BIGINT", "count(amount)::BIGINT"))
    again = {k: a for a in build_sqlmesh_assets(str(project)) for k in _keys(a)}
    assert again[SALES].code_versions_by_key[SALES] != sales_def.code_versions_by_key[SALES]
    assert again[TOTALS].code_versions_by_key[TOTALS] == totals_def.code_versions_by_key[TOTALS]


def test_partition_range_commits_only_its_rows_like_a_python_feature_group(shop) -> None:
    project, rows, resources, assets = shop
    store = resources["feature_store"].get_store()
    with instance_for_test() as instance:
        result = materialize([assets[SALES]], selection=[SALES], resources=resources, instance=instance,
                             tags=_range(1, 2))
        assert result.success
        fg = store.get_feature_group("daily_sales")
        table = fg.read().sort_values(["day", "store_id"])
        want = expected_sales(rows, _day(1), _day(3))
        assert {(r.store_id, r.day.to_pydatetime()): (pytest.approx(r.revenue), r.sales) for r in table.itertuples()} == want
        events_ = {e.partition: e.materialization for e in result.get_asset_materialization_events()}
        assert sorted(events_) == ["2024-01-02", "2024-01-03"]
        instant = fg.latest_commit()
        for partition, event in events_.items():
            md = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
            # the same figures as a Python feature group's partition: its rows, inserts, statistics, window
            assert md["dagster/row_count"] == md["fs_dagster/rows_inserted"] == 3
            assert md["fs_dagster/partition_window"].startswith(f"[{partition}T00:00:00+00:00, ")
            statistics = {r.data["feature"]: r.data for r in md["fs_dagster/statistics"].records}
            assert statistics["revenue"]["count"] == 3 and md["fs_dagster/commit"] == instant
            assert md["fs_dagster/table_row_count"] == 6 and md["dagster/table_name"] == "shop.daily_sales_v1"
            assert md["fs_dagster/sqlmesh_status"] == "evaluated" and md["fs_dagster/sqlmesh_environment"] == "prod"
            assert md["fs_dagster/sqlmesh_intervals"] == "[2024-01-02T00:00:00+00:00, 2024-01-04T00:00:00+00:00)"
            assert "fs_dagster/sqlmesh_also_computed" not in md
            assert event.tags["dagster/data_version"] == f"{instant}/6"
        checks = _checks(result)
        assert {k for k, c in checks.items() if c.passed} == {("daily_sales", "not_null"), ("daily_sales", "accepted_range")}
        assert store.registry.statistics("shop", "daily_sales", 1, instant) is not None

        # another day: only its rows are committed, the range's rows stay as they were
        result = materialize([assets[SALES]], selection=[SALES], resources=resources, instance=instance,
                             partition_key="2024-01-08")
        commit = fg.commit_details()[0]
        assert (commit.rows_inserted, commit.rows_updated) == (3, 0)
        assert fg.count() == 9 and set(fg.read()["day"].dt.day) == {2, 3, 8}

        # materializing a day again recomputes it from the current inputs (a restatement): a changed raw value
        # reaches the feature group; the other days do not move
        write_events(project.parent, [(*r[:2], r[2] + 1.0 if r[1].day == 3 and r[3] == "sale" else r[2], r[3])
                                      for r in rows])
        materialize([assets[SALES]], selection=[SALES], resources=resources, instance=instance,
                    partition_key="2024-01-03")
        commit = fg.commit_details()[0]
        assert (commit.rows_inserted, commit.rows_updated) == (0, 3)
        jan3 = fg.read(where="day = TIMESTAMPTZ '2024-01-03 00:00:00+00'").set_index("store_id")["revenue"]
        assert jan3.to_dict() == pytest.approx({s: v[0] + 3.0 for (s, d), v in want.items() if d.day == 3})


def test_failed_blocking_audit_writes_nothing_names_failing_rows_and_the_others_still_report(shop) -> None:
    project, _, resources, assets = shop
    store = resources["feature_store"].get_store()
    with instance_for_test() as instance:
        assert materialize([assets[SALES]], selection=[SALES], resources=resources, instance=instance,
                           partition_key="2024-01-05").success  # day 4: a good day, committed
        fg = store.get_feature_group("daily_sales")
        before = fg.latest_commit()
        # day 5: store 1 records a sale of -1000, the revenue audit (blocking) fails; the returns model is fine
        result = materialize([assets[SALES]], resources=resources, instance=instance, partition_key="2024-01-06",
                             raise_on_error=False)
        assert not result.success
        checks = _checks(result)
        failed = checks[("daily_sales", "accepted_range")]
        assert not failed.passed and failed.severity == AssetCheckSeverity.ERROR
        assert "accepted_range" in failed.description and "1 row(s) failed" in failed.description
        sample = failed.metadata["failing_rows"].value.records
        assert [(r.data["store_id"], r.data["revenue"] < 0) for r in sample] == [(1, True)]
        assert "revenue" in failed.metadata["audit_query"].value
        assert checks[("daily_sales", "not_null")].passed
        # nothing of day 5 reached the feature store; the returns model still reports its materialization
        assert fg.latest_commit() == before and set(fg.read()["day"].dt.day) == {5}
        assert [e.asset_key for e in result.get_asset_materialization_events()] == [RETURNS]
        assert checks[("shop/daily_returns", "small_refunds")].passed
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        text = failure.event_specific_data.error.message
        assert "1 of 2 model(s) not materialized" in text and "shop.daily_sales" in text and "accepted_range" in text

        # day 6: store 3 refunds 900: the non-blocking refund audit warns and the rows are materialized
        result = materialize([assets[SALES]], selection=[RETURNS], resources=resources, instance=instance,
                             partition_key="2024-01-07")
        warned = _checks(result)[("shop/daily_returns", "small_refunds")]
        assert not warned.passed and warned.severity == AssetCheckSeverity.WARN
        assert [r.data["refunds"] for r in warned.metadata["failing_rows"].value.records] == [900.0]
        assert _metadata(result, RETURNS)["dagster/row_count"] == 2  # stores 2 and 3 refunded that day


def test_subset_runs_compute_only_what_the_selection_needs(shop) -> None:
    project, _, resources, assets = shop
    write_events(project.parent, events())  # no bad day: the totals below read every day of sales
    with instance_for_test() as instance:
        # the returns model alone: the sales model (same multi-asset) is neither computed nor reported
        result = materialize([assets[SALES]], selection=[RETURNS], resources=resources, instance=instance,
                             partition_key="2024-01-02")
        assert [e.asset_key for e in result.get_asset_materialization_events()] == [RETURNS]
        md = _metadata(result, RETURNS)
        assert md["fs_dagster/sqlmesh_status"] == "evaluated" and "fs_dagster/sqlmesh_also_computed" not in md
        assert set(_checks(result)) == {("shop/daily_returns", "small_refunds")}
        # the totals (FULL) alone: SQLMesh fills the sales days it reads (missing), without materializing them in
        # Dagster or committing them to the feature store
        result = materialize([assets[TOTALS]], resources=resources, instance=instance)
        md = _metadata(result, TOTALS)
        assert md["fs_dagster/sqlmesh_also_computed"] == "shop.daily_sales"
        assert md["dagster/row_count"] == 3
        assert [e.asset_key for e in result.get_asset_materialization_events()] == [TOTALS]
        assert not resources["feature_store"].get_store().registry.list_feature_groups("shop")
        # then a day of sales: already computed by SQLMesh, computed again (restated) and committed
        result = materialize([assets[SALES]], selection=[SALES], resources=resources, instance=instance,
                             partition_key="2024-01-03")
        assert _metadata(result, SALES)["fs_dagster/sqlmesh_status"] == "evaluated"
        assert resources["feature_store"].get_store().get_feature_group("daily_sales").count() == 3


def test_decorator_and_selection(tmp_path) -> None:
    project = write_project(tmp_path)
    write_events(tmp_path, events())
    with pytest.raises(PipelineError, match="partitioned differently.*shop/store_totals: unpartitioned"):
        sqlmesh_assets(project_dir=str(project))
    with pytest.raises(PipelineError, match="'shop.nothing' matches no model"):
        sqlmesh_assets(project_dir=str(project), select=["shop.nothing"])

    @sqlmesh_assets(project_dir=str(project), select=["tag:feature_group"], name="sales_features")
    def sales_features(context, sqlmesh: SQLMeshResource):
        yield from sqlmesh.run(context)

    assert sales_features.keys == {SALES}
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="shop")
    # the feature store may also be the SQLMesh resource's own (e.g. a development environment's project)
    sqlmesh = SQLMeshResource(project_dir=str(project), feature_store=store)
    with instance_for_test() as instance:
        resources = {"sqlmesh": sqlmesh, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
        assert materialize([sales_features], resources=resources, instance=instance,
                           partition_key="2024-01-02").success
    assert store.get_store().get_feature_group("daily_sales").count() == 3


def test_feature_group_marking_is_checked_and_named(tmp_path) -> None:
    def spec_of(sql: str):
        project = write_project(tmp_path / str(abs(hash(sql))), daily_sales=sql)
        return feature_group_spec(load_project(str(project)).model("shop.daily_sales"))

    spec = spec_of(DAILY_SALES.replace("virtual_properties (fs_partition_key = ['store_id'])",
                                       "virtual_properties (fs_name = 'sales', fs_version = 3, fs_online_ttl_seconds = 60)")
                   .replace("tags (feature_group, retail)", "tags (feature_group, online)"))
    assert (spec.name, spec.version, spec.online_enabled, spec.online_ttl_seconds) == ("sales", 3, True, 60)
    assert spec.feature("revenue").description == "Revenue of the day"
    cases = {
        "grain (store_id, day),": ("", "has no grain: declare its primary key"),
        "fs_partition_key = ['store_id']": ("fs_partition_key = ['shop']", "fs_partition_key names column(s) shop"),
        "fs_partition_key = ['store_id'])": ("fs_online = true)", "unknown property fs_online"),
        "tags (feature_group, retail),": ("tags (retail),", "has feature-group properties (fs_partition_key) but not"),
    }
    for old, (new, message) in cases.items():
        with pytest.raises(PipelineError, match=r"SQLMesh model shop\.daily_sales \(.*daily_sales\.sql\): " + re.escape(message)):
            spec_of(DAILY_SALES.replace(old, new))
    with pytest.raises(PipelineError, match="fs_version = 'two' should be an integer"):
        spec_of(DAILY_SALES.replace("fs_partition_key = ['store_id']", "fs_version = 'two'"))
    with pytest.raises(PipelineError, match="feature group name 'Sales'"):
        spec_of(DAILY_SALES.replace("fs_partition_key = ['store_id']", "fs_name = 'Sales'"))


def test_a_run_waits_for_the_database_and_names_the_holder(shop) -> None:
    from fs_dagster.core.file_lock import FileLock

    project, _, _, _ = shop
    loaded = load_project(str(project))
    loaded.lock_timeout = 0.3
    with FileLock(loaded.lock_path()):
        with pytest.raises(PipelineLockedError, match=r"in use by another run \(pid \d+\); waited 0s for .*shop\.duckdb"):
            with loaded.session():
                pass
    loaded.lock_timeout = 30


def test_missing_sqlmesh_names_the_extra(monkeypatch) -> None:
    from fs_dagster.core.sqlmesh import require_sqlmesh

    monkeypatch.setitem(sys.modules, "sqlmesh", None)  # what an environment without the package gives
    with pytest.raises(MissingDependencyError, match=r'pip install "fs-dagster\[sqlmesh\]"'):
        require_sqlmesh()


def test_pandera_schema_of_a_sql_feature_group_blocks_like_a_python_one(tmp_path) -> None:
    import pandera.pandas as pa

    project = write_project(tmp_path)
    write_events(tmp_path, events())
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="shop")
    resources = {"sqlmesh": SQLMeshResource(project_dir=str(project)), "feature_store": store,
                 "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    with pytest.raises(PipelineError, match="pandera schemas given for shop.nothing"):
        build_sqlmesh_assets(str(project), schemas={"shop.nothing": pa.DataFrameSchema({})})

    def sales_assets(max_revenue: float):
        schema = pa.DataFrameSchema({"revenue": pa.Column(float, pa.Check.le(max_revenue)), "sales": pa.Column(int)})
        return next(a for a in build_sqlmesh_assets(str(project), schemas={"daily_sales": schema})
                    if not isinstance(a, AssetSpec) and SALES in a.keys)

    strict, lenient = sales_assets(50.0), sales_assets(1000.0)  # one project, two definitions: each its own schema
    with instance_for_test() as instance:
        result = materialize([strict], selection=[SALES], resources=resources, instance=instance,
                             partition_key="2024-01-02", raise_on_error=False)
        check = _checks(result)[("daily_sales", "pandera_schema")]
        assert not check.passed and check.severity == AssetCheckSeverity.ERROR
        assert check.metadata["failing_columns"].value == "revenue"
        assert not result.get_asset_materialization_events()
        assert not store.get_store().registry.list_feature_groups("shop")  # nothing written
        result = materialize([lenient], selection=[SALES], resources=resources, instance=instance,
                             partition_key="2024-01-02")
        assert _checks(result)[("daily_sales", "pandera_schema")].passed
        assert store.get_store().get_feature_group("daily_sales").count() == 3


def test_partitions_follow_the_interval_unit_and_must_hold_whole_intervals() -> None:
    from dagster import HourlyPartitionsDefinition, MonthlyPartitionsDefinition

    from fs_dagster.core.sqlmesh.models import ModelInfo
    from fs_dagster.sqlmesh import SQLMeshTranslator, SQLMeshTranslatorSettings

    daily = ModelInfo(fqn='"db"."a"."b"', name="a.b", parts=("a", "b"), kind="INCREMENTAL_BY_TIME_RANGE",
                      time_column="t", interval_unit="day", start=datetime(2024, 1, 1, tzinfo=UTC))
    assert SQLMeshTranslator().get_partitions_def(daily) == DailyPartitionsDefinition(start_date="2024-01-01")
    monthly = MonthlyPartitionsDefinition(start_date="2024-01-01")
    assert SQLMeshTranslator(SQLMeshTranslatorSettings(time_partitions_def=monthly)).get_partitions_def(daily) == monthly
    hourly = SQLMeshTranslator(SQLMeshTranslatorSettings(
        time_partitions_def=HourlyPartitionsDefinition(start_date="2024-01-01-00:00")))
    with pytest.raises(PipelineError, match="a.b computes day intervals, which do not fit in the partition 2024-01-01T00"):
        hourly.get_partitions_def(daily)
    from dataclasses import replace

    with pytest.raises(PipelineError, match="a.b has no start"):
        SQLMeshTranslator().get_partitions_def(replace(daily, start=None))
    assert SQLMeshTranslator().get_partitions_def(replace(daily, kind="FULL", time_column=None)) is None
