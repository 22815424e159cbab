"""Online store sync of online-enabled feature groups (real embedded Valkey) and feature-view vectors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from fs_dagster import FeatureStore, InvalidDataError, NotFoundError
from fs_dagster.core.feature_group import OnlineSyncError
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.core.online.online_store import OnlineStoreConfig

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture()
def fs(tmp_path):
    store = FeatureStore(root=tmp_path / "store", project="p")
    yield store
    EmbeddedValkey(store.root).stop()  # the embedded server of this root, by its recorded pid


def _sensors(fs: FeatureStore, **kwargs):
    return fs.get_or_create_feature_group(
        "sensors", primary_key=["sensor"], event_time="ts", partition_key=["site"], online_enabled=True, **kwargs
    )


def _rows(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sensor", "site", "ts", "value"])


def test_sync_writes_latest_guards_older_and_propagates_deletes(fs) -> None:
    fg = _sensors(fs)
    fg.insert(_rows(("a", "x", T, 1.0), ("b", "x", T, 2.0), ("a", "x", T - timedelta(hours=1), 0.5)))
    assert fg.last_online_sync.full and fg.last_online_sync.keys_written == 2
    assert fg.get_online([("a",)])[0]["value"] == 1.0  # newest event time of the batch

    late = fg.insert(_rows(("a", "x", T - timedelta(days=1), -1.0)))  # a backfill of an older value
    assert (late.instant, late.rows_outdated) == (None, 1)  # ignored offline too: both stores keep the newer row
    assert fg.get_online([("a",)])[0]["value"] == 1.0
    assert fg.read(where="sensor = 'a'")["value"].tolist() == [1.0]

    fg.insert(_rows(("a", "x", T, 9.0)))  # equal event time, later commit: wins
    assert fg.get_online([("a",)])[0]["value"] == 9.0 and not fg.last_online_sync.full

    fg.delete(pd.DataFrame({"sensor": ["b"], "site": ["x"]}))
    assert fg.last_online_sync.keys_deleted == 1 and fg.get_online([("b",)]) == [None]


def test_full_sync_of_a_key_living_in_two_partitions_keeps_the_newest(fs) -> None:
    """A full sync streams the snapshot file by file without a uniqueness pass: a key in two partitions (two
    files) is settled by the guard, whichever file comes first."""
    fg = _sensors(fs)
    many = [(f"s{i}", "x", T, float(i)) for i in range(2500)]  # several write batches per file
    fg.insert(_rows(*many, ("a", "x", T + timedelta(hours=1), 2.0), ("b", "x", T, 3.0)))
    fg.insert(_rows(("a", "y", T, 1.0), ("b", "y", T + timedelta(hours=1), 4.0)))  # other partition, same keys
    assert fg.count() == 2504
    fs.online_store.client.flushdb()
    result = fg.sync_online(full=True)
    assert result.full and result.rows_offered == 2504
    assert fg.get_online([("a",), ("b",), ("s2499",)]) == [
        {"sensor": "a", "site": "x", "ts": T + timedelta(hours=1), "value": 2.0},  # newer in the first file
        {"sensor": "b", "site": "y", "ts": T + timedelta(hours=1), "value": 4.0},  # newer in the second file
        {"sensor": "s2499", "site": "x", "ts": T, "value": 2499.0},
    ]


def test_deleting_a_key_in_one_partition_serves_its_record_in_another(fs) -> None:
    """A key whose partition value changed lives in both partitions offline; deleting its newer record (in one
    partition) must leave the older one served online, as offline, not delete the key online."""
    fg = _sensors(fs)
    fg.insert(_rows(("a", "x", T, 1.0), ("b", "x", T, 5.0)))
    fg.insert(_rows(("a", "y", T + timedelta(hours=1), 2.0)))  # moved to site y, newer
    assert fg.get_online([("a",)])[0]["site"] == "y"
    fg.delete(pd.DataFrame({"sensor": ["a"], "site": ["y"]}))  # the newer record goes; the one in x stays
    assert fg.read(where="sensor = 'a'")["site"].tolist() == ["x"]
    assert fg.get_online([("a",), ("b",)]) == [
        {"sensor": "a", "site": "x", "ts": T, "value": 1.0},
        {"sensor": "b", "site": "x", "ts": T, "value": 5.0},
    ]
    assert (fg.last_online_sync.keys_deleted, fg.last_online_sync.keys_written) == (0, 1)
    fg.delete(pd.DataFrame({"sensor": ["a"], "site": ["x"]}))  # the last record: gone online too
    assert fg.get_online([("a",)]) == [None] and fg.last_online_sync.keys_deleted == 1


def test_a_new_feature_resyncs_every_row_including_files_written_before_it(fs) -> None:
    """A new column changes the layout (schema id in the key), so the next sync is a full one; it reads files that
    predate the column (other partitions) with the column as nulls."""
    fg = _sensors(fs)
    fg.insert(_rows(("a", "x", T, 1.0), ("b", "y", T, 2.0)))
    fg.insert(_rows(("c", "y", T, 3.0)).assign(unit="C"))  # only site y's file gains the column
    assert fg.last_online_sync.full and fg.last_online_sync.keys_written == 3
    assert [(r["value"], r["unit"]) for r in fg.get_online([("a",), ("b",), ("c",)])] == [
        (1.0, None), (2.0, None), (3.0, "C")]


def test_wiped_online_store_is_fully_resynced(fs) -> None:
    fg = _sensors(fs)
    fg.insert(_rows(("a", "x", T, 1.0), ("b", "y", T, 2.0)))
    fs.online_store.client.flushdb()
    result = fg.sync_online()
    assert result.full and result.keys_written == 2
    assert [r["value"] for r in fg.get_online([("a",), ("b",)])] == [1.0, 2.0]


def test_online_store_refusing_writes_keeps_offline_commit_and_next_sync_repairs(fs) -> None:
    """A reachable server that refuses the writes (here: out of memory) fails the sync, not the commit."""
    fg = _sensors(fs)
    fg.insert(_rows(("a", "x", T, 1.0)))
    client = fs.online_store.client
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(used + 64 * 1024))
    try:
        many = pd.concat([_rows((f"s{i}", "x", T, float(i))) for i in range(3000)], ignore_index=True)
        with pytest.raises(OnlineSyncError, match="offline commit .* is kept") as caught:
            fg.insert(many)
        assert fg.latest_commit() == caught.value.instant and fg.count() == 3001
    finally:
        client.config_set("maxmemory", "0")
    assert fg.sync_online().keys_written >= 1
    assert fg.get_online([("s2999",)])[0]["value"] == 2999.0


def test_unavailable_online_store_keeps_offline_commit_and_next_sync_repairs(tmp_path) -> None:
    root = tmp_path / "store"
    server = EmbeddedValkey(root).ensure_running()
    fs = FeatureStore(root=root, project="p", online=OnlineStoreConfig(url=server.url))
    try:
        fg = _sensors(fs)
        fg.insert(_rows(("a", "x", T, 1.0)))
        EmbeddedValkey(root).stop()
        with pytest.raises(OnlineSyncError, match=rf"127.0.0.1:{server.port}") as caught:
            fg.insert(_rows(("a", "x", T + timedelta(hours=1), 2.0)))
        assert fg.latest_commit() == caught.value.instant  # the offline commit is kept
        restarted = EmbeddedValkey(root).ensure_running()  # AOF brings back the old value and marker
        repaired = FeatureStore(root=root, project="p",
                                online=OnlineStoreConfig(url=restarted.url))
        fg2 = repaired.get_feature_group("sensors")
        assert fg2.get_online([("a",)])[0]["value"] == 1.0
        assert fg2.sync_online().keys_written == 1
        assert fg2.get_online([("a",)])[0]["value"] == 2.0
    finally:
        EmbeddedValkey(root).stop()


def test_ttl_and_types_round_trip(fs) -> None:
    fg = fs.get_or_create_feature_group(
        "typed", primary_key=["k", "day"], event_time="ts", online_enabled=True, online_ttl_seconds=3600
    )
    frame = pd.DataFrame({
        "k": [1], "day": [pd.Timestamp("2024-01-02").date()], "ts": [T], "f": [1.25], "i": [7], "s": ["x"],
        "b": [True], "nan": [float("nan")],
    })
    fg.insert(frame)
    [row] = fg.get_online([(1, "2024-01-02")])
    assert row == {"k": 1, "day": "2024-01-02", "ts": T, "f": 1.25, "i": 7, "s": "x", "b": True, "nan": None}
    key = next(fs.online_store.scan_keys("fs:p:typed:*|*"))
    assert 0 < fs.online_store.client.ttl(key) <= 3600


def _view(fs):
    flights = fs.get_or_create_feature_group("flights", primary_key=["flight_id"], event_time="ts", online_enabled=True)
    flights.insert(pd.DataFrame({
        "flight_id": ["f1", "f2"], "ts": [T, T], "origin": ["JFK", "LGA"], "hour": [T, T],
        "tailnum": ["N1", "N2"], "distance": [100, 200], "delayed": [True, False],
    }))
    weather = fs.get_or_create_feature_group(
        "weather", primary_key=["origin", "time_hour"], event_time="time_hour", online_enabled=True
    )
    weather.insert(pd.DataFrame({"origin": ["JFK", "LGA"], "time_hour": [T, T], "temp": [1.5, 2.5]}))
    planes = fs.get_or_create_feature_group("planes", primary_key=["tailnum"], online_enabled=True)
    planes.insert(pd.DataFrame({"tailnum": ["N1"], "seats": [150], "distance": [7]}))
    query = (
        flights.select(["distance", "delayed"])
        .join(weather.select(["temp"]), left_on=["origin", "hour"])
        .join(planes.select(["seats", "distance"]), on=["tailnum"])
    )
    return fs.get_or_create_feature_view("delays", 1, query, labels=["delayed"], description="delay features")


def test_feature_vectors_order_types_missing_and_passed(fs) -> None:
    fv = _view(fs)
    assert fv.feature_names == ["distance", "temp", "seats", "planes_distance"]  # clash -> group prefix
    # weather is a time series served by origin (its latest hour): the hour is a join key for training data only
    assert fv.serving_keys == ["flight_id", "origin", "tailnum"]
    assert fv.join_keys == ["flight_id", "origin", "hour", "tailnum"]
    e1 = {"flight_id": "f1", "origin": "JFK", "hour": T, "tailnum": "N1"}
    e2 = {"flight_id": "f2", "origin": "LGA", "hour": T.isoformat(), "tailnum": "N2"}
    assert fv.get_feature_vector(e1) == [100, 1.5, 150, 7]
    assert fv.get_feature_vector(e1, return_type="dict")["temp"] == 1.5
    with pytest.raises(NotFoundError, match=r"planes:1 for \{'tailnum': 'N2'\}"):
        fv.get_feature_vector(e2)
    assert fv.get_feature_vector(e2, allow_missing=True) == [200, 2.5, None, None]
    assert fv.get_feature_vector(e2, passed_features={"seats": 99, "planes_distance": 1}) == [200, 2.5, 99, 1]
    frame = fv.get_feature_vectors([e1, e2], allow_missing=True, return_type="pandas")
    assert list(frame.columns) == fv.feature_names and frame["distance"].dtype.kind == "i"
    assert fv.get_feature_vectors([e1], return_type="numpy").shape == (1, 4)
    with pytest.raises(InvalidDataError, match="lacks serving key"):
        fv.get_feature_vector({"flight_id": "f1"})


def test_feature_views_are_versioned_in_the_registry(fs) -> None:
    fv = _view(fs)
    again = fs.get_feature_view("delays")
    assert again.feature_names == fv.feature_names and again.labels == ("delayed",)
    flights = fs.get_feature_group("flights")
    with pytest.raises(InvalidDataError, match="immutable"):
        fs.get_or_create_feature_view("delays", 1, flights.select(["distance"]), labels=[])
    v2 = fs.get_or_create_feature_view("delays", 2, flights.select(["distance"]), labels=[])
    assert fs.get_feature_view("delays").version == 2 and v2.feature_names == ["distance"]
    with pytest.raises(InvalidDataError, match="no feature"):
        fs.get_or_create_feature_view("bad", 1, flights.select(["nope"]))


def double_it(value):  # a user transformation (module level, importable by path)
    return value * 2


def test_transformations_identical_in_training_frame_and_served_vector(fs) -> None:
    from fs_dagster.core.transformations import FittedTransformations, transformation_function

    transformation_function(double_it)
    _view(fs)
    flights = fs.get_feature_group("flights")
    weather = fs.get_feature_group("weather")
    query = flights.select(["distance", "origin"]).join(weather.select(["temp"]), left_on=["origin", "hour"])
    fv = fs.get_or_create_feature_view(
        "scaled", 1, query,
        transformation_functions={"distance": "standard_scaler", "origin": "label_encoder",
                                  "temp": f"{__name__}:double_it"},
    )
    entry = {"flight_id": "f2", "origin": "LGA", "hour": T}
    with pytest.raises(InvalidDataError, match="init_serving"):
        fv.get_feature_vector(entry)
    training = pd.DataFrame({"distance": [100, 200], "origin": ["JFK", "LGA"], "temp": [1.5, 2.5]})
    fitted = fv.fit_transformations(training)
    assert fitted.params["distance"] == {"mean": 150.0, "std": 50.0}
    restored = FittedTransformations.from_dict(fitted.to_dict())  # stored as JSON, e.g. with a training dataset
    fv.init_serving(restored)
    served = fv.get_feature_vector(entry)
    trained = fitted.transform_frame(training).iloc[1].tolist()
    assert served == trained == [1.0, 1, 5.0]
    assert fs.get_feature_view("scaled").transformation_functions["origin"] == "label_encoder"
    with pytest.raises(InvalidDataError, match="unknown transformation"):
        fs.get_or_create_feature_view("bad_tf", 1, query, transformation_functions={"temp": "cube"})
