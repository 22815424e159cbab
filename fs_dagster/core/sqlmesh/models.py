"""What each node of a SQLMesh project is, as plain data: :class:`ModelInfo` and :class:`AuditInfo`.

Read from the loaded ``Context`` without touching the database (building asset specs must not open the DuckDB
file that runs write). External tables a model reads (declared in ``external_models.yaml`` or only referenced)
are nodes too, marked ``external``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

EXTERNAL = "EXTERNAL"
INCREMENTAL_BY_TIME_RANGE = "INCREMENTAL_BY_TIME_RANGE"
_CHECK_NAME = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class AuditInfo:
    """One audit attached to a model.

    Attributes:
        name: the SQLMesh audit (``not_null``, ``accepted_range``, a project audit...).
        check_name: unique among the model's audits, letters/digits/_ only (Dagster's check name).
        arguments: the arguments as SQL text (``columns := (id)``), empty when none.
        blocking: a failure stops the model (and what depends on it) in SQLMesh; fs-dagster then writes nothing.
    """

    name: str
    check_name: str
    arguments: str
    blocking: bool
    description: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """One SQLMesh model (or external table), without catalog noise.

    Attributes:
        fqn: SQLMesh's fully qualified name (``"db"."features"."route_delays"``).
        name: ``schema.table`` (``features.route_delays``); ``parts`` the same as a tuple.
        kind: ``INCREMENTAL_BY_TIME_RANGE``, ``FULL``, ``VIEW``, ... or ``EXTERNAL``.
        time_column: the time column of an incremental-by-time model.
        interval_unit: ``day``, ``hour``, ``month``... (what one SQLMesh interval spans).
        parents: fqns of the nodes the model reads.
        columns: (name, SQL type) in order; ``UNKNOWN`` where SQLMesh cannot infer the type.
        grain: the columns of the model's ``grain``/``grains`` (its primary key).
        data_hash: SQLMesh's fingerprint of the model's definition (changes with its SQL, kind, columns...).
        properties: the model's ``virtual_properties`` as Python values (``fs_*`` ones configure feature groups).
        column_lineage: column -> ((parent fqn, parent column), ...), where SQLMesh can trace it.
    """

    fqn: str
    name: str
    parts: tuple[str, ...]
    kind: str
    external: bool = False
    time_column: str | None = None
    time_column_type: str | None = None
    interval_unit: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    parents: tuple[str, ...] = ()
    columns: tuple[tuple[str, str], ...] = ()
    column_descriptions: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    owner: str | None = None
    tags: tuple[str, ...] = ()
    grain: tuple[str, ...] = ()
    audits: tuple[AuditInfo, ...] = ()
    data_hash: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    column_lineage: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    path: str | None = None

    @property
    def time_partitioned(self) -> bool:
        """Incremental by time range: SQLMesh computes it interval by interval."""
        return self.kind == INCREMENTAL_BY_TIME_RANGE and self.time_column is not None

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


def short_name(fqn: str, dialect: str | None = None) -> tuple[str, ...]:
    """``"db"."features"."routes"`` -> ``("features", "routes")``: the schema and table, catalog dropped."""
    from sqlglot import exp

    table = exp.to_table(fqn, dialect=dialect)
    return tuple(p for p in (table.db, table.name) if p)


def external_stub(fqn: str, dialect: str | None = None) -> ModelInfo:
    """A table models read that the project does not declare (no ``external_models.yaml`` entry)."""
    parts = short_name(fqn, dialect)
    return ModelInfo(fqn=fqn, name=".".join(parts), parts=parts, kind=EXTERNAL, external=True)


def model_info(context: Any, model: Any) -> ModelInfo:
    """The :class:`ModelInfo` of a loaded SQLMesh model (``context.models[fqn]``)."""
    from sqlmesh.core.lineage import column_dependencies

    dialect = model.dialect
    parts = short_name(model.fqn, dialect)
    kind = model.kind.name.value if hasattr(model.kind.name, "value") else str(model.kind.name)
    external = kind == EXTERNAL
    time_column = getattr(model.kind, "time_column", None)
    time_column_name = time_column.column.name if time_column is not None else None
    columns = tuple((name, dtype.sql(dialect=dialect)) for name, dtype in (model.columns_to_types or {}).items())
    lineage: dict[str, tuple[tuple[str, str], ...]] = {}
    if not external:
        for name, _ in columns:
            try:
                parents = column_dependencies(context, model.fqn, name)
            except Exception:  # lineage is best effort: SQLMesh cannot trace every expression
                continue
            lineage[name] = tuple(sorted((parent, col) for parent, cols in parents.items() for col in cols))
    return ModelInfo(
        fqn=model.fqn,
        name=".".join(parts),
        parts=parts,
        kind=kind,
        external=external,
        time_column=time_column_name,
        time_column_type=dict(columns).get(time_column_name) if time_column_name else None,
        interval_unit=model.interval_unit.value if model.interval_unit is not None and not external else None,
        start=_datetime(model.start),
        end=_datetime(model.end),
        cron=None if external else str(model.cron),
        parents=tuple(sorted(model.depends_on or ())),
        columns=columns,
        column_descriptions=dict(model.column_descriptions or {}),
        description=model.description or "",
        owner=model.owner,
        tags=tuple(model.tags or ()),
        grain=_grain_columns(model),
        audits=() if external else _audits(model),
        data_hash=None if external else model.data_hash,
        properties={k: python_value(v) for k, v in (getattr(model, "virtual_properties", None) or {}).items()},
        column_lineage=lineage,
        path=str(model._path) if getattr(model, "_path", None) else None,
    )


def python_value(expression: Any) -> Any:
    """A property's SQL expression as a Python value: strings, numbers, booleans, lists (else its SQL text)."""
    from sqlglot import exp

    if isinstance(expression, exp.Boolean):
        return expression.this
    if isinstance(expression, exp.Literal):
        if expression.is_string:
            return expression.this
        text = expression.this
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    if isinstance(expression, (exp.Array, exp.Tuple, exp.Paren)):
        items = expression.expressions if not isinstance(expression, exp.Paren) else [expression.this]
        return [python_value(e) for e in items]
    if isinstance(expression, exp.Neg):
        return -python_value(expression.this)
    if isinstance(expression, (exp.Column, exp.Identifier)):
        return expression.name
    if isinstance(expression, exp.Null):
        return None
    return expression.sql() if hasattr(expression, "sql") else expression


def _grain_columns(model: Any) -> tuple[str, ...]:
    from sqlglot import exp

    names: list[str] = []
    for grain in model.grains or ():
        items = grain.expressions if isinstance(grain, exp.Tuple) else [grain]
        for item in items:
            names.append(item.name if isinstance(item, exp.Column) else item.sql(dialect=model.dialect))
    return tuple(names)


def _audits(model: Any) -> tuple[AuditInfo, ...]:
    out: list[AuditInfo] = []
    used: set[str] = set()
    for audit, args in model.audits_with_args:
        args = dict(args)
        blocking_arg = args.pop("blocking", None)
        blocking = python_value(blocking_arg) is True if blocking_arg is not None else bool(audit.blocking)
        arguments = ", ".join(f"{k} := {v.sql(dialect=model.dialect)}" for k, v in args.items())
        base = _CHECK_NAME.sub("_", audit.name) or "audit"
        check_name, n = base, 2
        while check_name in used:  # the same audit twice (other columns): numbered
            check_name, n = f"{base}_{n}", n + 1
        used.add(check_name)
        description = f"SQLMesh audit {audit.name}({arguments})" + ("" if blocking else ", non-blocking")
        out.append(AuditInfo(audit.name, check_name, arguments, blocking, description))
    return tuple(out)


def _datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    from sqlmesh.utils.date import to_datetime

    return to_datetime(value)
