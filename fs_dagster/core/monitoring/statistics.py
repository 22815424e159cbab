"""Descriptive statistics of a feature table: one DuckDB aggregate query, then one streamed pass through numpy.

Pass 1 is a single DuckDB aggregate query over every column: row count, non-null count, min/max, and for float
columns the count of finite values.

Pass 2 is a single DuckDB scan streamed as Arrow batches (so a Parquet scan stays lazy and memory stays bounded):
DuckDB casts the numeric columns to DOUBLE and hashes the others; numpy then updates a HyperLogLog sketch per
column (distinct counts; numeric values are hashed from their bits), every histogram (``bincount`` of a bucket
index: the edges need pass 1's min and max), means and standard deviations (per-batch moments merged with Chan's
formula) and the sums behind all pairwise correlations (matrix products).

Why not all in SQL: measured with 1M rows x 12 numeric columns, DuckDB's ``histogram()`` aggregate, a
``GROUP BY bucket`` per column and ``sum(CASE ...)`` per bin each took about a second, ``corr()`` over 66 pairs
0.7 s, against about 0.35 s for the whole numpy pass; and ``approx_count_distinct`` was off by up to 25% (it
reported 1249 distinct values for ``range(1000)``), where the 4096-register sketch here is within a few percent
and exact-ish for small counts, at a similar cost.

The result is plain JSON (no NaN, datetimes as ISO 8601 text), ready for the registry and the Dagster UI.

Float columns: NaN and +/-inf are values, not nulls (they count in ``count`` and ``approx_distinct``), but mean,
std, min, max, the histogram and correlations use only finite values; ``non_finite`` says how many were left out.
Correlations are Pearson's, over the rows where both columns are finite (pairwise complete, as in pandas).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timezone
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from fs_dagster.core.errors import InvalidDataError

NUMERIC, BOOLEAN, TEMPORAL, STRING, OTHER = "numeric", "boolean", "temporal", "string", "other"
BATCH_ROWS = 131_072  # rows per pass-2 batch: ~1 MB per column, cache-friendly numpy work


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


def _view_name() -> str:
    return f"fs_stats_{uuid.uuid4().hex}"


def _json_number(value: Any) -> float | int | None:
    if value is None or isinstance(value, (bool, int)):
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
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            data = pa.Table.from_pandas(data, preserve_index=False)
    if not isinstance(data, pa.Table):
        raise InvalidDataError(
            "statistics: expected a pyarrow Table or a DuckDB relation, "
            f"got {type(data).__module__}.{type(data).__name__}"
        )
    connection = duckdb.connect()
    return connection.from_arrow(data), data.schema, connection


def compute_statistics(
    data: pa.Table | duckdb.DuckDBPyRelation,
    columns: Sequence[str] | None = None,
    *,
    histogram_bins: int = 20,
    correlations: bool = True,
    max_correlation_columns: int = 50,
    correlation_rows: int | None = 250_000,
) -> dict[str, Any]:
    """Descriptive statistics of ``data`` (every column, or ``columns``), as a JSON-serializable dict.

    Args:
        data: an Arrow table (scanned in a fresh DuckDB connection) or a DuckDB relation, e.g.
            ``con.sql("select * from read_parquet([...])")``; a pandas DataFrame is converted to Arrow.
        columns: the columns to describe, in this order; all when None.
        histogram_bins: bins per numeric histogram (integer columns with a narrower range get one bin per value).
        correlations: compute the Pearson correlation matrix of the numeric columns.
        max_correlation_columns: only the first this many numeric columns enter the matrix (cost grows as n^2).
        correlation_rows: estimate correlations from about this many evenly spaced rows (every k-th row) when
            the table is larger; None uses every row. 250,000 rows give about +/-0.002 on a correlation and keep
            the matrix products from dominating the run time on big tables.

    Returns:
        ``{"row_count": int, "features": {name: {...}}, "correlations": {...} | None}``. Per feature: ``type``
        (Arrow type text), ``count`` (non-null), ``nulls``, ``null_fraction``, ``approx_distinct``
        (HyperLogLog, 4096 registers: about 1.6% standard error), ``min``, ``max`` (numbers, ISO text for
        dates/times, text for strings, bools), ``mean``, ``std`` (sample), ``histogram`` (``{"edges": n+1
        floats, "counts": n ints}``; numeric only) and, for float columns, ``non_finite``. Values that do not
        exist (the mean of an empty column, the correlation with a constant column) are None.
        ``correlations`` is ``{"columns": [...], "matrix": [[float | None]], "rows": rows used}``, or None with
        fewer than two numeric columns.

    Raises:
        InvalidDataError: ``columns`` names a column ``data`` lacks, ``histogram_bins`` < 1, or ``data`` has
            an unsupported type.

    Example:
        >>> stats = compute_statistics(pa.table({"x": [1.0, 2.0, None]}))
        >>> stats["features"]["x"]["mean"], stats["features"]["x"]["nulls"]
        (1.5, 1)
    """
    if isinstance(histogram_bins, bool) or not isinstance(histogram_bins, int) or histogram_bins < 1:
        raise InvalidDataError(f"statistics: histogram_bins must be a positive integer, got {histogram_bins!r}")
    relation, schema, connection = _as_relation(data)
    try:
        cols = _Columns(schema, columns)
        first = _first_pass(relation, cols)
        row_count = int(first["rows"])
        features = {name: _feature(i, name, cols, first, row_count) for i, name in enumerate(cols.names)}
        numeric = [n for n in cols.names if cols.kinds[n] == NUMERIC]
        corr_columns = numeric[: max(0, max_correlation_columns)] if correlations else []
        if len(corr_columns) < 2:
            corr_columns = []
        stride = -(-row_count // correlation_rows) if correlation_rows and row_count > correlation_rows else 1
        null_hash = int(first["null_hash"])
        correlation = _second_pass(relation, cols, features, histogram_bins, corr_columns, stride, null_hash)
        result: dict[str, Any] = {"row_count": row_count, "features": features, "correlations": None}
        if corr_columns:
            assert correlation is not None
            result["correlations"] = {"columns": corr_columns, "matrix": correlation.matrix(), "rows": correlation.rows}
        return result
    finally:
        if connection is not None:
            connection.close()


# ---------------------------------------------------------------------- pass 1: counts and ranges


def _first_pass(relation: duckdb.DuckDBPyRelation, cols: _Columns) -> dict[str, Any]:
    """Every per-column aggregate in one DuckDB query; keys like ``"count3"`` (column position 3)."""
    inner: list[str] = []  # projection: only the columns asked for, so Parquet scans read no others
    # hash(NULL) is one constant for every type: pass 2 hashes whole columns and drops this value, which is
    # cheaper than keeping NULLs out in SQL.
    aggregates: list[tuple[str, str]] = [("rows", "count(*)"), ("null_hash", "hash(NULL)")]
    for i, name in enumerate(cols.names):
        c, kind, arrow_type = f"c{i}", cols.kinds[name], cols.types[name]
        inner.append(f"{_quote(name)} AS {c}")
        aggregates.append((f"count{i}", f"count({c})"))
        if kind == NUMERIC:
            value = c
            if cols.is_float(name):
                # Non-finite floats -> NULL once here: cheaper than a FILTER on each aggregate.
                value = f"v{i}"
                inner.append(f"CASE WHEN isfinite({c}) THEN {c} END AS {value}")
                aggregates.append((f"finite{i}", f"count({value})"))
            elif pa.types.is_decimal(arrow_type):
                value = f"v{i}"
                inner.append(f"CAST({c} AS DOUBLE) AS {value}")
            aggregates += [(f"min{i}", f"min({value})"), (f"max{i}", f"max({value})")]
        elif kind == TEMPORAL and pa.types.is_timestamp(arrow_type):
            # Epoch microseconds: independent of the connection's TimeZone, which DuckDB would apply when
            # handing timestamptz values to Python.
            aggregates += [(f"min{i}", f"epoch_us(min({c}))"), (f"max{i}", f"epoch_us(max({c}))")]
        elif kind in (TEMPORAL, STRING, BOOLEAN):
            aggregates += [(f"min{i}", f"min({c})"), (f"max{i}", f"max({c})")]
    view = _view_name()
    projection = ", ".join(inner) if inner else "1 AS c"
    sql = f"SELECT {', '.join(e for _, e in aggregates)} FROM (SELECT {projection} FROM {view})"
    # fetchall, not fetchone: DuckDB 2 relations have no fetchone (a relation keeps no result between calls)
    (row,) = relation.query(view, sql).fetchall()  # an aggregate without GROUP BY returns exactly one row
    return dict(zip((k for k, _ in aggregates), row, strict=True))


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


def _feature(i: int, name: str, cols: _Columns, first: dict[str, Any], row_count: int) -> dict[str, Any]:
    kind, arrow_type = cols.kinds[name], cols.types[name]
    count = int(first[f"count{i}"])
    nulls = row_count - count
    low, high = first.get(f"min{i}"), first.get(f"max{i}")
    if kind == NUMERIC:
        low, high = _json_number(low), _json_number(high)
    elif kind == TEMPORAL:
        low, high = _temporal_text(low, arrow_type), _temporal_text(high, arrow_type)
    elif kind == BOOLEAN:
        low, high = (None if low is None else bool(low)), (None if high is None else bool(high))
    result: dict[str, Any] = {
        "type": str(arrow_type),
        "count": count,
        "nulls": nulls,
        "null_fraction": nulls / row_count if row_count else 0.0,
        "approx_distinct": 0,  # pass 2 fills in this and, for numeric columns, the three below
        "min": low,
        "max": high,
        "mean": None,
        "std": None,
        "histogram": None,
    }
    if f"finite{i}" in first:
        result["non_finite"] = count - int(first[f"finite{i}"])
    return result


# ---------------------------------------------------------------------- pass 2: sketches, histograms, moments


class _DistinctSketch:
    """HyperLogLog over 64-bit hashes, with Ertl's improved raw estimator (no bias tables, good at all sizes).

    Reference: O. Ertl, "New cardinality estimation algorithms for HyperLogLog sketches", 2017, algorithm 6.
    """

    P = 12  # 4096 registers: standard error 1.04 / sqrt(4096) = 1.6%
    M = 1 << P
    Q = 64 - P  # bits left for the rank; ranks run 0..Q+1

    def __init__(self) -> None:
        self.registers = np.zeros(self.M, dtype=np.int64)

    def add(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        hashes = _mix(hashes)
        index = (hashes >> np.uint64(self.Q)).astype(np.int64)
        rest = (hashes & np.uint64((1 << self.Q) - 1)).astype(np.float64)  # < 2**52: exact as a double
        _, exponent = np.frexp(rest)  # rest = f * 2**exponent with f in [0.5, 1); exponent 0 for rest == 0
        rank = self.Q + 1 - exponent  # 1-based position of the first 1-bit in the Q-bit rest; Q + 1 if none
        np.maximum.at(self.registers, index, rank.astype(np.int64))  # fast since numpy 1.25

    def estimate(self) -> int:
        m, q = self.M, self.Q
        counts = np.bincount(self.registers, minlength=q + 2).astype(np.float64)
        if counts[0] == m:
            return 0
        z = m * _tau(1.0 - counts[q + 1] / m)
        for k in range(q, 0, -1):
            z = 0.5 * (z + counts[k])
        z += m * _sigma(counts[0] / m)
        return int(round(m * m / (2.0 * math.log(2.0)) / z))


def _mix(hashes: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, so every bit the sketch uses is uniform: raw float64 bits are far from it,
    and DuckDB's hash of small integers left the top bits poorly mixed (50 consecutive integers looked like 47)."""
    h = hashes ^ (hashes >> np.uint64(33))
    h *= np.uint64(0xFF51AFD7ED558CCD)  # uint64 arithmetic wraps, as intended
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == previous:
            return z / 3.0


def _unit_scale(low: float, high: float) -> float:
    """A power of two that brings [low, high] into [-1, 1]: exact, and squares cannot overflow any more.

    Columns of subnormal magnitude (below 2**-1000, e.g. 5e-324) are scaled by 2**1000 only: their own scale would
    be a power of two beyond the largest double (OverflowError), and 2**1000 already lifts their squares clear of
    underflow."""
    return math.ldexp(1.0, -max(math.frexp(max(abs(low), abs(high)))[1], -1000))


def _bins(low: float, high: float, bins: int, integer: bool) -> int:
    if integer and high - low + 1 < bins:
        return int(high - low) + 1  # one bin per value instead of empty bins between integers
    return bins


class _Numeric:
    """Pass-2 accumulator of one varying numeric column: equal-width histogram and running moments."""

    def __init__(self, low: float, high: float, bins: int) -> None:
        self.low, self.high, self.bins = low, high, bins
        # Halving is exact in binary floating point and keeps the span finite even for ranges near the
        # float limits, where high - low would overflow.
        self.half_low = low * 0.5
        self.scale = bins / (high * 0.5 - low * 0.5)
        self.counts = np.zeros(bins, dtype=np.int64)
        self.unit = _unit_scale(low, high)  # moments of values * unit, so 1e200-sized values do not overflow
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        """Adds a batch of finite values."""
        if not len(values):
            return
        index = np.floor((values * 0.5 - self.half_low) * self.scale)
        np.clip(index, 0, self.bins - 1, out=index)  # the last bin is closed, as in numpy: the maximum lands in it
        self.counts += np.bincount(index.astype(np.int64), minlength=self.bins)
        # Chan et al.'s pairwise merge of (count, mean, sum of squared deviations): as stable as Welford.
        values = values * self.unit
        n, mean = len(values), float(values.mean())
        m2 = float(np.square(values - mean).sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def finish(self, stats: dict[str, Any]) -> None:
        n, low, high = self.bins, self.low, self.high
        # Interpolate without forming high - low (may overflow); pin the ends exactly.
        edges = [low * (1 - i / n) + high * (i / n) for i in range(n + 1)]
        edges[0], edges[-1] = low, high
        stats["histogram"] = {"edges": edges, "counts": [int(c) for c in self.counts]}
        if self.n:
            mean = self.mean / self.unit
            stats["mean"] = min(max(mean, low), high)  # rounding can land a hair outside [min, max]
            stats["std"] = _json_number(math.sqrt(self.m2 / (self.n - 1)) / self.unit) if self.n > 1 else None


class _Correlation:
    """Sums for pairwise-complete Pearson correlations of k columns, accumulated batch by batch.

    For columns a, b over the rows where both are finite: N = rows, S[a, b] = sum of a, Q[a, b] = sum of a^2,
    P[a, b] = sum of a*b. Values are first scaled into [-1, 1] by a power of two (no overflow) and shifted by
    their first batch's mean (no catastrophic cancellation); correlation changes under neither.

    Args:
        units: per column, the power of two that brings its range into [-1, 1].
        stride: use every ``stride``-th row (evenly spaced over the whole table, not the first rows).
    """

    def __init__(self, units: list[float], stride: int) -> None:
        k = len(units)
        self.units = np.asarray(units, dtype=np.float64)[:, None]
        self.stride = stride
        self.offset = 0  # rows seen so far, so the stride continues across batches
        self.rows = 0
        self.shift: np.ndarray | None = None
        self.n = np.zeros((k, k))
        self.s = np.zeros((k, k))
        self.q = np.zeros((k, k))
        self.p = np.zeros((k, k))

    def add(self, columns: list[np.ndarray]) -> None:
        start = -self.offset % self.stride
        self.offset += len(columns[0])
        values = np.vstack([c[start :: self.stride] for c in columns])  # (k, rows): BLAS-friendly layout
        if not values.shape[1]:
            return
        values *= self.units
        self.rows += values.shape[1]
        finite = np.isfinite(values)
        if self.shift is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                shift = np.where(finite, values, 0.0).sum(axis=1) / finite.sum(axis=1)
            self.shift = np.where(np.isfinite(shift), shift, 0.0)[:, None]
        if finite.all():  # no nulls/NaN in this batch: one matrix product instead of four
            z = values - self.shift
            self.n += z.shape[1]
            self.s += z.sum(axis=1)[:, None]
            self.q += np.square(z).sum(axis=1)[:, None]
            self.p += z @ z.T
            return
        z = np.where(finite, values - self.shift, 0.0)
        mask = finite.astype(np.float64)
        self.n += mask @ mask.T
        self.s += z @ mask.T
        self.q += np.square(z) @ mask.T
        self.p += z @ z.T

    def matrix(self) -> list[list[float | None]]:
        n, s, q, p = self.n, self.s, self.q, self.p
        spread = n * q - s * s  # n^2 * variance of a over the rows where a and b are both finite
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (n * p - s * s.T) / np.sqrt(spread * spread.T)
        rows: list[list[float | None]] = []
        for a in range(len(n)):
            row: list[float | None] = []
            for b in range(len(n)):
                value = float(r[a, b])
                ok = n[a, b] >= 2 and spread[a, b] > 0 and spread[b, a] > 0 and math.isfinite(value)
                row.append(max(-1.0, min(1.0, value)) if ok else None)
            rows.append(row)
        return rows


def _float_values(array: pa.Array) -> np.ndarray:
    """float64 values of a DOUBLE column, nulls as NaN (zero-copy when there are no nulls)."""
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _second_pass(
    relation: duckdb.DuckDBPyRelation,
    cols: _Columns,
    features: dict[str, dict[str, Any]],
    bins: int,
    corr_columns: list[str],
    corr_stride: int,
    null_hash_value: int,
) -> _Correlation | None:
    """Fills in distinct counts and numeric histograms, means and stds; returns the correlation sums."""
    numerics: dict[str, _Numeric] = {}
    for name in cols.names:
        stats = features[name]
        if cols.kinds[name] != NUMERIC or stats["min"] is None or stats["max"] is None:
            continue
        low, high = float(stats["min"]), float(stats["max"])
        if low == high:  # a constant column needs no histogram pass: one bin, std exactly 0
            finite = stats["count"] - stats.get("non_finite", 0)
            stats.update(mean=low, std=0.0 if finite > 1 else None)
            stats["histogram"] = {"edges": [low, high], "counts": [finite]}
        else:
            numerics[name] = _Numeric(low, high, _bins(low, high, bins, pa.types.is_integer(cols.types[name])))
    sketches = {name: _DistinctSketch() for name in cols.names if features[name]["count"]}
    # Numeric columns are hashed here from their float64 bits (they come as doubles anyway); DuckDB hashes the
    # others. That keeps the Arrow transfer to one column per numeric feature.
    hashed_by_duckdb = [n for n in sketches if cols.kinds[n] != NUMERIC]
    null_hash = np.uint64(null_hash_value)
    doubles = list(dict.fromkeys([*numerics, *corr_columns, *(n for n in sketches if cols.kinds[n] == NUMERIC)]))
    correlation = None
    if corr_columns:
        units = [_unit_scale(features[c]["min"] or 0.0, features[c]["max"] or 0.0) for c in corr_columns]
        correlation = _Correlation(units, corr_stride)
    if sketches or doubles:
        # One scan: DuckDB hashes and casts; numpy does the rest.
        hashed = [f"hash({_quote(n)})" for n in hashed_by_duckdb]
        cast = [f"CAST({_quote(n)} AS DOUBLE)" for n in doubles]
        view = _view_name()
        sql = f"SELECT {', '.join(f'{e} AS e{j}' for j, e in enumerate(hashed + cast))} FROM {view}"
        for batch in relation.query(view, sql).to_arrow_reader(BATCH_ROWS):
            if not batch.num_rows:
                continue
            for j, name in enumerate(hashed_by_duckdb):
                hashes = batch.column(j).to_numpy()
                sketches[name].add(hashes[hashes != null_hash] if features[name]["nulls"] else hashes)
            values: dict[str, np.ndarray] = {}
            finite: dict[str, np.ndarray | None] = {}  # None: every value is finite
            for j, name in enumerate(doubles, start=len(hashed_by_duckdb)):
                array = batch.column(j)
                values[name] = column = _float_values(array)
                mask = np.isfinite(column)
                finite[name] = None if mask.all() else mask
                if name in sketches:
                    # Nulls arrive as NaN: keep real NaN/inf (they are values) but drop the nulls.
                    if finite[name] is None or not features[name]["nulls"]:
                        kept = column
                    elif not features[name].get("non_finite"):
                        kept = column[mask]
                    else:
                        kept = column[array.is_valid().to_numpy(zero_copy_only=False)]
                    sketches[name].add((kept + 0.0).view(np.uint64))  # + 0.0 folds -0.0 into 0.0
            for name, numeric in numerics.items():
                mask = finite[name]
                numeric.add(values[name] if mask is None else values[name][mask])
            if correlation is not None:
                correlation.add([values[name] for name in corr_columns])
    for name, sketch in sketches.items():
        # The sketch cannot know the count; keep the estimate within what is possible.
        features[name]["approx_distinct"] = max(1, min(sketch.estimate(), features[name]["count"]))
    for name, numeric in numerics.items():
        numeric.finish(features[name])
    return correlation


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
