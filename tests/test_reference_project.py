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
from serving_testing import stop_serving

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
    # the model's label: departed 15 or more minutes late, or cancelled (a cancelled flight has no dep_delay)
    assert (outcomes["dep_delayed"] == ((outcomes["dep_delay"] >= 15) | outcomes["cancelled"])).all()
    assert outcomes.loc[outcomes["dep_delay"] == 15, "dep_delayed"].all()
    assert outcomes["dep_delay"][outcomes["cancelled"]].isna().all()
    assert 0.2 < outcomes["dep_delayed"].mean() < 0.3


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


def test_reference_model_and_deployment_on_one_month(tmp_path, monkeypatch) -> None:
    """February 2013 through the reference graph with ``dagster.materialize``: feature groups, ``flight_delays`` v2,
    its training data, the departure-delay model (blocking checks) and ``flight_delay_api`` (smoke test over
    HTTP); real flights requested over HTTP land in the inference log and get their real departure delay."""
    import json
    import urllib.request

    from dagster import AssetKey, instance_for_test, materialize

    from assets.feature_groups import FEATURE_GROUP_ASSETS
    from assets.feature_views import flight_delays_v2
    from assets.sqlmesh_features import SQLMESH_ASSETS
    from assets.models import (
        DEPLOYMENT,
        delay_predictions_labelled,
        departure_delay_model,
        flight_delay_api,
        flight_delay_api_inference_log,
    )
    from assets.training_datasets import departure_delay_training_data
    from fs_dagster import FeatureGroupIOManager, FeatureStoreResource
    from resources import RESOURCES

    monkeypatch.setenv("FS_DAGSTER_ROOT", str(tmp_path / "store"))  # where the SQL pipelines keep their database
    monkeypatch.delenv("FS_DAGSTER_SOURCE", raising=False)
    store = FeatureStoreResource(root=str(tmp_path / "store"), project="flights")
    resources = {**RESOURCES, "feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    groups = {a.key: a for a in FEATURE_GROUP_ASSETS}
    sql_groups = next(a for a in SQLMESH_ASSETS if AssetKey("route_delays_hourly") in a.keys)
    fs = store.get_store()
    try:
        with instance_for_test() as instance:
            assert materialize([groups[AssetKey("aircraft")]], resources=resources, instance=instance).success
            monthly = [groups[AssetKey(k)] for k in ("weather_hourly", "route_delay_stats", "flight_outcomes")]
            assert materialize([*monthly, sql_groups], resources=resources, instance=instance,
                               partition_key="2013-02-01").success
            model_graph = [flight_delays_v2, departure_delay_training_data, departure_delay_model, flight_delay_api]
            result = materialize(model_graph, resources=resources, instance=instance)
            checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
            assert set(checks) == {"not_worse_than_deployed", "min_quality", "min_quality_per_slice", "smoke_test",
                                   "training_data_quality"}
            assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
            slices = {r.data["slice"]: r.data for r in checks["min_quality_per_slice"].metadata["slice_scores"].records}
            assert set(slices) == {"EWR", "JFK", "LGA"} and all(s["judged"] for s in slices.values())

            model_md = instance.get_latest_materialization_event(departure_delay_model.key).asset_materialization
            mv = fs.get_model_registry().get_model("departure_delay", 1)
            td = fs.get_feature_view("flight_delays", 2).get_training_dataset()
            assert 0.70 <= model_md.metadata["metrics/roc_auc"].value == mv.metrics["roc_auc"] < 0.9
            assert mv.training_dataset["pinned_commits"] == td.pinned_commits and mv.labels == ["dep_delayed"]
            assert model_md.tags["dagster/data_version"] == mv.artifact_sha256

            dep = fs.get_deployment(DEPLOYMENT)
            status = dep.status()
            endpoint = instance.get_latest_materialization_event(flight_delay_api.key).asset_materialization.metadata[
                "fs_dagster/endpoint"].value
            assert endpoint == f"{status.url}/api/v1.0/predictions" and status.model_version == 1

            # real flights of the last evening of February, over HTTP
            flights = fs.get_feature_group("flight_outcomes").read(
                columns=["flight_id", "origin", "tailnum", "dest", "carrier", "dep_delayed"],
                where="sched_dep_ts >= TIMESTAMPTZ '2013-02-28 20:00:00+00' AND tailnum IS NOT NULL")
            entities = [{k: row[k] for k in ("flight_id", "origin", "tailnum", "dest", "carrier")}
                        for _, row in flights.head(12).iterrows()]
            body = json.dumps({"jsonData": {"entities": entities, "allow_missing": True}}).encode()
            request = urllib.request.Request(endpoint, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())["jsonData"]
            assert len(entities) == 12
            assert (answer["model"], answer["model_version"], len(answer["predictions"])) == ("departure_delay", 1, 12)
            assert answer["classes"] == [False, True]

            assert materialize([flight_delay_api_inference_log, delay_predictions_labelled], resources=resources,
                               instance=instance).success
        log = fs.get_feature_group(f"{DEPLOYMENT}_inference_log").read()
        assert len(log) == 12 + 5  # the flights requested and the smoke test's five
        mine = log[log["request_id"] == answer["request_id"]].sort_values("row")
        assert list(mine["flight_id"]) == [e["flight_id"] for e in entities]
        labelled = fs.get_feature_group("delay_predictions_labelled").read().set_index(["request_id", "row"])
        truth = fs.get_feature_group("flight_outcomes").read(columns=["flight_id", "dep_delayed"]).set_index(
            "flight_id")["dep_delayed"]
        assert len(labelled) == len(log)
        assert (labelled["actual_dep_delayed"].to_numpy() == truth.loc[labelled["flight_id"]].to_numpy()).all()
    finally:
        stop_serving(fs, DEPLOYMENT, tmp_path / "store")
