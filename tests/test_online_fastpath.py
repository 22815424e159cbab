"""The online store's fast paths give exactly what the straightforward code gives.

* vectorized value encoding: the same bytes as MessagePack row by row (``encode_values_rowwise``), for every
  supported column type, nulls, NaN, integer and string size boundaries, dictionary columns; other types fall back;
* pipelined guarded writes (pre-packed RESP, MSETNX for new keys, the batched script for the rest, NOSCRIPT and ACL
  fallbacks): the same stored values and written counts as a sequential model of the guard;
* feature vectors assembled column-wise: the same vectors as the per-entry path (``passed_features`` forces it).
"""

from __future__ import annotations

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


def test_column_wise_vectors_equal_the_per_entry_path(tmp_path) -> None:
    fs = FeatureStore(root=tmp_path / "store", project="p")
    try:
        weather = fs.get_or_create_feature_group(
            "weather", primary_key=["origin", "hour"], event_time="hour", online_enabled=True)
        hours = [T + timedelta(hours=h) for h in range(5)]
        weather.insert(pd.DataFrame({
            "origin": ["JFK"] * 5 + ["LGA"] * 5, "hour": hours * 2, "temp": np.arange(10) / 2,
            "wind": [None, 1.0] * 5, "station": ["a", "b"] * 5,
        }))
        planes = fs.get_or_create_feature_group("planes", primary_key=["tailnum"], online_enabled=True)
        planes.insert(pd.DataFrame({
            "tailnum": ["N1", "N2"], "built": [date(2001, 1, 1), date(1999, 5, 5)],
            "seen": [T, T + timedelta(days=1)], "seats": [150, 9],
        }))
        entries = [{"origin": o, "hour": h, "tailnum": t} for o in ("JFK", "LGA") for h in hours for t in ("N1", "N2")]
        queries = [
            weather.select_all().join(planes.select_all(), left_on=["tailnum"]),
            weather.select(["station", "temp"]).join(planes.select(["seen"]), left_on=["tailnum"]),
            weather.select(["wind"]).join(planes.select(["seats", "built"]), left_on=["tailnum"]),
            weather.select(["temp"]),
        ]
        for index, query in enumerate(queries):
            view = fs.get_or_create_feature_view(f"v{index}", 1, query,
                                                 request_keys=["tailnum"] if query.joins else [])
            fast = view.get_feature_vectors(entries)
            assert view._serving_plan().fast
            slow = view.get_feature_vectors(entries, passed_features=[{"unused": 1}] * len(entries))
            assert fast == slow
            assert view.get_feature_vector(entries[3]) == slow[3]
            assert view.get_feature_vectors([]) == []
        view = fs.get_feature_view("v0")
        assert view.get_feature_vector(entries[3]) == [0.5, 1.0, "b", date(1999, 5, 5), T + timedelta(days=1), 9]
        with pytest.raises(InvalidDataError, match="lacks serving key"):
            view.get_feature_vectors([entries[0], {"origin": "JFK", "hour": T}])
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
        weather = fs.get_or_create_feature_group(
            "weather", primary_key=["origin", "hour"], event_time="hour", online_enabled=True)
        hours = [T + timedelta(hours=h) for h in range(5)]
        weather.insert(pd.DataFrame({"origin": ["JFK"] * 5 + ["LGA"] * 5, "hour": hours * 2,
                                     "temp": np.arange(10) / 2}))
        planes = fs.get_or_create_feature_group("planes", primary_key=["tailnum"], online_enabled=True)
        planes.insert(pd.DataFrame({"tailnum": ["N1", "N2"], "seats": [150, 9]}))
        view = fs.get_or_create_feature_view(
            "v", 1, weather.select_all().join(planes.select_all(), left_on=["tailnum"]), request_keys=["tailnum"])
        entries = [{"origin": o, "hour": h, "tailnum": t} for o in ("JFK", "LGA") for h in hours for t in ("N1", "N2")]
        expected = [[(5 * (e["origin"] == "LGA") + hours.index(e["hour"])) / 2, 150 if e["tailnum"] == "N1" else 9]
                    for e in entries]
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
            [v[0], None] if i == 17 else v for i, v in enumerate(expected)]
        assert view.get_feature_vectors(unknown, allow_missing=True, return_type="pandas")["seats"].isna().sum() == 1

        # pieces 1-5 (other rows than the next call's) are sent before the 6th piece's keys are built
        lacking = [*reversed(entries[:16]), {"origin": "JFK", "hour": T}, *entries[17:]]
        with pytest.raises(InvalidDataError, match=r"lacks serving key\(s\) \['tailnum'\]"):
            view.get_feature_vectors(lacking)
        assert view.get_feature_vectors(entries) == expected  # the connection is clean
        assert view.get_feature_vector(entries[5]) == expected[5]
    finally:
        EmbeddedValkey(fs.root).stop()
