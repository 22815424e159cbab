"""Deployments served by a real ``seldon-core-microservice`` process (on a free loopback port, stopped by PID) over a
real embedded Valkey: predictions equal the model on the training dataset's rows, bad requests get 4xx naming the
problem, rolling switches answer every request, stale state never blocks a start nor kills a stranger, and the
inference log lands in Hudi exactly once.

One server is shared by the tests of this module (a start costs ~3-8 s on a loaded machine); they run in file order
and each leaves it serving v1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fs_dagster import FeatureStore, InvalidDataError, NotFoundError
from fs_dagster.cli import main as cli
from fs_dagster.core.errors import DeploymentError
from fs_dagster.core.models.artifacts import ModelIntegrityError
from fs_dagster.core.serving import processes
from fs_dagster.core.serving.client import PREDICT_PATH, ServingClient
from fs_dagster.core.serving.deployment import Deployment
from fs_dagster.core.serving.inference_log import stream_key
from fs_dagster.core.serving.local import marker_for
from serving_testing import stop_serving

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
N_TRIPS = 240
ZONES = ["north", "south", "east", "west"]


@dataclass
class World:
    fs: FeatureStore
    td: object
    v1: object
    v2: object
    v3: object
    dep: Deployment

    @property
    def port(self) -> int:
        return int(self.dep.url.rsplit(":", 1)[1])

    def client(self) -> ServingClient:
        return ServingClient("127.0.0.1", self.port)


def _train(td, **options) -> LogisticRegression:
    X_train, _, y_train, _ = td.train_test_split()
    return LogisticRegression(**options).fit(X_train, y_train.squeeze())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving") / "store"
    fs = FeatureStore(root=root, project="rides", durable=False)
    rng = np.random.default_rng(7)
    trips = fs.get_or_create_feature_group("trips", primary_key=["trip_id"], event_time="ts", online_enabled=True)
    distance = rng.uniform(1, 30, N_TRIPS)
    zone = rng.choice(ZONES, N_TRIPS)
    traffic = {"north": 0.2, "south": 0.9, "east": 0.5, "west": 0.7}
    trips.insert(pd.DataFrame({
        "trip_id": np.arange(N_TRIPS), "ts": [T0 + timedelta(minutes=i) for i in range(N_TRIPS)], "zone": zone,
        "distance": distance, "passengers": rng.integers(1, 5, N_TRIPS),
        "late": distance / 30 + np.vectorize(traffic.get)(zone) + rng.normal(0, 0.3, N_TRIPS) > 1.0,
    }))
    zones = fs.get_or_create_feature_group("zones", primary_key=["zone"], event_time="updated", online_enabled=True)
    zones.insert(pd.DataFrame({"zone": ZONES, "updated": [T0 - timedelta(days=1)] * 4,
                               "traffic": [traffic[z] for z in ZONES]}))
    view = fs.get_or_create_feature_view(
        "trip_delays", 1, trips.select(["distance", "passengers", "late"]).join(zones.select(["traffic"]),
                                                                                 left_on=["zone"]),
        labels=["late"], transformation_functions={"distance": "standard_scaler"})
    td = view.create_train_test_split(test_size=0.25, seed=3)
    mr = fs.get_model_registry()
    v1 = mr.create_model("late_trips", _train(td), training_dataset=td)
    v2 = mr.create_model("late_trips", _train(td, C=0.01), training_dataset=td)
    v3 = mr.create_model("late_trips", _train(td, C=0.1), training_dataset=td)
    dep = fs.create_deployment("late_api", v1, max_batch=100)
    started = time.monotonic()
    status = dep.start()
    print(f"\nstart: {time.monotonic() - started:.2f} s to the first healthy answer "
          f"(server's own: {status.startup_seconds:.2f} s)")
    try:
        yield World(fs, td, v1, v2, v3, dep)
    finally:
        stop_serving(fs, "late_api", fs.root)


def _entities(td, split: str = "test") -> tuple[list[dict], pd.DataFrame]:
    rows = td.read(split, with_keys=True)
    return [{"trip_id": int(r.trip_id), "zone": r.zone} for r in rows.itertuples()], rows


def _post(world: World, body: bytes | str | dict, content_type: str | None = "application/json",
          method: str = "POST", path: str = PREDICT_PATH) -> tuple[int, object]:
    import http.client

    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    conn = http.client.HTTPConnection("127.0.0.1", world.port, timeout=30)
    try:
        conn.request(method, path, body=data if method != "GET" else None,
                     headers={"Content-Type": content_type} if content_type else {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode()


def test_predictions_over_http_equal_the_model_on_training_rows(world) -> None:
    entities, rows = _entities(world.td)
    answer = world.dep.predict(entities, return_vectors=True)
    features = world.v1.features
    expected = world.v1.predict(rows[features])
    assert (answer["model"], answer["model_version"], answer["deployment"]) == ("late_trips", 1, "late_api")
    assert answer["predictions"] == expected.tolist()
    assert answer["classes"] == [False, True]
    assert np.allclose(answer["probabilities"], world.v1.predict_proba(rows[features]), rtol=0, atol=1e-12)
    assert answer["features"] == features == ["distance", "passengers", "traffic"]
    assert np.allclose(np.array(answer["vectors"], dtype=float), rows[features].to_numpy(dtype=float), atol=1e-12)
    one = world.dep.predict(entities[:1])  # a single entity, no vectors asked for
    assert one["predictions"] == expected.tolist()[:1] and "vectors" not in one
    health = world.dep.health()
    assert (health["model"], health["model_version"], health["feature_view"]) == (
        "late_trips", 1, {"name": "trip_delays", "version": 1})


def test_the_server_listens_on_loopback_only(world) -> None:
    process = world.dep.state["process"]
    ports = {process["port"], process["metrics_port"]}
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                address, port = fields[1].rsplit(":", 1)
                if fields[3] == "0A" and int(port, 16) in ports:  # LISTEN
                    listening[int(port, 16)] = address
    assert set(listening) == ports, listening
    assert all(address == "0100007F" for address in listening.values()), listening  # 127.0.0.1, nothing else


BAD_REQUESTS = [
    # (body, content type, method, path, status, words the answer must contain)
    (b'{"jsonData": {"entities": [', "application/json", "POST", PREDICT_PATH, 400, "Can't find JSON"),
    (b"", "application/json", "POST", PREDICT_PATH, 400, "Can't find JSON"),
    ({"jsonData": {"entities": [{"trip_id": 1, "zone": "north"}]}}, None, "POST", PREDICT_PATH, 415,
     "Content-Type was not 'application/json'"),
    ([1, 2], "application/json", "POST", PREDICT_PATH, 400, '"jsonData" object'),
    ({"jsonData": {"entities": [{"trip_id": 1}]}}, "application/json", "POST", PREDICT_PATH, 400,
     "entities[0] lacks serving key 'zone'"),
    ({"jsonData": {"entities": [{"trip_id": "1", "zone": "north"}]}}, "application/json", "POST", PREDICT_PATH, 400,
     "entities[0].trip_id must be an integer, got '1'"),
    ({"jsonData": {"entities": [{"trip_id": 1, "zone": 4}]}}, "application/json", "POST", PREDICT_PATH, 400,
     "entities[0].zone must be a string, got 4"),
    ({"jsonData": {"entities": [{"trip_id": 9999, "zone": "north"}]}}, "application/json", "POST", PREDICT_PATH,
     404, "no online row in feature group trips:1 for {'trip_id': 9999}"),
    ({"jsonData": {"entities": [{"trip_id": 1, "zone": "mars"}]}}, "application/json", "POST", PREDICT_PATH,
     404, "no online row in feature group zones:1 for {'zone': 'mars'}"),
    ({"jsonData": {"entities": [{"trip_id": 9999, "zone": "north"}], "allow_missing": True}}, "application/json",
     "POST", PREDICT_PATH, 422, "cannot predict entities [0] with missing feature(s) ['distance', 'passengers']"),
    ({"jsonData": {"entities": [{"trip_id": i, "zone": "north"} for i in range(101)]}}, "application/json", "POST",
     PREDICT_PATH, 413, "batch of 101 entities is above this deployment's limit of 100"),
    ({"jsonData": {"entities": [{"trip_id": 1, "zone": "north"}], "passed_features": [{"wind": 1}]}},
     "application/json", "POST", PREDICT_PATH, 400, "names unknown feature(s) ['wind']"),
    (b"{}", "application/json", "PUT", PREDICT_PATH, 405, "Method Not Allowed"),
    (b"", None, "GET", "/api/v1.0/nothing", 404, "Not Found"),
]


def test_bad_requests_get_4xx_naming_the_problem_and_the_server_keeps_serving(world) -> None:
    good = {"jsonData": {"entities": [{"trip_id": 3, "zone": "east"}]}}
    for body, content_type, method, path, status, words in BAD_REQUESTS:
        got, answer = _post(world, body, content_type, method, path)
        assert got == status, (body, got, answer)
        assert isinstance(answer, dict) and words in answer["status"]["info"], (body, answer)
        got, answer = _post(world, good)
        assert got == 200 and answer["jsonData"]["model_version"] == 1
    # passed features stand in for a missing entity's features: then the model can predict
    answer = world.dep.predict([{"trip_id": 9999, "zone": "north"}], allow_missing=True,
                               passed_features=[{"distance": 12.0, "passengers": 2}], return_vectors=True)
    assert answer["vectors"][0][1:] == [2, 0.2] and len(answer["predictions"]) == 1


def _wait_logged(dep: Deployment, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = dep.health()["inference_log"]
        if stats["pending"] == 0 and stats["written"] + stats["dropped"] >= stats["queued"]:
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)


def test_inference_log_lands_in_hudi_once_even_when_a_flush_is_interrupted(world, monkeypatch) -> None:
    dep, fs = world.dep, world.fs
    _wait_logged(dep)
    dep.flush_inference_log()  # what earlier tests logged
    entities, _ = _entities(world.td)
    batches = [entities[i:i + 7] for i in range(0, 35, 7)] + [[entities[40]]]
    answers = [dep.predict(batch, return_vectors=True) for batch in batches]
    keys_sent = {a["request_id"]: batch for a, batch in zip(answers, batches)}
    stats = _wait_logged(dep)
    assert stats["dropped"] == 0 and stats["errors"] == 0
    sent = {a["request_id"]: a for a in answers}
    result = dep.flush_inference_log()
    assert (result.entries, result.rows, len(result.commits)) == (6, 36, 1)
    table = dep.inference_log_group().read()
    mine = table[table["request_id"].isin(sent)].sort_values(["request_id", "row"])
    assert len(mine) == 36
    for request_id, rows in mine.groupby("request_id"):
        answer = sent[request_id]
        assert rows[["trip_id", "zone"]].to_dict("records") == keys_sent[request_id]
        assert rows["prediction"].tolist() == answer["predictions"]
        assert np.allclose(rows[["distance", "passengers", "traffic"]].to_numpy(float), answer["vectors"])
        assert np.allclose(rows[["proba_false", "proba_true"]].to_numpy(float), answer["probabilities"])
        assert set(rows["model_version"]) == {1} and set(rows["model_name"]) == {"late_trips"}
    assert mine["predicted_at"].dt.tz is not None
    assert not table.duplicated(["request_id", "row"]).any()

    # interrupted after the Hudi commit, before the stream is trimmed: the next flush writes the same keys again
    more = [dep.predict(entities[50:53]) for _ in range(3)]
    _wait_logged(dep)
    client = fs.online_store.client
    real_xtrim = client.xtrim
    monkeypatch.setattr(client, "xtrim", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("crash")))
    with pytest.raises(ConnectionError):
        dep.flush_inference_log()
    monkeypatch.setattr(client, "xtrim", real_xtrim)
    assert client.xlen(stream_key("fs:", "rides", "late_api")) == 3  # committed, not trimmed
    again = dep.flush_inference_log()
    assert (again.entries, again.rows) == (3, 9)
    assert dep.flush_inference_log().entries == 0  # nothing left; repeating is harmless
    table = dep.inference_log_group().read()
    assert not table.duplicated(["request_id", "row"]).any()
    assert table["request_id"].isin([a["request_id"] for a in more]).sum() == 9
    assert client.xlen(stream_key("fs:", "rides", "late_api")) == 0

    # outcomes that arrive later (the real lateness) join back as labels by entity key
    from fs_dagster.core.serving.inference_log import join_outcomes

    truth = world.td.read("test", with_keys=True)[["trip_id", "late"]].rename(columns={"late": "actual_late"})
    labelled = join_outcomes(dep.inference_log_group(), truth, on=["trip_id"])
    labelled = labelled[labelled["request_id"].isin(sent)]
    expected = truth.set_index("trip_id")["actual_late"]
    assert labelled["actual_late"].tolist() == expected.loc[labelled["trip_id"]].tolist()


class _Firing(threading.Thread):
    """A client firing requests back to back, recording (start, end, model version or error)."""

    def __init__(self, world: World) -> None:
        super().__init__(daemon=True)
        self.client = world.client()
        self.records: list[tuple[float, float, object, str | None]] = []
        self.request_ids: list[str] = []
        self.halt = threading.Event()
        self.payload = {"jsonData": {"entities": [{"trip_id": 5, "zone": "west"}]}}

    def run(self) -> None:
        while not self.halt.is_set():
            start = time.monotonic()
            try:
                answer = self.client.predict(self.payload)
                self.records.append((start, time.monotonic(), answer["model_version"], None))
                self.request_ids.append(answer["request_id"])
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                self.records.append((start, time.monotonic(), None, repr(exc)))

    def gap(self, since: float) -> float:
        return self.longest_gap(since)[0]

    def longest_gap(self, since: float) -> tuple[float, tuple]:
        """The longest time between two answers after ``since``, and the record answered after it."""
        window = [r for r in self.records if r[1] >= since]
        return max((b[1] - a[1], b) for a, b in zip(window, window[1:]))


def _switch_under_fire(world: World, action) -> tuple[object, _Firing, float]:
    """Runs ``action`` (a switch) while a client fires requests; returns its result, the client and the longest
    gap between answers before the switch (the machine's noise level)."""
    firing = _Firing(world)
    firing.start()
    time.sleep(1.0)
    baseline = firing.gap(0)
    report = action()
    time.sleep(0.5)
    firing.halt.set()
    firing.join(30)
    errors = [r for r in firing.records if r[3] is not None]
    assert not errors, errors[:3]
    return report, firing, baseline


def test_rolling_switch_answers_every_request_and_rollback_is_one_call(world) -> None:
    dep = world.dep
    t0 = time.monotonic()
    report, firing, baseline = _switch_under_fire(world, lambda: dep.switch_to(world.v2))
    worst, after = firing.longest_gap(t0)
    print(f"\nlongest gap ends {after[1] - t0 - 1.0:.2f} s after the switch began, answered by v{after[2]} in "
          f"{(after[1] - after[0]) * 1000:.0f} ms")
    switched = firing.records[[r[1] for r in firing.records].index(
        next(r[1] for r in firing.records if r[2] == 2))]
    gap = firing.gap(switched[0] - 2.0)
    print(f"\nswitch v1 -> v2: {len(firing.records)} requests, 0 failed, longest gap {gap * 1000:.0f} ms "
          f"(before the switch {baseline * 1000:.0f} ms); new worker ready after {report.ready_seconds:.2f} s, "
          f"old one gone after {report.total_seconds:.2f} s; "
          f"v1 answers after the first v2: {sum(1 for r in firing.records if r[0] > switched[1] and r[2] == 1)}")
    assert report.live and firing.records[-1][2] == 2
    # no pause: the old worker answers while the new one loads (a SIGHUP would pause for the whole load, ~1 s here)
    assert gap < max(0.25, 10 * baseline)
    assert dep.health()["model_version"] == 2 and dep.refresh().model_version == 2
    assert dep.previous_version == 1
    with pytest.raises(InvalidDataError, match=r"rollback target of deployment\(s\) \['late_api'\]"):
        world.v1.delete()

    answered = list(firing.request_ids)
    report, firing, _ = _switch_under_fire(world, dep.rollback)
    answered += firing.request_ids
    print(f"rollback v2 -> v1: {len(firing.records)} requests, 0 failed, longest gap "
          f"{firing.gap(0) * 1000:.0f} ms")
    assert firing.records[-1][2] == 1 and dep.health()["model_version"] == 1
    assert (dep.model_version, dep.previous_version) == (1, 2)
    assert [h["action"] for h in dep.state["history"]] == ["create", "switch", "switch"]
    # every answer of the retired workers was logged too (a worker sends what it holds when it leaves)
    _wait_logged(dep)
    dep.flush_inference_log()
    logged = set(dep.inference_log_group().read(columns=["request_id"])["request_id"])
    missing = [r for r in answered if r not in logged]
    assert not missing, f"{len(missing)} of {len(answered)} answered requests not logged"


def test_stop_is_prompt_sends_the_inference_log_and_leaves_no_process(world) -> None:
    """A graceful stop used to take ~10 s: the worker, its requests answered, hung in the interpreter's exit
    (joining hudi-rs's native threads) until the 10 s escalation signalled the whole group."""
    dep = world.dep
    _wait_logged(dep)
    dep.flush_inference_log()
    pid = dep.status().pid
    answer = dep.predict([{"trip_id": 7, "zone": "east"}])  # queued in the worker's logger when the stop begins
    started = time.monotonic()
    assert dep.stop() is True
    took = time.monotonic() - started
    print(f"\nstop: {took:.2f} s")
    assert processes.group_members(pid) == []
    assert took < 5.0  # ~1 s measured on the loaded machine (the escalation to the group comes at 10 s)
    assert dep.status().state == "stopped"
    dep.flush_inference_log()  # what the worker still held at the stop reached the stream
    logged = set(dep.inference_log_group().read(columns=["request_id"])["request_id"])
    assert answer["request_id"] in logged
    dep.start()  # (the next tests use the running server)
    assert dep.health()["model_version"] == 1


def test_a_version_that_cannot_load_never_reaches_or_stops_the_server(world, monkeypatch) -> None:
    dep = world.dep
    artifact = world.v3.path / "model.joblib"
    original = artifact.read_bytes()
    artifact.write_bytes(original + b"tampered")
    try:
        with pytest.raises(ModelIntegrityError, match=r"model\.joblib changed"):
            dep.switch_to(3)  # checked here first: the server never hears of it
        assert dep.refresh().model_version == 1
        # fault injection: skip that check, so the server's new worker meets the broken artifact itself
        monkeypatch.setattr(Deployment, "_validate", lambda self, target: None)
        _, firing, _ = _switch_under_fire(world, lambda: _expect_refused(dep))
        assert {r[2] for r in firing.records} == {1}
        assert dep.health()["model_version"] == 1 and dep.refresh().model_version == 1
    finally:
        artifact.write_bytes(original)


def _expect_refused(dep: Deployment) -> None:
    with pytest.raises(DeploymentError, match=r"switch to late_trips v3 refused, still serving late_trips v1: "
                                              r"ModelIntegrityError.*model\.joblib changed"):
        dep.switch_to(3)


def test_a_start_that_cannot_load_says_why_and_leaves_no_process(world) -> None:
    dep = world.fs.create_deployment("broken_api", world.v3)  # checked: v3 loads
    artifact = world.v3.path / "model.joblib"
    original = artifact.read_bytes()
    artifact.write_bytes(original + b"tampered")
    try:
        with pytest.raises(DeploymentError, match=r"broken_api: the server exited with code \d+ at start; loading "
                                                  r"late_trips v3 failed: ModelIntegrityError: .*model\.joblib changed"):
            dep.start(timeout=90)
        assert dep.status().state == "stopped" and dep.state["process"] is None
        assert processes.group_members(_last_spawned_pid(dep)) == []  # nothing of that server is left
    finally:
        artifact.write_bytes(original)
    dep.delete()
    assert not dep.home.exists()
    with pytest.raises(NotFoundError, match=r"deployment 'broken_api' not found .* deployments: late_api"):
        world.fs.get_deployment("broken_api")


def _last_spawned_pid(dep: Deployment) -> int:
    """The pid of the deployment's last server, from the load records its worker left (its parent)."""
    from fs_dagster.core.serving.state_files import read_loads

    records, _ = read_loads(dep.home)
    return records[-1]["ppid"]


def _cli(world: World, *args: str) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(["--root", str(world.fs.root), "--project", "rides", "deployment", *args])
    return code, out.getvalue()


def _impostor(marker: str) -> subprocess.Popen:
    """An unrelated program that happens to carry the deployment's marker in its command line."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", marker])


def _forge(dep: Deployment, **process) -> None:
    def change(state):
        state["process"] = {**state["process"], **process} if state.get("process") else {
            "port": 1, "metrics_port": 2, "started_at": "", "model_version": 1, **process}

    dep._update(change)


def test_stale_state_never_blocks_a_start_nor_kills_a_stranger(world) -> None:
    dep = world.dep
    code, out = _cli(world, "status", "late_api")
    assert code == 0 and "running" in out
    pid = dep.status().pid
    members = processes.group_members(pid)
    assert len(members) >= 3  # master, worker, seldon's metrics server(s)
    os.killpg(pid, signal.SIGKILL)  # the machine's OOM killer, or a reboot
    deadline = time.monotonic() + 10
    while processes.group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    processes.reap(pid)
    status = dep.status()
    assert (status.state, status.stale) == ("stopped", True)

    marker = marker_for(dep.home)
    impostor = _impostor(marker)
    stranger = subprocess.Popen(["sleep", "120"])
    try:
        time.sleep(0.2)
        ticks = processes.start_ticks(impostor.pid)
        cases = [
            dict(pid=impostor.pid, start_ticks=ticks - 7, boot_id=processes.boot_id(), marker=marker),  # pid reused
            dict(pid=impostor.pid, start_ticks=ticks, boot_id="another-boot", marker=marker),  # machine restarted
            dict(pid=stranger.pid, start_ticks=processes.start_ticks(stranger.pid), boot_id=processes.boot_id(),
                 marker=marker),  # a program without the marker
        ]
        for case in cases:
            _forge(dep, **case)
            assert dep.stop() is False  # not ours: nothing is signalled
            assert impostor.poll() is None and stranger.poll() is None
        _forge(dep, **cases[0])
        code, out = _cli(world, "start", "late_api")  # the stale record does not block the start
        assert code == 0 and "running" in out, out
        new_pid = dep.status().pid
        assert new_pid not in (impostor.pid, stranger.pid) and impostor.poll() is None
        assert world.dep.predict([{"trip_id": 5, "zone": "west"}])["model_version"] == 1
        code, out = _cli(world, "health", "late_api")
        assert code == 0 and json.loads(out)["model_version"] == 1
        code, out = _cli(world, "list")
        assert code == 0 and "late_api" in out and "running" in out
        code, out = _cli(world, "stop", "late_api")
        assert code == 0 and "stopped" in out
        assert processes.group_members(new_pid) == []  # no process of the server survives
        assert impostor.poll() is None and stranger.poll() is None
        code, out = _cli(world, "status", "late_api")
        assert code == 3 and "stopped" in out
    finally:
        for process in (impostor, stranger):
            process.kill()
            process.wait()
