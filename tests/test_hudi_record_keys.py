"""Record keys of time-keyed tables and the duplicate check, after the speed work for large SQL feature groups:
UTC timestamps are turned into key text without pyarrow's per-value time-zone formatting, and distinct keys skip
the (partition, key) check. Both must give exactly what the general path gives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fs_dagster.core.offline.hudi_properties import HudiTableConfig
from fs_dagster.core.offline.hudi_writer import HudiWriter, _as_string
from hudi_testing import rs_read

UNITS = ("s", "ms", "us", "ns")


@pytest.mark.parametrize("unit", UNITS)
def test_utc_timestamp_keys_are_the_text_pyarrow_gives(unit: str) -> None:
    rng = np.random.default_rng(7)
    scale = {"s": 10**-6, "ms": 10**-3, "us": 1, "ns": 10**3}[unit]
    micros = rng.integers(-3_000_000_000_000_000, 4_000_000_000_000_000, 20_000)  # 1875 .. 2096
    values = (micros * scale).astype("int64")
    zoned = pa.timestamp(unit, tz="UTC")
    array = pa.chunked_array([pa.array(values[:7]).cast(zoned),
                              pa.array([*values[7:].tolist(), None], pa.int64()).cast(zoned)])
    expected = array.cast(pa.string())  # pyarrow's own text, the key format of every table written so far
    assert _as_string("t", array).equals(expected)
    assert expected[0].as_py().endswith("Z") and _as_string("t", array)[-1].as_py() is None


def test_other_time_zones_keep_pyarrow_text() -> None:
    array = pa.chunked_array([pa.array([0, 10**12], pa.timestamp("us", tz="America/New_York"))])
    assert _as_string("t", array).to_pylist() == ["1969-12-31 19:00:00.000000-0500", "1970-01-12 08:46:40.000000-0500"]


def test_a_key_repeated_in_two_partitions_is_two_rows_and_a_repeat_in_one_is_deduplicated(tmp_path: Path) -> None:
    # partitioned by a column outside the key: the same key in two partitions is two records (distinct pairs)
    config = HudiTableConfig("keys", ("id", "hour"), ("region",), "ts")
    hour = datetime(2024, 1, 1, tzinfo=timezone.utc)
    batch = pa.table({
        "id": pa.array([1, 1, 2, 2], pa.int64()),
        "hour": pa.array([hour] * 4, pa.timestamp("us", tz="UTC")),
        "region": pa.array(["eu", "us", "eu", "eu"]),
        "ts": pa.array([hour + timedelta(minutes=m) for m in (1, 2, 3, 4)], pa.timestamp("us", tz="UTC")),
        "v": pa.array([1.0, 2.0, 3.0, 4.0]),
    })
    result = HudiWriter(tmp_path / "t", config).upsert(batch)
    assert (result.rows_inserted, result.duplicates_dropped) == (3, 1)
    rows = rs_read(tmp_path / "t").to_pandas()
    kept = sorted(zip(rows["id"], rows["region"], rows["v"]))
    assert kept == [(1, "eu", 1.0), (1, "us", 2.0), (2, "eu", 4.0)]  # the newer event time of key 2 wins
    assert sorted(rows["_hoodie_record_key"]) == [
        "id:1,hour:2024-01-01 00:00:00.000000Z", "id:1,hour:2024-01-01 00:00:00.000000Z",
        "id:2,hour:2024-01-01 00:00:00.000000Z"]
