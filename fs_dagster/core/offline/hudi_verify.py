"""Trusting base files: reads that verify Parquet page checksums, and the table check behind ``fg.verify()``.

Every base file fs-dagster writes carries a CRC-32 in each page header (Parquet's optional ``PageHeader.crc``;
Spark's parquet-mr writes them too). pyarrow verifies them when asked, DuckDB (1.5) and hudi-rs (0.5) never do:
they decode a page with a flipped bit as wrong values without an error. So every read that feeds a write (the
writer's merge of an existing file group) or the online store goes through :func:`read_base_file`, which verifies,
and :func:`verify_table` checks every live file of a table on demand (``fs-dagster verify``, the Dagster checks).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from fs_dagster.core.errors import CorruptFileError


def open_base_file(path: str | os.PathLike[str]) -> pq.ParquetFile:
    """A Parquet base file whose pages are checked against their checksums as they are read.

    Raises:
        CorruptFileError: naming the file, when it is missing or its footer cannot be decoded.
    """
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except FileNotFoundError as error:
        raise CorruptFileError(f"base file {path} is missing", str(path)) from error
    except (OSError, pa.ArrowException) as error:  # truncated, bad magic bytes, undecodable footer
        raise CorruptFileError(f"base file {path} cannot be read: {error}", str(path)) from error


def read_base_file(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pa.Table:
    """Reads ``columns`` (all by default) of a base file, verifying the checksum of every page read.

    Raises:
        CorruptFileError: naming the file, when a page fails its checksum or the file cannot be decoded.
    """
    with open_base_file(path) as parquet:
        return read_parquet_file(parquet, path, columns)


def read_parquet_file(parquet: pq.ParquetFile, path: str | os.PathLike[str], columns: Sequence[str] | None) -> pa.Table:
    """``parquet.read(columns)`` with decoding errors (a failed page checksum is an ``OSError``) naming the file
    and the damaged column."""
    try:
        return parquet.read(columns=list(columns) if columns is not None else None)
    except (OSError, pa.ArrowException) as error:
        where = _damaged_column(parquet, None, columns)
        raise CorruptFileError(f"base file {path} is corrupt{where}: {error}", str(path)) from error


def _damaged_column(parquet: pq.ParquetFile, row_group: int | None, columns: Sequence[str] | None) -> str:
    """`` (column 'x')`` for the first column that fails to read on its own (only on the error path)."""
    for name in columns if columns is not None else parquet.schema_arrow.names:
        try:
            if row_group is None:
                parquet.read(columns=[name])
            else:
                parquet.read_row_group(row_group, columns=[name])
        except (OSError, pa.ArrowException):
            return f" (column {name!r})"
    return ""


# --- page checksums present? ----------------------------------------------------------------------------------

_THRIFT_I32 = 5  # compact protocol type id of an i32 field


def _varint(buffer: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def page_header_has_crc(header: bytes) -> bool:
    """Whether a Thrift-compact ``PageHeader`` carries field 4 (``crc``).

    Fields are written in id order: 1 type, 2 uncompressed size, 3 compressed size (all i32), then 4 crc if set.
    pyarrow does not expose this, and reading the first fields of one header costs microseconds.
    """
    field_id, at = 0, 0
    while at < len(header):
        head = header[at]
        at += 1
        if head == 0:  # end of struct
            return False
        delta, kind = head >> 4, head & 0x0F
        if delta:
            field_id += delta
        else:  # long form: the field id follows as a zigzag varint
            raw, at = _varint(header, at)
            field_id = (raw >> 1) ^ -(raw & 1)
        if field_id == 4:
            return True
        if field_id > 4 or kind != _THRIFT_I32:
            return False
        _, at = _varint(header, at)
    return False


def has_page_checksums(path: str | os.PathLike[str], metadata: pq.FileMetaData) -> bool:
    """Whether the first page of every column chunk has a checksum (writers set it for all pages or none)."""
    offsets = []
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        for c in range(group.num_columns):
            chunk = group.column(c)
            dictionary = chunk.dictionary_page_offset if chunk.has_dictionary_page else None
            offsets.append(dictionary if dictionary else chunk.data_page_offset)
    if not offsets:
        return False
    with open(path, "rb") as handle:
        for offset in offsets:
            handle.seek(offset)
            if not page_header_has_crc(handle.read(32)):
                return False
    return True


# --- table verification ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadFile:
    """A live base file that failed verification, and why."""

    path: str  # relative to the table folder
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_table` found in the live files of a table's latest commit.

    ``files_without_checksums`` were decoded completely (so they are readable) but have no page checksums to check
    their values against: files of fs-dagster before page checksums, or of writers that do not write them.
    """

    table: str
    instant: str | None  # the latest commit; None for a table without commits
    files_checked: int
    bytes_checked: int
    rows_checked: int
    bad_files: tuple[BadFile, ...] = ()
    files_without_checksums: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.bad_files

    def summary(self) -> str:
        head = (
            f"{self.table} at commit {self.instant or '(none)'}: {self.files_checked} file(s), "
            f"{self.bytes_checked:,} bytes, {self.rows_checked:,} rows checked; "
        )
        if self.ok:
            head += "no bad files"
        else:
            head += f"{len(self.bad_files)} bad file(s):\n" + "\n".join(f"  {b.path}: {b.reason}" for b in self.bad_files)
        if self.files_without_checksums:
            head += f"\n{len(self.files_without_checksums)} file(s) have no page checksums (decoded, values unverifiable)"
        return head


@dataclass(frozen=True)
class _Recorded:
    """A base file as the commit that wrote it recorded it."""

    path: str
    instant: str
    size: int | None
    rows: int | None


def _recorded_live_files(timeline, instants: Iterable) -> dict[tuple[str, str], _Recorded]:
    """(partition, file id) -> the newest base file each file group got from a completed commit of the active
    timeline, minus file groups a replace commit retired. Independent of listing the folders, so a live file that
    disappeared is noticed (hudi-rs lists folders and would quietly serve the file group's previous base file)."""
    recorded: dict[tuple[str, str], _Recorded] = {}
    for instant in instants:
        meta = json.loads(timeline.get_instant_metadata_in_json(instant))
        for partition, file_ids in (meta.get("partitionToReplaceFileIds") or {}).items():
            for file_id in file_ids or ():
                recorded.pop((partition, file_id), None)
        for partition, stats in (meta.get("partitionToWriteStats") or {}).items():
            for stat in stats or ():
                path = stat.get("path")
                if not path or not stat.get("fileId"):
                    continue
                size = stat.get("fileSizeInBytes", stat.get("totalWriteBytes"))
                rows = stat.get("numWrites")
                recorded[(partition, stat["fileId"])] = _Recorded(
                    path, instant.timestamp, int(size) if size is not None else None, int(rows) if rows is not None else None
                )
    return recorded


def verify_table(base_path: str | os.PathLike[str], name: str | None = None) -> VerifyReport:
    """Checks every live base file of the table's latest commit: present, the size and row count its commit
    recorded, every page decodable and matching its checksum. Reads every file completely (a row group at a time).

    Live files: those the completed commits of the active timeline wrote last per file group, plus (for file
    groups whose commits were archived) the base files hudi-rs lists.
    """
    from hudi import HudiTable

    base = Path(base_path)
    table = HudiTable(str(base))
    timeline = table.get_timeline()
    instants = sorted(
        [*timeline.get_completed_commits(), *timeline.get_completed_replacecommits()], key=lambda i: i.timestamp
    )
    latest = instants[-1].timestamp if instants else None
    recorded = _recorded_live_files(timeline, instants)
    listed = {(s.partition_path, s.file_id): s.base_file_relative_path() for s in table.get_file_slices()} if latest else {}
    live: dict[tuple[str, str], tuple[str, _Recorded | None]] = {}
    for group, rel in listed.items():
        live[group] = (rel, None)
    for group, rec in recorded.items():
        live[group] = (rec.path, rec)

    bad: list[BadFile] = []
    unchecked: list[str] = []
    notes: list[str] = []
    files = size_total = rows_total = 0
    for group in sorted(live):
        rel, rec = live[group]
        files += 1
        problem, size, rows, crc = _check_file(base / rel, rec)
        size_total += size
        rows_total += rows
        if problem:
            bad.append(BadFile(rel, problem))
        elif not crc:
            unchecked.append(rel)
        if rec is None:
            notes.append(f"{rel}: written by an archived commit, size and row count not recorded in the active timeline")
    return VerifyReport(
        table=name or base.name,
        instant=latest,
        files_checked=files,
        bytes_checked=size_total,
        rows_checked=rows_total,
        bad_files=tuple(bad),
        files_without_checksums=tuple(unchecked),
        notes=tuple(notes),
    )


def _check_file(path: Path, rec: _Recorded | None) -> tuple[str | None, int, int, bool]:
    """(problem or None, bytes, rows, has page checksums) for one live base file."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        written = f" (written by commit {rec.instant})" if rec else ""
        return f"missing{written}", 0, 0, False
    if rec is not None and rec.size is not None and size != rec.size:
        return f"{size:,} bytes, but commit {rec.instant} recorded {rec.size:,}", size, 0, False
    try:
        with open_base_file(path) as parquet:
            metadata = parquet.metadata
            crc = has_page_checksums(path, metadata)
            rows = 0
            for group in range(metadata.num_row_groups):
                try:
                    rows += parquet.read_row_group(group).num_rows  # decodes every page, verifying its checksum
                except (OSError, pa.ArrowException) as error:
                    where = _damaged_column(parquet, group, None)
                    raise CorruptFileError(f"row group {group}{where}: {error}", str(path)) from error
    except CorruptFileError as error:
        return _reason(error, path), size, 0, False
    if rec is not None and rec.rows is not None and rows != rec.rows:
        return f"{rows:,} rows, but commit {rec.instant} recorded {rec.rows:,}", size, rows, crc
    return None, size, rows, crc


def _reason(error: CorruptFileError, path: Path) -> str:
    """The error message without the file name (the report names the file already)."""
    text = str(error)
    for prefix in (f"base file {path} is corrupt: ", f"base file {path} cannot be read: ", f"base file {path} "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text
