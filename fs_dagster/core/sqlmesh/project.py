"""A SQLMesh project: load it, run some of its models for a time range, read their rows back.

How a run works (:meth:`ProjectSession.run`), all through SQLMesh's Python API:

1. **Sync the environment**: a plan of the project's current files against the environment, applied without
   backfill when something changed (new model versions get their tables; data is computed in step 2, only for the
   requested range). Uncategorized changes are refused with the models named.
2. **Evaluate**: a restatement plan for the selected models over ``[start, end)`` (their intervals are cleared
   and recomputed: a materialization means "compute from the current inputs"), with ``backfill_models`` = the
   selection, so SQLMesh also fills the *missing* intervals of what they read and nothing else. With
   ``restate=False`` only missing intervals are computed (``Context.run``). In a development environment, models
   that still share their version (and table) with prod are never restated from there.
3. **Outcomes**: a console records what SQLMesh evaluated, which models failed (a blocking audit or an error)
   and which it skipped because an upstream model failed. Audits of models whose audits did not all pass (or that
   were not evaluated) are run again to name each result, with a sample of failing rows.

A failed blocking audit leaves the model's rows in SQLMesh's table (SQLMesh does not record the interval as done);
callers must not publish them (the Dagster face writes nothing to the feature store for such a model).

One run at a time per database: :meth:`SQLMeshProject.session` holds a file lock beside the DuckDB database
(DuckDB lets one process write a database file), and closes SQLMesh's connections when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa

from fs_dagster.core.errors import PipelineError, PipelineLockedError
from fs_dagster.core.file_lock import FileLock
from fs_dagster.core.sqlmesh import require_sqlmesh
from fs_dagster.core.sqlmesh.models import AuditInfo, ModelInfo, external_stub, model_info

log = logging.getLogger(__name__)
PROD = "prod"
LOCK_SUFFIX = ".fs_dagster.lock"

EVALUATED, UP_TO_DATE, FAILED, SKIPPED = "evaluated", "up_to_date", "failed", "skipped"


@dataclass(frozen=True)
class AuditOutcome:
    """One audit's result for the run's range.

    Attributes:
        failing_rows: rows the audit query returned (None: skipped); ``sample`` the first of them.
    """

    audit: AuditInfo
    passed: bool
    failing_rows: int | None
    query: str | None = None
    sample: pa.Table | None = None
    skipped: bool = False

    @property
    def blocks(self) -> bool:
        """A failed blocking audit: the model's rows must not be published."""
        return not self.passed and self.audit.blocking


@dataclass
class ModelOutcome:
    """What happened to one selected model.

    Attributes:
        status: ``evaluated`` (computed by this run), ``up_to_date`` (nothing to compute: its intervals were
            there, or it shares prod's table from a development environment), ``failed`` or ``skipped`` (an
            upstream model failed).
        intervals: the intervals SQLMesh computed, ``[start, end)`` each.
    """

    fqn: str
    name: str
    status: str
    error: str | None = None
    audits: list[AuditOutcome] = field(default_factory=list)
    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Computed (or already there) and no blocking audit failed: its rows may be published."""
        return self.status in (EVALUATED, UP_TO_DATE) and not any(a.blocks for a in self.audits)


@dataclass
class RunReport:
    """The outcome of :meth:`ProjectSession.run`: one :class:`ModelOutcome` per selected model, in DAG order."""

    environment: str
    start: datetime | None
    end: datetime | None
    outcomes: dict[str, ModelOutcome]
    also_evaluated: list[str] = field(default_factory=list)  # names of upstream models the selection needed computed
    applied_changes: list[str] = field(default_factory=list)  # models whose new version the sync plan applied
    timings: dict[str, float] = field(default_factory=dict)  # seconds: sync_plan, evaluate, audit_details

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes.values() if not o.ok]


class SQLMeshProject:
    """A SQLMesh project directory (``config.yaml``/``config.py``, ``models/``...), loaded once per process.

    Args:
        path: the project folder.
        gateway: a gateway of its config (default: the config's default gateway).
        lock_timeout: seconds a run waits for another process's run on the same database.
        audit_sample_rows: failing rows kept per failed audit.

    Example:
        project = SQLMeshProject("pipelines/flights")
        with project.session() as session:
            report = session.run(["features.route_delays"], start=jan, end=feb)
            rows = session.fetch("features.route_delays", start=jan, end=feb)   # Arrow, UTC timestamps
    """

    def __init__(self, path: str | Path, gateway: str | None = None, *, lock_timeout: float = 600.0,
                 audit_sample_rows: int = 20) -> None:
        self.path = Path(path).resolve()
        self.gateway = gateway
        self.lock_timeout = lock_timeout
        self.audit_sample_rows = audit_sample_rows
        self.load_seconds: float | None = None
        self._context: Any = None
        self._models: dict[str, ModelInfo] | None = None
        self._files_signature: tuple[int, int, str] | None = None

    def __repr__(self) -> str:
        return f"SQLMeshProject({str(self.path)!r}, gateway={self.gateway!r})"

    @property
    def context(self) -> Any:
        """The loaded ``sqlmesh.Context`` (loading reads the files; it does not open the database)."""
        if self._context is None:
            sqlmesh = require_sqlmesh()
            if not self.path.is_dir():
                raise PipelineError(f"SQLMesh project {self.path} does not exist")
            started = time.perf_counter()
            self._files_signature = self._signature()
            try:
                self._context = sqlmesh.Context(paths=[str(self.path)], gateway=self.gateway)
            except Exception as error:
                raise PipelineError(f"SQLMesh project {self.path} could not be loaded: {error}") from error
            self.load_seconds = time.perf_counter() - started
        return self._context

    def reload_if_changed(self) -> bool:
        """Forgets the loaded context when a file of the project or its configuration changed since it was loaded
        (a ``config.py`` may read environment variables, e.g. where the database lives); the next use loads the
        project again. Returns whether it did."""
        if self._context is None or self._signature() == self._files_signature:
            return False
        self.close()
        self._context, self._models = None, None
        return True

    def _signature(self) -> tuple[int, int, str]:
        """(newest modification time, number of files) of the project's files (SQLMesh's cache left out), and
        the configuration as SQLMesh loads it now."""
        from sqlmesh.core.config import Config
        from sqlmesh.core.config.loader import load_configs

        newest, count = 0, 0
        for folder, dirs, files in os.walk(self.path):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
            for name in files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
                    count += 1
        try:
            config = repr(sorted((str(k), repr(v)) for k, v in load_configs(None, Config, [self.path]).items()))
        except Exception as error:  # a broken config: loading the project reports it
            config = f"error: {error}"
        return newest, count, config

    def models(self) -> dict[str, ModelInfo]:
        """Every model and external table, by fqn, parents before children."""
        if self._models is None:
            ctx = self.context
            infos = {fqn: model_info(ctx, model) for fqn, model in ctx.models.items()}
            for info in list(infos.values()):  # tables read but not declared: external
                for parent in info.parents:
                    if parent not in infos:
                        infos[parent] = external_stub(parent, ctx.default_dialect)
            order = [fqn for fqn in ctx.dag.sorted if fqn in infos]
            order += [fqn for fqn in infos if fqn not in order]
            self._models = {fqn: infos[fqn] for fqn in order}
        return self._models

    def model(self, name: str) -> ModelInfo:
        """A model by fqn or ``schema.table`` (raises PipelineError naming the known models)."""
        models = self.models()
        if name in models:
            return models[name]
        matches = [m for m in models.values() if m.name == name or m.fqn.replace('"', "") == name]
        if len(matches) == 1:
            return matches[0]
        raise PipelineError(
            f"SQLMesh project {self.path} has no model {name!r} (models: {', '.join(m.name for m in models.values())})"
        )

    def lock_path(self) -> Path:
        """Where runs on this project's database serialize: beside the DuckDB file, else in SQLMesh's cache."""
        ctx = self.context
        database = getattr(ctx.connection_config, "database", None)
        if ctx.connection_config.type_ == "duckdb" and database and database != ":memory:":
            return Path(database).resolve().with_name(Path(database).name + LOCK_SUFFIX)
        ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        return ctx.cache_dir / ("fs_dagster" + LOCK_SUFFIX)

    @contextlib.contextmanager
    def session(self) -> Iterator[ProjectSession]:
        """Holds the project's lock, yields a :class:`ProjectSession`, then closes SQLMesh's connections.

        Raises:
            PipelineLockedError: another process held the database longer than ``lock_timeout``.
        """
        lock = _ProjectLock(self.lock_path(), self.lock_timeout)
        with lock:
            try:
                yield ProjectSession(self)
            finally:
                self.close()

    def close(self) -> None:
        """Closes SQLMesh's database connections (the DuckDB file is free for other processes again)."""
        if self._context is None:
            return
        with contextlib.suppress(Exception):
            self._context.close()
        with contextlib.suppress(Exception):
            self._context.engine_adapter.close()


class _ProjectLock(FileLock):
    def locked_error(self, holder: str) -> Exception:
        return PipelineLockedError(
            f"the SQLMesh database is in use by another run (pid {holder}); waited {self.timeout:.0f}s for "
            f"{self.path}"
        )


class ProjectSession:
    """Runs and reads of one :meth:`SQLMeshProject.session` (the lock is held meanwhile)."""

    def __init__(self, project: SQLMeshProject) -> None:
        self.project = project
        self.ctx = project.context
        self.ctx.console = _Recorder()  # SQLMesh's own console would print to stdout; outcomes are returned

    # --- running ------------------------------------------------------------------------------------------

    def run(
        self,
        models: Sequence[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        environment: str = PROD,
        restate: bool = True,
        apply_changes: bool = True,
    ) -> RunReport:
        """Brings ``environment`` up to the project's files and computes ``models`` for ``[start, end)``
        (their whole range when None), and what they need. Never raises for a model's failure: see the
        report's outcomes.

        Args:
            models: fqns or ``schema.table`` names.
            restate: recompute intervals already computed (default); False: only missing ones.
            apply_changes: apply the project's changes to the environment first (default). False: refuse to run
                when the files differ from what the environment runs (promotion is then a separate, explicit
                :meth:`plan_and_apply`, e.g. after comparing a development environment's output).

        Raises:
            PipelineError: the environment could not be planned (e.g. a model changed in a way SQLMesh cannot
                categorize; the message names the models), or it differs from the files and ``apply_changes`` is
                False.
        """
        infos = [self.project.model(m) for m in models]
        selected = [i.fqn for i in infos if not i.external]
        report = RunReport(environment, start, end, {})
        recorder = _Recorder()
        self.ctx.console = recorder
        started = time.perf_counter()
        report.applied_changes = self._sync(environment, apply_changes)
        report.timings["sync_plan"] = time.perf_counter() - started
        owned = self._owned(environment, selected)
        started = time.perf_counter()
        error: Exception | None = None
        try:
            if restate and owned:
                builder = self.ctx.plan_builder(
                    environment, start=start, end=end, restate_models=owned, backfill_models=selected,
                    skip_tests=True, no_gaps=False,
                )
                self.ctx.apply(builder.build())
            elif selected:
                self.ctx.run(environment, start=start, end=end, select_models=selected, ignore_cron=True,
                             skip_janitor=True)
        except Exception as caught:  # node failures are in the recorder; anything else fails every model
            error = caught
        report.timings["evaluate"] = time.perf_counter() - started
        started = time.perf_counter()
        report.outcomes = self._outcomes(infos, recorder, error, environment, start, end)
        report.timings["audit_details"] = time.perf_counter() - started
        report.also_evaluated = sorted(self._name(f) for f in set(recorder.evaluated) - set(selected))
        return report

    def plan_and_apply(self, environment: str = PROD) -> list[str]:
        """A plan of the project's files against ``environment``, applied as SQLMesh's ``plan`` applies it
        (missing intervals are computed; tables a development environment built for the same versions are
        reused, not recomputed): how a reviewed change is promoted. Returns the models with new versions.

        Raises:
            PipelineError: planning or applying failed (naming the environment and the cause), or changes are
                uncategorized.
        """
        self.ctx.console = _Recorder()
        return self._sync(environment, True, backfill=True)

    def _sync(self, environment: str, apply_changes: bool = True, backfill: bool = False) -> list[str]:
        """Applies the project's changes to the environment (without computing data unless ``backfill``);
        returns the models whose new versions were applied."""
        try:
            plan = self.ctx.plan_builder(
                environment, skip_backfill=not backfill, include_unmodified=environment != PROD, no_gaps=False
            ).build()
        except Exception as error:
            raise PipelineError(
                f"SQLMesh project {self.project.path}: planning environment {environment!r} failed: {error}"
            ) from error
        if plan.uncategorized:
            names = ", ".join(s.name for s in plan.uncategorized)
            raise PipelineError(
                f"SQLMesh project {self.project.path}: changes to {names} are not categorized (breaking or not); "
                f"plan environment {environment!r} once with SQLMesh (sqlmesh plan {environment}) to decide"
            )
        exists = self.ctx.state_reader.get_environment(environment) is not None
        if not plan.has_changes and exists:
            return []
        if not apply_changes and exists:
            changed = self._changed(plan)
            raise PipelineError(
                f"SQLMesh environment {environment!r} does not run the project's files ({', '.join(changed)} "
                f"changed) and this resource does not apply changes: promote them first (a plan of "
                f"{environment!r}: `sqlmesh plan {environment}` or ProjectSession.plan_and_apply)"
            )
        try:
            self.ctx.apply(plan)
        except Exception as error:
            raise PipelineError(
                f"SQLMesh project {self.project.path}: applying the plan of environment {environment!r} failed: "
                f"{error}"
            ) from error
        return self._changed(plan)

    def _changed(self, plan: Any) -> list[str]:
        """Names of the models a plan adds, changes (directly or through a parent) or removes."""
        diff = plan.context_diff
        names = set(diff.modified_snapshots) | {getattr(s, "name", s) for s in diff.added}
        names |= {getattr(s, "name", s) for s in diff.removed_snapshots}
        models = self.project.models()
        return sorted(self._name(n) for n in names if not (n in models and models[n].external))

    def _owned(self, environment: str, selected: list[str]) -> list[str]:
        """The selected models whose version is the environment's own (all of them in prod): the ones it may
        restate. A development environment shares unchanged models' tables with prod and must not rewrite them."""
        if environment == PROD:
            return list(selected)
        env = self.ctx.state_reader.get_environment(environment)
        prod = self.ctx.state_reader.get_environment(PROD)
        prod_ids = {s.snapshot_id for s in prod.snapshots} if prod is not None else set()
        mine = {s.name for s in env.snapshots if s.snapshot_id not in prod_ids} if env is not None else set()
        return [fqn for fqn in selected if fqn in mine]

    def _outcomes(self, infos: list[ModelInfo], recorder: _Recorder, error: Exception | None, environment: str,
                  start: datetime | None, end: datetime | None) -> dict[str, ModelOutcome]:
        outcomes: dict[str, ModelOutcome] = {}
        unexplained = error is not None and not recorder.failures
        for info in infos:
            if info.external:
                continue
            outcome = ModelOutcome(info.fqn, info.name, UP_TO_DATE)
            evaluated = recorder.evaluated.get(info.fqn)
            if evaluated is not None:
                outcome.status = EVALUATED
                outcome.intervals = evaluated.intervals
                outcome.seconds = evaluated.seconds
            cause = recorder.failures.get(info.fqn)
            if cause is not None:
                outcome.status, outcome.error = FAILED, _describe(cause)
            elif info.fqn in recorder.skipped:
                upstream = "; ".join(f"{self._name(f)}: {_describe(c)}" for f, c in recorder.failures.items())
                outcome.status, outcome.error = SKIPPED, f"not run, an upstream model failed ({upstream})"
            elif unexplained:
                outcome.status, outcome.error = FAILED, _describe(error)
            if info.audits and outcome.status != SKIPPED and not (outcome.status == FAILED and not _audit_failure(cause)):
                if evaluated is not None and cause is None and evaluated.audits_failed == 0:
                    outcome.audits = [AuditOutcome(a, True, 0) for a in info.audits]
                else:  # name each result: which failed, how many rows, a sample
                    outcome.audits = self._audit(info, environment, start, end)
            outcomes[info.fqn] = outcome
        return outcomes

    def _name(self, fqn: str) -> str:
        info = self.project.models().get(fqn)
        return info.name if info is not None else fqn

    def _audit(self, info: ModelInfo, environment: str, start: datetime | None,
               end: datetime | None) -> list[AuditOutcome]:
        from sqlmesh.core.snapshot import DeployabilityIndex

        ctx = self.ctx
        env = ctx.state_reader.get_environment(environment)
        snapshots = ctx.state_reader.get_snapshots(env.snapshots)
        by_name = {s.name: s for s in snapshots.values()}
        snapshot = by_name[info.fqn]
        results = ctx.snapshot_evaluator.audit(
            snapshot=snapshot, snapshots=by_name, start=start, end=end,
            deployability_index=DeployabilityIndex.create(snapshots),
        )
        out = []
        for audit, result in zip(info.audits, results):
            if result.skipped or result.count is None:
                out.append(AuditOutcome(audit, True, None, skipped=True))
                continue
            query = result.query.sql(dialect=ctx.snapshot_evaluator.adapter.dialect) if result.query else None
            sample = None
            if result.count and query:
                sample = self._fetch_sql(f"SELECT * FROM ({query}) AS failing LIMIT {self.project.audit_sample_rows}")
            out.append(AuditOutcome(audit, result.count == 0, int(result.count), query, sample))
        return out

    # --- reading ------------------------------------------------------------------------------------------

    def table_name(self, model: str, environment: str = PROD) -> str:
        """The physical table holding ``model``'s rows in ``environment``."""
        info = self.project.model(model)
        try:
            return self.ctx.table_name(info.fqn, environment)
        except Exception as error:
            raise PipelineError(
                f"SQLMesh model {info.name} has no table in environment {environment!r}: {error}"
            ) from error

    def fetch(self, model: str, *, start: datetime | None = None, end: datetime | None = None,
              environment: str = PROD, columns: Sequence[str] | None = None) -> pa.Table:
        """The model's rows whose time column falls in ``[start, end)`` (all rows for other kinds or when no
        range is given), as Arrow. Timestamps without a time zone are UTC (SQLMesh's convention) and come back
        as ``timestamp[..., tz=UTC]``."""
        info = self.project.model(model)
        select = ", ".join(_quote(c) for c in columns) if columns else "*"
        sql = f"SELECT {select} FROM {self.table_name(info.fqn, environment)}{_where(info, start, end)}"
        return _utc(self._fetch_sql(sql))

    def count(self, model: str, *, start: datetime | None = None, end: datetime | None = None,
              environment: str = PROD) -> int:
        """Rows of the model in ``[start, end)`` (see :meth:`fetch`)."""
        info = self.project.model(model)
        sql = f"SELECT count(*) AS n FROM {self.table_name(info.fqn, environment)}{_where(info, start, end)}"
        return int(self._fetch_sql(sql).column(0)[0].as_py())

    def _fetch_sql(self, sql: str) -> pa.Table:
        adapter = self.ctx.engine_adapter
        if adapter.dialect == "duckdb":
            return adapter.cursor.execute(sql).fetch_arrow_table()
        return pa.Table.from_pandas(adapter.fetchdf(sql), preserve_index=False)


# --- the recording console -------------------------------------------------------------------------------


@dataclass
class _Evaluated:
    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)
    seconds: float = 0.0
    audits_passed: int = 0
    audits_failed: int = 0


def _recorder_base() -> type:
    require_sqlmesh()
    from sqlmesh.core.console import NoopConsole

    return NoopConsole


class _Recorder(_recorder_base()):  # type: ignore[misc]
    """A silent SQLMesh console that records evaluations, failures and skipped models by fqn."""

    def __init__(self) -> None:
        self.evaluated: dict[str, _Evaluated] = {}
        self.failures: dict[str, BaseException] = {}
        self.skipped: set[str] = set()
        self.warnings: list[str] = []

    def update_snapshot_evaluation_progress(self, snapshot: Any, interval: Any, batch_idx: int,
                                            duration_ms: int | None, num_audits_passed: int,
                                            num_audits_failed: int, *args: Any, **kwargs: Any) -> None:
        if duration_ms is None:  # the evaluation raised; log_failed_models tells why
            return
        entry = self.evaluated.setdefault(snapshot.name, _Evaluated())
        entry.intervals.append((_from_ms(interval[0]), _from_ms(interval[1])))
        entry.seconds += duration_ms / 1000
        entry.audits_passed += num_audits_passed
        entry.audits_failed += num_audits_failed

    def log_failed_models(self, errors: list[Any]) -> None:
        for error in errors:
            name = getattr(error.node, "snapshot_name", None)
            if name is not None:
                self.failures[name] = error.__cause__ or error
                self.evaluated.pop(name, None)

    def log_skipped_models(self, snapshot_names: set[str]) -> None:
        self.skipped |= set(snapshot_names)

    def log_warning(self, short_message: str, long_message: str | None = None) -> None:
        self.warnings.append(short_message)


# --- helpers ----------------------------------------------------------------------------------------------


def _audit_failure(cause: BaseException | None) -> bool:
    from sqlmesh.utils.errors import NodeAuditsErrors

    return isinstance(cause, NodeAuditsErrors)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    errors = getattr(error, "errors", None)
    if errors:  # NodeAuditsErrors
        return "; ".join(str(e) for e in errors)
    return f"{type(error).__name__}: {error}"


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: datetime, column_type: str | None) -> str:
    """A bound for the time column in its own type: naive UTC for TIMESTAMP (SQLMesh's convention)."""
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    utc = aware.astimezone(timezone.utc)
    if column_type and "TZ" in column_type.upper().replace("WITH TIME ZONE", "TZ"):
        return f"CAST('{utc.isoformat()}' AS TIMESTAMPTZ)"
    return f"CAST('{utc.replace(tzinfo=None).isoformat()}' AS TIMESTAMP)"


def _where(info: ModelInfo, start: datetime | None, end: datetime | None) -> str:
    if not info.time_partitioned or (start is None and end is None):
        return ""
    column = _quote(info.time_column or "")
    bounds = []
    if start is not None:
        bounds.append(f"{column} >= {_literal(start, info.time_column_type)}")
    if end is not None:
        bounds.append(f"{column} < {_literal(end, info.time_column_type)}")
    return " WHERE " + " AND ".join(bounds)


def _utc(table: pa.Table) -> pa.Table:
    """Naive timestamps (UTC by SQLMesh's convention) as UTC-aware ones; other columns unchanged."""
    for i, field_ in enumerate(table.schema):
        if pa.types.is_timestamp(field_.type) and field_.type.tz is None:
            aware = pa.timestamp(field_.type.unit, tz="UTC")
            table = table.set_column(i, pa.field(field_.name, aware, field_.nullable), table.column(i).cast(aware))
    return table
