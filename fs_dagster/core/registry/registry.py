"""The metadata registry: feature-group specs, their Hudi commits and statistics, in a SQL database.

SQLite (a file under the store root) is the default; PostgreSQL works by URL. Only portable SQLAlchemy constructs
are used (no SQLite-only SQL, no ``ON CONFLICT``): upserts are select-then-write inside one short transaction, and a
race lost to another writer (an IntegrityError on PostgreSQL) is retried. PostgreSQL is not exercised by the tests
(no server here); the SQLite-specific parts are confined to ``_configure_sqlite``.

Several processes share one SQLite file (Dagster runs each step in its own process), so every connection uses WAL
(readers never block the writer) and a busy timeout (``timeout``, 30 s by default), and write transactions start
with ``BEGIN IMMEDIATE``: taking the write lock up front makes a waiting writer queue on the busy timeout instead of
failing with "database is locked" when its read lock cannot be upgraded. A writer still waiting when the timeout
ends gets a :class:`RegistryUnavailableError` naming the file: the wait is bounded by ``timeout`` once, not retried.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, delete, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.pool import StaticPool

from fs_dagster.core.errors import (
    InvalidDataError,
    NotFoundError,
    RegistryError,
    RegistryUnavailableError,
)
from fs_dagster.core.extras import missing
from fs_dagster.core.registry.models import (
    Base,
    TrainingDatasetRow,
    CommitRow,
    FeatureGroupRow,
    FeatureRow,
    FeatureViewRow,
    StatisticsRow,
)
from fs_dagster.core.registry.search import SearchHit, feature_search_text, group_search_text
from fs_dagster.core.registry.search import search as _search
from fs_dagster.core.specs import Feature, FeatureGroupSpec, as_features, check_version

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0  # seconds a registry operation waits for another process's write lock (SQLite)
_WRITE_OPTION = "fs_registry_write"
_WRITE_ATTEMPTS = 5  # for races lost to another writer (IntegrityError), not for waiting on a lock
_INSTANT = re.compile(r"^\d{17}$")
# A registered version's identity: changing one needs a new version (a new table).
_IDENTITY_FIELDS = ("primary_key", "event_time", "partition_key", "hive_style_partitioning")
# Its settings: changed only explicitly (update_feature_group, or a full spec from code: register_feature_group).
SETTING_FIELDS = ("online_enabled", "online_ttl_seconds", "statistics_enabled")
# Descriptive fields: what update_feature_group may change besides the settings.
DESCRIPTIVE_FIELDS = ("description", "tags", "owner")
_MAX_LISTED_NAMES = 20


@dataclass(frozen=True)
class CommitRecord:
    """One Hudi commit of a feature group, as the registry records it.

    Args:
        instant: the Hudi commit instant, 17 digits ``yyyyMMddHHmmssSSS``.
        operation: ``"UPSERT"`` or ``"DELETE"`` (stored upper-cased).
        rows_inserted, rows_updated, rows_deleted: row counts of the commit.
        committed_at: when the commit completed; naive values are taken as UTC, all are stored as aware UTC.
        row_count: the table's rows after the commit, if known.

    Example:
        CommitRecord("20240105103000123", "UPSERT", rows_inserted=10, rows_updated=0, rows_deleted=0,
                     committed_at=datetime(2024, 1, 5, 10, 30, tzinfo=timezone.utc), row_count=10)
    """

    instant: str
    operation: str
    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    committed_at: datetime
    row_count: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.instant, str) or not _INSTANT.match(self.instant):
            raise InvalidDataError(f"commit instant {self.instant!r}: expected 17 digits yyyyMMddHHmmssSSS")
        if not isinstance(self.operation, str) or not self.operation.strip():
            raise InvalidDataError(
                f"commit {self.instant}: operation must be a non-empty string, got {self.operation!r}"
            )
        object.__setattr__(self, "operation", self.operation.strip().upper())
        for field in ("rows_inserted", "rows_updated", "rows_deleted", "row_count"):
            value = getattr(self, field)
            if value is None and field == "row_count":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidDataError(f"commit {self.instant}: {field} must be a non-negative integer, got {value!r}")
        if not isinstance(self.committed_at, datetime):
            raise InvalidDataError(f"commit {self.instant}: committed_at must be a datetime, got {self.committed_at!r}")
        moment = self.committed_at
        if moment.tzinfo is None:  # the project's convention: naive datetimes are UTC
            moment = moment.replace(tzinfo=timezone.utc)
        object.__setattr__(self, "committed_at", moment.astimezone(timezone.utc))


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, busy timeout and explicit BEGIN / BEGIN IMMEDIATE on every SQLite connection of ``engine``."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of the sqlite3 module's implicit, deferred one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")  # first, so the WAL switch waits too
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, and much faster
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _is_sqlite_busy(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def _already_exists(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "already exists" in text or "duplicate" in text


def check_driver(url: str) -> None:
    """Checks that the database driver of registry ``url`` is installed (it is imported, not connected).

    Raises:
        MissingDependencyError: a PostgreSQL URL without its driver, naming the [postgres] extra (psycopg 3, for
            ``postgresql+psycopg://`` URLs).
        RegistryError: another database whose driver is missing, or a URL SQLAlchemy does not know.
    """
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as error:
        if parsed.get_backend_name() == "postgresql":
            hint = "" if parsed.get_driver_name() == "psycopg" else (
                f"; the extra installs psycopg 3: write the URL as postgresql+psycopg://..., or install the "
                f"{parsed.get_driver_name()} driver")
            raise missing("postgres", f"the PostgreSQL registry {shown}", f"{error}{hint}") from error
        raise RegistryError(f"registry {shown}: its database driver is not installed ({error})") from error
    except Exception as error:  # noqa: BLE001 - an unknown dialect (sqlalchemy.exc.NoSuchModuleError)
        raise RegistryError(f"registry {shown}: SQLAlchemy cannot use this URL ({error})") from error


class Registry:
    """Metadata of the feature store: feature-group specs, commits and statistics, per project.

    Args:
        url: an SQLAlchemy URL, e.g. ``sqlite:////abs/path/registry.db`` (the store's default, see
            :meth:`for_root`) or ``postgresql+psycopg://user:pass@host/db``. Tables are created if missing.
        timeout: seconds an operation waits for another process's lock on an SQLite registry before raising
            :class:`RegistryUnavailableError` (PostgreSQL: the server's own ``lock_timeout`` applies; set it in
            the URL's ``options``).

    Example:
        >>> registry = Registry.for_root(Path(".fs_store"))  # doctest: +SKIP
        >>> registry.register_feature_group("flights", FeatureGroupSpec("weather_hourly", primary_key=("origin",)))
        ... # doctest: +SKIP
        >>> registry.get_feature_group("flights", "weather_hourly").version  # doctest: +SKIP
        1
        >>> registry.search("flights", "weather")[0].feature_group  # doctest: +SKIP
        'weather_hourly'
    """

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        parsed = make_url(url)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise InvalidDataError(f"registry timeout must be a number of seconds >= 0, got {timeout!r}")
        self.url = url
        self.timeout = float(timeout)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        if self._sqlite:
            database = parsed.database or ""
            if database in ("", ":memory:"):
                # One shared connection, or each checkout would see its own empty in-memory database.
                engine = create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(parsed, connect_args={"timeout": self.timeout})
            _configure_sqlite(engine, int(self.timeout * 1000))
        else:
            check_driver(url)
            engine = create_engine(parsed, pool_pre_ping=True)
        self._engine = engine
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        self._pid = os.getpid()
        self._create_tables()

    @classmethod
    def for_root(cls, root: Path, timeout: float = DEFAULT_TIMEOUT) -> Registry:
        """The store's default registry: the SQLite file ``<root>/registry.db`` (the folder is created)."""
        root = Path(root).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{root / 'registry.db'}", timeout=timeout)

    def __repr__(self) -> str:
        return f"Registry({make_url(self.url).render_as_string(hide_password=True)!r})"

    @property
    def location(self) -> str:
        """The SQLite file's path, or the URL without its password."""
        parsed = make_url(self.url)
        if self._sqlite and parsed.database not in (None, "", ":memory:"):
            return str(parsed.database)
        return parsed.render_as_string(hide_password=True)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        """Closes the pooled connections (the registry reconnects if used again)."""
        self._engine.dispose()

    # ------------------------------------------------------------------ plumbing

    def _check_fork(self) -> None:
        # Pooled connections must not be shared with a forked child; drop (without closing) the inherited ones.
        if os.getpid() != self._pid:
            self._engine.dispose(close=False)
            self._pid = os.getpid()

    def _create_tables(self) -> None:
        # Usually they exist: check with a plain read first, so starting a registry (every Dagster step does)
        # needs no write lock.
        try:
            with self._engine.connect() as connection:
                inspector = inspect(connection)
                if all(inspector.has_table(table.name) for table in Base.metadata.sorted_tables):
                    return
        except DBAPIError:
            pass  # e.g. not a database at all: the creation below reports it
        # checkfirst skips existing tables; two processes starting at once can still both decide to create one,
        # and the loser gets "already exists" (PostgreSQL) -- then the next attempt sees the tables and passes.
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self._write_engine.begin() as connection:
                    Base.metadata.create_all(connection, checkfirst=True)
                return
            except DBAPIError as exc:
                if self._busy(exc):
                    self._engine.dispose()
                    raise self._unavailable("creating its tables", exc) from exc
                retry = isinstance(exc, (OperationalError, ProgrammingError, IntegrityError)) and _already_exists(exc)
                if not retry or attempt == _WRITE_ATTEMPTS - 1:
                    self._engine.dispose()
                    raise RegistryError(f"registry {self!r}: cannot create tables: {exc.orig}") from exc
                time.sleep(0.05 * (attempt + 1))

    def _busy(self, exc: DBAPIError) -> bool:
        """An SQLite lock still held by another process when the busy timeout ran out."""
        return self._sqlite and isinstance(exc, OperationalError) and _is_sqlite_busy(exc)

    def _unavailable(self, what: str, exc: DBAPIError) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"registry {self.location} is locked by another process: {what} waited {self.timeout:g} s "
            f"(registry_timeout) for it ({exc.orig}); a process holding a write transaction open (an open sqlite3 "
            "shell, a stuck writer) blocks every other writer"
        )

    def _read(self, what: str, work: Callable[[Session], T]) -> T:
        self._check_fork()
        try:
            with Session(self._engine) as session, session.begin():
                return work(session)
        except DBAPIError as exc:
            if self._busy(exc):
                raise self._unavailable(what, exc) from exc
            raise RegistryError(f"registry {self!r}: {what} failed: {exc.orig}") from exc

    def _write(self, what: str, work: Callable[[Session], T]) -> T:
        """Runs ``work`` in one short write transaction, retrying races lost to other writers.

        Args:
            what: names the operation (and feature group) in the error if it still fails.

        Raises:
            RegistryUnavailableError: the SQLite file stayed locked by another process for ``timeout`` seconds
                (the busy timeout is the whole wait: it is not retried).
            RegistryError: any other database failure.
        """
        self._check_fork()
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
                    return work(session)
            except DBAPIError as exc:
                if self._busy(exc):
                    raise self._unavailable(what, exc) from exc
                # IntegrityError: another writer inserted the same unique row between our select and insert
                # (PostgreSQL); the retry's select sees it. SQLite cannot get here: BEGIN IMMEDIATE serialises
                # writers.
                if not isinstance(exc, IntegrityError) or attempt == _WRITE_ATTEMPTS - 1:
                    raise RegistryError(f"registry {self!r}: {what} failed: {exc.orig}") from exc
                log.warning("registry %r: %s lost a race (%s); retrying", self, what, exc.orig)
            time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _find(
        session: Session, project: str, name: str, version: int | None, *, features: bool = False
    ) -> FeatureGroupRow:
        """The group row, the latest version if ``version`` is None; NotFoundError listing what exists."""
        _check_project(project)
        if version is not None:
            check_version("feature group", name, version)
        stmt = select(FeatureGroupRow).where(FeatureGroupRow.project == project, FeatureGroupRow.name == name)
        if version is None:
            stmt = stmt.order_by(FeatureGroupRow.version.desc()).limit(1)
        else:
            stmt = stmt.where(FeatureGroupRow.version == version)
        if features:
            stmt = stmt.options(selectinload(FeatureGroupRow.features))
        row = session.scalars(stmt).first()
        if row is not None:
            return row
        versions = session.scalars(
            select(FeatureGroupRow.version)
            .where(FeatureGroupRow.project == project, FeatureGroupRow.name == name)
            .order_by(FeatureGroupRow.version)
        ).all()
        if versions:
            listed = ", ".join(str(v) for v in versions)
            raise NotFoundError(
                f"feature group {name!r} version {version} not found in project {project!r}; versions: {listed}"
            )
        names = session.scalars(
            select(FeatureGroupRow.name)
            .where(FeatureGroupRow.project == project)
            .distinct()
            .order_by(FeatureGroupRow.name)
        ).all()
        listed = ", ".join(names[:_MAX_LISTED_NAMES]) + (", ..." if len(names) > _MAX_LISTED_NAMES else "")
        raise NotFoundError(
            f"feature group {name!r} not found in project {project!r}; "
            + (f"feature groups: {listed}" if names else "the project has no feature groups")
        )

    # ------------------------------------------------------------------ feature groups

    def register_feature_group(self, project: str, spec: FeatureGroupSpec) -> FeatureGroupSpec:
        """Registers ``spec`` as the definition of the version: creates it, or applies it to the registered one.

        This is the path of a definition in code (a Dagster asset's spec): the spec is complete, so its settings
        (``online_enabled``, ``online_ttl_seconds``, ``statistics_enabled``) replace the stored ones. A
        get-or-create, whose arguments may have been left out, uses :meth:`get_or_register_feature_group`.

        An existing version must have the same identity (``primary_key``, ``event_time``, ``partition_key``,
        ``hive_style_partitioning``); changing one needs a new version. Its description, tags and owner are
        replaced by the ones in ``spec`` when those are non-empty; feature descriptions are merged in by
        feature name (non-empty ones win), features the registry does not know yet are appended, and stored
        feature types are kept (they come from the table, see :meth:`update_features`).

        Returns:
            The spec as stored, with the registry's features (types from earlier writes).

        Raises:
            InvalidDataError: the identity differs from the stored version's (naming the field), or ``spec``
                lists a feature twice.
        """
        _check_project(project)
        _check_unique_features(spec, spec.features)

        def work(session: Session) -> FeatureGroupSpec:
            row = self._find_exact(session, project, spec.name, spec.version)
            if row is None:
                return self._add(session, project, spec)
            stored = _to_spec(row)
            _check_agreement(project, stored, spec, _IDENTITY_FIELDS)
            if spec.description:
                row.description = spec.description
            if spec.tags:
                row.tags = list(spec.tags)
            if spec.owner:
                row.owner = spec.owner
            row.online_enabled = spec.online_enabled
            row.online_ttl_seconds = spec.online_ttl_seconds
            row.statistics_enabled = spec.statistics_enabled
            _merge_features(row, stored, spec.features)
            _refresh_search_text(row)
            session.flush()
            return _to_spec(row)

        return self._write(f"registering feature group {spec.name!r} version {spec.version}", work)

    def get_or_register_feature_group(
        self, project: str, name: str, version: int, given: dict[str, Any]
    ) -> FeatureGroupSpec:
        """The registered ``name`` at ``version`` as it is stored, or a new version registered from ``given``
        (a get-or-create: it never changes a stored definition).

        Args:
            given: the :class:`FeatureGroupSpec` fields the caller set explicitly (a new version gets the spec's
                defaults for the others). Each given identity field or setting (:data:`SETTING_FIELDS`) must equal
                the stored value; given descriptive fields are not compared (the stored ones are kept).

        Raises:
            InvalidDataError: a given field conflicts with the stored value; the message names the field, both
                values, and how to change it (a new version, or :meth:`update_feature_group`). Or a new version
                cannot be made from ``given`` (no primary key...).
        """
        _check_project(project)
        checked = tuple(f for f in (*_IDENTITY_FIELDS, *SETTING_FIELDS) if f in given)

        def find(session: Session) -> FeatureGroupSpec | None:
            row = self._find_exact(session, project, name, version, features=True)
            return None if row is None else _to_spec(row)

        # read first: getting an existing group takes no write lock (works while another process holds it)
        stored = self._read(f"reading feature group {name!r} version {version}", find)
        if stored is None:
            spec = FeatureGroupSpec(name=name, version=version, **given)
            _check_unique_features(spec, spec.features)

            def work(session: Session) -> FeatureGroupSpec:
                row = self._find_exact(session, project, name, version)
                return self._add(session, project, spec) if row is None else _to_spec(row)  # (lost a race)

            stored = self._write(f"registering feature group {name!r} version {version}", work)
        _check_agreement(project, stored, given, checked)
        return stored

    def update_feature_group(self, project: str, name: str, version: int, **changes: Any) -> FeatureGroupSpec:
        """Changes settings or descriptive fields of a registered version explicitly.

        Args:
            changes: any of ``online_enabled``, ``online_ttl_seconds`` (None: no TTL), ``statistics_enabled``,
                ``description``, ``tags``, ``owner``, and ``features`` (descriptions by feature name, a dict or
                Feature objects; features not known yet are added).

        Returns:
            The spec as stored after the change.

        Raises:
            InvalidDataError: an identity field (those need a new version) or an unknown field, or a bad value.
        """
        identity = sorted(set(changes) & set(_IDENTITY_FIELDS))
        if identity:
            raise InvalidDataError(
                f"feature group {name!r} version {version}: {', '.join(identity)} cannot change on a registered "
                "version (it is the table's identity); register a new version instead"
            )
        unknown = sorted(set(changes) - {*SETTING_FIELDS, *DESCRIPTIVE_FIELDS, "features"})
        if unknown:
            raise InvalidDataError(
                f"feature group {name!r} version {version}: cannot update {', '.join(unknown)}; updatable: "
                f"{', '.join((*SETTING_FIELDS, *DESCRIPTIVE_FIELDS, 'features'))}"
            )
        for field in ("online_enabled", "statistics_enabled"):
            if field in changes and not isinstance(changes[field], bool):
                raise InvalidDataError(f"feature group {name!r}: {field} must be True or False, got {changes[field]!r}")
        ttl = changes.get("online_ttl_seconds")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise InvalidDataError(
                f"feature group {name!r}: online_ttl_seconds must be a positive int or None, got {ttl!r}"
            )
        features = as_features(changes.get("features") or ())

        def work(session: Session) -> FeatureGroupSpec:
            row = self._find(session, project, name, version, features=True)
            stored = _to_spec(row)
            _check_unique_features(stored, features)
            for field in SETTING_FIELDS:
                if field in changes:
                    setattr(row, field, changes[field])
            if "description" in changes:
                row.description = changes["description"] or ""
            if "tags" in changes:
                row.tags = list(changes["tags"] or ())
            if "owner" in changes:
                row.owner = changes["owner"]
            _merge_features(row, stored, features)
            _refresh_search_text(row)
            session.flush()
            return _to_spec(row)

        return self._write(f"updating feature group {name!r} version {version}", work)

    @staticmethod
    def _find_exact(
        session: Session, project: str, name: str, version: int, *, features: bool = False
    ) -> FeatureGroupRow | None:
        stmt = select(FeatureGroupRow).where(
            FeatureGroupRow.project == project, FeatureGroupRow.name == name, FeatureGroupRow.version == version
        )
        if features:
            stmt = stmt.options(selectinload(FeatureGroupRow.features))
        return session.scalars(stmt).first()

    @staticmethod
    def _add(session: Session, project: str, spec: FeatureGroupSpec) -> FeatureGroupSpec:
        row = FeatureGroupRow(
            project=project,
            name=spec.name,
            version=spec.version,
            primary_key=list(spec.primary_key),
            event_time=spec.event_time,
            partition_key=list(spec.partition_key),
            online_enabled=spec.online_enabled,
            online_ttl_seconds=spec.online_ttl_seconds,
            statistics_enabled=spec.statistics_enabled,
            hive_style_partitioning=spec.hive_style_partitioning,
            description=spec.description,
            tags=list(spec.tags),
            owner=spec.owner,
        )
        row.features = [_feature_row(spec, position, f) for position, f in enumerate(spec.features)]
        _refresh_search_text(row)
        session.add(row)
        session.flush()
        return _to_spec(row)

    def get_feature_group(self, project: str, name: str, version: int | None = None) -> FeatureGroupSpec:
        """The stored spec of ``name`` (its latest version when ``version`` is None).

        Raises:
            NotFoundError: no such group or version; the message lists the existing versions or group names.
        """
        return self._read(
            f"reading feature group {name!r}", lambda s: _to_spec(self._find(s, project, name, version, features=True))
        )

    def list_feature_groups(self, project: str) -> list[FeatureGroupSpec]:
        """Every version of every feature group of ``project``, by name then version."""
        _check_project(project)
        stmt = (
            select(FeatureGroupRow)
            .where(FeatureGroupRow.project == project)
            .order_by(FeatureGroupRow.name, FeatureGroupRow.version)
            .options(selectinload(FeatureGroupRow.features))
        )
        return self._read("listing feature groups", lambda s: [_to_spec(row) for row in s.scalars(stmt)])

    def projects(self) -> list[str]:
        """The projects that have at least one feature group in this registry, sorted."""
        stmt = select(FeatureGroupRow.project).distinct().order_by(FeatureGroupRow.project)
        return self._read("listing projects", lambda s: list(s.scalars(stmt)))

    def update_features(self, project: str, name: str, version: int, features: Sequence[Feature]) -> FeatureGroupSpec:
        """Replaces the schema of a feature group version with ``features`` (in that order).

        Types come from ``features`` (a stored type is kept where the new one is empty), and so do descriptions
        (a stored description is kept where the new one is empty). The primary/partition/event-time flags
        follow the group's identity, whatever the given Features say.
        """
        features = tuple(features)

        def work(session: Session) -> FeatureGroupSpec:
            row = self._find(session, project, name, version, features=True)
            stored = _to_spec(row)
            _check_unique_features(stored, features)
            by_name = {f.name: f for f in row.features}
            keep = []
            for position, feature in enumerate(features):
                known = by_name.pop(feature.name, None)
                if known is None:
                    keep.append(_feature_row(stored, position, feature))
                    continue
                fresh = _feature_row(stored, position, feature)
                known.position = position
                known.type = feature.type or known.type
                known.description = feature.description or known.description
                known.is_primary = fresh.is_primary
                known.is_partition = fresh.is_partition
                known.is_event_time = fresh.is_event_time
                known.search_text = feature_search_text(known.name, known.description)
                keep.append(known)
            row.features = keep  # rows left in by_name are deleted (delete-orphan)
            session.flush()
            return _to_spec(row)

        return self._write(f"updating the features of {name!r} version {version}", work)

    # ------------------------------------------------------------------ commits

    def record_commit(self, project: str, name: str, version: int, commit: CommitRecord) -> None:
        """Records a commit; recording the same instant again replaces its values (idempotent)."""
        if not isinstance(commit, CommitRecord):
            raise InvalidDataError(f"record_commit needs a CommitRecord, got {type(commit).__name__}")

        def work(session: Session) -> None:
            group = self._find(session, project, name, version)
            stmt = select(CommitRow).where(CommitRow.fg_id == group.id, CommitRow.instant == commit.instant)
            row = session.scalars(stmt).first()
            if row is None:
                row = CommitRow(fg_id=group.id, instant=commit.instant)
                session.add(row)
            row.operation = commit.operation
            row.rows_inserted = commit.rows_inserted
            row.rows_updated = commit.rows_updated
            row.rows_deleted = commit.rows_deleted
            row.row_count = commit.row_count
            row.committed_at = commit.committed_at

        self._write(f"recording commit {commit.instant} of {name!r} version {version}", work)

    def commits(self, project: str, name: str, version: int) -> list[CommitRecord]:
        """The recorded commits of a feature group version, oldest first."""

        def work(session: Session) -> list[CommitRecord]:
            group = self._find(session, project, name, version)
            rows = session.scalars(select(CommitRow).where(CommitRow.fg_id == group.id).order_by(CommitRow.instant))
            return [
                CommitRecord(
                    instant=r.instant,
                    operation=r.operation,
                    rows_inserted=r.rows_inserted,
                    rows_updated=r.rows_updated,
                    rows_deleted=r.rows_deleted,
                    committed_at=r.committed_at,
                    row_count=r.row_count,
                )
                for r in rows
            ]

        return self._read(f"reading the commits of {name!r} version {version}", work)

    def forget_commit(self, project: str, name: str, version: int, instant: str) -> bool:
        """Removes a recorded commit and its statistics (for a commit whose Hudi ``.commit`` file was lost and
        which the user gives up); returns whether it was recorded."""

        def work(session: Session) -> bool:
            group = self._find(session, project, name, version)
            gone = session.execute(delete(CommitRow).where(CommitRow.fg_id == group.id, CommitRow.instant == instant))
            session.execute(
                delete(StatisticsRow).where(StatisticsRow.fg_id == group.id, StatisticsRow.instant == instant)
            )
            return bool(gone.rowcount)

        return self._write(f"forgetting commit {instant} of {name!r} version {version}", work)

    # ------------------------------------------------------------------ statistics

    def record_statistics(
        self, project: str, name: str, version: int, instant: str, statistics: dict[str, Any]
    ) -> None:
        """Stores ``statistics`` (a JSON-serializable dict) for the commit ``instant``, replacing earlier ones.

        Raises:
            InvalidDataError: ``instant`` is not 17 digits, or ``statistics`` holds NaN/inf or non-JSON values.
        """
        if not isinstance(instant, str) or not _INSTANT.match(instant):
            raise InvalidDataError(f"statistics of {name!r} version {version}: instant {instant!r} is not 17 digits")
        try:
            # allow_nan=False: NaN is not JSON, and PostgreSQL's json type rejects it.
            document = json.loads(json.dumps(statistics, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(
                f"statistics of {name!r} version {version} at {instant} are not JSON-safe: {exc}"
            ) from exc
        if not isinstance(document, dict):
            raise InvalidDataError(
                f"statistics of {name!r} version {version} at {instant} must be a dict, got {type(statistics).__name__}"
            )

        def work(session: Session) -> None:
            group = self._find(session, project, name, version)
            row = session.scalars(
                select(StatisticsRow).where(StatisticsRow.fg_id == group.id, StatisticsRow.instant == instant)
            ).first()
            if row is None:
                session.add(StatisticsRow(fg_id=group.id, instant=instant, statistics=document))
            else:
                row.statistics = document
                row.computed_at = datetime.now(timezone.utc)

        self._write(f"recording statistics {instant} of {name!r} version {version}", work)

    def statistics(self, project: str, name: str, version: int, instant: str | None = None) -> dict[str, Any] | None:
        """The statistics recorded for ``instant`` (the latest instant when None), or None if there are none."""

        def work(session: Session) -> dict[str, Any] | None:
            group = self._find(session, project, name, version)
            stmt = select(StatisticsRow.statistics).where(StatisticsRow.fg_id == group.id)
            if instant is None:
                stmt = stmt.order_by(StatisticsRow.instant.desc()).limit(1)
            else:
                stmt = stmt.where(StatisticsRow.instant == instant)
            return session.scalars(stmt).first()

        return self._read(f"reading the statistics of {name!r} version {version}", work)

    def statistics_instants(self, project: str, name: str, version: int) -> list[str]:
        """The commit instants that have recorded statistics, oldest first (statistics are recorded for the latest
        commit of each registry sync, so a burst of commits synced at once has statistics for its last one only)."""

        def work(session: Session) -> list[str]:
            group = self._find(session, project, name, version)
            stmt = (select(StatisticsRow.instant).where(StatisticsRow.fg_id == group.id)
                    .order_by(StatisticsRow.instant))
            return list(session.scalars(stmt))

        return self._read(f"listing the statistics of {name!r} version {version}", work)

    # ------------------------------------------------------------------ search

    # ------------------------------------------------------------------ feature views

    def register_feature_view(self, project: str, name: str, version: int, spec: dict[str, Any]) -> dict[str, Any]:
        """Stores a feature view version; an existing version must have the same spec (it is immutable).

        Raises:
            InvalidDataError: the version exists with another spec (create a new version instead).
        """
        _check_project(project)
        check_version("feature view", name, version)

        def work(session: Session) -> dict[str, Any]:
            row = session.scalars(
                select(FeatureViewRow).where(
                    FeatureViewRow.project == project, FeatureViewRow.name == name, FeatureViewRow.version == version
                )
            ).first()
            if row is None:
                session.add(FeatureViewRow(project=project, name=name, version=version,
                                           description=spec.get("description", ""), spec=spec))
                return spec
            if row.spec != spec:
                raise InvalidDataError(
                    f"feature view {name!r} version {version} exists with another query, labels or transformations; "
                    "feature views are immutable: create a new version"
                )
            return dict(row.spec)

        return self._write(f"registering feature view {name!r} version {version}", work)

    def get_feature_view(self, project: str, name: str, version: int | None = None) -> dict[str, Any]:
        """The stored spec (latest version when ``version`` is None); NotFoundError listing what exists."""
        _check_project(project)
        if version is not None:
            check_version("feature view", name, version)

        def work(session: Session) -> dict[str, Any]:
            stmt = select(FeatureViewRow).where(FeatureViewRow.project == project, FeatureViewRow.name == name)
            stmt = stmt.order_by(FeatureViewRow.version.desc()) if version is None else stmt.where(
                FeatureViewRow.version == version
            )
            row = session.scalars(stmt.limit(1)).first()
            if row is None:
                names = session.scalars(
                    select(FeatureViewRow.name).where(FeatureViewRow.project == project).distinct()
                ).all()
                raise NotFoundError(
                    f"feature view {name!r} version {version} not found in project {project!r}; "
                    + (f"feature views: {', '.join(sorted(names))}" if names else "the project has no feature views")
                )
            return dict(row.spec)

        return self._read(f"reading feature view {name!r}", work)

    def list_feature_views(self, project: str) -> list[dict[str, Any]]:
        _check_project(project)
        stmt = (
            select(FeatureViewRow)
            .where(FeatureViewRow.project == project)
            .order_by(FeatureViewRow.name, FeatureViewRow.version)
        )
        return self._read("listing feature views", lambda s: [dict(r.spec) for r in s.scalars(stmt)])

    # ------------------------------------------------------------------ training datasets

    def register_training_dataset(self, project: str, feature_view: str, feature_view_version: int,
                                  spec: dict[str, Any]) -> int:
        """Stores a new training dataset version of the view (the next number, assigned in the same transaction
        so concurrent creators get distinct versions); returns it. ``spec["content_hash"]`` is required."""
        _check_project(project)
        check_version("feature view", feature_view, feature_view_version)

        def work(session: Session) -> int:
            latest = session.scalars(
                select(TrainingDatasetRow.version)
                .where(TrainingDatasetRow.project == project, TrainingDatasetRow.feature_view == feature_view,
                       TrainingDatasetRow.feature_view_version == feature_view_version)
                .order_by(TrainingDatasetRow.version.desc()).limit(1)
            ).first()
            version = (latest or 0) + 1
            session.add(TrainingDatasetRow(
                project=project, feature_view=feature_view, feature_view_version=feature_view_version,
                version=version, content_hash=spec["content_hash"], spec={**spec, "version": version},
            ))
            return version

        return self._write(f"registering a training dataset of feature view {feature_view!r}", work)

    def get_training_dataset(self, project: str, feature_view: str, feature_view_version: int,
                             version: int | None = None) -> dict[str, Any]:
        """The stored spec (latest version when ``version`` is None); NotFoundError listing the versions."""
        _check_project(project)
        check_version("feature view", feature_view, feature_view_version)
        if version is not None:
            check_version("training dataset of feature view", feature_view, version)

        def work(session: Session) -> dict[str, Any]:
            where = (TrainingDatasetRow.project == project, TrainingDatasetRow.feature_view == feature_view,
                     TrainingDatasetRow.feature_view_version == feature_view_version)
            stmt = select(TrainingDatasetRow).where(*where)
            stmt = stmt.order_by(TrainingDatasetRow.version.desc()) if version is None else stmt.where(
                TrainingDatasetRow.version == version)
            row = session.scalars(stmt.limit(1)).first()
            if row is None:
                versions = session.scalars(
                    select(TrainingDatasetRow.version).where(*where).order_by(TrainingDatasetRow.version)).all()
                raise NotFoundError(
                    f"training dataset version {version} of feature view {feature_view!r} v{feature_view_version} "
                    f"not found in project {project!r}; "
                    + (f"versions: {', '.join(map(str, versions))}" if versions else "it has no training datasets")
                )
            return dict(row.spec)

        return self._read(f"reading a training dataset of feature view {feature_view!r}", work)

    def list_training_datasets(self, project: str, feature_view: str, feature_view_version: int) -> list[dict[str, Any]]:
        _check_project(project)
        check_version("feature view", feature_view, feature_view_version)
        stmt = (
            select(TrainingDatasetRow)
            .where(TrainingDatasetRow.project == project, TrainingDatasetRow.feature_view == feature_view,
                   TrainingDatasetRow.feature_view_version == feature_view_version)
            .order_by(TrainingDatasetRow.version)
        )
        return self._read("listing training datasets", lambda s: [dict(r.spec) for r in s.scalars(stmt)])

    def search(self, project: str, text: str, limit: int = 50) -> list[SearchHit]:
        """Keyword search over feature-group names, descriptions and tags and feature names and descriptions.

        Every word of ``text`` must match (case-insensitively); hits are ranked name > tag > description and
        exact word > substring. See :mod:`fs_dagster.core.registry.search` for the exact rules.
        """
        _check_project(project)
        return self._read(f"searching {text!r}", lambda s: _search(s, project, text, limit))


# ---------------------------------------------------------------------- helpers


def _check_project(project: str) -> None:
    if not isinstance(project, str) or not project.strip():
        raise InvalidDataError(f"project must be a non-empty string, got {project!r}")


def _check_unique_features(spec: FeatureGroupSpec, features: Sequence[Feature]) -> None:
    seen: set[str] = set()
    for feature in features:
        if not isinstance(feature, Feature):
            raise InvalidDataError(f"feature group {spec.name!r}: expected Feature objects, got {feature!r}")
        if not feature.name:
            raise InvalidDataError(f"feature group {spec.name!r} version {spec.version}: a feature has an empty name")
        if feature.name in seen:
            raise InvalidDataError(
                f"feature group {spec.name!r} version {spec.version}: feature {feature.name!r} is listed twice"
            )
        seen.add(feature.name)


def _check_agreement(
    project: str, stored: FeatureGroupSpec, requested: FeatureGroupSpec | dict[str, Any], fields: Sequence[str]
) -> None:
    """Refuses a requested value of ``fields`` that differs from the stored one, saying how to change it."""
    for field in fields:
        have = getattr(stored, field)
        want = requested[field] if isinstance(requested, dict) else getattr(requested, field)
        if field in ("primary_key", "partition_key") and isinstance(want, (list, tuple)):
            want = tuple(want)
        if have == want:
            continue
        where = f"feature group {stored.name!r} version {stored.version} in project {project!r}"
        if field in _IDENTITY_FIELDS:
            how = "register a new version to change it"
        else:
            how = (
                f"a get-or-create never changes a stored definition: leave the argument out to keep it, or change "
                f"it explicitly with fs.get_feature_group({stored.name!r}, {stored.version}).update({field}={want!r})"
            )
        raise InvalidDataError(f"{where} is registered with {field}={have!r}, not {want!r}; {how}")


def _merge_features(row: FeatureGroupRow, stored: FeatureGroupSpec, features: Sequence[Feature]) -> None:
    """Feature descriptions merged in by name (non-empty ones win); unknown features appended; types kept."""
    by_name = {f.name: f for f in row.features}
    for feature in features:
        known = by_name.get(feature.name)
        if known is None:
            row.features.append(_feature_row(stored, len(row.features), feature))
            continue
        # Types belong to the table (update_features after each write); a declared one only fills a gap.
        if feature.type and not known.type:
            known.type = feature.type
        if feature.description:
            known.description = feature.description


def _feature_row(spec: FeatureGroupSpec, position: int, feature: Feature) -> FeatureRow:
    # Flags follow the group's identity so they can never disagree with it.
    return FeatureRow(
        position=position,
        name=feature.name,
        type=feature.type,
        description=feature.description,
        is_primary=feature.name in spec.primary_key,
        is_partition=feature.name in spec.partition_key,
        is_event_time=feature.name == spec.event_time,
        search_text=feature_search_text(feature.name, feature.description),
    )


def _refresh_search_text(row: FeatureGroupRow) -> None:
    row.search_text = group_search_text(row.name, row.description, row.tags or ())
    for feature in row.features:
        feature.search_text = feature_search_text(feature.name, feature.description)


def _to_spec(row: FeatureGroupRow) -> FeatureGroupSpec:
    return FeatureGroupSpec(
        name=row.name,
        version=row.version,
        primary_key=tuple(row.primary_key),
        event_time=row.event_time,
        partition_key=tuple(row.partition_key),
        online_enabled=bool(row.online_enabled),
        online_ttl_seconds=row.online_ttl_seconds,
        description=row.description or "",
        features=tuple(
            Feature(
                name=f.name,
                type=f.type or "",
                description=f.description or "",
                primary=bool(f.is_primary),
                partition=bool(f.is_partition),
                event_time=bool(f.is_event_time),
            )
            for f in sorted(row.features, key=lambda f: f.position)
        ),
        tags=tuple(row.tags or ()),
        owner=row.owner,
        hive_style_partitioning=bool(row.hive_style_partitioning),
        statistics_enabled=bool(row.statistics_enabled),
    )
