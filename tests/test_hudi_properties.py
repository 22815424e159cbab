"""Property test of the offline store: random sequences of upserts, deletes and a schema evolution against a plain
in-memory model (a dict keyed by (partition path, record key)).

After every commit the table must agree with the model through hudi-rs and through ``HudiTableReader``:
snapshot, time travel to every earlier commit (with the columns the table had then), incremental reads of
exactly the rows the commit inserted or updated, ``deleted_keys`` of exactly the rows it deleted, ``commits()``
counts, file-size limits and small-file placement.

Semantics the model encodes (what a user of a feature store expects; Hudi's defaults agree):
- A record is identified by (partition path, record key); the same key in two partitions is two records.
- Within one batch, duplicates of a record are resolved by the largest precombine (event-time) value (a null
  one loses to any value), ties and tables without a precombine field by the last occurrence. Across commits the
  same rule (Hudi's ``DefaultHoodieRecordPayload``): the stored record stays when its precombine value is greater
  than the incoming one (a null incoming value loses to a stored value); equal values or no precombine field: the
  incoming row, the later commit, wins.
- A batch row identical to its stored record (every column, nulls equal) or older than it is not written and is
  not an update; a batch that writes nothing (and a delete of keys that are not there) makes no commit.
- Null and empty partition values both go to ``__HIVE_DEFAULT_PARTITION__``; they are the same partition.
- A delete with the partition columns removes that record; without them it removes the key from every partition.
- A batch may add a nullable column: older rows read it as null; time travel to an older commit returns the
  columns the table had at that commit.
``FS_DAGSTER_LONG_TESTS=1`` raises the example budget.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hudi import HudiTable
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from fs_dagster.core.offline.hudi_properties import HudiTableConfig
from fs_dagster.core.offline.hudi_reader import HudiTableReader
from fs_dagster.core.offline.hudi_writer import HudiWriter
from hudi_testing import META, assert_table_clean, listing, rs_changes, rs_read

LONG = os.environ.get("FS_DAGSTER_LONG_TESTS") == "1"
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
ZERO = "0" * 17


@dataclass(frozen=True)
class Layout:
    name: str
    key_fields: tuple[str, ...]
    partition_fields: tuple[str, ...]
    precombine: str | None
    hive: bool
    max_file_rows: int
    small_file_rows: int
    ts_type: pa.DataType = pa.int64()

    @property
    def complex_key(self) -> bool:
        return len(self.key_fields) > 1 or len(self.partition_fields) > 1


LAYOUTS = [
    Layout("simple_key_hive", ("id",), ("region",), "ts", True, 4, 3, pa.timestamp("us", tz="UTC")),
    Layout("composite_key_plain_folders", ("id", "sub"), ("region",), "ts", False, 3, 2),
    Layout("nonpartitioned_no_precombine", ("name",), (), None, False, 5, 5),
    Layout("composite_key_two_levels", ("id", "sub"), ("region", "day"), "ts", True, 2, 1),
]

TYPES = {"id": pa.int64(), "sub": pa.string(), "name": pa.string(), "region": pa.string(), "day": pa.int64(),
         "v": pa.float64(), "s": pa.string(), "extra": pa.int64()}
TIMES = [datetime(2024, 1, 1, h, tzinfo=timezone.utc) for h in (0, 1, 2, 3)]


def value_strategies(layout: Layout, evolved: bool) -> dict[str, st.SearchStrategy]:
    values: dict[str, st.SearchStrategy] = {
        "id": st.integers(0, 7),
        "sub": st.sampled_from(["a", "b", "a:b,c"]),
        "name": st.sampled_from(["k0", "k1", "k2", "k3", "k4", "x,y", "p:q", "k5"]),
        "region": st.sampled_from(["eu", "us", "", None]),
        "day": st.sampled_from([1, 2]),
        "ts": st.none() | (st.sampled_from(TIMES) if pa.types.is_timestamp(layout.ts_type) else st.integers(0, 3)),
        "v": st.none() | st.floats(allow_nan=False, allow_infinity=False),
        "s": st.none() | st.text(max_size=4),
    }
    if evolved:
        values["extra"] = st.none() | st.integers(-5, 5)
    return {c: values[c] for c in columns_of(layout, evolved)}


def columns_of(layout: Layout, evolved: bool) -> list[str]:
    cols = list(layout.key_fields) + [f for f in layout.partition_fields if f not in layout.key_fields]
    cols += ["ts", "v", "s"] + (["extra"] if evolved else [])
    return cols


def arrow_type(layout: Layout, column: str) -> pa.DataType:
    return layout.ts_type if column == "ts" else TYPES[column]


def to_table(layout: Layout, rows: list[dict], columns: list[str]) -> pa.Table:
    return pa.table({c: pa.array([r[c] for r in rows], arrow_type(layout, c)) for c in columns})


def partition_path(layout: Layout, row: dict) -> str:
    parts = []
    for f in layout.partition_fields:
        value = row[f]
        text = DEFAULT_PARTITION if value is None or str(value) == "" else str(value)
        parts.append(f"{f}={text}" if layout.hive else text)
    return "/".join(parts)


def record_key(layout: Layout, row: dict) -> str:
    if not layout.complex_key:
        return str(row[layout.key_fields[0]])
    return ",".join(f"{f}:{row[f]}" for f in layout.key_fields)


def keyed(table: pa.Table, columns: list[str]) -> dict[tuple[str, str], dict]:
    """(partition path, record key) -> row over ``columns``, from a read with meta columns; no key twice."""
    out = {}
    for r in table.to_pylist():
        key = (r["_hoodie_partition_path"], r["_hoodie_record_key"])
        assert key not in out, f"record {key} appears twice"
        out[key] = {c: r[c] for c in columns}
    return out


@dataclass
class Commit:
    instant: str
    operation: str
    columns: list[str]
    snapshot: dict[tuple[str, str], dict]
    written: dict[tuple[str, str], dict]
    deleted: set[tuple[str, str]]
    inserted: int
    updated: int


class HudiModelMachine(RuleBasedStateMachine):
    LAYOUT: Layout = LAYOUTS[0]

    def __init__(self) -> None:
        super().__init__()
        self.layout = self.LAYOUT
        self.dir = Path(tempfile.mkdtemp(prefix="fs_hudi_prop_"))
        self.path = self.dir / "table"
        self.config = HudiTableConfig(
            "prop_table", self.layout.key_fields, self.layout.partition_fields, self.layout.precombine,
            hive_style=self.layout.hive,
        )
        self.writer = HudiWriter(
            self.path, self.config, max_file_rows=self.layout.max_file_rows,
            small_file_rows=self.layout.small_file_rows, durable=False,
        )
        self.model: dict[tuple[str, str], dict] = {}
        self.evolved = False
        self.history: list[Commit] = []

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers -------------------------------------------------------------------------------------------

    def key_of(self, row: dict) -> tuple[str, str]:
        return partition_path(self.layout, row), record_key(self.layout, row)

    def columns(self) -> list[str]:
        return columns_of(self.layout, self.evolved)

    def _file_rows(self) -> dict[str, dict[str, int]]:
        """partition -> file id -> rows in its latest base file (empty before the first commit)."""
        out: dict[str, dict[str, int]] = {}
        if not self.history:
            return out
        for fs in HudiTable(str(self.path)).get_file_slices():
            rows = pq.read_metadata(self.path / fs.base_file_relative_path()).num_rows
            out.setdefault(fs.partition_path, {})[fs.file_id] = rows
        return out

    # --- rules ---------------------------------------------------------------------------------------------

    @rule(data=st.data())
    def upsert(self, data: st.DataObject) -> None:
        rows = data.draw(st.lists(st.fixed_dictionaries(value_strategies(self.layout, self.evolved)), max_size=8))
        self._upsert(rows, self.columns())

    @precondition(lambda self: not self.evolved and len(self.history) >= 1)
    @rule(data=st.data())
    def upsert_adding_a_column(self, data: st.DataObject) -> None:
        rows = data.draw(st.lists(st.fixed_dictionaries(value_strategies(self.layout, True)), min_size=1, max_size=6))
        self.evolved = True
        for row in self.model.values():
            row["extra"] = None
        if not self._upsert(rows, self.columns()):  # nothing written: the column is not added either
            self.evolved = False
            for row in self.model.values():
                del row["extra"]

    @rule(data=st.data(), with_partition=st.booleans())
    def delete(self, data: st.DataObject, with_partition: bool) -> None:
        fresh = st.fixed_dictionaries(value_strategies(self.layout, self.evolved))
        source = st.sampled_from(list(self.model.values())) | fresh if self.model else fresh
        rows = data.draw(st.lists(source, max_size=4))
        key_columns = list(self.layout.key_fields)
        if with_partition:
            key_columns += [f for f in self.layout.partition_fields if f not in key_columns]
        if with_partition or not self.layout.partition_fields:
            wanted = {self.key_of(r) for r in rows}
            gone = {k for k in self.model if k in wanted}
        else:
            keys = {record_key(self.layout, r) for r in rows}
            gone = {k for k in self.model if k[1] in keys}
        before = self._file_rows()
        result = self.writer.delete(to_table(self.layout, rows, key_columns))
        assert result.rows_deleted == len(gone)
        assert result.rows_inserted == result.rows_updated == 0
        if not gone:
            assert result.instant is None, "a delete of keys that are not there must not commit"
            return
        for k in gone:
            del self.model[k]
        self._committed(result, "DELETE", {}, gone, 0, 0, before)

    def _upsert(self, rows: list[dict], columns: list[str]) -> bool:
        """Upserts ``rows``, checks the outcome against the model; returns whether a commit was made."""
        winners: dict[tuple[str, str], tuple[Any, int, dict]] = {}
        for i, row in enumerate(rows):
            ts = row["ts"] if self.layout.precombine else None
            order = ((0,) if ts is None else (1, ts), i)  # a null event time loses to any value
            key = self.key_of(row)
            if key not in winners or order >= winners[key][:2]:
                winners[key] = (*order, row)
        written: dict[tuple[str, str], dict] = {}
        unchanged = outdated = 0
        for key, (*_, row) in winners.items():
            stored = self.model.get(key)
            if stored is not None and self.layout.precombine and stored["ts"] is not None and (
                row["ts"] is None or stored["ts"] > row["ts"]
            ):
                outdated += 1  # the stored record is newer: it stays
            elif stored is not None and all(stored.get(c) == row[c] for c in columns):
                unchanged += 1
            else:
                written[key] = dict(row)
        inserted = sum(1 for k in written if k not in self.model)
        before = self._file_rows()
        files_before = listing(self.path, include_lock=False) if self.history else {}
        result = self.writer.upsert(to_table(self.layout, rows, columns))
        assert (result.rows_inserted, result.rows_updated) == (inserted, len(written) - inserted)
        assert (result.rows_unchanged, result.rows_outdated) == (unchanged, outdated)
        assert result.duplicates_dropped == len(rows) - len(winners)
        if not written:
            assert result.instant is None, "a batch that changes nothing must not commit"
            assert not self.history or listing(self.path, include_lock=False) == files_before, "a batch without a commit touched files"
            return False
        self.model.update({k: dict(v) for k, v in written.items()})
        self._committed(result, "UPSERT", written, set(), inserted, len(written) - inserted, before)
        self._check_file_placement(result, before)
        return True

    # --- checks after every commit -------------------------------------------------------------------------

    def _committed(self, result, operation, written, deleted, inserted, updated, before) -> None:
        assert result.instant is not None
        assert not self.history or result.instant > self.history[-1].instant
        commit = Commit(result.instant, operation, self.columns(), {k: dict(v) for k, v in self.model.items()},
                        written, deleted, inserted, updated)
        self.history.append(commit)
        self._check_snapshot(commit)
        self._check_history()
        self._check_changes(commit)
        self._check_commits()
        assert_table_clean(self.path)
        for partition in self._file_rows().values():
            assert all(n <= self.layout.max_file_rows for n in partition.values()), partition

    def _check_snapshot(self, commit: Commit) -> None:
        columns = commit.columns
        hudi_rs = rs_read(self.path)
        assert hudi_rs.column_names == list(META) + columns
        assert keyed(hudi_rs, columns) == self.model
        reader = HudiTableReader(self.path)
        ours = reader.read(with_meta=True)
        assert ours.schema == hudi_rs.schema
        assert keyed(ours, ours.column_names) == keyed(hudi_rs, hudi_rs.column_names)
        plain = reader.read()
        assert plain.column_names == columns and plain.num_rows == len(self.model)
        assert reader.count() == len(self.model)

    def _check_history(self) -> None:
        """Time travel to every commit so far returns the model as it was then, with the columns of then."""
        reader = HudiTableReader(self.path)
        for commit in self.history:
            hudi_rs = rs_read(self.path, as_of=commit.instant)
            later = [c for c in hudi_rs.column_names if c not in META and c not in commit.columns]
            for c in later:  # hudi-rs shows today's schema; columns added later are null in older snapshots
                assert hudi_rs[c].null_count == hudi_rs.num_rows, c
            assert keyed(hudi_rs, commit.columns) == commit.snapshot, commit.instant
            ours = reader.read(as_of=commit.instant, with_meta=True)
            assert ours.column_names == list(META) + commit.columns, commit.instant
            assert keyed(ours, ours.column_names) == keyed(hudi_rs, ours.column_names)
            assert reader.read(as_of=commit.instant).column_names == commit.columns

    def _check_changes(self, commit: Commit) -> None:
        reader = HudiTableReader(self.path)
        previous = self.history[-2].instant if len(self.history) > 1 else None
        ours = reader.read_changes(previous, commit.instant)
        hudi_rs = rs_changes(self.path, previous or ZERO, commit.instant)
        for changes in (ours, hudi_rs):
            assert set(changes["_hoodie_commit_time"].to_pylist()) <= {commit.instant}
            assert keyed(changes, commit.columns) == {k: {c: v.get(c) for c in commit.columns}
                                                      for k, v in commit.written.items()}
        # a range over several commits: the latest version of every record written in it
        first = self.history[0].instant
        snapshot = reader.read(with_meta=True)
        expected = {k: v for k, v in keyed(snapshot, snapshot.column_names).items()
                    if v["_hoodie_commit_time"] > first}
        assert keyed(reader.read_changes(first, commit.instant), snapshot.column_names) == expected
        assert keyed(reader.read_changes(None), snapshot.column_names) == keyed(snapshot, snapshot.column_names)
        if previous is not None:
            gone = {(r["_hoodie_partition_path"], r["_hoodie_record_key"])
                    for r in reader.deleted_keys(previous, commit.instant).to_pylist()}
            assert gone == commit.deleted

    def _check_commits(self) -> None:
        infos = HudiTableReader(self.path).commits()
        assert [c.instant for c in infos] == [c.instant for c in self.history]
        for info, commit in zip(infos, self.history):
            assert info.operation == commit.operation
            assert (info.rows_inserted, info.rows_updated, info.rows_deleted) == (
                commit.inserted, commit.updated, len(commit.deleted))

    def _check_file_placement(self, result, before: dict[str, dict[str, int]]) -> None:
        """Small-file handling: a new file group is started in a partition only once every file group that was
        small (< small_file_rows) is full; of the new groups at most one is not full."""
        after = self._file_rows()
        for partition, groups in after.items():
            new = [fid for fid in groups if fid not in before.get(partition, {})]
            if not new:
                continue
            assert sum(1 for fid in new if groups[fid] < self.layout.max_file_rows) <= 1, groups
            for fid, rows in before.get(partition, {}).items():
                if rows < self.layout.small_file_rows:
                    assert groups[fid] == self.layout.max_file_rows, (partition, fid, rows, groups)


SETTINGS = settings(
    max_examples=150 if LONG else 12,
    stateful_step_count=12 if LONG else 7,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("layout", LAYOUTS, ids=[layout.name for layout in LAYOUTS])
def test_offline_store_matches_model(layout: Layout) -> None:
    machine = type(f"Machine_{layout.name}", (HudiModelMachine,), {"LAYOUT": layout})
    run_state_machine_as_test(machine, settings=SETTINGS)


def test_small_files_take_inserts_before_new_file_groups(tmp_path: Path) -> None:
    """Deterministic companion of the property: max 4 rows per file, files under 3 rows take inserts."""
    config = HudiTableConfig("small", ("id",), ("p",), "ts")
    writer = HudiWriter(tmp_path / "t", config, max_file_rows=4, small_file_rows=3, durable=False)

    def batch(ids: list[int]) -> pa.Table:
        return pa.table({"id": ids, "p": ["x"] * len(ids), "ts": [1] * len(ids)})

    first = writer.upsert(batch([1, 2]))
    (group,) = {f.file_id for f in first.files}
    second = writer.upsert(batch([3, 4, 5]))  # 2 rows fill the small group to 4, 1 row starts a new group
    sizes = {f.file_id: f.num_writes for f in second.files}
    assert sizes[group] == 4 and len(sizes) == 2
    third = writer.upsert(batch([6]))  # the new 1-row group is small: it takes the insert
    assert [(f.file_id, f.num_writes, f.num_inserts) for f in third.files] == [
        (next(fid for fid in sizes if fid != group), 2, 1)
    ]
    writer.delete(pa.table({"id": [1, 2, 3, 4], "p": ["x"] * 4}))  # empties the first group: 0-row file
    fourth = writer.upsert(batch([7]))
    assert {f.file_id for f in fourth.files} == {group}
    assert sorted(HudiTableReader(tmp_path / "t").read()["id"].to_pylist()) == [5, 6, 7]
