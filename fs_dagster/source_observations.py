"""Observations of raw source assets: data versions from file content, and what the files hold.

Dagster does not materialize a raw source (a landing folder, a package's data files); it *observes* it. An
observation records the source's data version, and a feature group materialized from it records that version as
its input, so once a new observation carries another version the feature group shows as stale. Here a version is
a SHA-256 of the files' bytes (and names): observing unchanged files again gives the same version, any changed
byte a new one.

- :func:`files_data_version`, :func:`describe_files`: the version of some files, and metadata saying what they
  hold (rows and column schema from Parquet footers, size, paths).
- :class:`SourceVersion`, :func:`source_observation`: one source (partition) at one version, as an observation.
- :func:`build_source_observation_sensor`: reports each source (partition) whose version differs from the latest
  one Dagster recorded, without launching a run.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pyarrow.parquet as pq
from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from fs_dagster.metadata import arrow_table_schema
from fs_dagster.upstream import DATA_VERSION_TAG

DATA_VERSION_IS_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"  # what ObserveResult sets too


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (remembered per path, size and mtime, so a sensor ticking over unchanged files
    does not read them again)."""
    stat = os.stat(path)
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_data_version(root: str | os.PathLike[str], relative_paths: Sequence[str]) -> str:
    """The data version of some files under ``root``: SHA-256 over each file's relative path and content hash.

    Example:
        files_data_version("/data/landing", ["flights/2013-03.parquet"])  # the same bytes -> the same version
    """
    digest = hashlib.sha256()
    for relative in sorted(relative_paths):
        digest.update(f"{relative}\0{file_sha256(Path(root) / relative)}\n".encode())
    return digest.hexdigest()


def describe_files(root: str | os.PathLike[str], relative_paths: Sequence[str]) -> dict[str, Any]:
    """Observation metadata of some files: where they are, their size, and for Parquet files their row count and
    column schema (read from the footers, not the data)."""
    paths = [Path(root) / relative for relative in sorted(relative_paths)]
    metadata: dict[str, Any] = {
        "fs_dagster/source": MetadataValue.path(str(paths[0])) if len(paths) == 1
        else MetadataValue.text("\n".join(str(p) for p in paths)),
        "fs_dagster/size_bytes": sum(p.stat().st_size for p in paths),
    }
    if paths and all(p.suffix == ".parquet" for p in paths):
        footers = [pq.ParquetFile(p) for p in paths]
        metadata["dagster/row_count"] = sum(f.metadata.num_rows for f in footers)
        metadata["dagster/column_schema"] = arrow_table_schema(footers[0].schema_arrow)
    return metadata


@dataclass(frozen=True)
class SourceVersion:
    """A source asset (partition) at a data version; ``describe`` gives the observation's metadata (called only
    when the observation is reported: it may read more than the version needs)."""

    asset_key: AssetKey
    partition: str | None
    data_version: str
    describe: Callable[[], Mapping[str, Any]]


def source_observation(version: SourceVersion, description: str | None = None) -> AssetObservation:
    """The observation reporting ``version`` (tagged as ``ObserveResult(data_version=...)`` tags it)."""
    return AssetObservation(
        asset_key=version.asset_key,
        partition=version.partition,
        description=description,
        metadata=dict(version.describe()),
        tags={DATA_VERSION_TAG: version.data_version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"},
    )


def latest_observed_version(instance: DagsterInstance, asset_key: AssetKey, partition: str | None) -> str | None:
    """The data version of the latest observation Dagster holds for the asset (partition), if any."""
    records = instance.fetch_observations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    observation = records[0].asset_observation if records else None
    return (observation.tags or {}).get(DATA_VERSION_TAG) if observation is not None else None


def changed_source_observations(instance: DagsterInstance, versions: Iterable[SourceVersion]) -> list[AssetObservation]:
    """Observations of the sources whose version differs from the latest one recorded (or that have none)."""
    return [
        source_observation(v) for v in versions
        if latest_observed_version(instance, v.asset_key, v.partition) != v.data_version
    ]


def build_source_observation_sensor(
    versions: Callable[[SensorEvaluationContext], Iterable[SourceVersion]],
    *,
    name: str = "source_observations",
    minimum_interval_seconds: int = 300,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    required_resource_keys: set[str] | None = None,
    description: str | None = None,
) -> SensorDefinition:
    """A sensor observing raw sources: each tick computes every source's version (``versions``) and reports those
    that differ from the latest observation Dagster holds, as runless observations (no run, no step process).

    So a source shows its version, row count and schema from the first tick on, and a change of its files (a
    corrected file, a new package release) marks what was built from it stale within one interval.

    Example:
        def versions(context):
            root = "/data/landing"
            return [SourceVersion(AssetKey("raw_weather"), None, files_data_version(root, ["weather.parquet"]),
                                  lambda: describe_files(root, ["weather.parquet"]))]

        raw_observations = build_source_observation_sensor(versions, default_status=DefaultSensorStatus.RUNNING)
    """

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys=required_resource_keys,
        description=description or "Observes the raw sources: reports each one whose data version changed.",
    )
    def _observe_sources(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        current = list(versions(context))
        observations = changed_source_observations(context.instance, current)
        if not observations:
            return SkipReason(f"no source changed ({len(current)} checked)")
        for observation in observations:
            context.log.info(f"{observation.asset_key.to_user_string()}"
                             + (f" [{observation.partition}]" if observation.partition else "")
                             + f": data version {observation.tags[DATA_VERSION_TAG][:12]}")
        return SensorResult(asset_events=observations)

    return _observe_sources
