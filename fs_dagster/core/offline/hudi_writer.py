"""A native Copy-on-Write writer for Apache Hudi table version 6 (pyarrow only, no JVM).

It writes the real on-disk format (timeline, ``hoodie.properties``, base files with the ``_hoodie_*`` columns) so
hudi-rs, Spark and Trino read what it writes. It implements :class:`fs_dagster.core.offline.OfflineWriter`; a Spark
or hudi-rs writer can replace it behind that protocol.

Commit protocol (docs/hudi-format.md section 5): lock -> roll back pending instants -> ``<t>.commit.requested``
-> ``<t>.inflight`` -> partition metadata and base files -> ``<t>.commit`` published atomically (rename).
A writer killed anywhere leaves the table as of its last completed commit; the next writer rolls back the rest.
A write that fails with an error (a full disk) removes its own files before raising. Before planning, the
timeline is checked (hudi_integrity): a damaged table is refused naming the file, never written around.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fs_dagster.core.errors import (
    DamagedTableError,
    FeatureStoreError,
    IncompatibleTableError,
    InvalidDataError,
    WriteFailedError,
)
from fs_dagster.core.offline import fault_points
from fs_dagster.core.offline import hudi_integrity as integrity
from fs_dagster.core.offline.hudi_lock import TableWriteLock
from fs_dagster.core.offline.hudi_properties import (
    HOODIE_DIR,
    PROPERTIES_FILE,
    HudiTableConfig,
    check_writable,
    read_properties,
    render_properties,
    write_atomically,
)
from fs_dagster.core.offline.hudi_schema import (
    META_SCHEMA,
    avro_schema,
    canonicalize_new_table,
    conform_to_table,
    to_arrow,
    type_family,
)
from fs_dagster.core.offline.hudi_timeline import (
    PARTITION_METADATA,
    TimelineState,
    next_instant,
    read_commit_metadata,
    rollback_pending,
    scan,
)
from fs_dagster.core.offline.hudi_verify import read_base_file

DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileWrite:
    """One base file written by a commit (one entry of ``partitionToWriteStats``)."""

    partition_path: str
    file_id: str
    path: str
    prev_commit: str
    num_writes: int
    num_inserts: int
    num_updates: int
    num_deletes: int
    size: int


@dataclass(frozen=True)
class CommitResult:
    """What one write did. ``instant`` is None when nothing was committed: the batch was empty, or it changed
    nothing (every row identical to the stored one or older than it, every key to delete absent).

    ``rows_unchanged`` counts batch rows identical to their stored record, ``rows_outdated`` those older (by event
    time) than their stored record, which is kept; neither is an update.
    """

    instant: str | None
    operation: str
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    files: tuple[FileWrite, ...] = ()
    columns_added: tuple[str, ...] = ()
    rolled_back: tuple[str, ...] = ()
    duplicates_dropped: int = 0
    rows_unchanged: int = 0
    rows_outdated: int = 0

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated


@dataclass
class _Undo:
    """What a write has started, for undoing it when it fails."""

    instant: str | None = None
    created_table: bool = False


@dataclass
class _FileGroupPlan:
    partition_path: str
    file_id: str
    prev_path: str | None = None  # relative path of the current base file, None for a new file group
    prev_commit: str = "null"
    prev_rows: int = 0  # rows in the current base file
    kept: pa.Table | None = None  # old rows carried over unchanged (with meta columns); None = all, not read yet
    written: list[pa.Table] = field(default_factory=list)  # new row versions (data columns only)
    num_inserts: int = 0
    num_updates: int = 0
    num_deletes: int = 0
    num_unchanged: int = 0  # batch rows identical to this file's stored record (not written)
    num_outdated: int = 0  # batch rows older than this file's stored record (not written)

    @property
    def changes(self) -> bool:
        """Whether this file group gets a new base file (it holds rows to insert, update or delete)."""
        return bool(self.written or self.num_deletes)

    def rows(self) -> int:
        kept = self.kept.num_rows if self.kept is not None else self.prev_rows
        return kept + sum(t.num_rows for t in self.written)


class HudiWriter:
    """Writes (upserts, deletes) one Hudi Copy-on-Write table, creating it on the first write.

    Args:
        base_path: the table's folder.
        config: keys and partitioning; required to create the table, checked against an existing one.
        lock_timeout: seconds to wait for another writer of the same table before ``TableLockedError``.
        max_file_rows: rows per base file before a new file group is started.
        small_file_rows: a file group with fewer rows takes new inserts of its partition (fewer, larger files).
        durable: fsync data files and the commit before it is published.
        recorded_commits: returns the instants recorded as completed elsewhere (the registry). A pending instant
            among them lost its ``.commit`` file: the write is refused instead of rolling it back (deleting its
            data), as is a recorded instant the timeline lacks altogether.

    Example:
        writer = HudiWriter("/data/weather", HudiTableConfig("weather", ("origin", "time_hour"),
                            partition_fields=("origin",), precombine_field="time_hour"))
        result = writer.upsert(df)          # -> CommitResult(instant="20240101120000123", ...)
        writer.delete(df[["origin", "time_hour"]])
    """

    def __init__(
        self,
        base_path: str | os.PathLike[str],
        config: HudiTableConfig | None = None,
        *,
        lock_timeout: float = 60.0,
        max_file_rows: int = 2_000_000,
        small_file_rows: int = 200_000,
        durable: bool = True,
        recorded_commits: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.base_path = Path(base_path)
        self._requested_config = config
        self.lock_timeout = lock_timeout
        self.max_file_rows = max_file_rows
        self.small_file_rows = min(small_file_rows, max_file_rows)
        self.durable = durable
        self.recorded_commits = recorded_commits

    # --- public operations -------------------------------------------------------------------------------

    def upsert(self, data: Any) -> CommitResult:
        """Inserts new records and replaces existing ones, by the precombine (event-time) field like Hudi's
        ``DefaultHoodieRecordPayload``.

        A record is (partition path, record key). Within the batch the largest precombine value wins, then the last
        occurrence. Against the stored record, the incoming row wins unless the stored precombine value is greater
        (equal: the incoming row, the later commit, wins; a null value loses to any value), which is the online
        store's rule too, so both stores settle every key the same way. Rows identical to their stored record and
        rows older than it are not written and not counted as updates; a batch that changes nothing makes no
        commit (``instant`` None). Without a precombine field the latest write wins.
        """
        return self._write(to_arrow(data), "UPSERT")

    def delete(self, keys: Any) -> CommitResult:
        """Deletes rows by record key. Without the partition columns every partition is searched. Keys that are not
        stored are ignored; when none is, nothing is committed (``instant`` None)."""
        return self._write(to_arrow(keys), "DELETE")

    @property
    def config(self) -> HudiTableConfig:
        if integrity.has_table(self.base_path):
            return _config_of(self.base_path)
        if self._requested_config is None:
            raise IncompatibleTableError(f"{self.base_path} is not a Hudi table and no config was given to create it")
        return self._requested_config

    def create(self, initial_schema: pa.Schema | None = None) -> HudiTableConfig:
        """Creates the table folder and ``hoodie.properties`` if missing (no commit). Idempotent."""
        self._refuse_unwritable_table()
        (self.base_path / HOODIE_DIR).mkdir(parents=True, exist_ok=True)
        with TableWriteLock(self.base_path, self.lock_timeout):
            return self._create_locked(initial_schema)

    # --- the commit protocol -----------------------------------------------------------------------------

    def _create_locked(self, initial_schema: pa.Schema | None) -> HudiTableConfig:
        props_path = self.base_path / HOODIE_DIR / PROPERTIES_FILE
        if integrity.has_table(self.base_path):  # never re-created over a timeline whose properties vanished
            existing = _config_of(self.base_path)
            self._check_same_identity(existing)
            return existing
        config = self.config
        for sub in ("archived", ".temp", ".aux"):
            (self.base_path / HOODIE_DIR / sub).mkdir(exist_ok=True)
        schema_json = avro_schema(config.name, initial_schema) if initial_schema is not None else None
        with _naming(props_path):
            write_atomically(props_path, render_properties(config.to_properties(schema_json)).encode(), self.durable)
        return config

    def _check_same_identity(self, existing: HudiTableConfig) -> None:
        wanted = self._requested_config
        if wanted is None:
            return
        for attr in ("record_key_fields", "partition_fields"):
            if tuple(getattr(wanted, attr)) != tuple(getattr(existing, attr)):
                raise IncompatibleTableError(
                    f"{self.base_path}: table has {attr}={list(getattr(existing, attr))}, "
                    f"the writer was configured with {list(getattr(wanted, attr))}"
                )

    def _refuse_unwritable_table(self) -> None:
        """Refuses a table of another version (or with a metadata table) before the lock file is created in it:
        a refused write must leave e.g. a Spark-written v8 table untouched. Checked again under the lock.
        A damaged table (properties missing under a timeline, or garbage) is refused naming the file."""
        if integrity.has_table(self.base_path):
            check_writable(self.base_path, integrity.checked_properties(self.base_path))
        elif self.recorded_commits is not None:  # the table is gone: no new one is created in its place
            recorded = sorted(self.recorded_commits())
            if recorded:
                raise integrity.missing_table_error(self.base_path, recorded)

    def _write(self, batch: pa.Table, operation: str) -> CommitResult:
        self._refuse_unwritable_table()
        (self.base_path / HOODIE_DIR).mkdir(parents=True, exist_ok=True)
        # the undo (inside the lock) removes what a failing write wrote (disk full, a damaged file found while
        # planning) before raising: a partial file must not keep a full disk full until the next write
        with TableWriteLock(self.base_path, self.lock_timeout), self._undo_on_failure() as undo:
            # a new table is created only once its first batch proved valid: a refused first write leaves no
            # hoodie.properties behind (which would pin the keys and partitioning of a config the user may fix)
            exists = integrity.has_table(self.base_path)
            if exists:
                check_writable(self.base_path, integrity.checked_properties(self.base_path))
            config = self._create_locked(None) if exists else self.config
            if not exists and batch.num_rows == 0:  # nothing to write, no table yet (an empty frame may be untyped)
                return CommitResult(instant=None, operation=operation)
            state = scan(self.base_path)
            commits = integrity.completed_commits(self.base_path)  # every commit file parses, or DamagedTableError
            self._refuse_lost_commits(state)
            rolled_back = tuple(rollback_pending(self.base_path, state))
            if rolled_back:
                state = TimelineState(completed=state.completed, pending=[])
            fault_points.reached("after_rollback")

            table_schema, previous_avro = self._current_schema(state)
            prepared = _prepare_batch(batch, config, table_schema, operation)
            if not exists:  # the first batch's schema becomes hoodie.table.create.schema, as Spark writes it
                undo.created_table = True
                self._create_locked(prepared.schema if operation == "UPSERT" else None)
            if prepared.table.num_rows == 0:
                return CommitResult(instant=None, operation=operation, rolled_back=rolled_back)

            # planned before the instant is requested: a batch that changes nothing leaves no trace on the timeline
            plans = self._plan(prepared, config, operation, commits)
            unchanged = sum(p.num_unchanged for p in plans)
            outdated = sum(p.num_outdated for p in plans)
            plans = [p for p in plans if p.changes]
            # a new column alone is no commit either: a commit without a file holding the column would list a column
            # no base file has; the first commit that writes a row carrying it adds it
            if not plans:
                return CommitResult(
                    instant=None,
                    operation=operation,
                    rolled_back=rolled_back,
                    duplicates_dropped=prepared.duplicates_dropped,
                    rows_unchanged=unchanged,
                    rows_outdated=outdated,
                )

            instant = undo.instant = next_instant(state)
            hoodie = self.base_path / HOODIE_DIR
            _write_file(hoodie / f"{instant}.commit.requested", b"", self.durable)
            fault_points.reached("after_requested")

            _write_file(hoodie / f"{instant}.inflight", _inflight_json(plans, operation), self.durable)
            fault_points.reached("after_inflight")

            files = self._write_file_groups(plans, prepared, config, instant)
            schema_json = avro_schema(config.name, prepared.schema, previous_avro)
            commit = _commit_json(files, operation, schema_json)
            # another writer may have upgraded the table or added a metadata table meanwhile: refuse to publish
            check_writable(self.base_path, read_properties(self.base_path))
            fault_points.reached("before_commit")
            with _naming(hoodie / f"{instant}.commit"):
                write_atomically(hoodie / f"{instant}.commit", commit, self.durable)
            fault_points.reached("after_commit")

        return CommitResult(
            instant=instant,
            operation=operation,
            rows_inserted=sum(f.num_inserts for f in files),
            rows_updated=sum(f.num_updates for f in files),
            rows_deleted=sum(f.num_deletes for f in files),
            files=tuple(files),
            columns_added=prepared.columns_added,
            rolled_back=rolled_back,
            duplicates_dropped=prepared.duplicates_dropped,
            rows_unchanged=unchanged,
            rows_outdated=outdated,
        )

    def _refuse_lost_commits(self, state: TimelineState) -> None:
        """A commit recorded elsewhere as completed but not completed on the timeline lost its ``.commit`` file:
        rolling back its remains would delete the data of a commit the registry lists, so the write is refused."""
        if self.recorded_commits is None:
            return
        lost = integrity.lost_commits(self.recorded_commits(), state.completed, state.pending)
        if lost:
            raise integrity.lost_commit_error(self.base_path, lost, state.pending, "The write")

    @contextmanager
    def _undo_on_failure(self) -> Iterator[_Undo]:
        """Yields what the write has started (its instant, a table it created); if the write then fails, removes
        what it wrote unless its commit was published, and raises an OSError as a WriteFailedError naming the table
        and file."""
        undo = _Undo()
        try:
            yield undo
        except BaseException as error:
            if undo.instant is None and not undo.created_table:
                raise
            failure = self._abandon(undo.instant, undo.created_table, error)
            if failure is error:
                raise
            raise failure from error

    def _abandon(self, instant: str | None, created_table: bool, error: BaseException) -> BaseException:
        """Removes the failed write's files; returns the error to raise."""
        hoodie = self.base_path / HOODIE_DIR
        published = instant is not None and (hoodie / f"{instant}.commit").exists()
        cleaned = True
        if not published:
            try:
                if instant is not None:
                    rollback_pending(self.base_path, TimelineState(completed=[], pending=[instant]))
                if created_table:
                    _remove_new_table(self.base_path)
            except OSError:  # e.g. an I/O error: the next writer rolls the instant back
                log.exception("table %s: removing the files of failed commit %s failed", self.base_path, instant)
                cleaned = False
        if not isinstance(error, OSError) or isinstance(error, FeatureStoreError):
            return error
        file = error.filename
        shown = os.path.relpath(file, self.base_path) if isinstance(file, str) else "a file"
        if published:
            outcome = f"commit {instant} was published before the error, its data is kept"
        elif cleaned and created_table:
            outcome = (f"the files of commit {instant} were removed; " if instant else "") + "no table was created"
        elif cleaned:
            outcome = f"the files of commit {instant} were removed; the table is as of its last commit"
        else:
            outcome = f"commit {instant} stays pending and is rolled back by the next write"
        return WriteFailedError(
            error.errno, f"table {self.base_path}: {error.strerror or error} while writing {shown}; {outcome}"
        )

    def _current_schema(self, state: TimelineState) -> tuple[pa.Schema | None, str | None]:
        """The data schema and Avro schema of the latest commit, or (None, None) for a table without commits."""
        if state.latest is None:
            return None, None
        from hudi import HudiTable  # the official reader decodes Spark-written Avro schemas for us

        table = HudiTable(str(self.base_path))
        avro = read_commit_metadata(self.base_path, state.latest).get("extraMetadata", {}).get("schema")
        return table.get_schema(), avro

    def _plan(
        self, prepared: _PreparedBatch, config: HudiTableConfig, operation: str, commits: list[integrity.CommitFiles]
    ) -> list[_FileGroupPlan]:
        """Which file groups get a new base file, and with which rows. Plans of file groups holding batch keys
        without changing them are returned too (``changes`` False), for their counts of unchanged/outdated rows.

        Every existing file read here is verified against its page checksums, so a corrupt file is refused
        (``CorruptFileError`` naming it) rather than its wrong values copied into the new base file.
        """
        slices = _latest_file_slices(self.base_path, commits)
        plans: list[_FileGroupPlan] = []
        if prepared.has_partitions:
            targets = prepared.split_by_partition()
        else:  # a delete without partition columns: search every partition
            targets = {partition_path: prepared.table for partition_path in slices}
        for partition_path, rows in targets.items():
            batch_keys = rows[KEY_COLUMN]
            existing = slices.get(partition_path, [])
            # batch rows whose key some file group holds. Membership is symmetric: a file group without a hit
            # holds none of the batch keys, so only the groups with hits are checked (no set of every key).
            found: pa.ChunkedArray | None = None
            touched: list[_FileGroupPlan] = []
            for file_id, rel_path, commit_time, slice_keys in _read_slice_keys(self.base_path, existing):
                hit = pc.is_in(slice_keys, value_set=batch_keys)
                n_hit = pc.sum(hit).as_py() or 0
                plan = _FileGroupPlan(partition_path, file_id, rel_path, commit_time, prev_rows=len(slice_keys))
                if n_hit:
                    stored = read_base_file(self.base_path / rel_path)
                    if operation == "DELETE":
                        plan.kept = stored.filter(pc.invert(hit))
                        plan.num_deletes = n_hit
                    else:
                        # the hit keys are exactly the batch keys this file holds: a set of n_hit, not of the file
                        mine = pc.is_in(batch_keys, value_set=slice_keys.filter(hit))
                        found = mine if found is None else pc.or_(found, mine)
                        merge = _merge_with_stored(stored.filter(hit), rows.filter(mine), prepared.schema,
                                                   config.precombine_field)
                        plan.num_unchanged, plan.num_outdated = merge.unchanged, merge.outdated
                        if merge.replacing.num_rows:
                            replaced = hit if merge.replacing.num_rows == n_hit else pc.is_in(
                                stored["_hoodie_record_key"], value_set=merge.replacing[KEY_COLUMN])
                            plan.kept = stored.filter(pc.invert(replaced))
                            plan.written.append(merge.replacing)
                            plan.num_updates = merge.replacing.num_rows
                        else:
                            plan.kept = stored  # untouched unless it takes inserts (already read: not read again)
                    touched.append(plan)
                elif operation != "DELETE":
                    touched.append(plan)  # candidate small file for inserts; dropped below if unused
            if operation == "DELETE":
                plans.extend(touched)
                continue
            new_rows = rows.filter(pc.invert(found)) if found is not None else rows
            plans.extend(self._place_inserts(partition_path, touched, new_rows))
        for plan in plans:  # small files chosen for inserts: read (and verified) before anything is written
            if plan.kept is None and plan.prev_path is not None and plan.changes:
                plan.kept = read_base_file(self.base_path / plan.prev_path)
        return plans

    def _place_inserts(
        self, partition_path: str, candidates: list[_FileGroupPlan], new_rows: pa.Table
    ) -> list[_FileGroupPlan]:
        """Small-file handling: new keys first fill the partition's smallest file groups, then new ones."""
        offset = 0
        for plan in sorted(candidates, key=lambda p: p.rows()):
            if offset >= new_rows.num_rows:
                break
            room = self.max_file_rows - plan.rows()
            if plan.rows() >= self.small_file_rows or room <= 0:
                continue
            take = new_rows.slice(offset, room)
            plan.written.append(take)
            plan.num_inserts += take.num_rows
            offset += take.num_rows
        used = [p for p in candidates if p.changes or p.num_unchanged or p.num_outdated]
        while offset < new_rows.num_rows:
            take = new_rows.slice(offset, self.max_file_rows)
            plan = _FileGroupPlan(partition_path, f"{uuid.uuid4()}-0")
            plan.written.append(take)
            plan.num_inserts = take.num_rows
            used.append(plan)
            offset += take.num_rows
        return used

    def _write_file_groups(
        self, plans: list[_FileGroupPlan], prepared: _PreparedBatch, config: HudiTableConfig, instant: str
    ) -> list[FileWrite]:
        files: list[FileWrite] = []  # (small files chosen for inserts were read by _plan)
        new_partitions = {p.partition_path for p in plans}
        partition_depth = len(config.partition_fields)
        for partition_path in sorted(new_partitions):
            folder = self.base_path / partition_path if partition_path else self.base_path
            folder.mkdir(parents=True, exist_ok=True)
            meta = folder / PARTITION_METADATA
            if not meta.exists():
                with _naming(meta):
                    write_atomically(meta, _partition_metadata(instant, partition_depth), self.durable)
        fault_points.reached("after_partition_metadata")

        def write_one(task: int, plan: _FileGroupPlan) -> FileWrite:
            file_name = f"{plan.file_id}_{task}-1-0_{instant}.parquet"
            rel_path = f"{plan.partition_path}/{file_name}" if plan.partition_path else file_name
            table = _assemble_file(plan, prepared, instant, task, file_name)
            size = _write_parquet(table, self.base_path / rel_path, self.durable)
            return FileWrite(
                partition_path=plan.partition_path,
                file_id=plan.file_id,
                path=rel_path,
                prev_commit=plan.prev_commit,
                num_writes=table.num_rows,
                num_inserts=plan.num_inserts,
                num_updates=plan.num_updates,
                num_deletes=plan.num_deletes,
                size=size,
            )

        # Parquet encoding and fsync release the GIL: file groups are written in parallel (one per usable core, at
        # most _MAX_WRITE_THREADS files assembled in memory at once); results are collected in task order, so files,
        # commit metadata and fault points keep their order.
        workers = min(len(plans), _usable_cores(), _MAX_WRITE_THREADS)
        if workers <= 1:
            for task, plan in enumerate(plans):
                files.append(write_one(task, plan))
                fault_points.reached("after_data_file")
            return files
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hudi-write") as pool:
            futures = [pool.submit(write_one, task, plan) for task, plan in enumerate(plans)]
            try:
                for future in futures:
                    files.append(future.result())
                    fault_points.reached("after_data_file")
            except BaseException:
                for future in futures:
                    future.cancel()  # files already written belong to this pending instant: the next writer rolls back
                raise
        return files


# --- batch preparation ---------------------------------------------------------------------------------------


KEY_COLUMN = "__fs_record_key"
PARTITION_COLUMN = "__fs_partition_path"


@dataclass
class _PreparedBatch:
    """The batch in table column order, plus two internal columns (record key, partition path) that travel
    with the rows through every filter and take; they are dropped when a file is assembled."""

    table: pa.Table
    schema: pa.Schema  # the table's data schema after this write
    has_partitions: bool = True  # False: a delete without partition columns (search every partition)
    columns_added: tuple[str, ...] = ()
    duplicates_dropped: int = 0

    @property
    def record_keys(self) -> pa.ChunkedArray:
        return self.table[KEY_COLUMN]

    def split_by_partition(self) -> dict[str, pa.Table]:
        encoded = pc.dictionary_encode(self.table[PARTITION_COLUMN]).combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        order = pc.sort_indices(encoded.indices).to_numpy()  # stable, like argsort(kind="stable"), ~8x faster
        bounds = np.searchsorted(codes[order], np.arange(len(encoded.dictionary) + 1))
        return {
            name: self.table.take(pa.array(order[bounds[i] : bounds[i + 1]]))
            for i, name in enumerate(encoded.dictionary.to_pylist())
        }


def _prepare_batch(
    batch: pa.Table, config: HudiTableConfig, table_schema: pa.Schema | None, operation: str
) -> _PreparedBatch:
    """Validates keys, fits the batch to the table schema, computes record keys and partition paths, dedups."""
    _require_columns(batch, config.record_key_fields, "record key")
    if operation == "DELETE":
        return _prepare_delete(batch, config, table_schema)
    _require_columns(batch, config.partition_fields, "partition")
    if config.precombine_field:
        _require_columns(batch, (config.precombine_field,), "event time (precombine)")
    _check_not_null(batch, config.record_key_fields, "record key")  # before typing: an all-null key has no type
    if table_schema is None:
        table, added = canonicalize_new_table(batch), ()
        schema = table.schema
    else:
        table, plan = conform_to_table(batch, table_schema)
        schema, added = plan.schema, plan.added
    table = table.append_column(KEY_COLUMN, _record_keys(table, config))
    table = table.append_column(PARTITION_COLUMN, _partition_paths(table, config))
    if len(config.record_key_fields) == 1 and _distinct_integers(table[config.record_key_fields[0]]):
        dropped = 0  # distinct integer keys: no duplicate (partition, key) pair, no string check needed
    else:
        table, dropped = _dedup(table, config.precombine_field)
    return _PreparedBatch(table, schema, True, added, dropped)


def _prepare_delete(batch: pa.Table, config: HudiTableConfig, table_schema: pa.Schema | None) -> _PreparedBatch:
    if table_schema is None:  # nothing committed yet: nothing to delete
        return _PreparedBatch(batch.slice(0, 0), batch.schema)
    columns = list(config.record_key_fields)
    has_partitions = all(f in batch.column_names for f in config.partition_fields)
    if has_partitions:
        columns += [f for f in config.partition_fields if f not in columns]
    arrays = []
    for name in columns:
        target = table_schema.field(name).type
        arrays.append(batch[name] if batch[name].type == target else _cast_key(name, batch[name], target))
    keys_table = pa.table(arrays, names=columns)
    _check_not_null(keys_table, config.record_key_fields, "record key")
    keys_table = keys_table.append_column(KEY_COLUMN, _record_keys(keys_table, config))
    if has_partitions:
        keys_table = keys_table.append_column(PARTITION_COLUMN, _partition_paths(keys_table, config))
    return _PreparedBatch(keys_table, table_schema, has_partitions)


def _cast_key(name: str, array: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """A delete's key column in the table's type. Only the type family an insert of the column accepts is cast
    (int32 -> int64, naive -> UTC timestamps, ints into a float column): a string ``"2"`` or a float ``3.0`` for
    an int key is refused, never converted into a key that deletes another entity."""
    want, got = type_family(target), type_family(array.type)
    if want is not None and got != want and not (want == "floating" and got == "integer") and array.type != pa.null():
        valid = array.drop_null()
        example = f"{valid[0].as_py()!r} " if len(valid) else ""
        raise InvalidDataError(
            f"key column {name!r} is {target} in the table, but the delete has {example}({array.type}); keys are "
            f"compared by their declared type: give {want} values"
        )
    try:
        if pa.types.is_timestamp(array.type) and array.type.tz is None and pa.types.is_timestamp(target):
            array = pc.assume_timezone(array, "UTC")
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidDataError(f"key column {name!r}: {array.type} values do not match the table's {target}") from exc


def _require_columns(batch: pa.Table, names: tuple[str, ...], role: str) -> None:
    missing = [n for n in names if n not in batch.column_names]
    if missing:
        raise InvalidDataError(f"{role} column(s) {missing} missing from the batch (columns: {batch.column_names})")


def _check_not_null(table: pa.Table, names: tuple[str, ...], role: str) -> None:
    for name in names:
        column = table[name]
        if column.null_count:
            first = pc.index(pc.is_null(column), True).as_py()
            raise InvalidDataError(
                f"{role} column {name!r} has {column.null_count} null value(s) (first at row {first}); "
                "keys must not be null"
            )


def _as_string(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_timestamp(column.type) and column.type.tz == "UTC":
        # the same text pyarrow gives a UTC timestamp ("2013-01-01 05:00:00.000000Z"), ~6x faster: pyarrow formats
        # zoned values through the time-zone database, value by value (5 s for 4M keys)
        naive = column.cast(pa.timestamp(column.type.unit))
        return pc.binary_join_element_wise(naive.cast(pa.string()), "Z", "")
    try:
        return column.cast(pa.string())
    except pa.ArrowNotImplementedError as exc:
        raise InvalidDataError(f"column {name!r} of type {column.type} cannot be used as a key") from exc


EMPTY_KEY_PART = "__empty__"  # Spark's KeyGenUtils.EMPTY_RECORDKEY_PLACEHOLDER


def _record_keys(table: pa.Table, config: HudiTableConfig) -> pa.ChunkedArray:
    """Simple keys are the value as a string; complex keys ``f1:v1,f2:v2`` (Spark's ComplexKeyGenerator).

    Empty strings follow Spark's key generators so both writers agree on every key: an empty simple key is refused,
    an empty part of a complex key is written ``__empty__``, a complex key whose parts are all empty is refused.
    """
    fields = config.record_key_fields
    if not config.complex_key:
        keys = _as_string(fields[0], table[fields[0]])
        if _empty_strings(table[fields[0]]) is not None:
            _refuse_empty_key(fields[0], _empty_strings(table[fields[0]]))
        return keys
    parts: list[Any] = []
    masks = []
    for i, name in enumerate(fields):
        values = _as_string(name, table[name])
        empty = _empty_strings(table[name])
        if empty is not None:
            values = pc.if_else(empty, EMPTY_KEY_PART, values)
        masks.append(empty)
        parts += [("," if i else "") + f"{name}:", values]
    if all(m is not None for m in masks):
        every = masks[0]
        for m in masks[1:]:
            every = pc.and_(every, m)
        if pc.any(every).as_py():
            _refuse_empty_key(", ".join(fields), every)
    return pc.binary_join_element_wise(*parts, "")


def _empty_strings(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The mask of empty strings in a string key column, None when it has none (or is not a string column)."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    empty = pc.equal(column, "")
    return empty if pc.any(empty).as_py() else None


def _refuse_empty_key(name: str, empty: pa.ChunkedArray) -> None:
    first = pc.index(empty, True).as_py()
    raise InvalidDataError(
        f"record key column {name!r} has an empty value (first at row {first}); Hudi keys must not be empty"
    )


_UNSAFE_FOLDER_NAMES = (".", "..", HOODIE_DIR)
_MAX_FOLDER_NAME_BYTES = 255  # NAME_MAX of Linux, macOS and Windows file systems


def _partition_paths(table: pa.Table, config: HudiTableConfig) -> pa.ChunkedArray:
    if not config.partition_fields:
        return pa.chunked_array([pa.repeat("", table.num_rows)], pa.string())
    parts: list[Any] = []
    for i, name in enumerate(config.partition_fields):
        values = _as_string(name, table[name])
        values = pc.if_else(pc.or_kleene(pc.is_null(values), pc.equal(values, "")), DEFAULT_PARTITION, values)
        bad = pc.match_substring(values, "/")
        if pc.any(bad).as_py():
            example = values.filter(bad)[0].as_py()
            raise InvalidDataError(f"partition column {name!r} value {example!r} contains '/', which Hudi cannot use")
        if not config.hive_style:  # plain folder names: '..' would write outside the table, '.' into its root
            unsafe = [v for v in pc.unique(values).to_pylist() if v in _UNSAFE_FOLDER_NAMES]
            if unsafe:
                raise InvalidDataError(
                    f"partition column {name!r} value {unsafe[0]!r} cannot be a folder name of this table "
                    "(without hive-style partitioning the value is the folder name)"
                )
        folder_prefix = f"{name}=" if config.hive_style else ""
        room = _MAX_FOLDER_NAME_BYTES - len(folder_prefix.encode())
        too_long = pc.greater(pc.binary_length(values), room)
        if pc.any(too_long).as_py():  # the OS would refuse the folder ("File name too long") mid-write
            example = values.filter(too_long)[0].as_py()
            raise InvalidDataError(
                f"partition column {name!r} value {example[:40]!r}... is {len(example.encode())} bytes; it names a "
                f"folder ({folder_prefix}<value>), and folder names are limited to {_MAX_FOLDER_NAME_BYTES} bytes"
            )
        prefix = ("/" if i else "") + folder_prefix
        parts += [prefix, values] if prefix else [values]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "")


def _dedup(table: pa.Table, precombine: str | None) -> tuple[pa.Table, int]:
    """Keeps one row per (partition, key): the largest precombine value, then the last occurrence."""
    # distinct keys make distinct (partition, key) pairs: the keys alone are checked first (4M composite keys: 1.1 s
    # instead of 4.1 s for the longer joined strings), the pairs only when some key repeats
    if len(pc.unique(table[KEY_COLUMN])) == table.num_rows:  # no nulls here; unique() is ~2x faster than count_distinct()
        return table, 0
    combined = pc.binary_join_element_wise(table[PARTITION_COLUMN], table[KEY_COLUMN], "\x1f")
    if len(pc.unique(combined)) == table.num_rows:
        return table, 0
    sort_columns = {"k": combined, "row": pa.array(np.arange(table.num_rows))}
    order_by = [("k", "ascending")]
    if precombine:
        sort_columns["p"] = table[precombine]
        order_by.append(("p", "ascending", "at_start"))  # a null event time loses to any value
    order_by.append(("row", "ascending"))
    # null placement per sort key: the null_placement= argument is deprecated since pyarrow 25 (FutureWarning)
    order = pc.sort_indices(pa.table(sort_columns), sort_keys=order_by)
    sorted_keys = combined.take(order)
    n = len(sorted_keys)
    last_of_group = pc.not_equal(sorted_keys.slice(0, n - 1), sorted_keys.slice(1)).combine_chunks()
    survivors = order.filter(pa.concat_arrays([last_of_group, pa.array([True])]))
    survivors = pc.take(survivors, pc.sort_indices(survivors))  # input order among survivors
    return table.take(survivors), table.num_rows - len(survivors)


def _distinct_integers(column: pa.ChunkedArray) -> bool:
    """True when ``column`` holds integers without nulls or repeats (an increasing column is not even hashed)."""
    if not pa.types.is_integer(column.type) or column.null_count:
        return False
    values = column.to_numpy()
    if values.size < 2 or bool(np.all(values[1:] > values[:-1])):
        return True
    return len(pc.unique(column)) == len(column)


# --- existing file groups -----------------------------------------------------------------------------------


def _latest_file_slices(base_path: Path, commits: list[integrity.CommitFiles]) -> dict[str, list[tuple[str, str, str]]]:
    """partition path -> [(file id, base file relative path, its commit)] as hudi-rs sees the latest snapshot.

    hudi-rs lists slices from the file system: a live base file that went missing makes it offer an older file of
    that file group (or none), and merging into that would drop the commit that wrote the lost file. The slices
    must be the live files the commits name, else DamagedTableError names the missing file.
    """
    from hudi import HudiTable

    out: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    slices = HudiTable(str(base_path)).get_file_slices()
    planned = [(s.partition_path, s.file_id, s.base_file_relative_path()) for s in slices]
    integrity.check_planned(base_path, commits, planned)
    for s in slices:
        out[s.partition_path].append((s.file_id, s.base_file_relative_path(), s.creation_instant_time))
    return out


def _config_of(base_path: Path) -> HudiTableConfig:
    """The table's config from its (checked) properties; a file that parses but cannot describe a writable table
    is damaged, and the error names it."""
    props = integrity.checked_properties(base_path)
    try:
        return HudiTableConfig.from_properties(props)
    except InvalidDataError as error:
        raise DamagedTableError(f"table {base_path}: {HOODIE_DIR}/{PROPERTIES_FILE}: {error}") from error


def _remove_new_table(base_path: Path) -> None:
    """Undoes the creation of a table by a write that failed: its properties and empty folders go, leaving what a
    refused first batch leaves (the ``.hoodie`` folder and the lock file)."""
    hoodie = base_path / HOODIE_DIR
    for name in os.listdir(hoodie):
        if name == PROPERTIES_FILE or name.startswith(f".{PROPERTIES_FILE}.tmp-"):
            os.remove(hoodie / name)
    for sub in ("archived", ".temp", ".aux"):
        try:
            (hoodie / sub).rmdir()
        except FileNotFoundError:
            pass


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Puts the file's name on an OSError that has none (write() and fsync() failures name no file)."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise


def _read_slice_keys(base_path: Path, slices: list[tuple[str, str, str]]):
    for file_id, rel_path, commit_time in slices:
        keys = read_base_file(base_path / rel_path, columns=["_hoodie_record_key"])["_hoodie_record_key"]
        yield file_id, rel_path, commit_time, keys


@dataclass(frozen=True)
class _Merge:
    """How a file's stored records meet the batch rows of the same keys."""

    replacing: pa.Table  # batch rows that replace their stored record (in batch order)
    unchanged: int  # batch rows identical to their stored record
    outdated: int  # batch rows older (precombine) than their stored record, which is kept


def _merge_with_stored(stored: pa.Table, incoming: pa.Table, schema: pa.Schema, precombine: str | None) -> _Merge:
    """Hudi's ``DefaultHoodieRecordPayload`` rule per record: the stored record stays when its precombine value is
    greater than the incoming one (a null value loses to any value); otherwise the incoming row replaces it, unless
    every column is identical (nulls equal nulls, NaN equals NaN), when there is nothing to write.

    Args:
        stored: one file's records of the batch keys (meta and data columns, as the file has them).
        incoming: the batch rows of exactly those keys, one per key (prepared: table schema plus KEY_COLUMN).
        schema: the table's data schema after this write (columns a file predates compare as nulls).
        precombine: the precombine (event-time) column, None to let every incoming row win.
    """
    stored_order = pc.sort_indices(stored["_hoodie_record_key"])
    incoming_order = pc.sort_indices(incoming[KEY_COLUMN])  # both hold the same unique keys: sorted, they align
    old = _align(stored.take(stored_order), schema)
    new = _align(incoming.take(incoming_order), schema)
    outdated = pa.chunked_array([pa.repeat(False, new.num_rows)], pa.bool_())
    if precombine:
        ours, theirs = old[precombine], new[precombine]
        newer_stored = pc.fill_null(pc.greater(ours, theirs), False)
        outdated = pc.or_(newer_stored, pc.and_(pc.is_valid(ours), pc.is_null(theirs)))
    identical = _same_values(old.column(0), new.column(0))
    for name in schema.names[1:]:
        identical = pc.and_(identical, _same_values(old[name], new[name]))
    unchanged = pc.and_(identical, pc.invert(outdated))
    replace = pc.invert(pc.or_(outdated, unchanged))
    positions = incoming_order.filter(_one_chunk(replace)).to_numpy()
    return _Merge(
        replacing=incoming.take(np.sort(positions)),
        unchanged=pc.sum(unchanged).as_py() or 0,
        outdated=pc.sum(outdated).as_py() or 0,
    )


def _one_chunk(mask: pa.Array | pa.ChunkedArray) -> pa.Array:
    return mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask


def _same_values(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Element-wise "the same value": equal, or both null, or (floats) both NaN. Never null."""
    try:
        equal = pc.equal(a, b)
    except pa.ArrowNotImplementedError:  # nested types of Spark-written tables (lists, structs, maps): no kernel
        return pa.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist())], pa.bool_())
    same = pc.or_(pc.fill_null(equal, False), pc.and_(pc.is_null(a), pc.is_null(b)))
    if pa.types.is_floating(a.type):
        both_nan = pc.and_(pc.fill_null(pc.is_nan(a), False), pc.fill_null(pc.is_nan(b), False))
        same = pc.or_(same, both_nan)
    return same


# --- file assembly ------------------------------------------------------------------------------------------


def _assemble_file(plan: _FileGroupPlan, prepared: _PreparedBatch, instant: str, task: int, file_name: str) -> pa.Table:
    """Old unchanged rows keep their commit time and sequence number; new versions get this instant's."""
    schema = pa.schema(list(META_SCHEMA) + list(prepared.schema))
    parts: list[pa.Table] = []
    if plan.kept is not None and plan.kept.num_rows:
        kept = _align(plan.kept, schema)
        parts.append(kept.set_column(4, schema.field(4), pa.repeat(file_name, kept.num_rows)))
    new_rows = pa.concat_tables(plan.written) if plan.written else None
    if new_rows is not None and new_rows.num_rows:
        parts.append(_with_meta(new_rows, prepared, instant, task, file_name, schema))
    if not parts:
        return schema.empty_table()
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    keys = table["_hoodie_record_key"]
    bounds = pc.min_max(keys)
    metadata = {
        b"hoodie_min_record_key": (bounds["min"].as_py() or "").encode(),
        b"hoodie_max_record_key": (bounds["max"].as_py() or "").encode(),
    }
    return table.replace_schema_metadata(metadata)


def _with_meta(
    rows: pa.Table, prepared: _PreparedBatch, instant: str, task: int, file_name: str, schema: pa.Schema
) -> pa.Table:
    n = rows.num_rows
    seqno = pc.binary_join_element_wise(
        pa.repeat(f"{instant}_{task}_", n), pa.array(np.arange(n)).cast(pa.string()), ""
    )
    meta = [
        pa.repeat(instant, n),
        seqno,
        rows[KEY_COLUMN],
        rows[PARTITION_COLUMN],
        pa.repeat(file_name, n),
    ]
    data = _align(rows, pa.schema(list(prepared.schema)))
    return pa.Table.from_arrays(meta + list(data.columns), schema=schema)


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Orders columns as ``schema`` and adds missing (newly evolved) columns as nulls."""
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            column = table[f.name]
            arrays.append(column if column.type == f.type else column.cast(f.type))
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


_MAX_WRITE_THREADS = 4


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning / container cpusets, unlike os.cpu_count()
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Unique in every file: dictionary encoding only costs here (every value hashed, then a fallback to plain once the
# dictionary page is full); plain encoding is 6-20% less Parquet CPU per insert and smaller. Values are unchanged.
_PLAIN_ENCODED = frozenset({"_hoodie_commit_seqno", "_hoodie_record_key"})


# A CRC-32 in every page header (parquet-mr, hence Spark, writes them by default too): a bit flipped on disk is
# then an error in every verified read (the writer's merge, online sync, ``verify``) instead of wrong values.
PAGE_CHECKSUMS = True


def _write_parquet(table: pa.Table, path: Path, durable: bool) -> int:
    dictionary = [name for name in table.column_names if name not in _PLAIN_ENCODED]
    with _naming(path), open(path, "wb") as handle:
        pq.write_table(
            table,
            handle,
            compression="snappy",
            coerce_timestamps="us",
            allow_truncated_timestamps=False,
            use_dictionary=dictionary,
            write_page_checksum=PAGE_CHECKSUMS,
        )
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
        return handle.tell()


def _write_file(path: Path, data: bytes, durable: bool) -> None:
    with _naming(path), open(path, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def _partition_metadata(instant: str, depth: int) -> bytes:
    now = datetime.now(timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")
    return f"#partition metadata\n#{now}\ncommitTime={instant}\npartitionDepth={depth}\n".encode()


# --- commit metadata ----------------------------------------------------------------------------------------


def _write_stat(f: FileWrite | None, plan: _FileGroupPlan | None = None) -> dict[str, Any]:
    return {
        "fileId": f.file_id if f else (plan.file_id if plan and plan.prev_path else ""),
        "path": f.path if f else None,
        "prevCommit": f.prev_commit if f else (plan.prev_commit if plan else "null"),
        "numWrites": f.num_writes if f else 0,
        "numDeletes": f.num_deletes if f else 0,
        "numUpdateWrites": f.num_updates if f else 0,
        "numInserts": f.num_inserts if f else 0,
        "totalWriteBytes": f.size if f else 0,
        "totalWriteErrors": 0,
        "tempPath": None,
        "cdcStats": None,
        "partitionPath": f.partition_path if f else (plan.partition_path if plan else ""),
        "totalLogRecords": 0,
        "totalLogFilesCompacted": 0,
        "totalLogSizeCompacted": 0,
        "totalUpdatedRecordsCompacted": 0,
        "totalLogBlocks": 0,
        "totalCorruptLogBlock": 0,
        "totalRollbackBlocks": 0,
        "fileSizeInBytes": f.size if f else 0,
        "minEventTime": None,
        "maxEventTime": None,
        "runtimeStats": None,
    }


def _inflight_json(plans: list[_FileGroupPlan], operation: str) -> bytes:
    stats: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for plan in plans:
        stats[plan.partition_path].append(_write_stat(None, plan))
    body = {"partitionToWriteStats": stats, "compacted": False, "extraMetadata": {}, "operationType": operation}
    return json.dumps(body, indent=2).encode()


def _commit_json(files: list[FileWrite], operation: str, schema_json: str) -> bytes:
    stats: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in files:
        stats[f.partition_path].append(_write_stat(f))
    body = {
        "partitionToWriteStats": stats,
        "compacted": False,
        "extraMetadata": {"schema": schema_json},
        "operationType": operation,
    }
    return json.dumps(body, indent=2).encode()
