"""The resource that runs the reference project's SQLMesh pipelines (see :mod:`resources.flights_sqlmesh`)."""

from __future__ import annotations

from typing import Any, Iterator

from fs_dagster.sqlmesh import SQLMeshResource
from resources.flights_sqlmesh import prepare_raw_flights


class FlightsSQLMeshResource(SQLMeshResource):
    """:class:`SQLMeshResource` of the reference pipelines: prepares the raw flights a run reads first."""

    def run(self, context: Any, **options: Any) -> Iterator[Any]:
        window = None
        if context.has_partition_key or context.has_partition_key_range:
            window = context.partition_time_window
        prepare_raw_flights(window.start if window else None, window.end if window else None)
        yield from super().run(context, **options)
