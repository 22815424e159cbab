"""Helpers shared by the Hudi offline-store tests (test_hudi_*.py): hudi-rs reads, row comparison, table
listings and the table-hygiene invariants every test checks after a write."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from hudi import HudiQueryType, HudiReadOptions, HudiTable

META = ("_hoodie_commit_time", "_hoodie_commit_seqno", "_hoodie_record_key", "_hoodie_partition_path", "_hoodie_file_name")
LOCK_FILE = ".hoodie/.fs_dagster_write.lock"
_INSTANT_FILE = re.compile(r"^(\d{17})\.(commit|commit\.requested|inflight)$")


def golden_root() -> Path:
    """The Spark-written golden tables: ``$FS_DAGSTER_HUDI_GOLDEN`` or ``<repo>/../shared/hudi-golden``."""
    override = os.environ.get("FS_DAGSTER_HUDI_GOLDEN")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "hudi-golden"


# --- hudi-rs, the reference reader ----------------------------------------------------------------------------


def rs_read(path: Path, as_of: str | None = None) -> pa.Table:
    table = HudiTable(str(path))
    options = HudiReadOptions()
    if as_of is not None:
        options = options.with_as_of_timestamp(as_of)
    batches = table.read(options)
    if not batches:
        return table.get_schema_with_meta_fields().empty_table()
    return pa.Table.from_batches(batches)


def rs_changes(path: Path, start: str, end: str) -> pa.Table:
    """hudi-rs incremental query over commits in (start, end]."""
    table = HudiTable(str(path))
    options = (
        HudiReadOptions().with_query_type(HudiQueryType.Incremental).with_start_timestamp(start).with_end_timestamp(end)
    )
    batches = table.read(options)
    if not batches:
        return table.get_schema_with_meta_fields().empty_table()
    return pa.Table.from_batches(batches)


def rs_commits(path: Path) -> list[str]:
    return [i.timestamp for i in HudiTable(str(path)).get_timeline().get_completed_commits()]


# --- row comparison -------------------------------------------------------------------------------------------


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def sorted_rows(table: pa.Table, columns: Iterable[str] | None = None, drop_meta: bool = False) -> list[dict]:
    """The rows as dicts, in a canonical order (so two reads compare regardless of file order)."""
    if columns is not None:
        table = table.select(list(columns))
    elif drop_meta:
        table = table.select([c for c in table.column_names if c not in META])
    rows = table.to_pylist()
    return sorted(rows, key=lambda r: repr(_hashable(r)))


def data_only(table: pa.Table) -> pa.Table:
    return table.select([c for c in table.column_names if c not in META])


# --- files ----------------------------------------------------------------------------------------------------


def make_writable_copy(source: Path, target: Path) -> Path:
    """Copies a (read-only) golden table and makes every folder and file writable."""
    shutil.copytree(source, target)
    for root, dirs, files in os.walk(target):
        os.chmod(root, os.stat(root).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        for name in files:
            p = os.path.join(root, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    return target


def column_chunk_bytes(file: Path, column: str) -> tuple[int, int, int]:
    """(chunk start, first data page, chunk end) of ``column`` in row group 0: its dictionary page (if any), then
    its data pages, which run up to the end of the chunk."""
    parquet = pq.ParquetFile(file)
    chunk = parquet.metadata.row_group(0).column(parquet.schema_arrow.names.index(column))
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    return start, chunk.data_page_offset, start + chunk.total_compressed_size


def flip_bit_in_data_page(file: Path, column: str, back: int = 10) -> None:
    """Flips one bit of a byte inside the column's (last) data page: ``back`` bytes before the chunk's end, well
    past the page header that starts at ``data_page_offset``."""
    _, data_page, end = column_chunk_bytes(file, column)
    position = end - back
    assert position > data_page + 16
    data = bytearray(file.read_bytes())
    data[position] ^= 0x10
    file.write_bytes(bytes(data))


def listing(path: Path, *, include_lock: bool = True) -> dict[str, tuple[int, int, str]]:
    """Every file under ``path`` (folders included as entries) -> (size, mtime_ns, sha256)."""
    out: dict[str, tuple[int, int, str]] = {}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            rel = os.path.relpath(os.path.join(root, name), path)
            out[rel + "/"] = (0, 0, "dir")
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            if not include_lock and (rel == LOCK_FILE or rel.endswith("/" + LOCK_FILE)):
                continue
            st = os.stat(full)
            with open(full, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            out[rel] = (st.st_size, st.st_mtime_ns, digest)
    return out


def instants_on_disk(path: Path) -> tuple[set[str], set[str]]:
    """(completed, pending) instants from the ``.hoodie`` folder listing (v6 layout)."""
    completed, started = set(), set()
    for name in os.listdir(path / ".hoodie"):
        m = _INSTANT_FILE.match(name)
        if m:
            (completed if m.group(2) == "commit" else started).add(m.group(1))
    return completed, started - completed


def assert_table_clean(path: Path) -> None:
    """After a successful write: no pending instant, no temp file, every Parquet file belongs to a completed
    commit and names itself in ``_hoodie_file_name``, and no record key appears twice in the snapshot."""
    completed, pending = instants_on_disk(path)
    assert not pending, f"pending instants left behind: {sorted(pending)}"
    for root, dirs, files in os.walk(path):
        for name in files:
            assert ".tmp-" not in name, f"temp file left behind: {os.path.join(root, name)}"
            if name.endswith(".parquet"):
                instant = name.rsplit("_", 1)[-1].split(".", 1)[0]
                assert instant in completed, f"{os.path.join(root, name)} belongs to no completed commit"
    # every row of a base file names that file; keys unique within a partition across the snapshot
    seen: set[tuple[str, str]] = set()
    for fs in HudiTable(str(path)).get_file_slices():
        rel = fs.base_file_relative_path()
        t = pq.read_table(path / rel, columns=["_hoodie_record_key", "_hoodie_partition_path", "_hoodie_file_name"])
        assert set(t["_hoodie_file_name"].to_pylist()) <= {os.path.basename(rel)}, rel
        for key, part in zip(t["_hoodie_record_key"].to_pylist(), t["_hoodie_partition_path"].to_pylist()):
            assert part == fs.partition_path, (rel, part)
            assert (part, key) not in seen, f"duplicate record {part}/{key}"
            seen.add((part, key))
