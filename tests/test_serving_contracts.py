"""Serving contracts that need no server: request checking, SeldonDeployment manifests against the v1 CRD's required
fields, joining later outcomes onto an inference log, and an inference logger whose Valkey is down."""

from __future__ import annotations

import copy
import os
import time
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fs_dagster import FeatureStore, InvalidDataError
from fs_dagster.core.online.online_store import OnlineStoreConfig
from fs_dagster.core.serving.inference_log import InferenceLogger, join_outcomes
from fs_dagster.core.serving.manifest import to_yaml, validate_seldon_deployment
from fs_dagster.core.serving.payload import Echo, RequestError, RequestParser
from fs_dagster.core.serving.settings import ServingSettings

T = datetime(2024, 1, 1, tzinfo=timezone.utc)

# --- requests ------------------------------------------------------------------------------------------------

PARSER = RequestParser(
    ["id", "origin", "hour", "day", "ratio", "flag"],
    {"id": pa.int64(), "origin": pa.string(), "hour": pa.timestamp("us", tz="UTC"), "day": pa.date32(),
     "ratio": pa.float64(), "flag": pa.bool_()},
    ["temp", "seats"], max_batch=3,
)
GOOD = {"id": 7, "origin": "JFK", "hour": "2024-01-01T10:00:00Z", "day": "2024-01-01", "ratio": 1, "flag": False}


def test_a_good_request_is_typed_by_the_declared_key_types() -> None:
    parsed = PARSER.parse({"jsonData": {"entities": [GOOD, {**GOOD, "hour": "2024-01-01T12:00:00+02:00"}],
                                        "passed_features": [{"temp": 1.5}, {}], "allow_missing": True}})
    first, second = parsed.entities
    assert first["hour"] == datetime(2024, 1, 1, 10, tzinfo=timezone.utc) and first["day"] == date(2024, 1, 1)
    assert second["hour"] == datetime(2024, 1, 1, 10, tzinfo=timezone.utc)  # offsets normalised to UTC
    assert (first["id"], first["ratio"], first["flag"]) == (7, 1, False)
    assert parsed.allow_missing and parsed.passed_features == [{"temp": 1.5}, {}]
    naive = PARSER.parse({"jsonData": {"entities": [{**GOOD, "hour": "2024-01-01T10:00:00"}]}})
    assert naive.entities[0]["hour"] == datetime(2024, 1, 1, 10, tzinfo=timezone.utc)  # no offset = UTC
    assert PARSER.parse({"jsonData": {"echo": {"x": [1]}}}) == Echo({"x": [1]})


@pytest.mark.parametrize("payload, status, match", [
    ([1, 2], 400, 'JSON object with a "jsonData" object'),
    ({"data": {"ndarray": [[1]]}}, 400, '"jsonData" object'),
    ({"jsonData": {"entities": {"id": 1}}}, 400, "entities must be a list of objects"),
    ({"jsonData": {"entities": []}}, 400, "entities is empty"),
    ({"jsonData": {"entities": [GOOD] * 4}}, 413, "batch of 4 entities is above this deployment's limit of 3"),
    ({"jsonData": {"entities": [GOOD], "alow_missing": True}}, 400, r"unknown field\(s\) \['alow_missing'\]"),
    ({"jsonData": {"entities": [GOOD, "JFK"]}}, 400, r"entities\[1\] must be an object"),
    ({"jsonData": {"entities": [GOOD, {k: v for k, v in GOOD.items() if k != "origin"}]}}, 400,
     r"entities\[1\] lacks serving key 'origin'"),
    ({"jsonData": {"entities": [{**GOOD, "id": "7"}]}}, 400, r"entities\[0\]\.id must be an integer, got '7'"),
    ({"jsonData": {"entities": [{**GOOD, "id": 7.0}]}}, 400, r"entities\[0\]\.id must be an integer, got 7\.0"),
    ({"jsonData": {"entities": [{**GOOD, "id": True}]}}, 400, r"entities\[0\]\.id must be an integer, got True"),
    ({"jsonData": {"entities": [{**GOOD, "id": None}]}}, 400, r"entities\[0\]\.id must be an integer, got None"),
    ({"jsonData": {"entities": [{**GOOD, "origin": 3}]}}, 400, r"entities\[0\]\.origin must be a string, got 3"),
    ({"jsonData": {"entities": [{**GOOD, "ratio": "1"}]}}, 400, r"ratio must be a number"),
    ({"jsonData": {"entities": [{**GOOD, "flag": 0}]}}, 400, r"flag must be a boolean"),
    ({"jsonData": {"entities": [{**GOOD, "hour": "yesterday"}]}}, 400, r"hour must be an ISO-8601 timestamp"),
    ({"jsonData": {"entities": [{**GOOD, "hour": 1704103200}]}}, 400, r"hour must be an ISO-8601 timestamp"),
    ({"jsonData": {"entities": [{**GOOD, "day": "2024-13-01"}]}}, 400, r"day must be a date string"),
    ({"jsonData": {"entities": [{**GOOD, "seats": 3}]}}, 400, r"unknown field\(s\) \['seats'\].*passed_features"),
    ({"jsonData": {"entities": [GOOD], "allow_missing": "yes"}}, 400, "allow_missing must be true or false"),
    ({"jsonData": {"entities": [GOOD], "passed_features": [{}, {}]}}, 400, "must be a list of 1 objects"),
    ({"jsonData": {"entities": [GOOD], "passed_features": [{"wind": 3}]}}, 400,
     r"passed_features\[0\] names unknown feature\(s\) \['wind'\]"),
])
def test_bad_requests_are_refused_naming_the_problem(payload, status, match) -> None:
    with pytest.raises(RequestError, match=match) as info:
        PARSER.parse(payload)
    assert info.value.status == status


# --- manifests -----------------------------------------------------------------------------------------------


class _Deployment:
    """The parts of a Deployment the manifest builder reads (a registered one is used in test_serving.py)."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self.name, self.model_name, self.model_version = "late_api", "late_trips", 3

    def _settings(self) -> ServingSettings:
        return ServingSettings(deployment=self.name, max_batch=500, feature_view="trips_view:2")


def _manifest(tmp_path: Path, **options):
    from fs_dagster.core.serving.manifest import seldon_deployment

    store = FeatureStore(root=tmp_path / "store", project="rides",
                         online=OnlineStoreConfig(url="valkey://:s3cret@valkey.ml:6379/0"),
                         registry_url="postgresql+psycopg://fs:pgpass@db.ml/fs")
    return seldon_deployment(_Deployment(store), image="registry.local/fs-serving:1.0", **options)


def test_manifest_structure_parameters_and_no_secrets(tmp_path) -> None:
    manifest = _manifest(tmp_path, namespace="ml", store_root="/mnt/fs_store")
    assert (manifest["apiVersion"], manifest["kind"]) == ("machinelearning.seldon.io/v1", "SeldonDeployment")
    assert manifest["metadata"]["name"] == "late-api" and manifest["metadata"]["namespace"] == "ml"
    [predictor] = manifest["spec"]["predictors"]
    graph = predictor["graph"]
    [container] = predictor["componentSpecs"][0]["spec"]["containers"]
    assert graph["name"] == container["name"] == "late-api" and graph["type"] == "MODEL"
    assert graph["modelUri"] == "file:///mnt/fs_store/rides/models/late_trips/v3"
    params = {p["name"]: (p["type"], p["value"]) for p in graph["parameters"]}
    assert params["model_version"] == ("INT", "3") and params["inference_log"] == ("BOOL", "true")
    assert params["root"] == ("STRING", "/mnt/fs_store") and params["feature_view"] == ("STRING", "trips_view:2")
    assert params["online_url"] == ("STRING", "valkey://valkey.ml:6379/0")  # the password moved to the Secret
    assert "registry_url" not in params  # it has credentials: Secret only
    assert all(isinstance(p[k], str) for p in graph["parameters"] for k in ("name", "type", "value"))
    env = {e["name"]: e for e in container["env"]}
    assert env["MODEL_NAME"]["value"] == "fs_dagster.core.serving.seldon_model.FeatureStoreModel"
    assert env["FS_DAGSTER_ONLINE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "late-api-store",
                                                                             "key": "online_password"}
    assert env["FS_DAGSTER_REGISTRY_URL"]["valueFrom"]["secretKeyRef"]["key"] == "registry_url"
    text = to_yaml(manifest)
    assert "s3cret" not in text and "pgpass" not in text
    # the parameters are what seldon parses into the model class's keyword arguments
    from seldon_core.microservice import parse_parameters

    parsed = parse_parameters(graph["parameters"])
    settings = ServingSettings.from_parameters(parsed)
    assert settings.model_version == 3 and settings.inference_log is True and settings.max_batch == 500


def test_manifest_for_an_embedded_online_store_needs_a_reachable_url(tmp_path) -> None:
    from fs_dagster.core.serving.manifest import seldon_deployment

    store = FeatureStore(root=tmp_path / "store", project="rides")
    with pytest.raises(InvalidDataError, match="embedded valkey-server .* give online_url="):
        seldon_deployment(_Deployment(store), image="x:1")
    manifest = seldon_deployment(_Deployment(store), image="x:1", online_url="valkey://valkey:6379/0")
    assert not any(e["name"] == "FS_DAGSTER_ONLINE_PASSWORD"
                   for e in manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["env"])


def _broken(manifest, path, value=KeyError):
    broken = copy.deepcopy(manifest)
    target = broken
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return broken


@pytest.mark.parametrize("path, value, match", [
    (("spec", "predictors"), KeyError, "spec.predictors is required"),
    (("spec", "predictors"), [], "spec.predictors is required: a non-empty list"),
    (("spec", "predictors", 0, "name"), KeyError, r"spec\.predictors\[0\]\.name is required"),
    (("spec", "predictors", 0, "graph"), KeyError, r"spec\.predictors\[0\]\.graph is required"),
    (("spec", "predictors", 0, "graph", "name"), KeyError, r"graph\.name is required"),
    (("spec", "predictors", 0, "graph", "parameters", 0, "type"), KeyError, r"parameters\[0\]\.type is required"),
    (("spec", "predictors", 0, "graph", "parameters", 0, "value"), KeyError, r"parameters\[0\]\.value is required"),
    (("spec", "predictors", 0, "graph", "parameters", 0, "name"), KeyError, r"parameters\[0\]\.name is required"),
    (("spec", "predictors", 0, "graph", "parameters", 0, "type"), "LIST", r"parameters\[0\]\.type must be one of"),
    (("spec", "predictors", 0, "graph", "parameters", 0, "value"), 3, r"parameters\[0\]\.value must be a string"),
    (("spec", "predictors", 0, "graph", "type"), "model", r"graph\.type must be one of"),
    (("spec", "predictors", 0, "graph", "children"), [{"type": "MODEL"}], r"graph\.children\[0\]\.name is required"),
    (("spec", "predictors", 0, "componentSpecs", 0, "spec", "containers"), KeyError,
     r"componentSpecs\[0\]\.spec\.containers is required"),
    (("spec", "predictors", 0, "componentSpecs", 0, "spec", "containers", 0, "name"), KeyError,
     r"containers\[0\]\.name is required"),
    (("spec", "predictors", 0, "componentSpecs", 0, "spec", "containers", 0, "name"), "other",
     r"graph\.name 'late-api': no container of that name"),
    (("spec", "predictors", 0, "componentSpecs", 0, "spec", "containers", 0, "name"), "Late_API",
     "must be a DNS-1123 label"),
    (("metadata", "name"), "late_api", "metadata.name must be a DNS-1123 name"),
    (("apiVersion",), "machinelearning.seldon.io/v1alpha2", "apiVersion must be"),
])
def test_a_broken_manifest_is_refused_naming_the_field(tmp_path, path, value, match) -> None:
    manifest = _manifest(tmp_path)
    validate_seldon_deployment(manifest)
    with pytest.raises(InvalidDataError, match=match):
        validate_seldon_deployment(_broken(manifest, path, value))


def test_a_manifest_with_a_plain_secret_or_an_unparsable_value_is_refused(tmp_path) -> None:
    manifest = _manifest(tmp_path)
    graph = manifest["spec"]["predictors"][0]["graph"]
    bad = copy.deepcopy(manifest)
    bad["spec"]["predictors"][0]["graph"]["parameters"].append(
        {"name": "online_password", "type": "STRING", "value": "s3cret"})
    with pytest.raises(InvalidDataError, match=r"parameters\[\d+\] \(online_password\) carries a secret"):
        validate_seldon_deployment(bad)
    bad = copy.deepcopy(manifest)
    bad["spec"]["predictors"][0]["graph"]["parameters"].append(
        {"name": "registry_url", "type": "STRING", "value": "postgresql://fs:pw@db/fs"})
    with pytest.raises(InvalidDataError, match="carries a secret in plain text"):
        validate_seldon_deployment(bad)
    bad = copy.deepcopy(manifest)
    bad["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["env"].append(
        {"name": "FS_DAGSTER_ONLINE_PASSWORD", "value": "s3cret"})
    with pytest.raises(InvalidDataError, match=r"env\[\d+\] \(FS_DAGSTER_ONLINE_PASSWORD\) carries a secret"):
        validate_seldon_deployment(bad)
    position = next(i for i, p in enumerate(graph["parameters"]) if p["name"] == "max_batch")
    bad = _broken(manifest, ("spec", "predictors", 0, "graph", "parameters", position, "value"), "many")
    with pytest.raises(InvalidDataError, match=r"value 'many' is not a valid INT"):
        validate_seldon_deployment(bad)


def _seldon_crd_schema() -> dict | None:
    """The openAPIV3Schema of version v1 of seldon-core's SeldonDeployment CRD (helm chart of v1.19), if a copy is
    at FS_DAGSTER_SELDON_CRD (or where the serving research left one)."""
    import re

    import yaml

    candidates = [os.environ.get("FS_DAGSTER_SELDON_CRD", ""),
                  "/tmp/seldon_lab/crd/helm-charts_seldon-core-operator_templates_customresourcedefinition_v1_"
                  "seldondeployments.machinelearning.seldon.io.yaml"]
    path = next((Path(c) for c in candidates if c and Path(c).is_file()), None)
    if path is None:
        return None
    text = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("{{"))
    text = re.sub(r"'\{\{[^}]*\}\}[^']*'", "'X'", text)
    crd = next(doc for doc in yaml.safe_load_all(text) if doc)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]


def test_manifest_validates_against_the_seldon_crd_schema(tmp_path) -> None:
    schema = _seldon_crd_schema()
    if schema is None:
        pytest.skip("no copy of seldon-core's v1 SeldonDeployment CRD (set FS_DAGSTER_SELDON_CRD)")
    import jsonschema

    manifest = _manifest(tmp_path)
    jsonschema.validate(manifest, schema)
    # the CRD's own required lists agree with ours: a missing graph name / parameter value fails both
    for path in (("spec", "predictors", 0, "graph", "name"), ("spec", "predictors", 0, "graph", "parameters", 0,
                                                             "value")):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(_broken(manifest, path), schema)


# --- outcomes ------------------------------------------------------------------------------------------------


def _log() -> pd.DataFrame:
    return pd.DataFrame({
        "request_id": ["a", "a", "b", "c"], "row": [0, 1, 0, 0],
        "predicted_at": pd.to_datetime(["2024-01-01T10:00Z", "2024-01-01T10:00Z", "2024-01-01T11:00Z",
                                        "2024-01-02T09:00Z"], utc=True),
        "flight_id": [1, 2, 1, 3], "distance": [0.1, 0.2, 0.1, 0.3], "prediction": [True, False, True, False],
    })


def test_join_outcomes_by_keys_keeps_log_order_and_unlabelled_rows() -> None:
    outcomes = pd.DataFrame({"flight_id": [3, 1], "dep_delay": [4.0, 35.0]})
    joined = join_outcomes(_log(), outcomes, on=["flight_id"], labels={"dep_delay": "actual_delay"})
    assert list(joined["request_id"]) == ["a", "a", "b", "c"]
    assert joined["actual_delay"].tolist()[0] == 35.0 and np.isnan(joined["actual_delay"][1])
    assert joined["actual_delay"].tolist()[2:] == [35.0, 4.0]  # every prediction of flight 1 gets its outcome
    inner = join_outcomes(_log(), outcomes, on="flight_id", how="inner")
    assert list(inner["flight_id"]) == [1, 1, 3] and "dep_delay" in inner


def test_join_outcomes_with_outcome_time_takes_the_first_outcome_after_the_prediction() -> None:
    outcomes = pd.DataFrame({"flight_id": [1, 1, 2], "late": [False, True, True],
                             "observed_at": pd.to_datetime(["2024-01-01T10:30Z", "2024-01-01T12:00Z",
                                                            "2024-01-01T09:00Z"], utc=True)})
    joined = join_outcomes(_log(), outcomes, on=["flight_id"], outcome_time="observed_at")
    # flight 1 at 10:00 -> the 10:30 outcome; again at 11:00 -> the 12:00 one; flight 2's outcome predates it
    assert joined["late"].tolist()[:1] == [False] and joined["late"].tolist()[2] is True
    assert pd.isna(joined["late"][1]) and pd.isna(joined["late"][3])


def test_join_outcomes_refuses_repeated_keys_type_mismatch_and_clashes() -> None:
    repeated = pd.DataFrame({"flight_id": [1, 1], "dep_delay": [1.0, 2.0]})
    with pytest.raises(InvalidDataError, match=r"2 outcome rows share keys, e\.g\. \{'flight_id': 1\}"):
        join_outcomes(_log(), repeated, on=["flight_id"])
    as_text = pd.DataFrame({"flight_id": ["1"], "dep_delay": [1.0]})
    with pytest.raises(InvalidDataError, match="key 'flight_id' is number .* but text"):
        join_outcomes(_log(), as_text, on=["flight_id"])
    clash = pd.DataFrame({"flight_id": [1], "distance": [5.0]})
    with pytest.raises(InvalidDataError, match=r"label\(s\) \['distance'\] clash"):
        join_outcomes(_log(), clash, on=["flight_id"])
    with pytest.raises(InvalidDataError, match=r"inference log lacks key column\(s\) \['tailnum'\]"):
        join_outcomes(_log(), repeated, on=["tailnum"])
    with pytest.raises(InvalidDataError, match="give on="):
        join_outcomes(_log(), repeated)


def test_join_outcomes_from_feature_groups_uses_the_outcome_primary_key(tmp_path) -> None:
    fs = FeatureStore(root=tmp_path / "store", project="p", durable=False)
    outcomes = fs.get_or_create_feature_group("outcomes", primary_key=["flight_id"], event_time="observed_at")
    outcomes.insert(pd.DataFrame({"flight_id": [1, 3], "observed_at": [T, T], "dep_delay": [35.0, 4.0]}))
    joined = join_outcomes(_log(), outcomes)
    assert joined["dep_delay"].tolist()[2:] == [35.0, 4.0] and "observed_at" in joined  # event time = a label too


# --- inference logger without Valkey -------------------------------------------------------------------------


def test_inference_logger_never_blocks_or_fails_when_valkey_is_down() -> None:
    import valkey

    from valkey_servers import free_port

    client = valkey.Valkey(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    logger = InferenceLogger(client, "fs:p:inference_log:d", queue_size=5)
    frame = pd.DataFrame({"x": [1.0]})
    start = time.perf_counter()
    for i in range(50):
        logger.log(f"r{i}", time.time(), "m", 1, ["k"], [{"k": i}], frame, np.array([0]), None, None)
    assert time.perf_counter() - start < 0.05  # 50 requests queued or dropped, none waited for Valkey
    deadline = time.monotonic() + 10
    while logger.stats()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = logger.stats()
    assert stats["written"] == 0 and stats["dropped"] + stats["queued"] >= 50 and stats["errors"] >= 1
    assert "ConnectionError" in stats["last_error"]
    logger.close(timeout=2)
