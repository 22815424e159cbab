"""Plain-Python core of fs-dagster: no Dagster import anywhere below this package."""
