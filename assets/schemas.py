"""Pandera schemas of the reference feature groups (they run as blocking asset checks before each write)."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

AIRPORTS = ["EWR", "JFK", "LGA"]


class WeatherHourly(pa.DataFrameModel):
    origin: Series[str] = pa.Field(isin=AIRPORTS)
    time_hour: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    temp: Series[float] = pa.Field(ge=-40, le=130, nullable=True, description="Temperature, F")
    dewp: Series[float] = pa.Field(ge=-60, le=100, nullable=True, description="Dew point, F")
    humid: Series[float] = pa.Field(ge=0, le=100, nullable=True, description="Relative humidity, %")
    wind_dir: Series[float] = pa.Field(ge=0, le=360, nullable=True, description="Wind direction, degrees")
    wind_speed: Series[float] = pa.Field(ge=0, le=100, nullable=True, description="Wind speed, mph")
    wind_gust: Series[float] = pa.Field(ge=0, le=150, nullable=True, description="Gust speed, mph")
    precip: Series[float] = pa.Field(ge=0, nullable=True, description="Precipitation, inches")
    pressure: Series[float] = pa.Field(ge=900, le=1100, nullable=True, description="Sea level pressure, mb")
    visib: Series[float] = pa.Field(ge=0, le=10, nullable=True, description="Visibility, miles")

    class Config:
        strict = True
        unique = ["origin", "time_hour"]


class Aircraft(pa.DataFrameModel):
    tailnum: Series[str] = pa.Field(unique=True, str_matches=r"^N[0-9A-Z]+$")
    valid_from: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    year_built: Series[float] = pa.Field(ge=1950, le=2014, nullable=True)
    aircraft_type: Series[str]
    manufacturer: Series[str]
    model: Series[str]
    engines: Series[int] = pa.Field(ge=1, le=4)
    seats: Series[int] = pa.Field(ge=2, le=500)
    engine: Series[str]

    class Config:
        strict = True


class RouteDelayStats(pa.DataFrameModel):
    origin: Series[str] = pa.Field(isin=AIRPORTS)
    dest: Series[str] = pa.Field(str_length={"min_value": 3, "max_value": 3})
    carrier: Series[str] = pa.Field(str_length={"min_value": 2, "max_value": 2})
    day: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    flights_7d: Series[int] = pa.Field(ge=0)
    mean_dep_delay_7d: Series[float] = pa.Field(nullable=True)
    mean_arr_delay_7d: Series[float] = pa.Field(nullable=True)
    pct_arr_delayed_7d: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    pct_cancelled_7d: Series[float] = pa.Field(ge=0, le=1)

    class Config:
        strict = True
        unique = ["origin", "dest", "carrier", "day"]


class FlightOutcomes(pa.DataFrameModel):
    flight_id: Series[str] = pa.Field(unique=True)
    sched_dep_ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    time_hour: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    day: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    origin: Series[str] = pa.Field(isin=AIRPORTS)
    dest: Series[str]
    carrier: Series[str]
    tailnum: Series[str] = pa.Field(nullable=True)
    distance: Series[int] = pa.Field(gt=0)
    sched_dep_hour: Series[int] = pa.Field(ge=0, le=23)
    day_of_week: Series[int] = pa.Field(ge=0, le=6)
    dep_delay: Series[float] = pa.Field(nullable=True)
    arr_delay: Series[float] = pa.Field(nullable=True)
    cancelled: Series[bool]
    is_delayed: Series[bool] = pa.Field(description="Label: arrived 15+ minutes late or cancelled")
    dep_delayed: Series[bool] = pa.Field(description="Label: departed 15 or more minutes late, or cancelled")

    class Config:
        strict = True
