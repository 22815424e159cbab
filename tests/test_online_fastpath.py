"""The online store's fast paths give exactly what the straightforward code gives.

* vectorized value encoding: the same bytes as MessagePack row by row (``encode_values_rowwise``), for every
  supported column type, nulls, NaN, integer and string size boundaries, dictionary columns; other types fall back;
* pipelined guarded writes (pre-packed RESP, MSETNX for new keys, the batched script for the rest, NOSCRIPT and ACL
  fallbacks): the same stored values and written counts as a sequential model of the guard;
* feature vectors assembled column-wise: the same vectors as the per-entry path (``passed_features`` forces it).
"""

from __future__ import annotations

import math
import os
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import msgpack
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import valkey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fs_dagster import FeatureStore
from fs_dagster.core import feature_view
from fs_dagster.core.errors import InvalidDataError, NotFoundError
from fs_dagster.core.online import pipeline
from fs_dagster.core.online.codec import HEADER_BYTES, OnlineLayout, _plain_values, msgpack_column
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.core.online.online_store import OnlineStore, OnlineStoreConfig

T = datetime(2024, 1, 1, tzinfo=timezone.utc)
I1, I2, I3 = "20240101000000001", "20240101000000002", "20240101000000003"
INT_EDGES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, -1, -32, -33, -128, -129,
             -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]


def _same_as_msgpack(array: pa.Array) -> None:
    expected = [msgpack.packb(v) for v in _plain_values(pa.chunked_array([array]))]
    assert msgpack_column(array).to_pylist() == expected, array.type


@pytest.mark.parametrize(
    "array",
    [
        pa.array(INT_EDGES + [None], pa.int64()),
        pa.array([0, 127, 128, 2**32, 2**63, 2**64 - 1, None], pa.uint64()),
        *[pa.array([np.iinfo(t.to_pandas_dtype()).min, np.iinfo(t.to_pandas_dtype()).max, 0, None], t)
          for t in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16(), pa.uint32())],
        pa.array([1.5, float("nan"), None, -0.0, float("inf"), -1e300], pa.float64()),
        pa.array([1.5, float("nan"), None, 3.25], pa.float32()),
        pa.array([1.5, None], pa.float16()),
        pa.array([True, False, None]),
        pa.array(["", "a", "x" * 31, "x" * 32, "é" * 20, "y" * 255, "y" * 256, "z" * 65535, "z" * 65536, None,
                  "日本"]),
        pa.array(["a", None], pa.large_string()),
        pa.array([b"", b"a", b"x" * 300, b"z" * 70000, None]),
        pa.array([b"ab", None], pa.binary(2)),
        pa.array([T, None, datetime(1960, 5, 1, 3, 4, 5, 6, tzinfo=timezone.utc)], pa.timestamp("us", tz="UTC")),
        pa.array([1000, None, 10**18], pa.timestamp("ns", tz="UTC")),
        pa.array([1, 2], pa.timestamp("s")),
        pa.array([date(2024, 1, 2), None, date(1900, 1, 1)], pa.date32()),
        pa.array(["a", "b", None, "a"]).dictionary_encode(),
        pa.array([None, None], pa.null()),
        pa.array([], pa.int64()),
        pa.array([], pa.string()),
    ],
    ids=lambda a: str(a.type),
)
def test_vectorized_packing_is_byte_identical(array: pa.Array) -> None:
    _same_as_msgpack(array)


@settings(max_examples=60, deadline=None)
@given(
    ints=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=40),
    floats=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=40),
    texts=st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=40),
)
def test_vectorized_packing_random(ints, floats, texts) -> None:
    _same_as_msgpack(pa.array(ints, pa.int64()))
    _same_as_msgpack(pa.array(floats, pa.float64()))
    _same_as_msgpack(pa.array(texts, pa.string()))


def _layout(schema: pa.Schema, keys=("k",), event_time: str | None = "ts", prefix: str = "fs:") -> OnlineLayout:
    return OnlineLayout.build(prefix, "p", "g", 1, schema, list(keys), event_time)


def test_encoded_values_match_the_row_wise_encoder() -> None:
    table = pa.table({
        "k": ["a", "b", "c"],
        "ts": pa.array([T, T - timedelta(days=20000), T], pa.timestamp("us", tz="UTC")),  # pre-1970: padded header
        "i": pa.array([1, None, -70000]),
        "f": [1.5, float("nan"), None],
        "s": ["x", None, "é" * 40],
        "b": [True, None, False],
        "d": pa.array([date(2024, 1, 1)] * 3),
    })
    layout = _layout(table.schema)
    for instants in (I1, [I1, I2, I3], pa.array([I1, "20240101000000", I3]), pa.chunked_array([[I1], [I2, I3]])):
        rows = layout.encode_rows(table, instants)
        expected = layout.encode_values_rowwise(table, instants)
        assert rows.values().to_pylist() == expected == layout.encode_values(table, instants)
        assert list(rows.value_lengths) == [len(v) for v in expected]
        assert rows.keys.to_pylist() == [layout.key_for([k]) for k in ["a", "b", "c"]]
    static = _layout(table.schema, event_time=None)
    assert static.encode_values(table, I1) == static.encode_values_rowwise(table, I1)
    only_keys = _layout(pa.schema([("k", pa.string())]), event_time=None)
    keys_table = pa.table({"k": ["a", "b"]})
    assert only_keys.encode_values(keys_table, I1) == only_keys.encode_values_rowwise(keys_table, I1)


def test_encoding_errors_and_fallbacks_are_the_row_wise_ones() -> None:
    table = pa.table({"k": ["a"], "ts": pa.array([T], pa.timestamp("us", tz="UTC")), "v": [1.0]})
    layout = _layout(table.schema)
    for bad, match in (("2024", "instant"), ([I1, I2], "2 commit instants for 1 rows"), (["x" * 17], "instant")):
        with pytest.raises(InvalidDataError, match=match):
            layout.encode_rows(table, bad)
        with pytest.raises(InvalidDataError, match=match):
            layout.encode_values_rowwise(table, bad)
    decimals = pa.table({"k": ["a"], "ts": table["ts"], "v": pa.array([Decimal("1.5")])})
    with pytest.raises(TypeError):  # msgpack cannot pack a Decimal: same error as before, nothing sent
        _layout(decimals.schema).encode_rows(decimals, I1)
    lists = pa.table({"k": ["a"], "ts": table["ts"], "v": pa.array([[1, 2]])})  # no vectorized packer: row-wise
    assert _layout(lists.schema).encode_values(lists, I1) == _layout(lists.schema).encode_values_rowwise(lists, I1)


# --- guarded writes against a model ------------------------------------------------------------------------


@pytest.fixture()
def server(tmp_path):
    info = EmbeddedValkey(tmp_path).ensure_running()
    yield info
    EmbeddedValkey(tmp_path).stop()


def _store(server, **kwargs) -> OnlineStore:
    return OnlineStore.connect(OnlineStoreConfig(url=server.url, **kwargs))


class Model:
    """The guard, one key after the other: write if the header is >= the stored one."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}

    def write(self, keys: list[bytes], values: list[bytes]) -> int:
        written = 0
        for key, value in zip(keys, values):
            old = self.values.get(key)
            if old is None or old[:HEADER_BYTES] <= value[:HEADER_BYTES]:
                self.values[key] = value
                written += 1
        return written


SCHEMA = pa.schema([("k", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("v", pa.int64())])


def _table(rows: list[tuple[str, int, int]]) -> pa.Table:
    return pa.table({
        "k": [r[0] for r in rows],
        "ts": [T + timedelta(seconds=r[1]) for r in rows],
        "v": [r[2] for r in rows],
    }, schema=SCHEMA)


write_batches = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from([f"k{i}" for i in range(12)]), st.integers(0, 3), st.integers(0, 9)),
                 min_size=1, max_size=30),
        st.sampled_from([I1, I2, I3]),
        st.sampled_from([None, 3600]),
    ),
    min_size=1, max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=write_batches)
def test_pipelined_guarded_writes_match_the_sequential_guard(server, monkeypatch, writes) -> None:
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 4)  # several chunks, fallbacks interleaved with later chunks
    store = _store(server, batch_size=3)
    try:
        store.client.flushdb()
        layout = _layout(SCHEMA)
        model = Model()
        for rows, instant, ttl in writes:
            table = _table(rows)
            expected = model.write(layout.encode_keys(table), layout.encode_values(table, instant))
            assert store.write(layout, table, instant, ttl_seconds=ttl) == expected
        stored = dict(zip(model.values, store.mget(list(model.values))))
        assert stored == model.values
        assert store.client.dbsize() == len(model.values)
    finally:
        store.close()


def test_new_keys_take_msetnx_existing_keys_watch_and_ttl_the_script(server, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 10)
    store = _store(server, batch_size=5)
    layout = _layout(SCHEMA)
    admin = valkey.Valkey.from_url(server.url)

    def calls() -> dict[str, int]:
        return {k.removeprefix("cmdstat_"): v["calls"] for k, v in admin.info("commandstats").items()}

    admin.config_resetstat()
    assert store.write(layout, _table([(f"k{i}", 1, i) for i in range(40)]), I1) == 40
    assert calls()["msetnx"] == 8 and "evalsha" not in calls() and "exec" not in calls()

    mixed = _table([(f"k{i}", 1 if i % 2 else 0, -i) for i in range(30, 60)])  # 10 existing (5 newer), 20 new
    admin.config_resetstat()
    assert store.write(layout, mixed, I2) == 25
    assert calls()["exec"] == 6 and calls()["msetnx"] == 1 and "evalsha" not in calls()  # (the probe)
    expected = list(range(30)) + [-i if i % 2 else i for i in range(30, 40)] + [-i for i in range(40, 60)]
    assert [row[-1] for row in store.get(layout, [(f"k{i}",) for i in range(60)])] == expected

    admin.config_resetstat()
    assert store.write(layout, _table([(f"k{i}", 0, 7) for i in range(60)]), I1) == 0  # all older: UNWATCH only
    assert "exec" not in calls() and calls()["unwatch"] == 12

    admin.script_flush()  # the server forgot the script: loaded (pipelined) before the first call
    admin.config_resetstat()
    assert store.write(layout, _table([(f"k{i}", 2, 100 + i) for i in range(60)]), I3, ttl_seconds=60) == 60
    assert calls()["evalsha"] == 12 and calls()["script|load"] == 1
    assert [row[-1] for row in store.get(layout, [(f"k{i}",) for i in range(60)])] == [100 + i for i in range(60)]
    assert 0 < admin.ttl(layout.key_for(("k1",))) <= 60
    store.close()
    admin.close()


def test_a_batch_changed_meanwhile_is_tried_again(server, monkeypatch) -> None:
    store = _store(server, batch_size=4)
    layout = _layout(SCHEMA)
    admin = valkey.Valkey.from_url(server.url)
    assert store.write(layout, _table([(f"k{i}", 0, i) for i in range(8)]), I1) == 8
    compare = pipeline._compare
    interfered: list[bool] = []

    def meddling(reply, headers):  # another writer sets k1 between our MGET and our EXEC (once)
        if not interfered:
            interfered.append(True)
            admin.set(layout.key_for(("k1",)), layout.encode_values(_table([("k1", 5, -1)]), I1)[0])
        return compare(reply, headers)

    monkeypatch.setattr(pipeline, "_compare", meddling)
    assert store.write(layout, _table([(f"k{i}", 1, 10 + i) for i in range(8)]), I2) == 7  # k1 is newer now
    assert [row[-1] for row in store.get(layout, [(f"k{i}",) for i in range(8)])] == [10, -1, 12, 13, 14, 15, 16, 17]
    store.close()
    admin.close()


def test_concurrent_writers_over_existing_keys_end_with_the_newest_value(server, monkeypatch) -> None:
    """Writers racing over the same existing keys (optimistic transactions on two lanes each, retries, the script
    for batches still contended): every key ends with the value of the highest header, as if written one by one."""
    import random
    import threading

    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 64)
    n_keys, writers = 1500, 4
    layout = _layout(SCHEMA)
    rng = random.Random(5)
    seconds = [rng.sample(range(writers), writers) for _ in range(n_keys)]  # per key: each writer's event time
    instants = [f"2024010100000{w:04d}" for w in range(writers)]
    tables = [_table([(f"k{i}", 1 + seconds[i][w], 1000 * w + i) for i in rng.sample(range(n_keys), n_keys)])
              for w in range(writers)]
    setup = _store(server, batch_size=25)
    setup.write(layout, _table([(f"k{i}", 0, -1) for i in range(n_keys)]), I1)  # older values: every key exists
    setup.close()
    counts: list[int] = []
    failures: list[BaseException] = []

    def write(w: int) -> None:
        store = _store(server, batch_size=25)
        try:
            counts.append(store.write(layout, tables[w], instants[w]))
        except BaseException as exc:  # (reported by the main thread)
            failures.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    winner = [max(range(writers), key=lambda w: seconds[i][w]) for i in range(n_keys)]
    stored = _store(server).get(layout, [(f"k{i}",) for i in range(n_keys)])
    assert [row[-1] for row in stored] == [1000 * winner[i] + i for i in range(n_keys)]
    assert n_keys <= sum(counts) <= writers * n_keys


@pytest.mark.parametrize("denied", ["msetnx", "watch", "mset"])
def test_an_acl_without_msetnx_or_transactions_falls_back_to_the_script(server, denied) -> None:
    admin = valkey.Valkey.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "limited", "on", ">pw-1234", "~*", "+@all", f"-{denied}")
    store = _store(server, username="limited", password="pw-1234", batch_size=4)
    layout = _layout(SCHEMA)
    assert store.write(layout, _table([(f"n{i}", 1, i) for i in range(10)]), I1) == 10
    assert store.write(layout, _table([(f"n{i}", 2, -i) for i in range(10)]), I2) == 10  # existing keys
    assert store.write(layout, _table([(f"n{i}", 3, 2 * i) for i in range(10)]), I2) == 10
    assert (store._msetnx, store._watch) == {"msetnx": (False, True), "watch": (True, False),
                                             "mset": (True, False)}[denied]  # remembered
    assert [r[-1] for r in store.get(layout, [(f"n{i}",) for i in range(10)])] == [2 * i for i in range(10)]
    store.close()
    admin.execute_command("ACL", "DELUSER", "limited")
    admin.close()


def test_write_encoded_lists_take_the_same_path(server) -> None:
    store = _store(server, batch_size=2)
    layout = _layout(SCHEMA)
    table = _table([("a", 1, 1), ("b", 1, 2), ("a", 0, 3)])  # a repeated key, older: not written
    keys, values = layout.encode_keys(table), layout.encode_values(table, I1)
    assert store.write_encoded(keys, values) == 2
    assert store.mget(keys[:2]) == values[:2]
    with pytest.raises(ValueError):
        store.write_encoded(keys, values[:1])
    store.close()


# --- feature vectors: column-wise assembly == per-entry assembly --------------------------------------------


def _flights_weather_planes(fs: FeatureStore, flights: int = 20):
    """flights (by flight_id: origin, hour, tailnum, dist), weather (a time series by origin: 5 hours each, the
    latest served), planes (by tailnum)."""
    hours = [T + timedelta(hours=h) for h in range(5)]
    weather = fs.get_or_create_feature_group(
        "weather", primary_key=["origin", "hour"], event_time="hour", online_enabled=True)
    weather.insert(pd.DataFrame({
        "origin": ["JFK"] * 5 + ["LGA"] * 5, "hour": hours * 2, "temp": np.arange(10) / 2,
        "wind": [1.0, None] * 5, "station": ["a", "b"] * 5,
    }))
    planes = fs.get_or_create_feature_group("planes", primary_key=["tailnum"], online_enabled=True)
    planes.insert(pd.DataFrame({
        "tailnum": ["N1", "N2"], "built": [date(2001, 1, 1), date(1999, 5, 5)],
        "seen": [T, T + timedelta(days=1)], "seats": [150, 9],
    }))
    rows = fs.get_or_create_feature_group("flights", primary_key=["flight_id"], event_time="dep",
                                          online_enabled=True)
    rows.insert(pd.DataFrame({
        "flight_id": [f"f{i}" for i in range(flights)], "dep": [hours[i % 5] for i in range(flights)],
        "origin": [("JFK", "LGA")[i % 2] for i in range(flights)], "hour": [hours[i % 5] for i in range(flights)],
        "tailnum": [("N1", "N1", "N2")[i % 3] for i in range(flights)], "dist": [100 * i for i in range(flights)],
    }))
    entries = [{"flight_id": f"f{i}", "origin": ("JFK", "LGA")[i % 2], "tailnum": ("N1", "N1", "N2")[i % 3]}
               for i in range(flights)]
    return rows, weather, planes, entries


def test_column_wise_vectors_equal_the_per_entry_path(tmp_path) -> None:
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        flights, weather, planes, entries = _flights_weather_planes(fs)
        queries = [
            flights.select(["dist"]).join(weather.select_all(), left_on=["origin", "hour"])
            .join(planes.select_all(), on=["tailnum"]),
            flights.select(["origin", "dist"]).join(weather.select(["station", "temp"]), left_on=["origin", "hour"])
            .join(planes.select(["seen"]), on=["tailnum"]),
            flights.select(["dist"]).join(weather.select(["wind"]), left_on=["origin", "hour"])
            .join(planes.select(["seats", "built"]), on=["tailnum"]),
            flights.select(["dist"]),
        ]
        for index, query in enumerate(queries):
            view = fs.get_or_create_feature_view(f"v{index}", 1, query)
            fast = view.get_feature_vectors(entries)
            assert view._serving_plan().fast
            slow = view.get_feature_vectors(entries, passed_features=[{"unused": 1}] * len(entries))
            assert fast == slow
            assert view.get_feature_vector(entries[3]) == slow[3]
            assert view.get_feature_vectors([]) == []
        view = fs.get_feature_view("v0")
        # weather is served by origin: its latest hour (04:00; LGA: temp 4.5, wind null), whatever the flight's hour
        assert view.get_feature_vector(entries[3]) == [300, 4.5, None, "b", date(2001, 1, 1), T, 150]
        assert view.get_feature_vector(entries[4])[:4] == [400, 2.0, 1.0, "a"]
        with pytest.raises(InvalidDataError, match="lacks serving key"):
            view.get_feature_vectors([entries[0], {"flight_id": "f1", "origin": "JFK"}])
    finally:
        EmbeddedValkey(fs.root).stop()


def test_chunked_encoding_refuses_bad_rows_before_anything_is_sent(server, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 4)  # rows are encoded chunk by chunk while earlier ones are sent
    store = _store(server, batch_size=2)
    try:
        store.client.flushdb()
        layout = _layout(SCHEMA)
        good = _table([(f"k{i}", 0, i) for i in range(20)])
        bad_time = good.set_column(1, "ts", pa.array([T] * 19 + [None], SCHEMA.field("ts").type))
        with pytest.raises(InvalidDataError, match="event time column 'ts' has 1 null"):
            store.write(layout, bad_time, I1)
        bad_key = good.set_column(0, "k", pa.array([f"k{i}" for i in range(19)] + [None]))
        with pytest.raises(InvalidDataError, match="key column 'k' has 1 null"):
            store.write(layout, bad_key, I1)
        with pytest.raises(InvalidDataError, match="not a 17-digit Hudi instant"):
            store.write(layout, good, pa.array([I1] * 19 + ["2024"]))
        assert store.client.dbsize() == 0  # nothing half-written
        assert store.write(layout, good, pa.array([I1] * 20)) == 20
        assert store.mget(layout.encode_keys(good)) == layout.encode_values(good, I1)
    finally:
        store.close()


def test_vectors_of_wide_groups_decode_in_one_call(tmp_path) -> None:
    """A group with 16+ values has a 3-byte MessagePack array header; the one-call decoder cuts it off too."""
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        wide = fs.get_or_create_feature_group("wide", primary_key=["id"], online_enabled=True)
        wide.insert(pd.DataFrame({"id": [1, 2], **{f"f{i}": [i, -i] for i in range(17)}}))
        narrow = fs.get_or_create_feature_group("narrow", primary_key=["id"], online_enabled=True)
        narrow.insert(pd.DataFrame({"id": [1, 2], "name": ["a", "b"], "when": [T, T]}))
        view = fs.get_or_create_feature_view("v", 1, wide.select_all().join(narrow.select_all(), on=["id"]))
        vectors = view.get_feature_vectors([{"id": 2}, {"id": 1}])
        assert vectors == [[-i for i in range(17)] + ["b", T], list(range(17)) + ["a", T]]
        assert vectors == view.get_feature_vectors([{"id": 2}, {"id": 1}], passed_features=[{"x": 0}] * 2)
    finally:
        EmbeddedValkey(fs.root).stop()


def test_big_batches_are_looked_up_in_pipelined_pieces(tmp_path, monkeypatch) -> None:
    """A big batch is fetched as several pipelined MGETs (each piece assembled while the server reads the next);
    the vectors, the missing-row handling and the errors are those of the one-MGET path, and a piece that fails
    after earlier ones were sent leaves no stale replies on the connection."""
    monkeypatch.setattr(feature_view, "_PIECES_MIN_ENTRIES", 4)
    monkeypatch.setattr(feature_view, "_PIECE_ENTRIES", 3)
    monkeypatch.setattr(feature_view, "_MIN_PIECE_ENTRIES", 1)
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        flights, weather, planes, entries = _flights_weather_planes(fs)
        view = fs.get_or_create_feature_view(
            "v", 1, flights.select(["dist"]).join(weather.select(["temp"]), left_on=["origin", "hour"])
            .join(planes.select(["seats"]), on=["tailnum"]))
        expected = [[100 * i, 2.0 if e["origin"] == "JFK" else 4.5, 150 if e["tailnum"] == "N1" else 9]
                    for i, e in enumerate(entries)]
        client = fs.online_store.client

        def mgets() -> int:
            return client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)

        before = mgets()
        assert view.get_feature_vectors(entries) == expected
        assert mgets() - before == 7  # 20 entries in pieces of 3
        assert view.get_feature_vectors(entries, passed_features=[{"unused": 1}] * 20) == expected  # one MGET

        unknown = [*entries[:17], {**entries[17], "tailnum": "N9"}, *entries[18:]]  # missing in the 6th piece
        with pytest.raises(NotFoundError, match="N9"):
            view.get_feature_vectors(unknown)
        assert view.get_feature_vectors(unknown, allow_missing=True) == [
            [*v[:2], None] if i == 17 else v for i, v in enumerate(expected)]
        assert view.get_feature_vectors(unknown, allow_missing=True, return_type="pandas")["seats"].isna().sum() == 1

        # pieces 1-5 (other rows than the next call's) are sent before the 6th piece's keys are built
        lacking = [*reversed(entries[:16]), {"flight_id": "f1", "origin": "JFK"}, *entries[17:]]
        with pytest.raises(InvalidDataError, match=r"lacks serving key\(s\) \['tailnum'\]"):
            view.get_feature_vectors(lacking)
        assert view.get_feature_vectors(entries) == expected  # the connection is clean
        assert view.get_feature_vector(entries[5]) == expected[5]
    finally:
        EmbeddedValkey(fs.root).stop()


# --- batches as frames: built column-wise, the same values as the lists ----------------------------------


TS = pa.timestamp("us", tz="UTC")


def _things(n: int) -> pa.Table:
    """Every feature type, with nulls, NaN, +-inf, -0.0, pre-1970 times, strings of every MessagePack size class."""
    texts = ["", "é", "x" * 40, "y" * 300, "日本"]
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "ts": pa.array([T - timedelta(days=20000) + timedelta(hours=i) for i in range(n)], TS),
        "i": pa.array([None if i % 7 == 0 else (i * 7919) % 2**41 - 2**40 + (i % 3) * 100 for i in range(n)]),
        "small": pa.array([(i % 300) - 150 for i in range(n)], pa.int32()),
        "f": pa.array([[float("nan"), None, float("inf"), -0.0, float("-inf")][i % 5] if i % 3 == 0 else i / 3
                       for i in range(n)], pa.float64()),
        "f32": pa.array([None if i % 4 == 0 else i / 4 for i in range(n)], pa.float32()),
        "flag": pa.array([None if i % 5 == 0 else i % 2 == 0 for i in range(n)]),
        "s": pa.array([None if i % 6 == 0 else texts[i % 5] + str(i) for i in range(n)]),
        "big": pa.array(["z" * 70000 if i == 1 else None for i in range(n)], pa.string()),  # (str32)
        "day": pa.array([None if i % 8 == 0 else date(1950, 1, 1) + timedelta(days=37 * i) for i in range(n)]),
        "when": pa.array([None if i % 9 == 0 else T + timedelta(microseconds=i, days=-i) for i in range(n)], TS),
        "count": pa.array([i for i in range(n)], pa.int64()),
    })


def _typed_view(fs: FeatureStore, n: int, missing_every: int = 0, transformations: dict | None = None):
    """A view over ``things`` (every type) and ``labels`` (by a string key; every ``missing_every``-th entity has no
    row), with a key column as a feature; entries for ids 0..n-1."""
    things = fs.get_or_create_feature_group("things", primary_key=["id"], event_time="ts", online_enabled=True)
    table = _things(n)
    things.insert(table.append_column("name", pa.array([f"n{i}" for i in range(n)])))
    labels = fs.get_or_create_feature_group("labels", primary_key=["name"], online_enabled=True)
    kept = [i for i in range(n) if not missing_every or i % missing_every]
    labels.insert(pd.DataFrame({"name": [f"n{i}" for i in kept], "label": [f"L{i % 3}" for i in kept],
                                "score": [i / 7 for i in kept]}))
    query = things.select(["id", *table.column_names[2:]]).join(labels.select_all(), on=["name"])
    view = fs.get_or_create_feature_view(f"typed_{n}_{missing_every}", 1, query,
                                         transformation_functions=transformations or {})
    entries = [{"id": i, "name": f"n{i}"} for i in range(n)]
    return view, entries


def _same(a, b) -> bool:
    """Equal feature values: NaN equals NaN, None equals None (and pandas' NaT/NA/NaN for a null)."""
    if a is None or b is None or a is pd.NaT or b is pd.NaT or a is pd.NA or b is pd.NA:
        return all(v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and v != v) for v in (a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, pd.Timestamp):
        a = a.to_pydatetime()
    return a == b and type(a) is type(b) or (isinstance(a, (int, float, np.number)) and a == b
                                             and not isinstance(a, bool) and not isinstance(b, bool))


def _assert_frames_match_lists(view, entries, **options) -> None:
    vectors = view.get_feature_vectors(entries, **options)
    table = view.get_feature_vectors(entries, return_type="pyarrow", **options)
    frame = view.get_feature_vectors(entries, return_type="pandas", **options)
    assert table.column_names == list(frame.columns) == view.feature_names
    assert table.num_rows == len(frame) == len(entries)
    for i, name in enumerate(view.feature_names):
        expected = [vector[i] for vector in vectors]
        got = table[name].to_pylist()
        assert all(_same(g, e) for g, e in zip(got, expected)), (name, got[:12], expected[:12])
        values = frame[name].tolist()
        assert all(_same(g, e) for g, e in zip(values, expected)), (name, values[:12], expected[:12])


def _use_decoder(monkeypatch, decoder: str) -> None:
    """Column-wise batches decoded by the compiled kernels (numba), numpy, or MessagePack rows."""
    from fs_dagster.core.online import compiled

    if decoder == "compiled" and compiled.kernels() is None:
        pytest.skip("numba (the fast extra) is not installed")
    if decoder == "numpy":
        monkeypatch.setattr(compiled, "kernels", lambda: None)
    monkeypatch.setattr(feature_view, "_NUMPY_DECODE_MIN_ROWS", 10**9 if decoder == "msgpack" else 0)


DECODERS = ["compiled", "numpy", "msgpack"]


@pytest.mark.parametrize("decoder", DECODERS)
def test_frames_hold_the_list_values_typed_as_training_data(tmp_path, monkeypatch, decoder) -> None:
    """pandas / pyarrow batches, built column-wise (by the compiled or numpy decoder, or MessagePack rows), give
    the values of the lists for every type, with the column types of training data."""
    _use_decoder(monkeypatch, decoder)
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        view, entries = _typed_view(fs, 150)
        _assert_frames_match_lists(view, entries)
        _assert_frames_match_lists(view, entries[::-1][:7])  # (small batch: one MGET)
        _assert_frames_match_lists(view, [entries[3]] * 5)  # (repeated entity)
        frame = view.get_feature_vectors(entries, return_type="pandas")
        dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items()}
        assert dtypes == {"id": "int64", "i": "float64", "small": "int32", "f": "float64", "f32": "float32",
                          "flag": "object", "s": "object", "big": "object", "day": "object",
                          "when": "datetime64[us, UTC]", "count": "int64", "label": "object", "score": "float64"}
        training = view.get_batch_data(spine=pd.DataFrame({"id": range(150), "name": [e["name"] for e in entries],
                                                           "ts": [T + timedelta(days=1)] * 150}), with_keys=False)
        assert {n: str(t) for n, t in training.dtypes.items()} == dtypes  # what models were trained on
        table = view.get_feature_vectors(entries, return_type="pyarrow")
        assert table.schema.field("when").type == TS and table.schema.field("day").type == pa.date32()
        assert math.isnan(frame["f"][0]) and table["f"][0].is_valid and not table["f"][6].is_valid  # NaN vs null
        assert math.copysign(1.0, frame["f"][3]) == -1.0 and frame["f"][9] == float("-inf")  # -0.0 keeps its sign
        single = view.get_feature_vector(entries[5], return_type="pandas")
        # (an int column without nulls in the single row is int64, as pyarrow converts training frames too)
        pd.testing.assert_frame_equal(single, frame.iloc[[5]].reset_index(drop=True), check_dtype=False)
        assert view.get_feature_vectors([], return_type="pandas").shape == (0, len(view.feature_names))
    finally:
        EmbeddedValkey(fs.root).stop()


@pytest.mark.parametrize("decoder", DECODERS)
def test_frames_missing_rows_and_passed_features(tmp_path, monkeypatch, decoder) -> None:
    _use_decoder(monkeypatch, decoder)
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        view, entries = _typed_view(fs, 100, missing_every=4)  # labels n0, n4, n8, ... have no row
        with pytest.raises(NotFoundError, match=r"labels:1 for \{'name': 'n0'\}"):
            view.get_feature_vectors(entries, return_type="pandas")
        _assert_frames_match_lists(view, entries, allow_missing=True)
        frame = view.get_feature_vectors(entries, allow_missing=True, return_type="pandas")
        assert frame["label"].isna().tolist() == [i % 4 == 0 for i in range(100)]
        assert frame["score"].isna().sum() == 25 and frame["count"].tolist() == list(range(100))
        # passed features override, and stand in for a missing group (all of its features passed)
        passed = [{"label": "given", "score": -1.0} if i % 4 == 0 else {} for i in range(100)]
        passed[1] = {"count": 10**6, "f32": 2, "when": T}
        _assert_frames_match_lists(view, entries, passed_features=passed)
        table = view.get_feature_vectors(entries, passed_features=passed, return_type="pyarrow")
        assert table["label"][0].as_py() == "given" and table["count"][1].as_py() == 10**6
        assert table["when"][1].as_py() == T and table["f32"][1].as_py() == 2.0 and table["s"][2].as_py() == "x" * 40 + "2"
        passed[1] = {"when": "2024-01-01T00:00:00Z"}  # (an ISO time, as lookups take them)
        assert view.get_feature_vectors(entries, passed_features=passed, return_type="pandas")["when"][1] == T
        passed[1] = {"s": 42}  # typed frames: the feature's type or a clear error
        with pytest.raises(InvalidDataError, match=r"passed feature 's': 42 does not fit its type string"):
            view.get_feature_vectors(entries, passed_features=passed, return_type="pandas")
        with pytest.raises(NotFoundError):  # only some of the missing group's features passed
            view.get_feature_vectors(entries, passed_features=[{"label": "x"}] * 100, return_type="pyarrow")
    finally:
        EmbeddedValkey(fs.root).stop()


def test_frames_apply_transformations_column_wise_as_training_frames(tmp_path) -> None:
    from fs_dagster.core.transformations import transformation_function

    transformation_function(double_it)
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        functions = {"count": "standard_scaler", "label": "label_encoder", "score": f"{__name__}:double_it",
                     "f32": "min_max_scaler"}
        view, entries = _typed_view(fs, 120, missing_every=5, transformations=functions)
        training = view.get_batch_data(spine=pd.DataFrame({"id": range(120), "name": [e["name"] for e in entries],
                                                           "ts": [T + timedelta(days=1)] * 120}))
        view.init_serving(view.fit_transformations(training))
        expected = view._serving_transformations.transform_frame(training[view.feature_names])
        frame = view.get_feature_vectors(entries, allow_missing=True, return_type="pandas")
        pd.testing.assert_frame_equal(frame, expected)  # exactly what transformed training frames hold
        vectors = view.get_feature_vectors(entries, allow_missing=True)  # per value: the same numbers
        for i, name in enumerate(view.feature_names):
            assert all(_same(g, e) for g, e in zip(frame[name].tolist(), [v[i] for v in vectors])), name
        table = view.get_feature_vectors(entries, allow_missing=True, return_type="pyarrow")
        assert table.schema.field("label").type == pa.int64()  # (label_encoder: Int64 in pandas)
        pd.testing.assert_frame_equal(table.to_pandas(), frame, check_dtype=False)
    finally:
        EmbeddedValkey(fs.root).stop()


def double_it(value):  # a user transformation (module level, importable by path)
    return value * 2


def test_a_thousand_entity_frame_is_read_in_pipelined_pieces_per_group(tmp_path, monkeypatch) -> None:
    """1,000 entities: one MGET per feature group and piece of entities, pipelined; decoded with numpy; missing rows
    in a later piece, and the same frame as the lists."""
    monkeypatch.setattr(feature_view, "_COLUMN_PIECE_ENTRIES", 300)
    monkeypatch.setattr(feature_view, "_COMPILED_PIECE_ENTRIES", 300)
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        view, entries = _typed_view(fs, 1000, missing_every=997)  # n0 and n997 have no label row
        client = fs.online_store.client

        def mgets() -> int:
            return client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)

        decoded = []
        original = feature_view.decode_columns
        monkeypatch.setattr(feature_view, "decode_columns",
                            lambda raw, *args: decoded.append(len(raw)) or original(raw, *args))
        before = mgets()
        frame = view.get_feature_vectors(entries, allow_missing=True, return_type="pandas")
        assert mgets() - before == 8 and sorted(decoded) == [100, 100, 300, 300, 300, 300, 300, 300]
        assert frame["label"].isna().tolist() == [i in (0, 997) for i in range(1000)]
        _assert_frames_match_lists(view, entries, allow_missing=True)
        with pytest.raises(NotFoundError, match="n997"):
            view.get_feature_vectors(entries[1:], return_type="pyarrow")
        with pytest.raises(InvalidDataError, match="lacks serving key"):
            view.get_feature_vectors([*entries[:600], {"id": 1}, *entries[601:]], return_type="pandas")
        assert view.get_feature_vectors(entries[1:997], return_type="pandas")["count"].tolist() == list(range(1, 997))
    finally:
        EmbeddedValkey(fs.root).stop()


@settings(max_examples=2000 if os.environ.get("FS_DAGSTER_LONG_TESTS") == "1" else 60, deadline=None)
@given(
    ints=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=30),
    floats=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=30),
    texts=st.lists(st.one_of(st.none(), st.text(max_size=300)), min_size=1, max_size=30),
    flags=st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=30),
    data=st.data(),
)
def test_numpy_decoder_equals_messagepack(ints, floats, texts, flags, data) -> None:
    """Stored values decoded column-wise (compiled kernels, numpy) == MessagePack row by row, for every column
    subset."""
    from fs_dagster.core.online import columns as columns_module
    from fs_dagster.core.online import compiled
    from fs_dagster.core.online.codec import decode_present
    from fs_dagster.core.online.columns import decode_columns, missing_value, stored_values_array

    n = max(map(len, (ints, floats, texts, flags)))
    pad = lambda values: (values * n)[:n]  # noqa: E731
    table = pa.table({
        "k": [f"k{i}" for i in range(n)], "ts": pa.array([T] * n, TS), "i": pa.array(pad(ints), pa.int64()),
        "f": pa.array(pad(floats), pa.float64()), "s": pa.array(pad(texts), pa.string()),
        "b": pa.array(pad(flags), pa.bool_()), "i32": pa.array([v if v is None else v % 2**31 for v in pad(ints)],
                                                                  pa.int32()),
    })
    layout = _layout(table.schema)
    values = layout.encode_values(table, I1)
    gone = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    values = [missing_value(layout) if g else v for v, g in zip(values, gone)]
    wanted = sorted(data.draw(st.sets(st.integers(0, len(layout.value_columns) - 1), min_size=1)))
    rows = list(zip(*decode_present(values)))
    module = compiled.kernels()
    if module is not None:  # (the kernels decode every type here themselves: no silent fallback to numpy)
        assert columns_module._decode_compiled(module, values, layout, wanted) is not None
    for use_compiled in (True, False):  # (with numba: the compiled kernels, then numpy)
        columns = decode_columns(values, layout, wanted, use_compiled=use_compiled)
        for index in wanted:
            expected = stored_values_array(list(rows[index]), layout.value_types[index])
            assert columns[index].type == expected.type
            assert all(_same(a, b) for a, b in zip(columns[index].to_pylist(), expected.to_pylist()))


def _key_schema() -> pa.Schema:
    return pa.schema([("name", pa.string()), ("n", pa.int64()), ("at", TS), ("v", pa.float64())])


@pytest.mark.parametrize("keys", [("name",), ("n",), ("name", "n"), ("n", "name", "at")])
def test_mget_packed_from_key_texts_is_the_mget_of_the_keys(keys) -> None:
    """The MGET packed in one join from the key texts is byte for byte the MGET of :meth:`keys_for`'s keys (keys
    of mixed lengths, empty strings, ints of every size, timestamps; single and composite keys)."""
    layout = _layout(_key_schema(), keys=keys, event_time=None, prefix="fs:")
    values = {
        "name": ["", "a", "N183JB", "B6-1085-JFK", "x" * 300, "a", "", "with space", "tab\t", "N1"],
        "n": [0, -1, 7, 2**63 - 1, -(2**63), 12, 0, 10**12, 5, 99],
        "at": [T + timedelta(microseconds=i * 10**9 + i) for i in range(10)],
    }
    columns = [values[k] for k in keys]
    packed = pipeline.packed_mget_of_texts(layout.prefix, layout.key_texts(columns), "\x1f")
    assert packed == pipeline._packed_mget(layout.keys_for(columns))


@settings(max_examples=300 if os.environ.get("FS_DAGSTER_LONG_TESTS") == "1" else 60, deadline=None)
@given(names=st.lists(st.text(max_size=20), min_size=1, max_size=40), data=st.data())
def test_mget_packed_from_random_key_texts(names, data) -> None:
    """Random str (and composite str + int) keys: the same bytes as the MGET of the keys, or None (not ASCII: the
    caller then packs the keys)."""
    ints = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=len(names), max_size=len(names)))
    for keys, columns in ((("name",), [names]), (("name", "n"), [names, ints])):
        layout = _layout(_key_schema(), keys=keys, event_time=None)
        packed = pipeline.packed_mget_of_texts(layout.prefix, layout.key_texts(columns), "\x1f")
        expected = pipeline._packed_mget(layout.keys_for(columns))
        assert packed == expected if all(name.isascii() for name in names) else packed is None


def test_frames_with_non_ascii_keys_equal_the_lists(tmp_path) -> None:
    """A batch whose string keys are partly not ASCII (their MGET is packed from the keys), of mixed lengths, with
    missing entities: the frames hold what the lists hold, in both groups."""
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        n = 150
        names = [("é" if i % 2 else "n") * (1 + i % 4) + str(i) for i in range(n)]
        ascii_names = [f"k{i}" * (1 + i % 3) for i in range(n)]
        people = fs.get_or_create_feature_group("people", primary_key=["name"], online_enabled=True)
        people.insert(pd.DataFrame({"name": names, "code": ascii_names, "age": [i % 90 for i in range(n)],
                                    "city": [["Zürich", "", None, "Oslo"][i % 4] for i in range(n)]}))
        codes = fs.get_or_create_feature_group("codes", primary_key=["code"], online_enabled=True)
        kept = [c for i, c in enumerate(ascii_names) if i % 10]
        codes.insert(pd.DataFrame({"code": kept, "score": [float("nan") if i % 7 == 0 else i / 3
                                                          for i in range(len(kept))]}))
        view = fs.get_or_create_feature_view("people_codes", 1, people.select_all().join(codes.select_all(),
                                                                                         on=["code"]))
        entries = [{"name": name, "code": code} for name, code in zip(names, ascii_names)]
        _assert_frames_match_lists(view, entries, allow_missing=True)
        ascii_entries = [e for e in entries if e["name"].isascii()]
        assert len(ascii_entries) >= 64  # (this batch's first group is packed from the texts)
        _assert_frames_match_lists(view, ascii_entries, allow_missing=True)
        frame = view.get_feature_vectors(entries, allow_missing=True, return_type="pandas")
        assert frame["city"].tolist()[:4] == ["Zürich", "", None, "Oslo"]
        assert frame["score"].isna().sum() >= n // 10
    finally:
        EmbeddedValkey(fs.root).stop()


def test_mget_pieces_take_packed_commands_or_keys(server) -> None:
    """A standalone store takes a piece as its packed MGET (bytes) or as its keys; both read the same values."""
    store = _store(server)
    assert store.packs_reads
    layout = _layout(SCHEMA, event_time="ts")
    rows = [(f"k{i}" * (1 + i % 3), i, i * 10) for i in range(50)]
    assert store.write(layout, _table(rows), "20240101000000000") == 50
    names = [name for name, _, _ in rows] + ["absent"]
    keys = layout.keys_for([names])
    packed = pipeline.packed_mget_of_texts(layout.prefix, layout.key_texts([names]), "\x1f")
    got = store.mget_pieces([lambda: packed, lambda: keys, lambda: packed], lambda i, raw: raw)
    assert got == [store.mget(keys)] * 3 and got[0][-1] is None and None not in got[0][:-1]


@pytest.mark.parametrize("damage", ["truncated", "cut_string", "garbage", "no_header", "short_array"])
def test_a_damaged_online_value_is_named_never_served(tmp_path, damage) -> None:
    """A value overwritten by another program or truncated: every read path (one vector, lists, frames decoded
    with numpy or MessagePack, small and big batches) refuses it naming the group and the key, instead of
    serving bytes of the next value (the column-wise decoder once read a cut-off string into the next row)."""
    from fs_dagster.core.errors import DamagedOnlineValueError

    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        view, entries = _typed_view(fs, 150)
        layout = view._online_layouts()[1]
        assert layout.prefix.split(":")[-3] == "labels"
        client = fs.online_store.client
        key = layout.key_for(["n5"])
        value = client.get(key)
        damaged = {"truncated": value[:-1], "cut_string": value[:-3], "garbage": value[:HEADER_BYTES] + b"\xc1\x00",
                   "no_header": b"hello", "short_array": value[:HEADER_BYTES] + msgpack.packb(["L1"])}[damage]
        client.set(key, damaged)
        reads = {
            "vector": lambda: view.get_feature_vector(entries[5]),
            "small list": lambda: view.get_feature_vectors(entries[:10]),
            "list": lambda: view.get_feature_vectors(entries),
            "pandas": lambda: view.get_feature_vectors(entries, return_type="pandas"),
            "small pyarrow": lambda: view.get_feature_vectors(entries[:10], return_type="pyarrow"),
            "passed": lambda: view.get_feature_vectors(entries, passed_features=[{"score": 1.0}] * 150),
        }
        for name, read in reads.items():
            with pytest.raises(DamagedOnlineValueError, match=r"labels v1 for \{'name': 'n5'\} is damaged"):
                read()
        with pytest.raises(DamagedOnlineValueError, match="labels v1 for .*n5"):
            fs.online_store.get(layout, [["n5"]])
        assert view.get_feature_vectors(entries[6:], return_type="pandas").shape == (144, len(view.feature_names))
    finally:
        EmbeddedValkey(fs.root).stop()


def test_compiled_decoding_can_be_turned_off_and_a_failed_compile_falls_back(monkeypatch, caplog) -> None:
    """FS_DAGSTER_COMPILED=0 turns the kernels off; a numba that cannot compile here leaves numpy decoding, said
    once in the log; either way the arrays are the same."""
    from fs_dagster.core.online import compiled
    from fs_dagster.core.online.columns import decode_columns

    table = pa.table({"k": [f"k{i}" for i in range(80)], "ts": pa.array([T] * 80, TS), "x": list(range(80)),
                      "s": [f"v{i % 7}" for i in range(80)]})
    layout = _layout(table.schema)
    values = layout.encode_values(table, I1)
    expected = decode_columns(values, layout, [1, 2], use_compiled=False)
    try:
        monkeypatch.setenv(compiled.ENV_COMPILED, "0")
        compiled.reset()
        assert compiled.kernels() is None and not compiled.prepare()
        assert decode_columns(values, layout, [1, 2]) == expected
        monkeypatch.delenv(compiled.ENV_COMPILED)
        compiled.reset()
        if compiled.kernels() is None:
            pytest.skip("numba (the fast extra) is not installed")
        compiled.reset()

        def broken(module) -> None:
            raise RuntimeError("no LLVM target here")

        monkeypatch.setattr(compiled, "_warm_up", broken)
        with caplog.at_level("WARNING", logger=compiled.__name__):
            assert compiled.kernels() is None
        assert "compiled online decoding is off (RuntimeError: no LLVM target here)" in caplog.text
        assert decode_columns(values, layout, [1, 2]) == expected
    finally:
        monkeypatch.undo()
        compiled.reset()
    assert compiled.prepare()


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=40),
       prefix=st.sampled_from(["fs:p:g:1:0badf00d|", "", "é:"]))
def test_int_keys_packed_by_the_kernel_are_the_text_route(values, prefix) -> None:
    """The compiled packing of int keys is byte for byte the MGET packed from their decimal texts (negative,
    zero, int64's extremes); anything but exact ints (bools, strings) or beyond int64 is left to the text route."""
    from fs_dagster.core.online import compiled

    if compiled.kernels() is None:
        pytest.skip("numba (the fast extra) is not installed")
    expected = pipeline.packed_mget_of_texts(prefix, [list(map(str, values))], "\x1f")
    if expected is None:  # (a non-ASCII prefix: the text route packs the keys themselves)
        expected = pipeline._packed_mget([(prefix + str(v)).encode() for v in values])
    assert pipeline.packed_mget_of_ints(prefix, values) == expected
    assert pipeline.packed_mget_of_ints(prefix, [*values, True]) is None
    assert pipeline.packed_mget_of_ints(prefix, [*values, "7"]) is None
    assert pipeline.packed_mget_of_ints(prefix, [*values, 2**63]) is None
