"""Reads Hudi Copy-on-Write tables: hudi-rs plans (timeline, file slices, time travel, incremental ranges),
DuckDB reads the listed base files (projection and filters pushed into Parquet, far faster than whole-file reads).

Page checksums: DuckDB (1.5) does not verify them, so snapshot, time-travel and incremental reads would return a
page with a flipped bit as wrong values; :meth:`HudiTableReader.read_by_file` (online sync) reads with pyarrow and
verifies them, and :func:`fs_dagster.core.offline.hudi_verify.verify_table` checks a whole table.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import pyarrow as pa
from hudi import HudiQueryType, HudiReadOptions, HudiTable

from fs_dagster.core.errors import (
    CommitNotFoundError,
    CorruptFileError,
    DamagedTableError,
    FeatureStoreError,
    IncompatibleTableError,
    InvalidDataError,
)
from fs_dagster.core.offline import hudi_integrity as integrity
from fs_dagster.core.offline.hudi_properties import HOODIE_DIR, PROPERTIES_FILE
from fs_dagster.core.offline.hudi_schema import META_COLUMNS
from fs_dagster.core.offline.hudi_timeline import datetime_to_instant, instant_to_datetime
from fs_dagster.core.offline.hudi_verify import open_base_file, read_parquet_file

AsOf = str | datetime | None
_V8_COMMIT_FILE = re.compile(r"^(\d{17})_(\d{17})\.commit$")


@dataclass(frozen=True)
class CommitInfo:
    """One completed commit of the timeline with its row counts (summed over the files it wrote)."""

    instant: str
    committed_at: datetime
    operation: str
    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    rows_written: int
    files_written: int
    bytes_written: int
    partitions: tuple[str, ...]


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_DATABASE: tuple[int, duckdb.DuckDBPyConnection] | None = None
_DATABASE_LOCK = threading.Lock()


def _shared_database() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB database per process. Each reader gets its own connection to it (``cursor()``, 0.01 ms)
    instead of a new database (``duckdb.connect()``, ~10 ms: more than a small read itself); connections keep their
    own settings and registered tables. A forked child creates its own (DuckDB's threads do not survive a fork).
    Its file cache is off: a per-reader database dropped it with the reader, a process-wide one would keep it."""
    global _DATABASE
    with _DATABASE_LOCK:
        if _DATABASE is None or _DATABASE[0] != os.getpid():
            _DATABASE = (os.getpid(), duckdb.connect(config={"enable_external_file_cache": False}))
        return _DATABASE[1]


@dataclass
class _Plan:
    """hudi-rs planning of one table for one state of its timeline (see ``_timeline_key``)."""

    key: tuple[Any, ...] | None  # None: not cacheable (the timeline could not be listed)
    table: HudiTable
    commits: list[integrity.CommitFiles]  # what the completed commits say about base files (checked at planning)
    base_files: dict[str | None, list[str]] = field(default_factory=dict)  # as-of instant (None: latest) -> files
    instants: list[str] | None = None  # completed commit instants, oldest first


_PLANS: dict[str, _Plan] = {}  # table path -> plan of its current timeline, most recently used last
_PLANS_LOCK = threading.Lock()
_MAX_PLANS = 128


def _timeline_key(base_path: Path) -> tuple[Any, ...] | None:
    """Everything hudi-rs plans from, cheaply: the file names under ``.hoodie/`` (and ``.hoodie/timeline/`` of v8
    tables), plus the identity of ``hoodie.properties``, of the newest instant file and of the newest ``.commit``
    (a damaged latest commit is noticed at once; damage to an older one by the next write, or where hudi-rs re-reads
    it). Every commit, rollback, clean or archive adds or removes such a file (instant times are unique), so equal
    keys mean an equal plan.
    Costs ~0.02 ms, against 1-3 ms for a new HudiTable and its first listing (10+ ms at 200 commits)."""
    hoodie = base_path / HOODIE_DIR
    try:
        names = sorted(os.listdir(hoodie))
        v8 = sorted(os.listdir(hoodie / "timeline")) if "timeline" in names else []
        newest = [hoodie / n for n in [n for n in names if n[:17].isdigit()][-1:]]
        newest += [hoodie / n for n in [n for n in names if n[:17].isdigit() and n.endswith(".commit")][-1:]]
        newest += [hoodie / "timeline" / n for n in [n for n in v8 if n[:17].isdigit()][-1:]]
        stats = [os.stat(path) for path in [hoodie / PROPERTIES_FILE, *newest]]
    except OSError:
        return None
    return (tuple(names), tuple(v8), tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats))


def _plan_for(base_path: Path) -> _Plan:
    """The cached plan of the table's current timeline, or a new one (a new HudiTable) when the timeline changed."""
    path = os.path.abspath(base_path)
    key = _timeline_key(base_path)
    with _PLANS_LOCK:
        plan = _PLANS.pop(path, None)
        if plan is not None and key is not None and plan.key == key:
            _PLANS[path] = plan
            return plan
    # the properties and every completed commit file are checked before hudi-rs sees them: its errors name no file
    integrity.checked_properties(base_path)
    commits = integrity.completed_commits(base_path)
    try:
        table = HudiTable(str(base_path))
    except Exception as error:  # hudi-rs raises one exception type for everything
        damage = _damage(base_path)
        if damage is not None:
            raise damage from error
        raise
    plan = _Plan(key, table, commits)
    # a commit that landed while the table was being opened changes the key: such a plan is used once, not cached
    if key is not None and _timeline_key(base_path) == key:
        with _PLANS_LOCK:
            _PLANS[path] = plan
            while len(_PLANS) > _MAX_PLANS:
                _PLANS.pop(next(iter(_PLANS)))
    return plan


def _one_table(method):
    """Every planning step of the decorated call (file slices, schema, timeline) uses one ``HudiTable``: its
    construction loads the timeline, which costs more the more commits the table has (3 ms at 200 commits), and
    one object gives the whole call one consistent view. Nested calls reuse the outer call's table. The table and
    the file lists it planned are reused by later calls while the timeline is unchanged (``_plan_for``)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        local = self._planning
        if getattr(local, "table", None) is not None:
            return method(self, *args, **kwargs)
        local.plan = _plan_for(self.base_path)
        local.table = local.plan.table
        try:
            return method(self, *args, **kwargs)
        except FeatureStoreError:
            raise
        except Exception as error:
            # hudi-rs errors name no file, and commit metadata it hands over unparsed may be garbage: find the file
            if isinstance(error, (ValueError, OSError)) or type(error).__name__ == "HudiCoreError":
                damage = _damage(self.base_path)
                if damage is not None:
                    raise damage from error
            raise
        finally:
            local.table = local.plan = None

    return wrapper


class HudiTableReader:
    """Snapshot, time-travel and incremental reads of one Hudi table.

    Example:
        reader = HudiTableReader("/data/weather")
        latest = reader.read(columns=["origin", "temp"])
        before = reader.read(as_of="20240101120000123")
        changed = reader.read_changes(start="20240101120000123")
    """

    def __init__(self, base_path: str | os.PathLike[str], connection: duckdb.DuckDBPyConnection | None = None) -> None:
        self.base_path = Path(base_path)
        if not integrity.has_table(self.base_path):  # a timeline without properties: DamagedTableError
            raise IncompatibleTableError(f"{self.base_path} is not a Hudi table (no {HOODIE_DIR}/{PROPERTIES_FILE})")
        self._connection = connection
        self._lock = threading.Lock()
        self._planning = threading.local()  # the HudiTable of the current call, per thread (see _one_table)

    # --- planning (hudi-rs) -------------------------------------------------------------------------------

    def _table(self) -> HudiTable:
        table = getattr(self._planning, "table", None)
        return table if table is not None else _plan_for(self.base_path).table

    @_one_table
    def commits(self) -> list[CommitInfo]:
        """The completed commits, oldest first, with per-commit row counts."""
        table = self._table()
        timeline = table.get_timeline()
        out = []
        for instant in timeline.get_completed_commits():
            meta = json.loads(timeline.get_instant_metadata_in_json(instant))
            stats = [s for group in (meta.get("partitionToWriteStats") or {}).values() for s in group]
            out.append(
                CommitInfo(
                    instant=instant.timestamp,
                    committed_at=instant_to_datetime(instant.timestamp),
                    operation=meta.get("operationType") or "UNKNOWN",
                    rows_inserted=sum(int(s.get("numInserts") or 0) for s in stats),
                    rows_updated=sum(int(s.get("numUpdateWrites") or 0) for s in stats),
                    rows_deleted=sum(int(s.get("numDeletes") or 0) for s in stats),
                    rows_written=sum(int(s.get("numWrites") or 0) for s in stats),
                    files_written=len(stats),
                    bytes_written=sum(int(s.get("totalWriteBytes") or 0) for s in stats),
                    partitions=tuple(sorted(meta.get("partitionToWriteStats") or {})),
                )
            )
        return out

    @_one_table
    def latest_instant(self) -> str | None:
        instants = self._completed_instants()
        return instants[-1] if instants else None

    def _completed_instants(self) -> list[str]:
        plan = getattr(self._planning, "plan", None)
        if plan is not None and plan.instants is not None:
            return plan.instants
        instants = [c.timestamp for c in self._table().get_timeline().get_completed_commits()]
        if plan is not None:
            plan.instants = instants
        return instants

    def resolve_as_of(self, as_of: AsOf, what: str = "as_of") -> str | None:
        """A commit instant or point in time -> the instant of the last commit at or before it.

        Raises:
            CommitNotFoundError: the table has no commit at or before ``as_of``.
        """
        if as_of is None:
            return None
        wanted = self._instant_of(as_of, what)
        instants = self._completed_instants()
        earlier = [i for i in instants if i <= wanted]
        if not earlier:
            first = instants[0] if instants else "none"
            raise CommitNotFoundError(f"{self.base_path.name}: no commit at or before {wanted} (first commit: {first})")
        return earlier[-1]

    def _instant_of(self, value: str | datetime, what: str) -> str:
        """A commit instant or datetime as an instant; anything else is refused naming the expected format."""
        if isinstance(value, datetime):
            return datetime_to_instant(value)
        if isinstance(value, str) and len(value) == 17 and value.isdigit():
            return value
        example = (self._completed_instants() or [datetime_to_instant(datetime.now(timezone.utc))])[-1]
        raise CommitNotFoundError(
            f"{self.base_path.name}: {what}={value!r} is not a commit instant: expected 17 digits "
            f"yyyyMMddHHmmssSSS (UTC), e.g. {example}, or a datetime"
        )

    @_one_table
    def base_files(self, as_of: AsOf = None) -> list[str]:
        """Absolute paths of the base files that make up the snapshot (latest, or as of a commit/time)."""
        options = HudiReadOptions()
        instant = self.resolve_as_of(as_of)
        plan = self._planning.plan
        if instant in plan.base_files:  # planned before on this very timeline
            integrity.check_exist(self.base_path, plan.base_files[instant])  # a file deleted since (a stat each)
            return list(plan.base_files[instant])
        if instant is not None:
            options = options.with_as_of_timestamp(instant)
        table = self._table()
        slices = table.get_file_slices(options)
        planned = [(s.partition_path, s.file_id, s.base_file_relative_path()) for s in slices]
        integrity.check_planned(self.base_path, plan.commits, planned, as_of=instant)
        files = [str(self.base_path / path) for _p, _f, path in planned]
        integrity.check_exist(self.base_path, files)
        plan.base_files[instant] = files
        return list(files)

    def snapshot_sql(self, as_of: AsOf = None) -> str | None:
        """A DuckDB table expression over the snapshot's base files (sorted by path, so scans see the rows in the
        same order every time), for joins that run in DuckDB; None if the snapshot has no files. The Hudi meta
        columns are among its columns."""
        files = sorted(self.base_files(as_of))
        return self._source(files) if files else None

    def changed_files(self, start: str, end: str) -> list[str]:
        start, end = self._incremental_bounds(start, end)
        options = (
            HudiReadOptions()
            .with_query_type(HudiQueryType.Incremental)
            .with_start_timestamp(start)
            .with_end_timestamp(end)
        )
        slices = self._table().get_file_slices(options)
        planned = [(s.partition_path, s.file_id, s.base_file_relative_path()) for s in slices]
        plan = getattr(self._planning, "plan", None)
        if plan is not None and not (self.base_path / HOODIE_DIR / "timeline").is_dir():  # v6: instants are bounds
            integrity.check_planned(self.base_path, plan.commits, planned, as_of=end, after=start)
        files = [str(self.base_path / path) for _p, _f, path in planned]
        integrity.check_exist(self.base_path, files)
        return files

    def _incremental_bounds(self, start: str, end: str) -> tuple[str, str]:
        """hudi-rs selects incremental commits by instant (start) time on v6 tables but by completion time on v8
        (timeline layout 2: ``.hoodie/timeline/<start>_<completion>.commit``); passing start instants to a v8 table
        returns the wrong commits' files. Our API takes commit instants on every version, so on v8 each bound
        becomes the completion time of the last commit that started at or before it (a single writer's commits
        complete in the order they start); the ``_hoodie_commit_time`` filter then selects the exact rows."""
        timeline = self.base_path / HOODIE_DIR / "timeline"
        if not timeline.is_dir():
            return start, end
        pairs = [m.groups() for m in map(_V8_COMMIT_FILE.match, os.listdir(timeline)) if m]

        def completion(bound: str) -> str:
            done = [completed for started, completed in pairs if started <= bound]
            return max(done) if done else "0" * 17

        return completion(start), completion(end)

    @_one_table
    def schema(self) -> pa.Schema:
        """The data schema (no meta columns) of the latest commit."""
        return self._table().get_schema()

    # --- reading (DuckDB) ---------------------------------------------------------------------------------

    @_one_table
    def read(
        self,
        columns: Sequence[str] | None = None,
        as_of: AsOf = None,
        where: str | None = None,
        with_meta: bool = False,
    ) -> pa.Table:
        """The table's rows as of the latest commit (or ``as_of``), as Arrow.

        Args:
            columns: data columns to read (projection pushed into Parquet); all by default.
            as_of: commit instant (``yyyyMMddHHmmssSSS``) or datetime for time travel.
            where: a DuckDB SQL predicate over the columns, pushed down to the Parquet scan.
            with_meta: include the ``_hoodie_*`` columns.
        """
        files = self.base_files(as_of)
        instant = self.resolve_as_of(as_of) if as_of is not None else None
        return self._scan(files, self._projection(columns, with_meta, instant), where)

    def read_by_file(self, columns: Sequence[str] | None = None, with_meta: bool = False) -> Iterator[pa.Table]:
        """The latest snapshot one base file at a time (sorted by path), the next file read in a background thread
        while the caller works on the current one. Within one file every record key appears once (one file group
        holds a key per partition), which is what callers streaming rows to a store rely on."""
        files = sorted(self.base_files())
        projection = self._projection(columns, with_meta)
        if not files:
            yield self._scan([], projection, None)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="fs-hudi-prefetch") as pool:
            pending = pool.submit(self._read_file, files[0], projection)
            for index in range(1, len(files) + 1):
                current = pending.result()
                if index < len(files):
                    pending = pool.submit(self._read_file, files[index], projection)
                yield current

    def _read_file(self, path: str, columns: list[str]) -> pa.Table:
        """One base file as the snapshot has it: with pyarrow's Parquet reader (~3x faster than a DuckDB scan of
        it), its page checksums verified (``CorruptFileError`` naming the file), when its columns have the table's
        types, else (another writer's physical types) with the DuckDB scan; columns the file predates (schema
        evolution) are nulls, as in a snapshot read."""
        expected = self._schema_of(columns)
        try:
            with open_base_file(path) as parquet:
                stored = parquet.schema_arrow
                present = [c for c in columns if stored.get_field_index(c) >= 0]
                same_types = all(stored.field(c).type == expected.field(c).type for c in present)
                table = read_parquet_file(parquet, path, present) if same_types else None
        except CorruptFileError:
            if not os.path.exists(path):  # a live file gone: damage to the table, named with its commit
                raise integrity.missing_file(self.base_path, os.path.relpath(path, self.base_path)) from None
            raise
        if table is None:
            table = self._scan([path], present, None)
        if len(present) < len(columns):
            table = pa.table([table[c] if c in present else pa.nulls(table.num_rows, expected.field(c).type)
                              for c in columns], names=columns)
        return table.cast(expected) if table.schema != expected else table

    @_one_table
    def read_changes(
        self,
        start: str | datetime | None,
        end: str | datetime | None = None,
        columns: Sequence[str] | None = None,
        with_meta: bool = True,
    ) -> pa.Table:
        """Rows written by commits in ``(start, end]`` (Hudi incremental query; deletes are not rows here,
        see :meth:`deleted_keys`). ``start=None`` means from the beginning, ``end=None`` up to the latest."""
        start = self._instant_of(start, "start") if start else None
        latest = self.latest_instant()
        if latest is None:
            return self._empty(self._projection(columns, with_meta))
        end = self.resolve_as_of(end, "end") if end is not None else latest
        start = start or "00000000000000000"
        files = self.changed_files(start, end)
        predicate = f"_hoodie_commit_time > {sql_string(start)} AND _hoodie_commit_time <= {sql_string(end)}"
        return self._scan(files, self._projection(columns, with_meta, end if end != latest else None), predicate)

    @_one_table
    def deleted_keys(self, start: str, end: str | None = None, columns: Sequence[str] = ()) -> pa.Table:
        """Record keys (with partition path, and ``columns`` of the deleted rows as of ``start``) present as of
        ``start`` and gone as of ``end``."""
        key_cols = ["_hoodie_record_key", "_hoodie_partition_path"]
        before = self._scan(self.base_files(start), key_cols + [c for c in columns if c not in key_cols], None)
        after = self._scan(self.base_files(end), key_cols, None)
        with self._lock:
            con = self._con()
            con.register("fs_before", before)
            con.register("fs_after", after)
            try:
                return con.sql(
                    "SELECT b.* FROM fs_before b ANTI JOIN fs_after a "
                    "USING (_hoodie_record_key, _hoodie_partition_path) ORDER BY ALL"
                ).to_arrow_table()
            finally:
                con.unregister("fs_before")
                con.unregister("fs_after")

    @_one_table
    def count(self, as_of: AsOf = None) -> int:
        files = self.base_files(as_of)
        if not files:
            return 0
        with self._lock:
            try:
                # fetchall: a fetchone would leave DuckDB 2's result open on this shared connection
                return self._con().execute(f"SELECT count(*) FROM {self._source(files)}").fetchall()[0][0]
            except duckdb.IOException:
                integrity.check_exist(self.base_path, files)
                raise

    # --- internals ----------------------------------------------------------------------------------------

    def _con(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            self._connection = _shared_database().cursor()
            self._connection.execute("SET TimeZone='UTC'")
        return self._connection

    def _projection(self, columns: Sequence[str] | None, with_meta: bool, instant: str | None = None) -> list[str]:
        if columns is None:
            columns = self._columns_as_of(instant)
        else:
            self._check_columns(columns, instant)
        return (list(META_COLUMNS) if with_meta else []) + list(columns)

    def _check_columns(self, columns: Sequence[str], instant: str | None) -> None:
        """Refuses column names the snapshot does not have, listing the ones it has (DuckDB would fail with a
        binder error naming neither the table nor its columns)."""
        if isinstance(columns, str):
            raise InvalidDataError(f"columns must be a list of column names, got the string {columns!r}")
        then = self._columns_as_of(instant)
        unknown = [c for c in columns if c not in then and c not in META_COLUMNS]
        if not unknown:
            return
        latest = then if instant is None else self._columns_as_of(None)
        later = [c for c in unknown if c in latest]
        if later:
            raise InvalidDataError(
                f"{self.base_path.name}: column(s) {later} did not exist as of commit {instant} (added by a later "
                f"commit); its columns then: {then}"
            )
        raise InvalidDataError(f"{self.base_path.name}: no column(s) {unknown}; the columns are: {latest}")

    def _columns_as_of(self, instant: str | None) -> list[str]:
        """The data columns of the table as of commit ``instant`` (None: the latest).

        A column added by a later commit (schema evolution) is not part of an older snapshot: time travel returns
        the columns the table had then (hudi-rs would return today's schema with the new columns all null, and
        DuckDB cannot even select a column no file of that snapshot has). The names come from the commit's
        ``extraMetadata.schema``, the types from the latest schema (a column's type never changes).
        """
        latest = [n for n in self.schema().names if n not in META_COLUMNS]
        if instant is None:
            return latest
        timeline = self._table().get_timeline()
        match = [i for i in timeline.get_completed_commits() if i.timestamp == instant]
        if not match:
            return latest
        avro = (json.loads(timeline.get_instant_metadata_in_json(match[0])).get("extraMetadata") or {}).get("schema")
        if not avro:
            return latest
        then = {f["name"] for f in json.loads(avro).get("fields", [])}
        return [n for n in latest if n in then]

    def _source(self, files: list[str]) -> str:
        listed = ", ".join(sql_string(f) for f in files)
        # hive_partitioning off: the partition columns are stored in the files; folder names must not override them
        return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"

    def _schema_of(self, columns: list[str] | None) -> pa.Schema:
        schema = self._table().get_schema_with_meta_fields()
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        return schema

    def _empty(self, columns: list[str] | None) -> pa.Table:
        return self._schema_of(columns).empty_table()

    def _scan(self, files: list[str], columns: list[str] | None, where: str | None) -> pa.Table:
        if not files:
            return self._empty(columns)
        select = "*" if columns is None else ", ".join(quote_identifier(c) for c in columns)
        sql = f"SELECT {select} FROM {self._source(files)}"
        if where:
            sql += f" WHERE {where}"
        with self._lock:
            try:
                result = self._con().sql(sql).to_arrow_table()
            except duckdb.IOException:
                integrity.check_exist(self.base_path, files)  # a file deleted while (or since) it was planned
                raise
            except (duckdb.BinderException, duckdb.ParserException) as error:
                if not where:
                    raise
                raise InvalidDataError(
                    f"{self.base_path.name}: where={where!r} is not a valid predicate: {error}"
                ) from error
        # DuckDB drops Arrow's not-null flags; restore the table's exact schema so every reader agrees
        expected = self._schema_of(columns)
        return result.cast(expected) if result.schema != expected else result


def _damage(base_path: Path) -> DamagedTableError | None:
    """The damaged file behind a hudi-rs (or metadata) error, when one is found: hudi-rs messages name none."""
    try:
        integrity.has_table(base_path)
        integrity.checked_properties(base_path)
        integrity.completed_commits(base_path)
    except DamagedTableError as damage:
        return damage
    return None
