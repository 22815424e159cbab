"""What the Dagster UI shows of the feature store: plain tags, the typed spec and column schema of each feature
group, its dagster-pandas type (checked before the write), statistics tables, columns and column lineage of views
and training datasets, the training-data quality check, owners and code versions, and no beta warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest
from dagster import AssetKey, DagsterEventType, asset, materialize
from pandera.typing import Series

from fs_dagster import (
    Feature,
    FeatureGroupIOManager,
    FeatureGroupSpec,
    FeatureGroupTranslator,
    FeatureStore,
    FeatureStoreResource,
    InvalidDataError,
    RandomSplit,
    build_training_dataset_asset,
    feature_group_asset,
)
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.core.training.quality import QualityRules, assess
from fs_dagster.dataframe_type import feature_group_dagster_type
from fs_dagster.feature_view_asset import build_feature_view_asset

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SPEC = FeatureGroupSpec("sensor_readings", primary_key=("sensor",), event_time="ts", tags=("domain=iot", "raw"),
                        owner="team:iot", features=(Feature("value", description="Reading"),))


class Readings(pa.DataFrameModel):
    sensor: Series[str]
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    value: Series[float] = pa.Field(ge=0)
    count: Series[int] = pa.Field(description="Readings averaged")


def _frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"sensor": [f"s{i}" for i in range(n)], "ts": pd.Series([T0] * n).astype("datetime64[ns, UTC]"),
                         "value": [float(i) for i in range(n)], "count": list(range(n))})


@pytest.fixture()
def resources(tmp_path):
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="test")
    yield {"feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    EmbeddedValkey(tmp_path / "store").stop()


# --- tags ----------------------------------------------------------------------------------------------------------


def test_tags_are_plain_dagster_tags() -> None:
    spec = FeatureGroupTranslator().get_asset_spec(SPEC)
    assert {k: v for k, v in spec.tags.items() if not k.startswith("dagster/kind/")} == {"domain": "iot", "raw": ""}
    assert spec.owners == ["team:iot"] and spec.code_version == "v1"


@pytest.mark.parametrize("tag", ["rolling window", "domain=weather/nyc", "x" * 64, "dagster/kind=hudi", "a=b=c", "=v"])
def test_a_tag_dagster_cannot_hold_is_refused_naming_it(tag: str) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidDataError) as refused:
        FeatureGroupTranslator().get_asset_spec(replace(SPEC, tags=(tag,)))
    assert f"feature group sensor_readings: tag {tag!r} cannot be a Dagster tag" in str(refused.value)


def test_a_tag_key_given_twice_is_refused() -> None:
    from dataclasses import replace

    with pytest.raises(InvalidDataError, match="tag key 'domain' appears twice"):
        FeatureGroupTranslator().get_asset_spec(replace(SPEC, tags=("domain=a", "domain=b")))


# --- the feature group's definition: typed spec, column schema, dagster-pandas type --------------------------------


def _asset(frame: pd.DataFrame, schema=Readings, spec: FeatureGroupSpec = SPEC):
    @feature_group_asset(spec, schema=schema)
    def sensor_readings() -> pd.DataFrame:
        return frame

    return sensor_readings


def test_definition_carries_the_typed_spec_column_schema_and_a_dagster_pandas_type() -> None:
    assets_def = _asset(_frame())
    metadata = assets_def.specs_by_key[AssetKey("sensor_readings")].metadata
    spec = metadata["fs_dagster/feature_group"].value  # JSON, not a string
    types = {f["name"]: f["type"] for f in spec["features"]}
    assert types == {"sensor": "string", "ts": "timestamp[us, tz=UTC]", "value": "double", "count": "int64"}
    described = {f["name"]: f["description"] for f in spec["features"]}
    assert described["value"] == "Reading" and described["count"] == "Readings averaged"  # spec, then pandera
    columns = {c.name: c for c in metadata["dagster/column_schema"].columns}
    assert columns["sensor"].description.startswith("[primary key]") and not columns["sensor"].constraints.nullable
    assert columns["ts"].type == "timestamp[us, tz=UTC]" and columns["ts"].description == "[event time]"

    dagster_type = assets_def.op.outs["result"].dagster_type
    assert dagster_type.display_name == "FeatureGroupFrame_sensor_readings_v1"
    schema = dagster_type.metadata["dagster/column_schema"].schema
    assert [c.name for c in schema.columns] == ["sensor", "ts", "value", "count"]


def test_the_frame_is_type_checked_before_the_write_and_the_check_is_reported(resources) -> None:
    result = materialize([_asset(_frame())], resources=resources)
    [output] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_OUTPUT
                and e.step_output_data.output_name == "result"]
    type_check = output.step_output_data.type_check_data
    assert type_check.success and {k: v.value for k, v in type_check.metadata.items()} == {
        "rows_checked": 3, "columns_checked": 4}

    # declared types without a pandera schema: a string column where the spec says double is refused before the
    # store is touched (the store alone would create the table with a string column)
    typed = FeatureGroupSpec("typed_readings", primary_key=("sensor",), event_time="ts",
                             features=(Feature("value", type="double"),))
    wrong = _frame().assign(value=["1.0", "2.0", "x"])
    result = materialize([_asset(wrong, schema=None, spec=typed)], resources=resources, raise_on_error=False)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert 'for column "value"' in message and "dtype object cannot be stored as double" in message, message
    assert "nothing was written" in message
    assert [fg.name for fg in resources["feature_store"].get_store().get_feature_groups()] == ["sensor_readings"]


def test_a_plain_asset_with_the_type_is_checked_before_the_io_manager_writes(resources) -> None:
    @asset(name="sensor_readings", io_manager_key="fs_io_manager", dagster_type=feature_group_dagster_type(SPEC, Readings),
           metadata=FeatureGroupTranslator().get_asset_spec(SPEC).metadata)
    def plain() -> pd.DataFrame:
        return _frame().drop(columns=["count"])

    result = materialize([plain], resources=resources, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "Required column count not in dataframe" in failure.step_failure_data.error.message
    assert resources["feature_store"].get_store().get_feature_groups() == []


def test_arrow_tables_are_checked_by_their_schema() -> None:
    import pyarrow

    frame_type = feature_group_dagster_type(SPEC, Readings)
    good = pyarrow.Table.from_pandas(_frame(), preserve_index=False)
    assert frame_type.check_frame(good).success
    wrong = good.set_column(2, "value", pyarrow.array(["a", "b", "c"]))
    assert frame_type.check_frame(wrong).description == (
        "column 'value': string cannot be stored as double (the feature group's type)")
    null_key = good.set_column(0, "sensor", pyarrow.array(["s0", None, "s2"]))
    assert frame_type.check_frame(null_key).description == (
        "column 'sensor': 1 null value(s) in primary-key column")
    assert frame_type.check_frame(good.drop_columns(["count"])).description == "column 'count' is missing"
    widened = good.set_column(2, "value", pyarrow.array([1, 2, 3]))  # integers go into a double column
    assert frame_type.check_frame(widened).success


def test_materialization_shows_the_stored_spec_and_a_statistics_table(resources) -> None:
    result = materialize([_asset(_frame(5))], resources=resources)
    md = result.get_asset_materialization_events()[0].materialization.metadata
    stored = md["fs_dagster/feature_group"].value
    assert {f["name"]: f["type"] for f in stored["features"]} == {
        "sensor": "string", "ts": "timestamp[us, tz=UTC]", "value": "double", "count": "int64"}
    statistics = md["fs_dagster/statistics"].value
    assert [c.name for c in statistics.schema.columns] == ["feature", "count", "nulls", "mean ± std", "range"]
    rows = {r.data["feature"]: r.data for r in statistics.records}
    assert rows["value"] == {"feature": "value", "count": 5, "nulls": 0, "mean ± std": "2 ± 1.581", "range": "0 – 4"}
    assert rows["ts"]["range"] == "2024-01-01 – 2024-01-01" and rows["ts"]["mean ± std"] is None


# --- views and training datasets: columns, lineage, quality check ---------------------------------------------------

ORDERS = FeatureGroupSpec("orders", primary_key=("order_id",), event_time="ts")
CUSTOMERS = FeatureGroupSpec("customers", primary_key=("customer",), event_time="since")


@feature_group_asset(ORDERS)
def orders() -> pd.DataFrame:
    return pd.DataFrame({
        "order_id": [f"o{i}" for i in range(40)],
        "ts": [T0 + timedelta(hours=i) for i in range(40)],
        "customer": [f"c{i % 3}" for i in range(40)],
        "amount": [float(i) if i % 5 else None for i in range(40)],
        "returned": [i % 4 == 0 for i in range(40)],
    })


@feature_group_asset(CUSTOMERS)
def customers() -> pd.DataFrame:
    return pd.DataFrame({"customer": ["c0", "c1", "c2"], "since": [T0 - timedelta(days=1)] * 3,
                         "spend": [10.0, 20.0, 30.0]})


def _view(store):
    o, c = store.get_feature_group("orders"), store.get_feature_group("customers")
    return store.get_or_create_feature_view(
        "returns", 1, o.select(["amount", "returned"]).join(c.select(["spend"]), on=["customer"]), labels=["returned"])


def _view_assets() -> list:
    returns = build_feature_view_asset("returns", 1, get_view=_view, deps=["orders", "customers"],
                                       owners=["team:shop"])
    returns_training_data = build_training_dataset_asset(
        "returns", 1, deps=["returns"], split=RandomSplit({"train": 0.75, "test": 0.25}, seed=4), get_view=_view,
        owners=["team:shop"], tags=["domain=shop"])
    return [returns, returns_training_data]


def _lineage(md) -> dict[str, list[tuple[str, str]]]:
    return {column: [(d.asset_key.to_user_string(), d.column_name) for d in deps]
            for column, deps in md["dagster/column_lineage"].value.deps_by_column.items()}


def test_view_and_training_data_show_columns_lineage_and_a_quality_check(resources) -> None:
    result = materialize([orders, customers, *_view_assets()], resources=resources)
    events = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}

    view_md = events["returns"]
    columns = {c.name: c for c in view_md["dagster/column_schema"].schema.columns}
    assert list(columns) == ["order_id", "customer", "amount", "returned", "spend"]
    assert columns["order_id"].description == "[serving key] from orders.order_id"
    assert columns["returned"].description == "[label] from orders.returned"
    assert columns["spend"].description == "[feature] from customers.spend" and columns["spend"].type == "double"
    assert _lineage(view_md) == {"order_id": [("orders", "order_id")], "customer": [("orders", "customer")],
                                 "amount": [("orders", "amount")], "returned": [("orders", "returned")],
                                 "spend": [("customers", "spend")]}
    assert view_md["fs_dagster/feature_view"].value["labels"] == ["returned"]

    td_md = events["returns_training_data"]
    td_columns = {c.name: c for c in td_md["dagster/column_schema"].schema.columns}
    assert list(td_columns) == ["order_id", "customer", "ts", "amount", "returned", "spend"]
    assert td_columns["ts"].description == "[event time] from orders.ts"
    assert td_columns["ts"].type == "timestamp[us, tz=UTC]" and td_columns["returned"].type == "bool"
    assert _lineage(td_md)["ts"] == [("orders", "ts")] and _lineage(td_md)["spend"] == [("customers", "spend")]
    assert set(td_md["fs_dagster/rows_per_split"].value) == {"train", "test"}
    assert td_md["fs_dagster/statistics_split"].value == "train"

    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "training_data_quality" and check.passed
    rows = check.metadata["rows"].value
    assert rows["train"] + rows["test"] == 40
    nulls = {r.data["feature"]: r.data for r in check.metadata["null_share"].value.records}
    assert nulls["spend"]["train"] == 0.0 and 0 < nulls["amount"]["train"] < 0.5  # every 5th amount is null
    balance = {r.data["class"]: r.data for r in check.metadata["label_balance"].value.records}
    assert set(balance) == {"true", "false"}
    assert abs(balance["true"]["train"] + balance["false"]["train"] - 1.0) < 1e-9


def test_quality_assessment_flags_unusable_training_data(tmp_path) -> None:
    store = FeatureStore(root=tmp_path / "store", project="q")
    fg = store.get_or_create_feature_group("events", primary_key=["id"], event_time="ts")
    fg.insert(pd.DataFrame({"id": range(30), "ts": [T0] * 30, "empty": [None] * 30, "mostly": [1.0] + [None] * 29,
                            "x": [1.0] * 30, "label": [True] * 29 + [False]}).astype({"empty": "float64"}))
    view = store.get_or_create_feature_view("q", 1, fg.select(["empty", "mostly", "x", "label"]), labels=["label"])
    td = view.create_training_data(RandomSplit({"train": 0.9, "test": 0.1}, seed=1))
    report = assess(td, QualityRules(max_null_share=0.5, min_label_share=0.1))
    messages = [(p.severity, p.message) for p in report.problems]
    assert ("error", "feature 'empty' is null in every row of split 'train'") in messages
    assert any(s == "warning" and m.startswith("feature 'mostly' is null in ") for s, m in messages)
    assert any(s == "warning" and "label 'label' = 'false' is" in m for s, m in messages), messages
    assert report.has_errors and not report.ok

    single = store.get_or_create_feature_view("q_single", 1, fg.select(["x", "label"]), labels=["label"])
    fg.insert(pd.DataFrame({"id": [29], "ts": [T0 + timedelta(hours=1)], "empty": [None], "mostly": [None],
                            "x": [1.0], "label": [True]}).astype({"empty": "float64", "mostly": "float64"}))
    report = assess(single.create_training_data(None))
    assert [(p.severity, p.message) for p in report.problems] == [
        ("error", "label 'label' has a single class ('true') in split 'all'")]


# --- the reference project: owners and code versions, no beta warnings ---------------------------------------------


def test_every_reference_asset_has_owners_and_a_code_version() -> None:
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    missing = {k.to_user_string(): (graph.get(k).owners, graph.get(k).code_version)
               for k in graph.get_all_asset_keys() if not graph.get(k).owners or not graph.get(k).code_version}
    assert missing == {}


NO_BETA_WARNINGS = textwrap.dedent("""
    import sys, warnings
    import dagster
    warnings.simplefilter("error", dagster.BetaWarning)
    warnings.simplefilter("error", dagster.PreviewWarning)
    from assets.definitions import defs
    from dagster import AssetSelection, materialize
    from resources import RESOURCES
    defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    assets = [defs.get_assets_def(k) for k in ("aircraft", "weather_hourly")]
    assert materialize(assets, resources=RESOURCES, selection=["aircraft"]).success
    assert materialize(assets, resources=RESOURCES, selection=["weather_hourly"], partition_key="2013-01-01").success
    print("no beta warnings")
""")


def test_the_reference_project_loads_and_runs_without_beta_warnings(tmp_path) -> None:
    (tmp_path / "home").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "FS_DAGSTER_ROOT": str(tmp_path / "store"),
           "PYTHONWARNINGS": ""}
    for name in ("FS_DAGSTER_SOURCE", "FS_DAGSTER_LANDING"):
        env.pop(name, None)
    try:
        run = subprocess.run([sys.executable, "-c", NO_BETA_WARNINGS], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    finally:
        EmbeddedValkey(tmp_path / "store").stop()
    assert run.returncode == 0 and "no beta warnings" in run.stdout, run.stderr[-4000:]
