"""Interoperability with Spark-written Hudi tables (``../shared/hudi-golden``, taken from apache/hudi-rs).

1. Every golden table (v6 and v8) reads identically through ``HudiTableReader`` and hudi-rs: snapshot, time travel
   to each Spark commit, and ``commits()`` agrees with the commit metadata on disk (JSON in v6, Avro in v8).
2. Our writer upserts and deletes on copies of the v6 tables; after each commit hudi-rs reads the expected snapshot,
   time travel to the Spark commits returns the Spark data exactly, incremental reads return exactly the rows the
   commit wrote, and Spark-only column types (decimal, binary, list, map, struct) pass through unchanged.
3. Writing a v8 table is refused with ``IncompatibleTableError`` and leaves it untouched (not even a lock file).
"""

from __future__ import annotations

import io
import json
import os
import struct
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fs_dagster.core.errors import CommitNotFoundError, IncompatibleTableError
from fs_dagster.core.offline.hudi_properties import read_properties
from fs_dagster.core.offline.hudi_reader import HudiTableReader
from fs_dagster.core.offline.hudi_timeline import instant_to_datetime
from fs_dagster.core.offline.hudi_writer import HudiWriter
from hudi_testing import (
    META,
    assert_table_clean,
    data_only,
    golden_root,
    listing,
    make_writable_copy,
    rs_changes,
    rs_commits,
    rs_read,
    sorted_rows,
)

GOLDEN = golden_root()
ALL_TABLES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name[:2] in ("v6", "v8")) if GOLDEN.is_dir() else []
V6_TABLES = [t for t in ALL_TABLES if t.startswith("v6_")]
V8_TABLES = [t for t in ALL_TABLES if t.startswith("v8_")]

pytestmark = pytest.mark.skipif(not ALL_TABLES, reason=f"golden tables not found at {GOLDEN}")

# Columns whose types our writer never creates; they must survive an upsert untouched.
SPARK_ONLY_COLUMNS = ("decimalField", "binaryField", "arrayField", "mapField", "structField")


# --- commit metadata as written by Spark (independent of hudi-rs) ---------------------------------------------


class _AvroReader:
    """Just enough of the Avro object-container format to decode Hudi v8 commit files (codec null)."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)
        self.named: dict[str, Any] = {}

    def long(self) -> int:
        shift = result = 0
        while True:
            b = self.buf.read(1)[0]
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)

    def raw(self) -> bytes:
        return self.buf.read(self.long())

    def value(self, schema: Any, namespace: str = "") -> Any:
        if isinstance(schema, list):
            return self.value(schema[self.long()], namespace)
        if isinstance(schema, str):
            if schema in self.named or f"{namespace}.{schema}" in self.named:
                return self.value(self.named.get(schema) or self.named[f"{namespace}.{schema}"], namespace)
            return {
                "null": lambda: None,
                "boolean": lambda: self.buf.read(1) == b"\x01",
                "int": self.long,
                "long": self.long,
                "float": lambda: struct.unpack("<f", self.buf.read(4))[0],
                "double": lambda: struct.unpack("<d", self.buf.read(8))[0],
                "bytes": self.raw,
                "string": lambda: self.raw().decode(),
            }[schema]()
        kind = schema["type"]
        if kind == "record":
            ns = schema.get("namespace", namespace)
            self.named[schema["name"]] = self.named[f"{ns}.{schema['name']}"] = schema
            return {f["name"]: self.value(f["type"], ns) for f in schema["fields"]}
        if kind in ("array", "map"):
            out: Any = [] if kind == "array" else {}
            while True:
                count = self.long()
                if count == 0:
                    return out
                if count < 0:
                    count = -count
                    self.long()  # block size in bytes
                for _ in range(count):
                    if kind == "array":
                        out.append(self.value(schema["items"], namespace))
                    else:
                        key = self.raw().decode()
                        out[key] = self.value(schema["values"], namespace)
        if kind == "fixed":
            return self.buf.read(schema["size"])
        if kind == "enum":
            return schema["symbols"][self.long()]
        return self.value(kind, namespace)  # {"type": "string", ...}

    def records(self) -> list[Any]:
        assert self.buf.read(4) == b"Obj\x01"
        header = self.value({"type": "map", "values": "bytes"})
        assert header.get("avro.codec", b"null") == b"null"
        schema = json.loads(header["avro.schema"])
        sync = self.buf.read(16)
        out = []
        while self.buf.tell() < len(self.buf.getbuffer()):
            count = self.long()
            self.long()
            out += [self.value(schema) for _ in range(count)]
            assert self.buf.read(16) == sync
        return out


def spark_commits(table: Path) -> list[tuple[str, dict[str, Any]]]:
    """(instant, commit metadata) of every completed commit, read from the files Spark wrote."""
    out = []
    hoodie = table / ".hoodie"
    for name in sorted(os.listdir(hoodie)):
        if name.endswith(".commit"):
            out.append((name.split(".")[0], json.loads((hoodie / name).read_text())))
    timeline = hoodie / "timeline"
    if timeline.is_dir():  # v8: <start>_<completion>.commit, Avro
        for name in sorted(os.listdir(timeline)):
            if name.endswith(".commit"):
                (meta,) = _AvroReader((timeline / name).read_bytes()).records()
                out.append((name.split("_")[0], meta))
    return out


# --- 1. reading Spark tables ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TABLES)
def test_reader_matches_hudi_rs(name: str) -> None:
    path = GOLDEN / name
    reader = HudiTableReader(path)
    expected = rs_read(path)
    ours = reader.read(with_meta=True)
    assert ours.schema == expected.schema
    assert sorted_rows(ours) == sorted_rows(expected)
    assert expected.num_rows == 4
    plain = reader.read()
    assert plain.schema == data_only(expected).schema
    assert sorted_rows(plain) == sorted_rows(expected, drop_meta=True)
    assert reader.schema() == data_only(expected).schema
    by_file = pa.concat_tables(reader.read_by_file(with_meta=True))  # (the full online sync's read)
    assert by_file.schema == expected.schema
    assert sorted_rows(by_file) == sorted_rows(expected)


@pytest.mark.parametrize("name", ALL_TABLES)
def test_time_travel_matches_hudi_rs(name: str) -> None:
    path = GOLDEN / name
    reader = HudiTableReader(path)
    instants = rs_commits(path)
    assert len(instants) == 2
    sizes = []
    for instant in instants:
        expected = rs_read(path, as_of=instant)
        ours = reader.read(as_of=instant, with_meta=True)
        assert ours.schema == expected.schema
        assert sorted_rows(ours) == sorted_rows(expected)
        assert set(ours["_hoodie_commit_time"].to_pylist()) <= {i for i in instants if i <= instant}
        sizes.append(ours.num_rows)
        # a point in time selects the last commit at or before it
        moment = instant_to_datetime(instant) + timedelta(milliseconds=1)
        assert sorted_rows(reader.read(as_of=moment, with_meta=True)) == sorted_rows(expected)
    assert sizes == [3, 4]
    with pytest.raises(CommitNotFoundError):
        reader.read(as_of=instant_to_datetime(instants[0]) - timedelta(seconds=1))


@pytest.mark.parametrize("name", ALL_TABLES)
def test_commits_match_commit_metadata(name: str) -> None:
    path = GOLDEN / name
    on_disk = spark_commits(path)
    ours = HudiTableReader(path).commits()
    assert [c.instant for c in ours] == [i for i, _ in on_disk]
    for info, (instant, meta) in zip(ours, on_disk):
        stats = [s for group in meta["partitionToWriteStats"].values() for s in group]
        assert info.operation == meta["operationType"]
        assert info.rows_inserted == sum(s["numInserts"] for s in stats)
        assert info.rows_updated == sum(s["numUpdateWrites"] for s in stats)
        assert info.rows_deleted == sum(s["numDeletes"] for s in stats)
        assert info.rows_written == sum(s["numWrites"] for s in stats)
        assert info.files_written == len(stats)
        assert info.bytes_written == sum(s["totalWriteBytes"] for s in stats)
        assert info.partitions == tuple(sorted(meta["partitionToWriteStats"]))
    # what Spark did: 3 inserts, then 1 update + 1 insert
    assert [(c.rows_inserted, c.rows_updated, c.rows_deleted) for c in ours] == [(3, 0, 0), (1, 1, 0)]


@pytest.mark.parametrize("name", ALL_TABLES)
def test_incremental_reads_of_spark_commits(name: str) -> None:
    """read_changes(a, b) is every row whose latest version as of b was written by a commit in (a, b]. Our reader
    takes commit (start) instants on v6 and v8 alike; on v6 hudi-rs agrees exactly."""
    path = GOLDEN / name
    reader = HudiTableReader(path)
    c1, c2 = rs_commits(path)
    for start, end in ((None, c1), (c1, c2), (None, c2)):
        snapshot = rs_read(path, as_of=end)
        low = start or "0" * 17
        times = snapshot["_hoodie_commit_time"]
        expected = snapshot.filter(pc.and_(pc.greater(times, low), pc.less_equal(times, end)))
        ours = reader.read_changes(start, end)
        assert sorted_rows(ours) == sorted_rows(expected), (start, end)
        if name.startswith("v6_"):
            assert sorted_rows(rs_changes(path, low, end)) == sorted_rows(expected)
    assert reader.read_changes(c1, c2).num_rows == 2
    assert reader.deleted_keys(c1, c2).num_rows == 0


# --- 2. writing onto Spark v6 tables --------------------------------------------------------------------------


def _record_key(props: dict[str, str], row: dict[str, Any]) -> str:
    fields = props["hoodie.table.recordkey.fields"].split(",")
    if props["hoodie.table.keygenerator.class"].endswith("ComplexKeyGenerator"):
        return ",".join(f"{f}:{row[f]}" for f in fields)
    return str(row[fields[0]])


def _partition_path(props: dict[str, str], row: dict[str, Any]) -> str:
    fields = [f for f in props.get("hoodie.table.partition.fields", "").split(",") if f]
    hive = props.get("hoodie.datasource.write.hive_style_partitioning") == "true"
    return "/".join(f"{f}={row[f]}" if hive else str(row[f]) for f in fields)


def _replace(table: pa.Table, row: int, **values: Any) -> pa.Table:
    """One row of ``table`` with some scalar fields changed; every other column (decimal, list, ...) as it was."""
    out = table.slice(row, 1)
    for column, value in values.items():
        i = out.column_names.index(column)
        out = out.set_column(i, out.schema.field(i), pa.array([value], out.schema.field(i).type))
    return out


def _assert_reads(path: Path, expected_data: list[dict], instant: str) -> pa.Table:
    """hudi-rs and our reader both read ``expected_data`` as the latest snapshot, with identical meta columns."""
    snapshot = rs_read(path)
    assert sorted_rows(snapshot, drop_meta=True) == expected_data
    ours = HudiTableReader(path).read(with_meta=True)
    assert ours.schema == snapshot.schema
    assert sorted_rows(ours) == sorted_rows(snapshot)
    assert rs_commits(path)[-1] == instant
    assert_table_clean(path)
    return snapshot


def _assert_history(path: Path, history: dict[str, pa.Table]) -> None:
    """Time travel to every earlier commit (Spark's and ours) returns exactly what it returned then."""
    reader = HudiTableReader(path)
    for instant, expected in history.items():
        assert sorted_rows(rs_read(path, as_of=instant)) == sorted_rows(expected), instant
        assert sorted_rows(reader.read(as_of=instant, with_meta=True)) == sorted_rows(expected), instant


def _assert_changes(path: Path, start: str, end: str, expected_data: list[dict]) -> None:
    """Incremental reads over (start, end] return exactly the rows the commit ``end`` wrote, all stamped with it."""
    for changes in (rs_changes(path, start, end), HudiTableReader(path).read_changes(start, end)):
        assert sorted_rows(changes, drop_meta=True) == expected_data
        assert set(changes["_hoodie_commit_time"].to_pylist()) <= {end}


@pytest.mark.parametrize("name", V6_TABLES)
def test_upsert_and_delete_on_spark_table(name: str, tmp_path: Path) -> None:
    path = make_writable_copy(GOLDEN / name, tmp_path / name)
    props = read_properties(path)
    partition_fields = [f for f in props.get("hoodie.table.partition.fields", "").split(",") if f]
    spark_files = {k: v for k, v in listing(path).items() if k.endswith(".parquet")}
    history = {instant: rs_read(path, as_of=instant) for instant in rs_commits(path)}
    spark_latest = rs_commits(path)[-1]
    before = rs_read(path)
    data = data_only(before).sort_by("id")
    rows = data.to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    partitions = {_partition_path(props, r) for r in rows}

    # --- commit 1: update id 1 (scalar fields only), insert id 100 in id 3's partition and id 101 in a new one
    updated = _replace(data, 0, intField=rows[0]["intField"] + 1000, doubleField=-1.5, isActive=not rows[0]["isActive"],
                       longField=rows[0]["longField"] + 1)
    new_same_partition = _replace(data, 2, id=100, floatField=9.5)
    new_values: dict[str, Any] = {"id": 101, "name": "Zed"}
    if partition_fields:
        new_values.update({f: 40 + i for i, f in enumerate(partition_fields)})
    new_partition = _replace(data, 1, **new_values)
    batch = pa.concat_tables([updated, new_same_partition, new_partition])
    if partition_fields:
        assert _partition_path(props, new_partition.to_pylist()[0]) not in partitions
        assert _partition_path(props, new_same_partition.to_pylist()[0]) in partitions

    result = HudiWriter(path).upsert(batch)
    assert (result.rows_inserted, result.rows_updated, result.rows_deleted) == (2, 1, 0)
    assert result.instant > spark_latest
    expected = sorted_rows(pa.concat_tables([data.slice(1), batch]))
    after = _assert_reads(path, expected, result.instant)

    # Spark-only column types passed through byte for byte (read back through hudi-rs)
    by_id = {r["id"]: r for r in after.to_pylist()}
    for source_row, new_id in ((rows[0], 1), (rows[2], 100), (rows[1], 101)):
        for column in SPARK_ONLY_COLUMNS:
            assert by_id[new_id][column] == source_row[column], (column, new_id)
    # rows we wrote carry Spark's key and partition encoding; rows we did not touch keep their meta columns
    for r in batch.to_pylist():
        meta = by_id[r["id"]]
        assert meta["_hoodie_commit_time"] == result.instant
        assert meta["_hoodie_record_key"] == _record_key(props, r)
        assert meta["_hoodie_partition_path"] == _partition_path(props, r)
    for old in before.to_pylist():
        if old["id"] != 1:
            keep = {c: old[c] for c in META if c != "_hoodie_file_name"}
            assert {c: by_id[old["id"]][c] for c in keep} == keep
    assert {f.partition_path for f in result.files} >= {_partition_path(props, rows[0])}

    _assert_history(path, history)
    _assert_changes(path, spark_latest, result.instant, sorted_rows(batch))
    history[result.instant] = after
    info = HudiTableReader(path).commits()[-1]
    assert (info.instant, info.operation, info.rows_inserted, info.rows_updated) == (result.instant, "UPSERT", 2, 1)

    # --- commit 2: delete Spark's id 2 (by key and partition) and our id 101 (by key only: every partition searched)
    key_fields = props["hoodie.table.recordkey.fields"].split(",")
    delete_2 = data.slice(1, 1).select(key_fields + partition_fields)
    deleted = HudiWriter(path).delete(delete_2)
    assert deleted.rows_deleted == 1
    by_key_only = new_partition.select(key_fields)
    deleted_2 = HudiWriter(path).delete(by_key_only)
    assert deleted_2.rows_deleted == 1
    remaining = [r for r in sorted_rows(pa.concat_tables([data.slice(1), batch])) if r["id"] not in (2, 101)]
    assert sorted(r["id"] for r in remaining) == [1, 3, 4, 100]
    _assert_reads(path, remaining, deleted_2.instant)
    _assert_history(path, history)
    for start, end in ((result.instant, deleted.instant), (deleted.instant, deleted_2.instant)):
        assert rs_changes(path, start, end).num_rows == 0  # copy-on-write incremental reads show no deletes
        assert HudiTableReader(path).read_changes(start, end).num_rows == 0
    gone = HudiTableReader(path).deleted_keys(result.instant, deleted_2.instant).to_pylist()
    assert gone == sorted(
        ({"_hoodie_record_key": _record_key(props, r), "_hoodie_partition_path": _partition_path(props, r)}
         for r in (rows[1], new_partition.to_pylist()[0])),
        key=lambda r: (r["_hoodie_record_key"], r["_hoodie_partition_path"]),
    )
    commits = HudiTableReader(path).commits()
    assert [(c.operation, c.rows_deleted) for c in commits[-2:]] == [("DELETE", 1), ("DELETE", 1)]

    # Spark's files are never modified (time travel depends on them)
    now = listing(path)
    assert {k: now[k] for k in spark_files} == spark_files


@pytest.mark.parametrize("name", V6_TABLES)
def test_upsert_is_idempotent_on_spark_table(name: str, tmp_path: Path) -> None:
    """Upserting the current rows unchanged (nested Spark columns included) changes nothing: no commit, no file
    touched. Rows older than the stored ones (precombine ``longField``) are not written either; a newer one is."""
    path = make_writable_copy(GOLDEN / name, tmp_path / name)
    before = rs_read(path)
    files_before = listing(path, include_lock=False)
    result = HudiWriter(path).upsert(data_only(before))
    assert (result.instant, result.rows_inserted, result.rows_updated, result.rows_unchanged) == (None, 0, 0, 4)
    assert listing(path, include_lock=False) == files_before

    data = data_only(before).sort_by("id")
    rows = data.to_pylist()
    older = _replace(data, 0, longField=rows[0]["longField"] - 1, doubleField=-7.0)
    newer = _replace(data, 1, longField=rows[1]["longField"] + 1, doubleField=-8.0)
    result = HudiWriter(path).upsert(pa.concat_tables([older, newer]))
    assert (result.rows_updated, result.rows_outdated) == (1, 1)
    expected = sorted_rows(pa.concat_tables([data.slice(0, 1), newer, data.slice(2)]))
    _assert_reads(path, expected, result.instant)


@pytest.mark.parametrize("name", V8_TABLES)
def test_writing_v8_table_is_refused(name: str, tmp_path: Path) -> None:
    path = make_writable_copy(GOLDEN / name, tmp_path / name)
    before = listing(path)
    data = data_only(rs_read(path))
    key_fields = read_properties(path)["hoodie.table.recordkey.fields"].split(",")
    for operation in (lambda w: w.upsert(data), lambda w: w.delete(data.select(key_fields)), lambda w: w.create()):
        with pytest.raises(IncompatibleTableError, match="version"):
            operation(HudiWriter(path))
    assert listing(path) == before
    assert sorted_rows(rs_read(path)) == sorted_rows(rs_read(GOLDEN / name))
