"""Sensors of the plugin.

- ``build_external_commit_sensor``: commits written outside Dagster (Python API, notebooks, Spark) become visible.
  A feature group written by ``fs.get_feature_group(...).insert(df)`` outside a Dagster run changes the data
  that downstream assets read; the sensor reports such commits as materializations of the feature-group asset
  (with the commit instant as data version), so downstream assets show as stale and lineage stays complete.
- ``build_landing_sensor``: new raw files in a landing folder trigger runs of the (feature-group) partitions
  built from them, each file version once.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    DefaultSensorStatus,
    PartitionsDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.source_observations import SourceVersion, describe_files, files_data_version, source_observation
from fs_dagster.translator import FeatureGroupTranslator
from fs_dagster.upstream import DATA_VERSION_TAG


def build_external_commit_sensor(
    specs: Sequence[FeatureGroupSpec],
    *,
    name: str = "feature_group_external_commits",
    resource_key: str = "feature_store",
    translator: FeatureGroupTranslator | None = None,
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """A sensor reporting Hudi commits of ``specs`` that no Dagster materialization recorded.

    The cursor holds the last instant seen per feature group, so each commit is reported once.

    Example:
        sensors = [build_external_commit_sensor([WEATHER_HOURLY, AIRCRAFT])]
    """
    translator = translator or FeatureGroupTranslator()
    keys = {spec.key: translator.get_asset_spec(spec).key for spec in specs}

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={resource_key},
        description="Reports feature-group commits written outside Dagster as materializations.",
    )
    def _external_commits(context: SensorEvaluationContext) -> SensorResult:
        store = getattr(context.resources, resource_key).get_store()
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        events = []
        for spec in specs:
            try:
                fg = store.get_feature_group(spec.name, spec.version)
                commits = fg.commit_details()
            except FeatureStoreError:
                continue  # not registered or no data yet
            seen = cursor.get(spec.key, "")
            recorded = _recorded_commits(context, keys[spec.key])
            for commit in reversed(commits):  # oldest first
                if commit.instant <= seen:
                    continue
                if commit.instant not in recorded:
                    events.append(
                        AssetMaterialization(
                            asset_key=keys[spec.key],
                            description=f"commit {commit.instant} written outside Dagster",
                            metadata={
                                "fs_dagster/commit": commit.instant,
                                "fs_dagster/operation": commit.operation,
                                "fs_dagster/rows_inserted": commit.rows_inserted,
                                "fs_dagster/rows_updated": commit.rows_updated,
                                "fs_dagster/rows_deleted": commit.rows_deleted,
                                "fs_dagster/external": True,
                            },
                            tags={DATA_VERSION_TAG: commit.instant},
                        )
                    )
                seen = commit.instant
            if seen:
                cursor[spec.key] = seen
        return SensorResult(asset_events=events, cursor=json.dumps(cursor, sort_keys=True))

    return _external_commits


def _recorded_commits(context: SensorEvaluationContext, asset_key: AssetKey, limit: int = 50) -> set[str]:
    """Commit instants that recent materializations of the asset already carry."""
    records = context.instance.fetch_materializations(asset_key, limit=limit).records
    out = set()
    for record in records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        value = materialization.metadata.get("fs_dagster/commit")
        text = getattr(value, "value", value)
        if isinstance(text, str):
            out.add(text)
        version = (materialization.tags or {}).get(DATA_VERSION_TAG)
        if version:
            out.add(version)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Landing folder sensor

AssetRef = Union[str, Sequence[str], AssetKey, AssetsDefinition]
FolderRef = Union[str, os.PathLike, Callable[[SensorEvaluationContext], Union[str, os.PathLike, None]]]
LANDING_FILES_TAG = "fs_dagster/landing_files"
IGNORED = "ignored"  # cursor value of a file without a partition (a later partitions definition may take it)


@dataclass(frozen=True)
class LandingTrigger:
    """Files matching ``pattern`` (a glob relative to the landing folder) trigger runs of ``assets``.

    Args:
        pattern: e.g. ``"flights/*.parquet"``; files must appear atomically (written elsewhere or under a name the
            pattern does not match, then renamed), since the sensor does not wait for a file to stop growing.
        assets: what to run for the file's partition: asset keys, key strings or asset definitions.
        source: the raw asset the files feed; new files are reported as an observation of it (in their partition
            if the asset is partitioned) with a data version from their bytes, rows, columns and path, so the raw
            asset's page shows what arrived when and what was built from older files shows as stale.

    Example:
        LandingTrigger("weather/*.parquet", [weather_hourly], source=AssetKey(["raw", "weather"]))
    """

    pattern: str
    assets: Sequence[AssetRef]
    source: AssetKey | None = None

    def asset_keys(self) -> list[AssetKey]:
        keys: list[AssetKey] = []
        for ref in self.assets:
            if isinstance(ref, AssetsDefinition):
                keys.extend(sorted(ref.keys, key=lambda k: k.to_user_string()))
            else:
                keys.append(AssetKey.from_coercible(ref))
        return keys


def partition_key_from_name(path: Path) -> str | None:
    """Time partition key of a file named by its period: ``2013-03.parquet`` -> ``"2013-03-01"`` (a monthly
    partition), ``2013-03-05.csv`` -> ``"2013-03-05"``; any other name -> ``None`` (not a landing file)."""
    stem = path.name.split(".", 1)[0]
    if re.fullmatch(r"\d{4}-\d{2}", stem):
        return f"{stem}-01"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stem):
        return stem
    return None


def build_landing_sensor(
    folder: FolderRef,
    triggers: Sequence[LandingTrigger],
    *,
    name: str = "landing_files",
    partition_key_for: Callable[[Path], str | None] = partition_key_from_name,
    partitions_def: PartitionsDefinition | None = None,
    required_resource_keys: set[str] | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    not_configured_hint: str = "",
) -> SensorDefinition:
    """A sensor turning new raw files in a landing folder into runs of the partitions built from them.

    Each tick lists the files matching the triggers, maps each to a partition key (by default from its name, see
    :func:`partition_key_from_name`) and requests one run per partition with new or changed files, selecting the
    assets of those files' triggers. A file version is its name, size and mtime: the run key carries them and the
    cursor (JSON, stored by Dagster, so it survives daemon restarts) records every processed version. An
    unchanged file therefore never triggers again; a replaced one (new size or mtime) does.

    Args:
        folder: the landing folder, or a function of the sensor context returning it (e.g. from a resource;
            ``None`` means not configured: the tick skips).
        triggers: which files feed which assets.
        partition_key_for: file path -> partition key, ``None`` to ignore the file.
        partitions_def: if given (static or time partitions), files whose key is not one of its partitions are
            ignored with a warning naming them.
        required_resource_keys: resources ``folder`` reads.
        run_config: run config of every requested run (e.g. the executor), tags: extra tags of every run.
        not_configured_hint: appended to the skip message when ``folder`` returns ``None``.

    Example:
        landing = build_landing_sensor(
            "/data/landing",
            [LandingTrigger("weather/*.parquet", [weather_hourly]),
             LandingTrigger("flights/*.parquet", [flight_outcomes, route_delay_stats])],
            partitions_def=MONTHLY, minimum_interval_seconds=10,
        )
        # weather/2013-03.parquet + flights/2013-03.parquet -> one run of the three assets, partition 2013-03-01
    """
    if not triggers:
        raise ValueError(f"landing sensor {name}: no triggers given")
    targets: list[AssetKey] = []
    for trigger in triggers:
        targets.extend(k for k in trigger.asset_keys() if k not in targets)

    @sensor(
        name=name,
        target=targets,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys=required_resource_keys,
        description="Runs the partitions built from new or changed files of the landing folder.",
    )
    def _landing(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        resolved = folder(context) if callable(folder) else folder
        if resolved is None:
            return SkipReason(f"no landing folder configured. {not_configured_hint}".strip())
        root = Path(resolved)
        if not root.is_dir():
            return SkipReason(f"landing folder {root} does not exist yet (nothing has landed)")
        processed = _load_cursor(context.cursor, name)

        current: dict[str, str] = {}  # the next cursor: file -> processed version, or IGNORED
        new: dict[str, list[tuple[str, str, LandingTrigger]]] = defaultdict(list)  # partition -> files
        source_files: dict[tuple[str, AssetKey], list[str]] = defaultdict(list)  # (partition, source) -> all files
        ignored: list[str] = []
        for path, trigger in _matches(root, triggers):
            relative = path.relative_to(root).as_posix()
            key = partition_key_for(path)
            if key is None or (partitions_def is not None and not partitions_def.has_partition_key(key)):
                ignored.append(relative)
                current[relative] = IGNORED
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed since listed
                continue
            version = f"{stat.st_size}:{stat.st_mtime_ns}"
            current[relative] = version
            if trigger.source is not None:
                source_files[(key, trigger.source)].append(relative)
            if processed.get(relative) != version:
                new[key].append((relative, version, trigger))
        newly_ignored = sorted(r for r in ignored if processed.get(r) != IGNORED)
        if newly_ignored:  # warned once per file; the skip message keeps listing them
            context.log.warning(
                f"landing folder {root}: ignored {', '.join(newly_ignored)} (no partition key"
                + (" of the assets' partitions)" if partitions_def is not None else ")")
            )

        requests, observations = [], []
        for key in sorted(new):
            files = sorted(new[key], key=lambda f: f[0])
            selection: list[AssetKey] = []
            for _, _, trigger in files:
                selection.extend(k for k in trigger.asset_keys() if k not in selection)
            requests.append(
                RunRequest(
                    run_key=f"{key}|" + ",".join(f"{rel}@{version}" for rel, version, _ in files),
                    partition_key=key,
                    asset_selection=selection,
                    run_config=dict(run_config or {}),
                    tags={**(tags or {}), LANDING_FILES_TAG: ",".join(rel for rel, _, _ in files)},
                )
            )
            observations.extend(_observations(context, root, key, files, source_files))
            context.log.info(f"partition {key}: {', '.join(rel for rel, _, _ in files)} -> "
                             f"{', '.join(k.to_user_string() for k in selection)}")
        # the cursor keeps present files only: a deleted file is forgotten, so the cursor stays bounded
        cursor = json.dumps(current, sort_keys=True)
        if not requests:
            skip = f"no new or changed files in {root} ({len(current) - len(ignored)} already processed"
            skip += f"; ignored: {', '.join(sorted(ignored))})" if ignored else ")"
            return SensorResult(skip_reason=SkipReason(skip), cursor=cursor)
        return SensorResult(run_requests=requests, asset_events=observations, cursor=cursor)

    return _landing


def _matches(root: Path, triggers: Sequence[LandingTrigger]) -> Iterable[tuple[Path, LandingTrigger]]:
    for trigger in triggers:
        for path in sorted(root.glob(trigger.pattern)):
            if path.is_file() and not path.name.startswith("."):  # hidden: temp files of a write in progress
                yield path, trigger


def _observations(
    context: SensorEvaluationContext,
    root: Path,
    key: str,
    files: list[tuple[str, str, LandingTrigger]],
    source_files: Mapping[tuple[str, AssetKey], list[str]],
) -> list[AssetObservation]:
    """An observation of each source the new files feed: its data version over all of its files of the partition
    (SHA-256 of their bytes), rows and columns. A partitioned source is observed in that partition."""
    out = []
    for source in sorted({t.source for _, _, t in files if t.source is not None}, key=lambda k: k.to_user_string()):
        relatives = sorted(source_files[(key, source)])
        version = SourceVersion(
            source,
            key if _is_partitioned(context, source) else None,
            files_data_version(root, relatives),
            partial(_describe_landed, root, relatives, key),
        )
        out.append(source_observation(version, description=f"landed {', '.join(relatives)}"))
    return out


def _describe_landed(root: Path, relatives: list[str], key: str) -> dict[str, Any]:
    return {**describe_files(root, relatives), "fs_dagster/partition": key}


def _is_partitioned(context: SensorEvaluationContext, key: AssetKey) -> bool:
    try:
        graph = context.repository_def.asset_graph if context.repository_def is not None else None
    except Exception:  # a context built without definitions: report the source unpartitioned
        return False
    return graph is not None and graph.has(key) and graph.get(key).is_partitioned


def _load_cursor(cursor: str | None, name: str) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(
            f"sensor {name}: cursor {cursor[:200]!r} is not the JSON object of processed files this sensor writes; "
            "reset it in the UI (sensor page, 'Cursor'); files already run keep their run keys and do not run again"
        )
    return {str(k): str(v) for k, v in value.items()}
