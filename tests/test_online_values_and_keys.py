"""Offline and online agree on values and keys (real Hudi tables, real embedded Valkey).

* Floats: NaN, +inf, -inf, -0.0 and null are the same in the offline row, ``get_online``, served feature vectors
  (both assembly paths) and training rows; the consistency check compares NaN as equal to NaN and reports a NaN
  served as None.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from fs_dagster import FeatureStore
from fs_dagster.core.online.codec import OnlineLayout
from fs_dagster.core.online.consistency import check_consistency
from fs_dagster.core.online.embedded import EmbeddedValkey

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
