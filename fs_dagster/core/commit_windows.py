"""What one commit did to each event-time window of a feature group: a time partition's view of a commit.

A single-run backfill writes many partitions (event-time windows) in one Hudi commit, whose own counts cover the
whole batch. A partition needs the figures of its window: the batch rows that fell in it, the rows the commit
inserted and updated there, the rows the window holds after the commit, their statistics, and a content version.

How: a row the commit wrote carries its instant in ``_hoodie_commit_time`` (rows it left alone keep theirs), so the
window's written rows are its rows with that instant; the updated ones among them are the keys (record key and
Hudi partition path, as the writer matches them) the previous snapshot already had.

Content version of a window: ``<newest _hoodie_commit_time among its rows>/<its row count>``, or ``empty``. Every
commit starts after all earlier ones, so a row written, rewritten or moved into the window raises the newest
instant, and a row deleted or moved out lowers the count while the newest instant stays or falls; the rows older
than a given newest instant only ever shrink. Two moments with the same version therefore hold the same rows, and a
commit that does not touch the window (a later partition's run, an upsert changing nothing) leaves it unchanged.
(A column added by schema evolution reads as nulls in older rows without changing their version.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import duckdb
import pyarrow as pa

from fs_dagster.core.errors import CommitNotFoundError
from fs_dagster.core.monitoring.statistics import compute_statistics
from fs_dagster.core.offline.hudi_reader import HudiTableReader, quote_identifier, sql_string

EMPTY_VERSION = "empty"  # the content version of a window without rows


@dataclass(frozen=True)
class WindowFigures:
    """One event-time window ``[start, end)`` after a commit (see module doc).

    Attributes:
        batch_rows: rows of the written batch whose event time falls in the window (before de-duplication).
        rows_inserted: rows of the window the commit inserted (keys the table did not have).
        rows_updated: rows of the window the commit rewrote (keys the table had).
        row_count: rows the window holds after the commit.
        newest_commit: the newest commit instant among those rows (None: no rows).
        statistics: descriptive statistics of those rows (``compute_statistics``), None when not asked for.
    """

    start: Any
    end: Any
    batch_rows: int
    rows_inserted: int
    rows_updated: int
    row_count: int
    newest_commit: str | None
    statistics: dict[str, Any] | None = None

    @property
    def content_version(self) -> str:
        return content_version(self.newest_commit, self.row_count)


def content_version(newest_commit: str | None, row_count: int) -> str:
    """``<instant>/<rows>`` of a window's rows, ``empty`` without rows (see module doc)."""
    return f"{newest_commit}/{row_count}" if newest_commit and row_count else EMPTY_VERSION


def combined_version(figures: Sequence[WindowFigures]) -> str:
    """The content version of the union of adjacent, disjoint windows (a partition range's whole window)."""
    newest = max((f.newest_commit for f in figures if f.newest_commit), default=None)
    return content_version(newest, sum(f.row_count for f in figures))


def window_figures(
    reader: HudiTableReader | None,
    event_time: str,
    windows: Sequence[Any],
    *,
    instant: str | None,
    batch_event_times: pa.Array | pa.ChunkedArray | None = None,
    statistics: bool = False,
) -> list[WindowFigures]:
    """The figures of each window (objects with ``start``/``end`` aware datetimes) as of commit ``instant``.

    Args:
        reader: the feature group's table (None: not created yet).
        event_time: its event-time column.
        instant: the commit to describe; None (nothing was committed): the latest snapshot, nothing written.
        batch_event_times: the written batch's event times, to count the batch rows per window.
        statistics: also compute each window's statistics (one DuckDB scan of the window per window).
    """
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        con.register("fs_windows", pa.table({
            "idx": pa.array(range(len(windows)), pa.int32()),
            "w_start": pa.array([w.start for w in windows], pa.timestamp("us", tz="UTC")),
            "w_end": pa.array([w.end for w in windows], pa.timestamp("us", tz="UTC")),
        }))
        et = quote_identifier(event_time)
        in_window = "t.et >= w.w_start AND t.et < w.w_end"
        batch = [0] * len(windows)
        if batch_event_times is not None and len(batch_event_times):
            con.register("fs_batch", pa.table({"et": batch_event_times}))
            batch = _per_window(con, f"SELECT w.idx, count(t.et) FROM fs_windows w LEFT JOIN fs_batch t ON {in_window} "
                                     "GROUP BY w.idx", len(windows))
        source = reader.snapshot_sql(instant) if reader is not None and reader.latest_instant() else None
        if source is None:  # no commit yet, or no rows left
            return [WindowFigures(w.start, w.end, b, 0, 0, 0, None) for w, b in zip(windows, batch)]
        written_at = sql_string(instant or "")
        rows = con.sql(
            f"SELECT w.idx, count(t.ct), max(t.ct), count(t.ct) FILTER (WHERE t.ct = {written_at}) "
            f"FROM fs_windows w LEFT JOIN (SELECT _hoodie_commit_time AS ct, {et} AS et FROM {source}) t ON {in_window} "
            "GROUP BY w.idx ORDER BY w.idx"
        ).fetchall()
        updated = [0] * len(windows)
        previous = _previous_commit(reader, instant)
        before = reader.snapshot_sql(previous) if previous else None
        if instant and before and any(r[3] for r in rows):
            updated = _per_window(con, f"""
                WITH written AS (
                    SELECT _hoodie_record_key AS k, _hoodie_partition_path AS p, {et} AS et FROM {source}
                    WHERE _hoodie_commit_time = {written_at}),
                before AS (SELECT _hoodie_record_key AS k, _hoodie_partition_path AS p FROM {before}),
                t AS (SELECT et FROM written SEMI JOIN before USING (k, p))
                SELECT w.idx, count(t.et) FROM fs_windows w LEFT JOIN t ON {in_window} GROUP BY w.idx""", len(windows))
        columns = list(reader.schema().names) if statistics else []
        out = []
        for (_, count, newest, written), window, batch_rows, updates in zip(rows, windows, batch, updated):
            stats = None
            if statistics:
                projection = ", ".join(quote_identifier(c) for c in columns)
                relation = con.sql(
                    f"SELECT {projection} FROM {source} WHERE {et} >= {_timestamp(window.start)} "
                    f"AND {et} < {_timestamp(window.end)}"
                )
                stats = compute_statistics(relation, columns)
            out.append(WindowFigures(window.start, window.end, batch_rows, written - updates, updates, count,
                                     newest, stats))
        return out
    finally:
        con.close()


def _per_window(con: duckdb.DuckDBPyConnection, sql: str, n: int) -> list[int]:
    counts = [0] * n
    for idx, count in con.sql(sql).fetchall():
        counts[idx] = int(count)
    return counts


def _timestamp(moment: Any) -> str:
    return f"TIMESTAMPTZ {sql_string(moment.isoformat())}"


def _previous_commit(reader: HudiTableReader, instant: str | None) -> str | None:
    """The completed commit right before ``instant`` (None: it is the first, or nothing was committed)."""
    if not instant:
        return None
    try:
        return reader.resolve_as_of(f"{int(instant) - 1:017d}")
    except CommitNotFoundError:
        return None
