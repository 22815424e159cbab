"""Offline and online agree on values and keys (real Hudi tables, real embedded Valkey).

* Floats: NaN, +inf, -inf, -0.0 and null are the same in the offline row, ``get_online``, served feature vectors
  (both assembly paths) and training rows; the consistency check compares NaN as equal to NaN and reports a NaN
  served as None.
* Keys are compared by their declared type everywhere: a delete with ``"2"`` or ``3.0`` for an int key, and a lookup
  with ``"1"``/``1.0``/``True`` for an int key or ``1`` for a string key, are refused naming the column, the value
  and the type, instead of matching another entity; same-family values (numpy ints, int32, naive timestamps, ISO
  strings for timestamp and date keys in requests) still work.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fs_dagster import FeatureStore, InvalidDataError
from fs_dagster.core.offline.hudi_properties import HudiTableConfig
from fs_dagster.core.offline.hudi_writer import HudiWriter
from fs_dagster.core.online.codec import OnlineLayout
from fs_dagster.core.online.consistency import check_consistency
from fs_dagster.core.online.embedded import EmbeddedValkey
from hudi_testing import listing, rs_read, sorted_rows

T = datetime(2024, 1, 1, tzinfo=timezone.utc)
SPECIAL = [float("nan"), float("inf"), float("-inf"), -0.0, None, 1.5]
TS = pa.timestamp("us", tz="UTC")


@pytest.fixture()
def fs(tmp_path):
    store = FeatureStore(root=tmp_path / "store", project="p")
    yield store
    EmbeddedValkey(store.root).stop()  # the embedded server of this root, by its recorded pid


def _identical(a, b) -> bool:
    """Same feature value, bit for bit where it matters: None is None, NaN is NaN, -0.0 keeps its sign."""
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _special_floats_view(fs: FeatureStore):
    floats = fs.get_or_create_feature_group("floats", primary_key=["id"], event_time="ts", online_enabled=True)
    floats.insert(pa.table({  # Arrow input: NaN stays a value (pandas would turn it into null)
        "id": pa.array(range(len(SPECIAL)), pa.int64()),
        "ts": pa.array([T] * len(SPECIAL), TS),
        "x": pa.array(SPECIAL, pa.float64()),
        "y": pa.array(SPECIAL, pa.float32()),
    }))
    events = fs.get_or_create_feature_group("events", primary_key=["event_id"], event_time="ts", online_enabled=True)
    events.insert(pa.table({
        "event_id": pa.array(range(len(SPECIAL)), pa.int64()),
        "id": pa.array(range(len(SPECIAL)), pa.int64()),
        "ts": pa.array([T + timedelta(hours=1)] * len(SPECIAL), TS),
        "z": pa.array(SPECIAL, pa.float64()),
    }))
    query = events.select(["z"]).join(floats.select(["x", "y"]), on=["id"])
    return floats, fs.get_or_create_feature_view("specials", 1, query)


def test_nan_inf_negative_zero_and_null_are_the_same_offline_online_served_and_in_training_data(fs) -> None:
    floats, view = _special_floats_view(fs)
    offline = {row["id"]: row for row in floats.read(dataframe_type="arrow").to_pylist()}
    online = {row["id"]: row for row in floats.get_online([(i,) for i in range(len(SPECIAL))])}
    entries = [{"event_id": i, "id": i} for i in range(len(SPECIAL))]
    fast = view.get_feature_vectors(entries)  # every row found: assembled column-wise
    slow = view.get_feature_vectors(entries, passed_features=[{"unused": 1}] * len(entries))  # per entry
    single = [view.get_feature_vector(entry) for entry in entries]
    training = view.create_training_data(statistics=False).read(transformed=False, with_keys=True,
                                                               dataframe_type="pyarrow").to_pylist()
    training = {row["event_id"]: row for row in training}
    for i, value in enumerate(SPECIAL):
        for column in ("x", "y"):
            assert _identical(offline[i][column], value), (i, column, offline[i][column])
            assert _identical(online[i][column], value), (i, column, online[i][column])
            assert _identical(training[i][column], value), (i, column, training[i][column])
        assert all(_identical(vectors[i][0], value) for vectors in (fast, slow, single)), (i, fast[i], slow[i])
        for position, column in ((1, "x"), (2, "y")):
            assert all(_identical(v[i][position], offline[i][column]) for v in (fast, slow, single)), (i, column)
            assert _identical(training[i][column], offline[i][column])
    assert check_consistency(floats, sample_size=10).consistent


def test_consistency_check_reports_a_nan_served_as_none(fs) -> None:
    floats, _ = _special_floats_view(fs)
    assert check_consistency(floats).consistent  # NaN offline == NaN online
    # what the online store used to hold: null where the offline row has NaN (a newer commit instant wins)
    online = fs.online_store
    layout = OnlineLayout.build("fs:", "p", "floats", 1, floats.schema(), floats.primary_key, floats.event_time)
    row = floats.read(where="id = 0", dataframe_type="arrow")
    nulled = row.set_column(row.schema.get_field_index("x"), "x", pa.array([None], pa.float64()))
    online.write(layout, nulled, "99999999999999999")
    report = check_consistency(floats)
    assert [(m.key, m.column, m.online) for m in report.mismatches] == [((0,), "x", None)]
    assert math.isnan(report.mismatches[0].offline)


# --- keys: online lookups -----------------------------------------------------------------------------------


def _typed_keys_view(fs: FeatureStore):
    by_int = fs.get_or_create_feature_group("by_int", primary_key=["id"], online_enabled=True)
    by_int.insert(pd.DataFrame({"id": [1, 2], "a": [10.0, 20.0], "code": ["1", "x"],  # (the join keys: columns
                                "hour": pd.to_datetime([T, T], utc=True),        # of the root group)
                                "day": [date(2024, 1, 2)] * 2}))
    by_text = fs.get_or_create_feature_group("by_text", primary_key=["code"], online_enabled=True)
    by_text.insert(pd.DataFrame({"code": ["1", "x"], "b": [100, 200]}))  # "1": what str(1) used to match
    by_time = fs.get_or_create_feature_group("by_time", primary_key=["hour"], online_enabled=True)
    by_time.insert(pd.DataFrame({"hour": pd.to_datetime([T], utc=True), "c": [7]}))
    by_day = fs.get_or_create_feature_group("by_day", primary_key=["day"], online_enabled=True)
    by_day.insert(pd.DataFrame({"day": [date(2024, 1, 2)], "d": [8]}))
    query = (by_int.select(["a"]).join(by_text.select(["b"]), left_on=["code"])
             .join(by_time.select(["c"]), left_on=["hour"]).join(by_day.select(["d"]), left_on=["day"]))
    return fs.get_or_create_feature_view("typed", 1, query), (by_int, by_text, by_time, by_day)


GOOD = {"id": 1, "code": "1", "hour": T, "day": date(2024, 1, 2)}


@pytest.mark.parametrize(
    ("column", "value", "declared"),
    [
        ("id", "1", "int64"),
        ("id", 1.0, "int64"),
        ("id", True, "int64"),
        ("id", np.float64(1.0), "int64"),
        ("code", 1, "string"),
        ("hour", 1704067200000000, "timestamp"),
        ("hour", date(2024, 1, 1), "timestamp"),
        ("day", datetime(2024, 1, 2, tzinfo=timezone.utc), "date32"),
        ("day", 19724, "date32"),
    ],
)
def test_a_key_of_another_type_is_refused_not_matched(fs, column, value, declared) -> None:
    view, groups = _typed_keys_view(fs)
    assert view.get_feature_vector(GOOD) == [10.0, 100, 7, 8]
    entry = {**GOOD, column: value}
    match = rf"key column '{column}' is {declared}.*{re.escape(repr(value))}"
    with pytest.raises(InvalidDataError, match=match):
        view.get_feature_vector(entry)
    with pytest.raises(InvalidDataError, match=match):  # a batch (pipelined pieces) refuses it as well
        view.get_feature_vectors([GOOD] * 70 + [entry])
    group = next(g for g in groups if column in g.primary_key)
    with pytest.raises(InvalidDataError, match=match):
        group.get_online([(value,)])


def test_same_family_key_values_still_match(fs) -> None:
    view, (by_int, _, by_time, by_day) = _typed_keys_view(fs)
    expected = [10.0, 100, 7, 8]
    for entry in (
        {**GOOD, "id": np.int64(1)},
        {**GOOD, "id": np.int32(1)},
        {**GOOD, "hour": "2024-01-01T00:00:00Z"},  # ISO strings for timestamp keys (as the README shows)
        {**GOOD, "hour": pd.Timestamp(T)},
        {**GOOD, "hour": T.replace(tzinfo=None)},  # naive: UTC, as writes take it
        {**GOOD, "hour": np.datetime64("2024-01-01T00:00:00")},
        {**GOOD, "day": "2024-01-02"},
    ):
        assert view.get_feature_vector(entry) == expected, entry
    assert by_int.get_online([(np.int16(2),)])[0]["a"] == 20.0
    assert by_time.get_online([("2024-01-01T00:00:00+00:00",)])[0]["c"] == 7
    assert by_day.get_online([("2024-01-02",)])[0]["d"] == 8


# --- keys: offline deletes ------------------------------------------------------------------------------------

CONFIG = HudiTableConfig("keys", ("id",), (), "ts")


@pytest.fixture()
def table_path(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    HudiWriter(path, CONFIG, durable=False).upsert(pa.table({
        "id": pa.array([1, 2, 3], pa.int64()), "ts": pa.array([T] * 3, TS), "v": [1.0, 2.0, 3.0],
    }))
    return path


@pytest.mark.parametrize(
    ("keys", "shown"),
    [
        (pa.array(["2"]), "'2' (string)"),
        (pa.array([3.0]), "3.0 (double)"),
        (pa.array([True]), "True (bool)"),
        (pa.array([T], TS), "(timestamp"),
    ],
    ids=["str", "float", "bool", "timestamp"],
)
def test_a_delete_with_keys_of_another_type_is_refused_and_changes_nothing(table_path, keys, shown) -> None:
    before = listing(table_path, include_lock=False)
    rows = sorted_rows(rs_read(table_path))
    with pytest.raises(InvalidDataError, match=r"key column 'id' is int64 in the table.*" + re.escape(shown)):
        HudiWriter(table_path, CONFIG, durable=False).delete(pa.table({"id": keys}))
    assert listing(table_path, include_lock=False) == before
    assert sorted_rows(rs_read(table_path)) == rows


def test_a_delete_with_same_family_keys_deletes(table_path) -> None:
    writer = HudiWriter(table_path, CONFIG, durable=False)
    assert writer.delete(pa.table({"id": pa.array([2], pa.int32())})).rows_deleted == 1
    assert writer.delete(pd.DataFrame({"id": [np.int16(3)]})).rows_deleted == 1
    assert [r["id"] for r in rs_read(table_path).to_pylist()] == [1]


def test_a_delete_by_naive_timestamp_key_takes_it_as_utc(tmp_path: Path) -> None:
    config = HudiTableConfig("by_time", ("hour",), (), None)
    path = tmp_path / "by_time"
    writer = HudiWriter(path, config, durable=False)
    writer.upsert(pa.table({"hour": pa.array([T, T + timedelta(hours=1)], TS), "v": [1, 2]}))
    with pytest.raises(InvalidDataError, match=r"key column 'hour' is timestamp.*'2024-01-01T00:00:00Z' \(string\)"):
        writer.delete(pa.table({"hour": ["2024-01-01T00:00:00Z"]}))
    naive = pa.array([T.replace(tzinfo=None)], pa.timestamp("us"))
    assert writer.delete(pa.table({"hour": naive})).rows_deleted == 1
    assert [r["v"] for r in rs_read(path).to_pylist()] == [2]
