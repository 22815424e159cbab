"""Descriptive statistics of a feature table, computed by DuckDB in two scans.

Scan 1 is one aggregate query for every column (counts, distinct estimate, min/max, mean/std) plus every pairwise
correlation; scan 2 computes all histograms at once (a bucket expression per column fed to DuckDB's
``histogram()``), since bucket edges need scan 1's min and max. The result is plain JSON (no NaN, datetimes as
ISO 8601 text), ready for the registry and the Dagster UI.

Float columns: NaN and +/-inf are values, not nulls (they count in ``count``), but mean, std, min, max, the
histogram and correlations use only finite values; ``non_finite`` says how many were left out.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from fs_dagster.core.errors import InvalidDataError

NUMERIC, BOOLEAN, TEMPORAL, STRING, OTHER = "numeric", "boolean", "temporal", "string", "other"


def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_dictionary(arrow_type):
        return _kind(arrow_type.value_type)
    if pa.types.is_boolean(arrow_type):
        return BOOLEAN  # bool is not numeric here: mean/histogram of 0/1 flags would mislead
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return NUMERIC
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type) or pa.types.is_time(arrow_type):
        return TEMPORAL
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return STRING
    return OTHER


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _double(value: float) -> str:
    """A DOUBLE literal (a bare ``1.25`` would be a DECIMAL in DuckDB)."""
    return f"CAST({value!r} AS DOUBLE)"


def _json_number(value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


class _Columns:
    """Names, Arrow types and kinds of the columns to describe."""

    def __init__(self, schema: pa.Schema, columns: Sequence[str] | None) -> None:
        available = list(schema.names)
        if columns is None:
            names = available
        else:
            names = list(dict.fromkeys(columns))
            missing = [c for c in names if c not in available]
            if missing:
                raise InvalidDataError(f"statistics: no column(s) {missing}; the data has {available}")
        self.names = names
        self.types = {n: schema.field(n).type for n in names}
        self.kinds = {n: _kind(self.types[n]) for n in names}

    def is_float(self, name: str) -> bool:
        t = self.types[name]
        t = t.value_type if pa.types.is_dictionary(t) else t
        return pa.types.is_floating(t)


def _as_relation(data: Any) -> tuple[duckdb.DuckDBPyRelation, pa.Schema, duckdb.DuckDBPyConnection | None]:
    """A DuckDB relation over ``data``, its Arrow schema, and the connection to close if we opened one."""
    if isinstance(data, duckdb.DuckDBPyRelation):
        # DuckDB's own types, as Arrow: an empty fetch reads no data.
        return data, data.limit(0).to_arrow_table().schema, None
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        try:
            import pandas as pd

            if isinstance(data, pd.DataFrame):
                data = pa.Table.from_pandas(data, preserve_index=False)
        except ImportError:  # pragma: no cover - pandas is a dependency
            pass
    if not isinstance(data, pa.Table):
        raise InvalidDataError(
            f"statistics: expected a pyarrow Table or a DuckDB relation, got {type(data).__module__}.{type(data).__name__}"
        )
    connection = duckdb.connect()
    return connection.from_arrow(data), data.schema, connection


class _Select:
    """Builds one SELECT list and remembers which result position holds which value."""

    def __init__(self) -> None:
        self.expressions: list[str] = []
        self.keys: list[tuple[Any, ...]] = []

    def add(self, key: tuple[Any, ...], expression: str) -> None:
        self.keys.append(key)
        self.expressions.append(expression)

    def run(self, relation: duckdb.DuckDBPyRelation) -> dict[tuple[Any, ...], Any]:
        if not self.expressions:
            return {}
        view = f"fs_stats_{uuid.uuid4().hex}"
        sql = f"SELECT {', '.join(self.expressions)} FROM {view}"
        row = relation.query(view, sql).fetchone()
        assert row is not None  # an aggregate without GROUP BY returns exactly one row
        return dict(zip(self.keys, row, strict=True))


def _finite(column: str, is_float: bool) -> str:
    """FILTER clause keeping finite values (always true for non-float columns, so no clause)."""
    return f" FILTER (WHERE isfinite({column}))" if is_float else ""


def compute_statistics(
    data: pa.Table | duckdb.DuckDBPyRelation,
    columns: Sequence[str] | None = None,
    *,
    histogram_bins: int = 20,
    correlations: bool = True,
    max_correlation_columns: int = 50,
) -> dict[str, Any]:
    """Descriptive statistics of ``data`` (every column, or ``columns``), as a JSON-serializable dict.

    Args:
        data: an Arrow table (scanned in a fresh DuckDB connection) or a DuckDB relation, e.g.
            ``con.sql("select * from read_parquet([...])")``; a pandas DataFrame is converted to Arrow.
        columns: the columns to describe, in this order; all when None.
        histogram_bins: bins per numeric histogram (integer columns with a narrower range get one bin per value).
        correlations: compute the Pearson correlation matrix of the numeric columns.
        max_correlation_columns: only the first this many numeric columns enter the matrix (pairs grow as n^2).

    Returns:
        ``{"row_count": int, "features": {name: {...}}, "correlations": {"columns": [...], "matrix": [[...]]} |
        None}``. Per feature: ``type`` (Arrow type text), ``count`` (non-null), ``nulls``, ``null_fraction``,
        ``approx_distinct``, ``min``, ``max`` (numbers, ISO text for dates/times, text for strings, bools),
        ``mean``, ``std`` (sample), ``histogram`` (``{"edges": n+1 floats, "counts": n ints}``; numeric only) and,
        for float columns, ``non_finite``. Values that do not exist (e.g. the mean of an empty column) are None.

    Raises:
        InvalidDataError: ``columns`` names a column ``data`` lacks, ``histogram_bins`` < 1, or ``data`` has
            an unsupported type.

    Example:
        >>> stats = compute_statistics(pa.table({"x": [1.0, 2.0, None]}))
        >>> stats["features"]["x"]["mean"], stats["features"]["x"]["nulls"]
        (1.5, 1)
    """
    if not isinstance(histogram_bins, int) or histogram_bins < 1:
        raise InvalidDataError(f"statistics: histogram_bins must be a positive integer, got {histogram_bins!r}")
    relation, schema, connection = _as_relation(data)
    try:
        cols = _Columns(schema, columns)
        numeric = [n for n in cols.names if cols.kinds[n] == NUMERIC]
        corr_columns = numeric[: max(0, max_correlation_columns)] if correlations else []
        first = _first_scan(relation, cols, corr_columns)
        row_count = int(first[("rows",)])
        features = {name: _feature(name, cols, first, row_count) for name in cols.names}
        _histograms(relation, cols, features, histogram_bins)
        return {
            "row_count": row_count,
            "features": features,
            "correlations": _correlations(corr_columns, first, features) if len(corr_columns) >= 2 else None,
        }
    finally:
        if connection is not None:
            connection.close()


def _first_scan(relation: duckdb.DuckDBPyRelation, cols: _Columns, corr_columns: list[str]) -> dict[tuple[Any, ...], Any]:
    select = _Select()
    select.add(("rows",), "count(*)")
    for name in cols.names:
        q, kind, is_float = _quote(name), cols.kinds[name], cols.is_float(name)
        select.add((name, "count"), f"count({q})")
        select.add((name, "distinct"), f"approx_count_distinct({q})")
        if kind == NUMERIC:
            value = f"CAST({q} AS DOUBLE)" if pa.types.is_decimal(cols.types[name]) else q
            keep = _finite(q, is_float)
            select.add((name, "min"), f"min({value}){keep}")
            select.add((name, "max"), f"max({value}){keep}")
            select.add((name, "mean"), f"avg({value}){keep}")
            select.add((name, "std"), f"stddev_samp({value}){keep}")
            if is_float:
                select.add((name, "non_finite"), f"count({q}) FILTER (WHERE NOT isfinite({q}))")
        elif kind == TEMPORAL and pa.types.is_timestamp(cols.types[name]):
            # Epoch microseconds: independent of the connection's TimeZone setting, which DuckDB would apply
            # when handing timestamptz values to Python.
            select.add((name, "min"), f"epoch_us(min({q}))")
            select.add((name, "max"), f"epoch_us(max({q}))")
        elif kind in (TEMPORAL, STRING, BOOLEAN):
            select.add((name, "min"), f"min({q})")
            select.add((name, "max"), f"max({q})")
    for i, a in enumerate(corr_columns):
        for b in corr_columns[i + 1 :]:
            qa, qb = _quote(a), _quote(b)
            finite = [f"isfinite({q})" for q, n in ((qa, a), (qb, b)) if cols.is_float(n)]
            keep = f" FILTER (WHERE {' AND '.join(finite)})" if finite else ""
            # corr() skips rows where either side is NULL: pairwise-complete, like pandas.
            select.add(("corr", a, b), f"corr(CAST({qa} AS DOUBLE), CAST({qb} AS DOUBLE)){keep}")
    return select.run(relation)


def _temporal_text(value: Any, arrow_type: pa.DataType) -> str | None:
    if value is None:
        return None
    if pa.types.is_timestamp(arrow_type):
        seconds, micros = divmod(int(value), 1_000_000)
        moment = datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=micros)
        return moment.isoformat() if arrow_type.tz else moment.replace(tzinfo=None).isoformat()
    if isinstance(value, (date, time, datetime)):
        return value.isoformat()
    return str(value)


def _feature(name: str, cols: _Columns, first: dict[tuple[Any, ...], Any], row_count: int) -> dict[str, Any]:
    kind, arrow_type = cols.kinds[name], cols.types[name]
    count = int(first[(name, "count")])
    nulls = row_count - count
    low, high = first.get((name, "min")), first.get((name, "max"))
    if kind == NUMERIC:
        low, high = _json_number(low), _json_number(high)
    elif kind == TEMPORAL:
        low, high = _temporal_text(low, arrow_type), _temporal_text(high, arrow_type)
    elif kind == BOOLEAN:
        low, high = (None if low is None else bool(low)), (None if high is None else bool(high))
    mean = std = None
    if kind == NUMERIC:
        mean = _json_number(first[(name, "mean")])
        std = _json_number(first[(name, "std")])
        if std is not None and low is not None and low == high:
            std = 0.0  # a constant column: exact zero, not a rounding residue
        if mean is not None and low is not None and high is not None:
            mean = min(max(mean, low), high)  # float summation can land a hair outside [min, max]
    result: dict[str, Any] = {
        "type": str(arrow_type),
        "count": count,
        "nulls": nulls,
        "null_fraction": nulls / row_count if row_count else 0.0,
        "approx_distinct": int(first[(name, "distinct")] or 0),
        "min": low,
        "max": high,
        "mean": mean,
        "std": std,
        "histogram": None,
    }
    if (name, "non_finite") in first:
        result["non_finite"] = int(first[(name, "non_finite")] or 0)
    return result


def _bins(low: float, high: float, bins: int, integer: bool) -> int:
    if integer and high - low + 1 < bins:
        return int(high - low) + 1  # one bin per value instead of empty bins between integers
    return bins


def _histograms(relation: duckdb.DuckDBPyRelation, cols: _Columns, features: dict[str, dict[str, Any]], bins: int) -> None:
    select = _Select()
    plans: dict[str, tuple[float, float, int]] = {}
    for name in cols.names:
        stats = features[name]
        if cols.kinds[name] != NUMERIC or stats["min"] is None or stats["max"] is None:
            continue
        low, high = float(stats["min"]), float(stats["max"])
        finite_count = stats["count"] - stats.get("non_finite", 0)
        if low == high:
            stats["histogram"] = {"edges": [low, high], "counts": [finite_count]}
            continue
        n = _bins(low, high, bins, pa.types.is_integer(cols.types[name]))
        plans[name] = (low, high, n)
        q = f"CAST({_quote(name)} AS DOUBLE)"
        # Halving every term is exact in binary floating point and keeps (high - low) finite even for
        # ranges near the float limits.
        span = high * 0.5 - low * 0.5
        # No least(..., n - 1) here: DuckDB's least() ignores NULLs and would put null rows in the last bin.
        # The one bucket past the end (value == high) is folded into the last bin below.
        bucket = f"CAST(floor(({q} * 0.5 - {_double(low * 0.5)}) * {n} / {_double(span)}) AS INTEGER)"
        if cols.is_float(name):
            # CASE, not FILTER: DuckDB evaluates an aggregate's argument before its FILTER, and the cast of a
            # NaN bucket to INTEGER would fail. histogram() skips the NULLs.
            bucket = f"CASE WHEN isfinite({_quote(name)}) THEN {bucket} END"
        select.add((name,), f"histogram({bucket})")
    result = select.run(relation)
    for name, (low, high, n) in plans.items():
        counts = [0] * n
        for bucket, count in (result[(name,)] or {}).items():
            # The last bin is closed ([a, b]) as in numpy, so the maximum lands in it rather than in bucket n.
            counts[min(max(int(bucket), 0), n - 1)] += int(count)
        # Interpolate without forming (high - low), which can overflow; pin the ends exactly.
        edges = [low * (1 - i / n) + high * (i / n) for i in range(n + 1)]
        edges[0], edges[-1] = low, high
        features[name]["histogram"] = {"edges": edges, "counts": counts}


def _correlations(columns: list[str], first: dict[tuple[Any, ...], Any], features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    matrix: list[list[float | None]] = []
    for a in columns:
        row: list[float | None] = []
        for b in columns:
            if a == b:
                varies = features[a]["std"] not in (None, 0.0)
                row.append(1.0 if varies else None)
            else:
                key = ("corr", a, b) if ("corr", a, b) in first else ("corr", b, a)
                value = _json_number(first[key])
                row.append(None if value is None else max(-1.0, min(1.0, float(value))))
            # corr() of a constant side is NaN in DuckDB; _json_number turned it into None
        matrix.append(row)
    return {"columns": list(columns), "matrix": matrix}


def summarize(statistics: dict[str, Any], max_features: int = 30) -> list[dict[str, Any]]:
    """One flat row per feature (the first ``max_features``) for a table in a UI.

    Each row has ``name``, ``type``, ``count``, ``nulls``, ``mean``, ``std``, ``min``, ``max`` and
    ``approx_distinct``; absent values are None.

    Example:
        >>> summarize(compute_statistics(pa.table({"x": [1, 2]})))[0]["max"]
        2
    """
    rows = []
    for name, stats in list((statistics or {}).get("features", {}).items())[: max(0, max_features)]:
        rows.append(
            {
                "name": name,
                "type": stats.get("type"),
                "count": stats.get("count"),
                "nulls": stats.get("nulls"),
                "mean": stats.get("mean"),
                "std": stats.get("std"),
                "min": stats.get("min"),
                "max": stats.get("max"),
                "approx_distinct": stats.get("approx_distinct"),
            }
        )
    return rows
