"""A feature group handle: writes go to its Hudi table (and the registry), reads come back as pandas or Arrow."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError, NotFoundError, RegistryError
from fs_dagster.core.feature_view import Query, Selection
from fs_dagster.core.offline import hudi_integrity as integrity
from fs_dagster.core.offline.hudi_properties import HudiTableConfig
from fs_dagster.core.offline.hudi_reader import AsOf, CommitInfo, HudiTableReader
from fs_dagster.core.offline.hudi_schema import to_arrow
from fs_dagster.core.offline.hudi_timeline import scan
from fs_dagster.core.offline.hudi_verify import VerifyReport, verify_table
from fs_dagster.core.offline.hudi_writer import CommitResult, HudiWriter
from fs_dagster.core.online.online_store import OnlineStoreError
from fs_dagster.core.online.sync import OnlineSyncResult, online_layout, sync_feature_group
from fs_dagster.core.registry import CommitRecord
from fs_dagster.core.specs import FeatureGroupSpec

if TYPE_CHECKING:
    from fs_dagster.core.commit_windows import WindowFigures
    from fs_dagster.core.store import FeatureStore

log = logging.getLogger(__name__)
DataFrameType = Literal["pandas", "arrow"]


class OnlineSyncError(FeatureStoreError):
    """The offline commit succeeded but the online store could not be updated; the next sync repairs it."""

    def __init__(self, message: str, instant: str | None) -> None:
        super().__init__(message)
        self.instant = instant


class RegistrySyncError(FeatureStoreError):
    """The offline commit succeeded but the registry could not record it (e.g. locked by another process for
    longer than ``registry_timeout``); the registry catches up at the next write or :meth:`FeatureGroup.sync_registry`.
    ``result`` is the commit; the registry's error is the ``__cause__``."""

    def __init__(self, message: str, result: CommitResult) -> None:
        super().__init__(message)
        self.result = result
        self.instant = result.instant


class StatisticsError(RegistrySyncError):
    """The offline commit succeeded and the registry recorded it, but the commit's statistics could not be
    computed (or stored). ``instant`` is the commit; ``result`` the write's :class:`CommitResult` when a write
    raised it (None from :meth:`FeatureGroup.sync_registry`); the cause is the ``__cause__``. The next
    :meth:`FeatureGroup.sync_registry` (every write and :meth:`FeatureGroup.statistics` call it) computes them
    again."""

    def __init__(self, message: str, instant: str, result: CommitResult | None = None) -> None:
        FeatureStoreError.__init__(self, message)
        self.result = result  # type: ignore[assignment]
        self.instant = instant


@dataclass(frozen=True)
class TimeWindow:
    """A half-open event-time range ``[start, end)`` (aware datetimes), e.g. a Dagster partition's window."""

    start: datetime
    end: datetime


class FeatureGroup:
    """One version of a feature group: its offline Hudi table plus its registry entry.

    Get one from :meth:`FeatureStore.get_or_create_feature_group`; don't construct it directly.

    Example:
        fg = fs.get_or_create_feature_group("weather_hourly", primary_key=["origin", "time_hour"],
                                            event_time="time_hour", partition_key=["origin"])
        fg.insert(df)                       # upsert; returns the CommitResult
        fg.read()                           # latest snapshot as pandas
        fg.read(as_of="20240101120000123")  # time travel
        fg.read_changes(start=instant)      # rows written after a commit
    """

    def __init__(self, store: FeatureStore, spec: FeatureGroupSpec) -> None:
        self._store = store
        self.spec = spec
        self.last_online_sync: OnlineSyncResult | None = None
        # settings a full definition (FeatureStore.create_feature_group) changed: field -> (before, after)
        self.definition_changes: dict[str, tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"FeatureGroup({self.spec.name!r}, version={self.spec.version}, path={str(self.path)!r})"

    # --- identity -----------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.spec.primary_key

    @property
    def event_time(self) -> str | None:
        return self.spec.event_time

    @property
    def path(self) -> Path:
        return self._store.feature_group_path(self.spec)

    @property
    def table_config(self) -> HudiTableConfig:
        return HudiTableConfig(
            name=self.spec.table_name,
            record_key_fields=self.spec.primary_key,
            partition_fields=self.spec.partition_key,
            precombine_field=self.spec.event_time,
            hive_style=self.spec.hive_style_partitioning,
        )

    def exists(self) -> bool:
        """Whether the offline table has been created (by a first write).

        Raises:
            DamagedTableError: the table folder has a timeline but no ``hoodie.properties``, or no table is left
                although the registry lists commits of it: damaged, not empty (the message names what is missing).
        """
        if integrity.has_table(self.path):
            return True
        recorded = self._recorded_commits()
        if recorded:
            raise integrity.missing_table_error(self.path, recorded)
        return False

    def _recorded_commits(self) -> list[str]:
        """The instants the registry recorded for this group, oldest first."""
        return [c.instant for c in self._store.registry.commits(self._store.project, self.spec.name, self.spec.version)]

    def _writer(self) -> HudiWriter:
        options = self._store.write_options
        return HudiWriter(self.path, self.table_config, recorded_commits=self._recorded_commits, **options)

    def _reader(self) -> HudiTableReader:
        if not self.exists():
            raise NotFoundError(f"feature group {self.spec.key} has no data yet (nothing was inserted)")
        return HudiTableReader(self.path)

    # --- definition ---------------------------------------------------------------------------------------

    def update(self, **changes: Any) -> FeatureGroup:
        """Changes the registered settings or descriptions of this version, for every process using it.

        Args:
            changes: any of ``online_enabled``, ``online_ttl_seconds`` (None: no TTL), ``statistics_enabled``,
                ``description``, ``tags``, ``owner``, ``features`` (``{"temp": "Temperature in F"}``).

        Turning ``online_enabled`` on (or changing the TTL of an online group) fully syncs the online store from
        the latest commit, so every key is served (with the new TTL) right away. Turning it off stops syncing and
        serving; the values stay in Valkey until a later full sync replaces them. The primary key, event time and
        partitioning cannot change (register a new version).

        Returns:
            This group, with the updated spec.

        Raises:
            InvalidDataError: an identity field, an unknown field or a bad value.
            OnlineSyncError: the registry was updated but the full online sync failed; run
                ``sync_online(full=True)`` once the online store is back.
        """
        before = self._store.registry.get_feature_group(self._store.project, self.spec.name, self.spec.version)
        self.spec = self._store.registry.update_feature_group(
            self._store.project, self.spec.name, self.spec.version, **changes
        )
        turned_on = self.spec.online_enabled and not before.online_enabled
        ttl_changed = self.spec.online_enabled and self.spec.online_ttl_seconds != before.online_ttl_seconds
        if (turned_on or ttl_changed) and self.exists():
            try:
                self.sync_online(full=True)
            except OnlineStoreError as error:
                raise OnlineSyncError(
                    f"feature group {self.spec.key}: the registry now has online_enabled={self.spec.online_enabled}, "
                    f"online_ttl_seconds={self.spec.online_ttl_seconds}, but the full online sync failed: {error}; "
                    "run sync_online(full=True) once the online store is back",
                    self.latest_commit(),
                ) from error
        return self

    # --- writes -------------------------------------------------------------------------------------------

    def insert(self, data: Any, *, window: TimeWindow | None = None, sync_online: bool = True) -> CommitResult:
        """Upserts rows: new primary keys are inserted, existing ones replaced. The newer event time wins, within
        the batch and against the stored row (equal: this later write wins), offline as online, so both stores
        agree on every key; rows older than or identical to the stored ones are not written, and a batch that
        changes nothing makes no commit (``result.instant`` None). Nothing is written if any row is invalid.

        Args:
            data: pandas DataFrame or Arrow table with every feature column.
            window: when given, every row's event time must fall inside it (a partition run writes its window).
            sync_online: for online-enabled groups, sync the commit to the online store right away (an
                unreachable store raises OnlineSyncError after the offline commit, which is kept).

        Raises:
            InvalidDataError: naming the column/value at fault (null key, unsupported type, type change...).
            OnlineSyncError: the commit is kept, the online store could not be updated.
            RegistrySyncError: the commit is kept, the registry could not record it within ``registry_timeout``.
            StatisticsError: the commit is kept and recorded, its statistics failed (retried by the next sync).
        """
        table = to_arrow(data)
        self._validate_event_time(table, window)
        result = self._writer().upsert(table)
        self._after_commit(result, sync_online)
        return result

    def delete(self, keys: Any) -> CommitResult:
        """Deletes rows by primary key (partition columns speed it up; without them every partition is searched).

        Key values must have the key columns' types (an int key is not deleted by ``"2"`` or ``2.0``); keys not
        stored are ignored, and if none is, nothing is committed (``result.instant`` None). Errors as for
        :meth:`insert`.
        """
        result = self._writer().delete(to_arrow(keys))
        self._after_commit(result)
        return result

    def _validate_event_time(self, table: pa.Table, window: TimeWindow | None) -> None:
        column = self.spec.event_time
        if column is None:
            return
        if column not in table.column_names:
            raise InvalidDataError(
                f"feature group {self.spec.key}: event time column {column!r} missing from the batch "
                f"(columns: {table.column_names})"
            )
        values = table[column]
        if not (pa.types.is_timestamp(values.type) or pa.types.is_date(values.type)):
            raise InvalidDataError(
                f"feature group {self.spec.key}: event time column {column!r} must be a timestamp or date, "
                f"got {values.type}"
            )
        if values.null_count:
            raise InvalidDataError(
                f"feature group {self.spec.key}: event time column {column!r} has {values.null_count} null value(s)"
            )
        if window is None or table.num_rows == 0:
            return
        as_ts = values.cast(pa.timestamp("us", tz="UTC")) if pa.types.is_date(values.type) else values
        if as_ts.type.tz is None:
            as_ts = pc.assume_timezone(as_ts, "UTC")
        start = pa.scalar(window.start, pa.timestamp("us", tz="UTC"))
        end = pa.scalar(window.end, pa.timestamp("us", tz="UTC"))
        outside = pc.or_(pc.less(as_ts, start), pc.greater_equal(as_ts, end))
        n_outside = pc.sum(outside).as_py() or 0
        if n_outside:
            example = as_ts.filter(outside)[0].as_py()
            raise InvalidDataError(
                f"feature group {self.spec.key}: {n_outside} row(s) have {column} outside the partition window "
                f"[{window.start.isoformat()}, {window.end.isoformat()}), e.g. {example.isoformat()}"
            )

    def _after_commit(self, result: CommitResult, sync_online: bool = True) -> None:
        """Mirrors the commit into the registry (schema, commit counts, statistics) and the online store.

        The Hudi commit is the source of truth and stays whatever fails here, and nothing that fails here passes
        silently: after the online sync was tried, a registry that could not record the commit (locked,
        unreachable, or any other error) raises :class:`RegistrySyncError`, and statistics that could not be
        computed raise :class:`StatisticsError` (a RegistrySyncError: both name the commit that is kept). The next
        :meth:`sync_registry` (every write and read of statistics calls it) catches up.
        """
        if result.instant is None:
            return
        registry_error: Exception | None = None
        try:
            self.sync_registry()
        except StatisticsError as error:  # the commit is recorded; its statistics are retried by the next sync
            error.result = result
            registry_error = error
        except Exception as error:  # locked/unreachable registry (RegistryError), or anything else: raised below
            registry_error = error
        if self.spec.online_enabled and sync_online:
            try:
                self.sync_online()
            except OnlineStoreError as error:  # unreachable, refused (auth, ACL, out of memory): the commit stays
                also = f" (the registry was not updated either: {registry_error})" if registry_error else ""
                raise OnlineSyncError(
                    f"feature group {self.spec.key}: offline commit {result.instant} is kept, but {error}; "
                    f"the next write or sync_online() brings the online store up to date{also}",
                    result.instant,
                ) from error
        if isinstance(registry_error, StatisticsError):
            raise registry_error
        if registry_error is not None:
            cause = registry_error if isinstance(registry_error, RegistryError) else (
                f"{type(registry_error).__name__}: {registry_error}")
            raise RegistrySyncError(
                f"feature group {self.spec.key}: offline commit {result.instant} is kept, but the registry did not "
                f"record it: {cause}. The registry catches up at the next write, statistics read or "
                "sync_registry()",
                result,
            ) from registry_error

    def sync_online(self, full: bool = False) -> OnlineSyncResult:
        """Brings the online store up to the latest commit (incrementally; ``full`` rewrites every key).

        Raises:
            OnlineStoreUnavailable: naming the Valkey address; nothing is lost, the next sync catches up.
            OnlineStoreError: the server refused a command (ACL, out of memory); also nothing lost.
        """
        self._require_online()
        result = sync_feature_group(
            self.spec, self._reader(), self._store.online_store, self._store.project, full=full
        )
        self.last_online_sync = result
        return result

    def get_online(self, keys: Sequence[Sequence[Any]] | Sequence[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Latest online rows by online key (:attr:`FeatureGroupSpec.online_key`: the primary key, or for a time
        series the entity, e.g. ``("JFK",)`` for weather keyed by ``(origin, time_hour)``, whose latest hour is
        served); tuples in key order, or dicts (other entries are ignored). None where a key has no row.

        Key values must have the key columns' types (see :mod:`fs_dagster.core.online.codec`; timestamps also as
        ISO strings). Raises InvalidDataError for a group that is not online-enabled (before any connection), or
        for a key of the wrong length (a time series' event time is not part of its online key).
        """
        self._require_online()
        store = self._store.online_store
        layout = online_layout(self.spec, self._reader().schema(), self._store.project, store.config.key_prefix)
        entities = [_entity(k, layout.key_columns, self.spec.key) if isinstance(k, dict) else tuple(k) for k in keys]
        rows = store.get(layout, entities)
        return [
            None if row is None else dict(zip(layout.key_columns + layout.value_columns, entity + row))
            for entity, row in zip(entities, rows)
        ]

    def _require_online(self) -> None:
        """Refuses online calls on a group that is not online-enabled, before the online store is touched (which
        would start the embedded server, a process that outlives this one, only to fail afterwards)."""
        if not self.spec.online_enabled:
            raise InvalidDataError(
                f"feature group {self.spec.key} is not online-enabled; turn it on with "
                "update(online_enabled=True) (a full sync follows)"
            )

    def sync_registry(self) -> None:
        """Records every Hudi commit the registry does not know yet, and statistics of the latest commit when it
        has none yet (statistics enabled).

        Raises:
            StatisticsError: the commits are recorded, but the latest one's statistics failed (the cause names
                why); the next call tries again.
            RegistryError: the registry could not be read or written (locked, unreachable).
            DamagedTableError: the registry lists commits the table lost.
        """
        if not self.exists():
            return
        reader = self._reader()
        known = set(self._recorded_commits())
        timeline = reader.commits()
        pending = scan(self.path).pending
        lost = integrity.lost_commits(known, [c.instant for c in timeline], pending)
        if lost:  # the registry must not keep answering for commits the table lost
            raise integrity.lost_commit_error(self.path, lost, pending, "Syncing the registry")
        if timeline:  # the latest snapshot's files are the live ones the timeline names (planning is cached)
            reader.base_files(timeline[-1].instant)
        missing = [c for c in timeline if c.instant not in known]
        if missing:
            self._record_commits(reader, missing)
        if self.spec.statistics_enabled and timeline:
            self._record_statistics(timeline[-1].instant, already_recorded=not missing)

    def _record_commits(self, reader: HudiTableReader, missing: list[CommitInfo]) -> None:
        """Records ``missing`` commits (oldest first) and the table's current schema."""
        registry = self._store.registry
        schema = reader.schema()
        self.spec = registry.update_features(
            self._store.project,
            self.spec.name,
            self.spec.version,
            self.spec.with_schema([(f.name, str(f.type)) for f in schema]).features,
        )
        for commit in missing:
            row_count = reader.count(as_of=commit.instant) if commit is missing[-1] else None
            registry.record_commit(
                self._store.project,
                self.spec.name,
                self.spec.version,
                CommitRecord(
                    instant=commit.instant,
                    operation=commit.operation,
                    rows_inserted=commit.rows_inserted,
                    rows_updated=commit.rows_updated,
                    rows_deleted=commit.rows_deleted,
                    committed_at=commit.committed_at,
                    row_count=row_count,
                ),
            )

    def _record_statistics(self, instant: str, already_recorded: bool) -> None:
        """Computes and records the statistics of commit ``instant`` unless the registry has them (checked only
        when no commit was just recorded: a new commit has none)."""
        registry = self._store.registry
        project, name, version = self._store.project, self.spec.name, self.spec.version
        if already_recorded and registry.statistics(project, name, version, instant) is not None:
            return
        try:
            statistics = self.compute_statistics(instant)
        except Exception as error:  # noqa: BLE001 - any failure is named, with the commit it leaves without stats
            raise StatisticsError(
                f"feature group {self.spec.key}: offline commit {instant} is kept and recorded, but its statistics "
                f"failed ({type(error).__name__}: {error}); the next write, statistics read or sync_registry() "
                "computes them again",
                instant,
            ) from error
        registry.record_statistics(project, name, version, instant, statistics)

    def abandon_commit(self, instant: str, *more: str) -> None:
        """Gives up commits the registry lists whose Hudi ``.commit`` file was lost (deleted by hand, lost by
        storage): reads already show the table without them, and writes and registry syncs refuse until the
        registry agrees. They are removed from the registry (with their statistics); the next write rolls back
        their remaining data files. Their rows are gone for good: restore a ``.commit`` file from a backup instead
        if you have one.

        Raises:
            InvalidDataError: an instant is a completed commit of the table (nothing is lost) or is not recorded.
        """
        instants = (instant, *more)
        completed = {c.instant for c in self._reader().commits()} if integrity.has_table(self.path) else set()
        recorded = set(self._recorded_commits())
        for wanted in instants:
            if wanted in completed:
                raise InvalidDataError(
                    f"feature group {self.spec.key}: commit {wanted} is on the table's timeline; nothing to abandon"
                )
            if wanted not in recorded:
                raise InvalidDataError(f"feature group {self.spec.key}: the registry has no commit {wanted}")
        registry = self._store.registry
        for wanted in instants:
            registry.forget_commit(self._store.project, self.spec.name, self.spec.version, wanted)
            log.warning("feature group %s: commit %s abandoned (its .commit file was lost)", self.spec.key, wanted)
        if completed:  # the registry's schema follows the table's (an abandoned commit may have added a column)
            schema = self._reader().schema()
            self.spec = registry.update_features(
                self._store.project, self.spec.name, self.spec.version,
                self.spec.with_schema([(f.name, str(f.type)) for f in schema]).features,
            )

    # --- feature views -------------------------------------------------------------------------------------

    def select(self, features: Sequence[str]) -> Query:
        """A query selecting ``features`` of this group (join others to it; see :class:`Query`)."""
        return Query(Selection(self.spec.name, self.spec.version, tuple(features)), (), self._store)

    def select_all(self) -> Query:
        """A query selecting every non-key feature of this group."""
        return Query(Selection(self.spec.name, self.spec.version, ()), (), self._store)

    # --- reads --------------------------------------------------------------------------------------------

    def read(
        self,
        as_of: AsOf = None,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        dataframe_type: DataFrameType = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """The feature group's rows (latest, or as of a commit instant / datetime).

        Args:
            as_of: ``yyyyMMddHHmmssSSS`` commit instant or a datetime: the table as it was then.
            columns: features to read (projection pushed into Parquet).
            where: DuckDB SQL predicate, e.g. ``"origin = 'JFK'"``.
            dataframe_type: ``"pandas"`` or ``"arrow"``.
        """
        return _as(self._reader().read(columns=columns, as_of=as_of, where=where), dataframe_type)

    def read_window(self, window: TimeWindow, dataframe_type: DataFrameType = "pandas") -> pd.DataFrame | pa.Table:
        """Rows whose event time falls in ``[window.start, window.end)``."""
        if self.spec.event_time is None:
            raise InvalidDataError(f"feature group {self.spec.key} has no event time to select a window by")
        column = '"' + self.spec.event_time.replace('"', '""') + '"'
        where = (
            f"{column} >= TIMESTAMPTZ '{window.start.isoformat()}' AND {column} < TIMESTAMPTZ '{window.end.isoformat()}'"
        )
        return self.read(where=where, dataframe_type=dataframe_type)

    def read_changes(
        self,
        start: str | None,
        end: str | None = None,
        columns: Sequence[str] | None = None,
        dataframe_type: DataFrameType = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """Rows inserted or updated by commits in ``(start, end]`` (Hudi incremental query), with the
        ``_hoodie_commit_time`` of each. Deletes: :meth:`read_deleted_keys`."""
        return _as(self._reader().read_changes(start, end, columns=columns), dataframe_type)

    def read_deleted_keys(self, start: str, end: str | None = None) -> pd.DataFrame:
        """Hudi record keys present as of ``start`` and gone as of ``end``."""
        return self._reader().deleted_keys(start, end).to_pandas()

    def commit_details(self, limit: int | None = None) -> list[CommitInfo]:
        """The commit timeline, newest first, with rows inserted/updated/deleted per commit."""
        if not self.exists():
            return []
        commits = list(reversed(self._reader().commits()))
        return commits[:limit] if limit else commits

    def verify(self) -> VerifyReport:
        """Checks every live base file of the latest commit: present, the size and row count its commit recorded,
        every page decodable and matching its page checksum. Reads the whole table once.

        Snapshot reads (DuckDB) do not verify page checksums; the writer (before merging a file) and the online
        sync do. Run this (or the Dagster integrity check) to find files damaged at rest.

        Returns:
            The report: files, bytes and rows checked, and each bad file (path relative to the table) with the
            reason; ``report.ok`` is False when any file is bad.
        """
        if not self.exists():
            return VerifyReport(self.spec.key, None, 0, 0, 0)
        return verify_table(self.path, name=self.spec.key)

    def schema(self) -> pa.Schema:
        """The table's data schema as of the latest commit."""
        return self._reader().schema()

    def latest_commit(self) -> str | None:
        return self._reader().latest_instant() if self.exists() else None

    def count(self, as_of: AsOf = None) -> int:
        return self._reader().count(as_of) if self.exists() else 0

    def compute_statistics(self, as_of: AsOf = None) -> dict[str, Any]:
        """Descriptive statistics, histograms and correlations of the snapshot (computed by DuckDB)."""
        import duckdb

        from fs_dagster.core.monitoring.statistics import compute_statistics

        reader = self._reader()
        files = reader.base_files(as_of)
        columns = [n for n in reader.schema().names]
        if not files:
            return compute_statistics(reader.schema().empty_table(), columns)
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        relation = con.sql(f"SELECT * FROM read_parquet([{listed}], union_by_name = true, hive_partitioning = false)")
        return compute_statistics(relation, columns)

    def window_figures(
        self, windows: Sequence[TimeWindow], *, instant: str | None, batch: Any = None, statistics: bool = False
    ) -> list[WindowFigures]:
        """What commit ``instant`` did to each event-time window: batch rows, rows inserted/updated, rows after
        it, their statistics and content version (see :mod:`fs_dagster.core.commit_windows`).

        Args:
            windows: e.g. the windows of the Dagster partitions a run wrote.
            instant: the commit (None: nothing was committed; the figures describe the latest snapshot).
            batch: the rows that were written (pandas or Arrow), to count them per window.
            statistics: also compute each window's statistics.
        """
        from fs_dagster.core.commit_windows import window_figures

        column = self.spec.event_time
        if column is None:
            raise InvalidDataError(f"feature group {self.spec.key} has no event time to split a commit by window")
        times = None
        if batch is not None:
            times = batch[column] if isinstance(batch, pa.Table) else pa.Array.from_pandas(batch[column])
        if not self.exists():
            return window_figures(None, column, windows, instant=None, batch_event_times=times)
        return window_figures(self._reader(), column, windows, instant=instant, batch_event_times=times,
                              statistics=statistics)

    def statistics(self, commit: str | None = None) -> dict[str, Any] | None:
        """Statistics recorded for a commit (latest by default)."""
        self.sync_registry()
        return self._store.registry.statistics(self._store.project, self.spec.name, self.spec.version, commit)


def _entity(key: dict[str, Any], columns: Sequence[str], group: str) -> tuple[Any, ...]:
    missing = [c for c in columns if c not in key]
    if missing:
        raise InvalidDataError(f"feature group {group}: online key {key!r} lacks {missing}; it needs {list(columns)}")
    return tuple(key[c] for c in columns)


def _as(table: pa.Table, dataframe_type: DataFrameType) -> pd.DataFrame | pa.Table:
    if dataframe_type == "arrow":
        return table
    if dataframe_type == "pandas":
        return table.to_pandas()
    raise InvalidDataError(f"dataframe_type must be 'pandas' or 'arrow', got {dataframe_type!r}")
