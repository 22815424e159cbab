"""Model, deployment and inference-log assets with ``dagster.materialize`` on a small real store: Hudi feature groups,
the embedded Valkey, a real ``seldon-core-microservice`` answering HTTP on loopback (stopped by PID at the end).

The tests share one store, one Dagster instance and one server, and run in file order (a server start costs
3-8 s here): the first model is deployed, a worse one is blocked and never served, a better one is rolled out, the
smoke test runs on its own, and the requests answered land in the inference log and get their labels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    AutomationCondition,
    Definitions,
    evaluate_automation_conditions,
    instance_for_test,
    materialize,
)
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from fs_dagster import (
    FeatureStore,
    FeatureStoreResource,
    ModelValidation,
    RandomSplit,
    SmokeTest,
    TrainedModel,
    build_deployment_asset,
    build_inference_log_asset,
    build_labelled_inference_log_asset,
    build_model_asset,
    build_training_dataset_asset,
)
from fs_dagster.core.errors import NotFoundError
from fs_dagster.core.serving import processes
from fs_dagster.core.serving.manifest import validate_seldon_deployment
from serving_testing import stop_serving

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
N_TRIPS = 2000
ZONES = ["north", "south", "east", "west"]
TRAFFIC = {"north": 0.2, "south": 0.9, "east": 0.5, "west": 0.7}
STATE = {"model": "weak"}
VALIDATION = ModelValidation(metric="roc_auc", tolerance=0.01, deployment="late_api", minimum=0.6,
                             slice_column="zone", slice_minimum=0.55, min_slice_rows=30)


def _view(store: FeatureStore):
    trips, zones = store.get_feature_group("trips"), store.get_feature_group("zones")
    return store.get_or_create_feature_view(
        "trip_delays", 1,
        trips.select(["distance", "passengers", "late"]).join(zones.select(["traffic"]), left_on=["zone"]),
        labels=["late"], transformation_functions={"distance": "standard_scaler"})


def _train(td) -> TrainedModel:
    """weak: distance only; good (and good_c, another C): every feature; dummy: the class prior (ROC AUC 0.5)."""
    x_train, y_train = td.feature_label_split("train")
    y = y_train.squeeze().astype(bool)
    kind = STATE["model"]
    if kind == "dummy":
        return TrainedModel(DummyClassifier(strategy="prior").fit(x_train, y), params={"kind": kind})
    if kind == "weak":
        model = Pipeline([("select", ColumnTransformer([("d", "passthrough", ["distance"])])),
                          ("lr", LogisticRegression())])
        return TrainedModel(model.fit(x_train, y), params={"kind": kind}, metrics={"train_rows": len(y)})
    if kind == "good_c":
        return TrainedModel(LogisticRegression(C=0.5).fit(x_train, y), params={"C": 0.5})
    return LogisticRegression().fit(x_train, y)  # a bare model: the asset computes the metrics


trips_training_data = build_training_dataset_asset(
    "trip_delays", 1, deps=[], split=RandomSplit({"train": 0.75, "test": 0.25}, seed=3), get_view=_view)
late_model = build_model_asset("late_trips", _train, training_data=trips_training_data, validation=VALIDATION,
                               metrics=["accuracy", "log_loss"])
late_api = build_deployment_asset(
    "late_api", late_model, smoke_test=SmokeTest(rows=3),
    manifest={"image": "registry.example.com/fs-serving:0.1", "online_url": "valkey://valkey:6379/0"},
    automation_condition=AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed(),
)
late_log = build_inference_log_asset("late_api")
late_labelled = build_labelled_inference_log_asset("late_api", "trips", on=["trip_id"],
                                                   labels={"late": "actual_late"}, key="late_predictions_labelled")


class World:
    def __init__(self, fs: FeatureStore, resources: dict, instance) -> None:
        self.fs = fs
        self.resources = resources
        self.instance = instance
        self.cursor = None

    def run(self, assets, selection=None, raise_on_error=True):
        every = [trips_training_data, late_model, late_api, late_log, late_labelled]
        return materialize(every, selection=selection or assets, resources=self.resources, instance=self.instance,
                           raise_on_error=raise_on_error)

    def latest(self, key: str):
        return self.instance.get_latest_materialization_event(AssetKey(key)).asset_materialization

    def deployment_requested(self) -> bool:
        """One tick of the automation: does the deployment's condition ask for a run now?"""
        defs = Definitions(assets=[trips_training_data, late_model, late_api], resources=self.resources)
        result = evaluate_automation_conditions(defs=defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return bool(result.get_requested_partitions(late_api.key))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_assets") / "store"
    fs = FeatureStore(root=root, project="rides", durable=False)
    rng = np.random.default_rng(11)
    distance = rng.uniform(1, 30, N_TRIPS)
    passengers = rng.integers(1, 5, N_TRIPS)
    zone = rng.choice(ZONES, N_TRIPS)
    noise = rng.normal(0, 0.25, N_TRIPS)
    late = distance / 30 + np.vectorize(TRAFFIC.get)(zone) + 0.1 * passengers + noise > 1.3
    trips = fs.get_or_create_feature_group("trips", primary_key=["trip_id"], event_time="ts", online_enabled=True)
    trips.insert(pd.DataFrame({"trip_id": np.arange(N_TRIPS), "ts": [T0 + timedelta(minutes=i) for i in range(N_TRIPS)],
                               "zone": zone, "distance": distance, "passengers": passengers, "late": late}))
    zones = fs.get_or_create_feature_group("zones", primary_key=["zone"], event_time="updated", online_enabled=True)
    zones.insert(pd.DataFrame({"zone": ZONES, "updated": [T0 - timedelta(days=1)] * 4,
                               "traffic": [TRAFFIC[z] for z in ZONES]}))
    resource = FeatureStoreResource(root=str(root), project="rides", durable=False)
    try:
        with instance_for_test() as instance:
            yield World(fs, {"feature_store": resource}, instance)
    finally:
        stop_serving(fs, "late_api", fs.root)


def _check_evaluations(result) -> dict[str, object]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_model_asset_registers_a_version_with_lineage_metrics_and_its_artifact_as_data_version(world) -> None:
    STATE["model"] = "weak"
    result = world.run([trips_training_data, late_model])
    checks = _check_evaluations(result)
    # (the training data's own check runs too: both assets are selected)
    assert set(checks) == {"not_worse_than_deployed", "min_quality", "min_quality_per_slice", "training_data_quality"}
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    assert checks["not_worse_than_deployed"].description == "nothing deployed as late_api yet"

    materialization = world.latest("late_trips")
    md = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    mv = world.fs.get_model_registry().get_model("late_trips")
    td = _view(world.fs).get_training_dataset()
    assert (md["fs_dagster/model_name"], md["fs_dagster/model_version"]) == ("late_trips", mv.version) == (
        "late_trips", 1)
    assert materialization.tags["dagster/data_version"] == md["fs_dagster/artifact_sha256"] == mv.artifact_sha256
    assert md["fs_dagster/training_dataset_version"] == td.version
    assert md["fs_dagster/content_hash"] == td.content_hash == mv.training_dataset["content_hash"]
    assert md["fs_dagster/pinned_commits"] == td.pinned_commits == mv.training_dataset["pinned_commits"]
    assert md["fs_dagster/features"] == ["distance", "passengers", "traffic"] == mv.features
    assert md["fs_dagster/params"] == {"kind": "weak"}
    # metrics measured on the holdout, numeric (the UI plots them); the train function's own are kept
    assert isinstance(materialization.metadata["metrics/roc_auc"].value, float)
    assert set(mv.metrics) == {"roc_auc", "accuracy", "log_loss", "train_rows"}
    assert md["metrics/roc_auc"] == pytest.approx(mv.metrics["roc_auc"]) and 0.6 < mv.metrics["roc_auc"] < 0.95
    assert md["rows/test"] + md["rows/train"] == N_TRIPS
    assert mv.tags["validation"]["passed"] is True

    # the same data and deterministic training again: the same version, the same data version, no copy
    again = world.run([late_model])
    assert again.success
    md2 = {k: getattr(v, "value", v) for k, v in world.latest("late_trips").metadata.items()}
    assert (md2["fs_dagster/model_version"], md2["fs_dagster/reused_version"]) == (1, True)
    assert world.latest("late_trips").tags["dagster/data_version"] == mv.artifact_sha256
    assert len(world.fs.get_model_registry().get_models("late_trips")) == 1


def test_first_deployment_serves_the_validated_version_over_http_and_passes_the_smoke_test(world) -> None:
    world.deployment_requested()  # (the automation's first tick: its cursor)
    result = world.run([late_api])
    assert result.success
    smoke = _check_evaluations(result)["smoke_test"]
    assert smoke.passed, smoke.description
    assert smoke.metadata["answered_version"].value == smoke.metadata["expected_version"].value == 1
    assert len(smoke.metadata["entities"].value) == 3

    md = {k: getattr(v, "value", v) for k, v in world.latest("late_api").metadata.items()}
    dep = world.fs.get_deployment("late_api")
    status = dep.status()
    assert (md["fs_dagster/action"], md["fs_dagster/model_version"], md["fs_dagster/previous_version"]) == (
        "created", 1, "none")
    assert md["fs_dagster/endpoint"] == f"{status.url}/api/v1.0/predictions" and md["fs_dagster/pid"] == status.pid
    assert status.state == "running" and status.url.startswith("http://127.0.0.1:")
    # the server's processes predict with one OpenMP thread unless configured (gradient boosting's spinning
    # threads made one-row predictions ~8x slower on a busy machine)
    for pid in processes.group_members(status.pid):
        environ = dict(item.split("=", 1) for item in open(f"/proc/{pid}/environ").read().split("\0") if "=" in item)
        assert environ.get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS", "1"), pid

    # a real request from outside: the endpoint in the metadata answers for real entities
    body = json.dumps({"jsonData": {"entities": [{"trip_id": 5, "zone": "south"}]}}).encode()
    request = urllib.request.Request(md["fs_dagster/endpoint"], data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())["jsonData"]
    assert (answer["model"], answer["model_version"], len(answer["predictions"])) == ("late_trips", 1, 1)

    manifest = yaml.safe_load(open(md["fs_dagster/manifest"]).read())  # the SeldonDeployment for Kubernetes
    validate_seldon_deployment(manifest)
    assert manifest["metadata"]["name"] == "late-api"
    params = {p["name"]: p["value"] for p in manifest["spec"]["predictors"][0]["graph"]["parameters"]}
    assert params["model_version"] == "1"


def test_a_worse_model_is_blocked_and_never_deployed(world) -> None:
    STATE["model"] = "dummy"
    result = world.run([late_model, late_api], raise_on_error=False)
    assert not result.success
    checks = _check_evaluations(result)
    assert not checks["not_worse_than_deployed"].passed
    assert checks["not_worse_than_deployed"].description.startswith(
        "roc_auc 0.5000 is worse than 0.") and "of the deployed late_trips v1" in checks["not_worse_than_deployed"].description
    assert checks["not_worse_than_deployed"].metadata["candidate"].value == pytest.approx(0.5)
    assert not checks["min_quality"].passed
    assert "smoke_test" not in checks  # the deployment step never ran
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {late_model.key}  # the model version is recorded (and visible), not deployed
    dummy = world.fs.get_model_registry().get_model("late_trips", 2)
    assert dummy.tags["validation"] == {
        "passed": False, "checks": {"not_worse_than_deployed": False, "min_quality": False,
                                    "min_quality_per_slice": False}, "dagster_run_id": result.run_id}
    dep = world.fs.get_deployment("late_api")
    assert (dep.model_version, dep.health()["model_version"]) == (1, 1)

    # launched later by itself (by hand, or by automation) the deployment asset refuses the rejected version ...
    alone = world.run([late_api], raise_on_error=False)
    assert not alone.success
    failure = next(e for e in alone.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert "late_trips v2" in message and "blocking check not_worse_than_deployed failed" in message
    assert world.fs.get_deployment("late_api").health()["model_version"] == 1
    # ... and the automation condition does not ask for it
    assert world.deployment_requested() is False


def test_the_slice_rule_names_the_failing_slices(world) -> None:
    strict = build_model_asset(
        "late_trips_strict", _train, training_data=trips_training_data, key="late_trips_strict",
        validation=ModelValidation(slice_column="zone", slice_minimum=0.999, min_slice_rows=30))
    STATE["model"] = "weak"
    result = materialize([trips_training_data, strict], selection=[strict], resources=world.resources,
                         instance=world.instance, raise_on_error=False)
    assert not result.success
    check = _check_evaluations(result)["min_quality_per_slice"]
    assert not check.passed
    assert check.description.startswith("roc_auc below the minimum 0.999 in 4 zone slice(s): east (")
    assert check.metadata["failing_slices"].value == "east, north, south, west"
    table = check.metadata["slice_scores"].records
    assert [r.data["slice"] for r in table] == ZONES[2:3] + ZONES[0:2] + ZONES[3:]  # sorted
    assert all(r.data["rows"] >= 30 and r.data["judged"] and not r.data["passed"] for r in table)


def test_a_better_model_rolls_out_and_the_previous_version_is_recorded(world) -> None:
    STATE["model"] = "good"
    result = world.run([late_model])
    checks = _check_evaluations(result)
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    comparison = checks["not_worse_than_deployed"].metadata
    assert comparison["deployed_version"].value == 1 and comparison["difference"].value > 0.02
    assert world.deployment_requested() is True  # a validated new version: automation would redeploy

    deployed = world.run([late_api])
    assert deployed.success and _check_evaluations(deployed)["smoke_test"].passed
    md = {k: getattr(v, "value", v) for k, v in world.latest("late_api").metadata.items()}
    assert (md["fs_dagster/action"], md["fs_dagster/model_version"], md["fs_dagster/previous_version"]) == (
        "switched", 3, 1)
    dep = world.fs.get_deployment("late_api")
    assert (dep.model_version, dep.previous_version, dep.health()["model_version"]) == (3, 1, 3)


def test_the_smoke_test_runs_alone_against_the_live_server(world) -> None:
    check = AssetCheckKey(late_api.key, "smoke_test")
    result = materialize([late_model, late_api], selection=AssetSelection.checks(check), resources=world.resources,
                         instance=world.instance)
    assert result.get_asset_materialization_events() == []  # nothing redeployed
    evaluation = _check_evaluations(result)["smoke_test"]
    assert evaluation.passed and evaluation.metadata["answered_version"].value == 3

    dep = world.fs.get_deployment("late_api")
    dep.stop()
    try:
        down = materialize([late_model, late_api], selection=AssetSelection.checks(check), resources=world.resources,
                           instance=world.instance, raise_on_error=False)
        evaluation = _check_evaluations(down)["smoke_test"]
        assert not evaluation.passed and "is not running" in evaluation.description
    finally:
        again = world.run([late_api])  # unchanged version, server started again
    md = {k: getattr(v, "value", v) for k, v in world.latest("late_api").metadata.items()}
    assert md["fs_dagster/action"] == "unchanged" and md["fs_dagster/state"] == "running"
    assert _check_evaluations(again)["smoke_test"].passed


def test_a_failed_smoke_test_right_after_a_switch_rolls_the_deployment_back(world) -> None:
    STATE["model"] = "good_c"
    assert world.run([late_model]).success  # v4, validated
    unknown_trip = build_deployment_asset("late_api", late_model,
                                          smoke_test=SmokeTest(entities=[{"trip_id": 99_999, "zone": "north"}]))
    result = materialize([trips_training_data, late_model, unknown_trip], selection=[unknown_trip],
                         resources=world.resources, instance=world.instance, raise_on_error=False)
    assert not result.success
    smoke = _check_evaluations(result)["smoke_test"]
    assert not smoke.passed and "answered 404" in smoke.description and smoke.description.endswith(
        "rolled back from v4")
    assert smoke.metadata["rolled_back_from"].value == 4
    md = {k: getattr(v, "value", v) for k, v in world.latest("late_api").metadata.items()}
    assert (md["fs_dagster/action"], md["fs_dagster/model_version"], md["fs_dagster/previous_version"]) == (
        "rolled back", 3, 3)
    dep = world.fs.get_deployment("late_api")
    assert (dep.model_version, dep.health()["model_version"]) == (3, 3)


def test_requests_land_in_the_inference_log_and_get_their_outcomes(world) -> None:
    dep = world.fs.get_deployment("late_api")
    world.run([late_log])  # what earlier tests sent (smoke tests, the urllib request)
    before = world.fs.get_feature_group("late_api_inference_log").count()
    entities = [{"trip_id": i, "zone": z} for i, z in zip(range(100, 160), ZONES * 15)]
    answers = [dep.predict(entities[i:i + 20]) for i in range(0, 60, 20)]  # three requests, 60 entities

    result = world.run([late_log, late_labelled])
    log_md = {k: getattr(v, "value", v) for k, v in world.latest("late_api_inference_log").metadata.items()}
    assert (log_md["fs_dagster/requests_flushed"], log_md["fs_dagster/rows_flushed"]) == (3, 60)
    assert log_md["dagster/row_count"] == before + 60
    rows = world.fs.get_feature_group("late_api_inference_log").read(
        where=f"request_id IN ({', '.join(repr(a['request_id']) for a in answers)})")
    assert sorted(rows["trip_id"]) == list(range(100, 160))
    assert set(rows["model_version"]) == {3}

    labelled = world.fs.get_feature_group("late_predictions_labelled").read()
    assert len(labelled) == before + 60
    truth = world.fs.get_feature_group("trips").read(columns=["trip_id", "late"]).set_index("trip_id")["late"]
    assert (labelled["actual_late"].to_numpy() == truth.loc[labelled["trip_id"]].to_numpy()).all()
    md = {k: getattr(v, "value", v) for k, v in world.latest("late_predictions_labelled").metadata.items()}
    assert md["fs_dagster/labelled_rows"] == len(labelled) and md["fs_dagster/labelled_share"] == 1.0
    live = labelled[labelled["model_version"] == 3]
    accuracy = float((live["prediction"] == live["actual_late"]).mean())
    table = world.latest("late_predictions_labelled").metadata["fs_dagster/live_metrics_by_version"]
    by_version = {r.data["version"]: r.data for r in table.records}
    assert by_version[3]["accuracy"] == pytest.approx(accuracy) and by_version[3]["rows"] == len(live)
    assert 0.5 < md["metrics/live_roc_auc"] <= 1.0
    assert result.success

    # nothing new: no commit, the same data versions (nothing downstream becomes stale)
    versions = {k: world.instance.get_latest_materialization_event(AssetKey(k)).asset_materialization.tags[
        "dagster/data_version"] for k in ("late_api_inference_log", "late_predictions_labelled")}
    world.run([late_log, late_labelled])
    for key, version in versions.items():
        assert world.latest(key).tags["dagster/data_version"] == version


def test_a_separate_blocking_check_gates_a_deployment_launched_later_from_the_cli(world, tmp_path) -> None:
    """In a real code location (the ``dagster`` CLI) the deployment asset also honours blocking checks defined
    apart from the model asset (a reviewer's ``@asset_check``), found through the repository's asset graph."""
    project = Path(__file__).with_name("model_gate_project.py")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "FS_DAGSTER_ROOT": str(world.fs.root),
           "FS_TEST_GATE": "fail"}
    (tmp_path / "home").mkdir()

    def dagster(select: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-f", str(project),
                               "--select", select, "--config-json", '{"execution": {"config": {"in_process": {}}}}'],
                              env=env, capture_output=True, text=True, timeout=300)

    trained = dagster("gate_training_data,gate_model")  # the model materializes, the reviewer rejects it
    assert trained.returncode != 0 and "rejected by the reviewer" in trained.stdout + trained.stderr
    later = dagster("gate_api")
    output = later.stdout + later.stderr
    assert later.returncode != 0
    assert "gate_model v1" in output and "blocking check reviewed failed: rejected by the reviewer" in output
    with pytest.raises(NotFoundError):
        world.fs.get_deployment("gate_api")
