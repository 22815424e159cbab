"""``@feature_group_asset``: a function returning a DataFrame becomes a feature-group asset.

The asset validates the frame (pandera, as a blocking check), upserts it into the Hudi table, and reports the
commit as its data version, so Dagster marks downstream training data stale after every new commit. A
time-partitioned run (one partition or a single-run backfill's range) gives each partition's materialization its
own figures (rows, inserts, updates, statistics of its event-time window), and its data version is the content
version of the run's window (``<newest commit among its rows>/<rows>``): a commit that leaves a partition's rows
alone leaves its version, and so everything downstream of it, unchanged.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from dagster import (
    AssetIn,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    BackfillPolicy,
    DataVersion,
    FreshnessPolicy,
    Output,
    PartitionsDefinition,
    RetryPolicy,
    asset,
)

from fs_dagster.beta_apis import accepting_beta
from fs_dagster.checks import validate_with_pandera
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.dataframe_type import feature_group_dagster_type, typed_spec
from fs_dagster.materialization import commit_feature_group, partition_window, partition_windows
from fs_dagster.translator import FeatureGroupTranslator

DEFAULT_RESOURCE_KEY = "feature_store"
DEFAULT_IO_MANAGER_KEY = "fs_io_manager"


def feature_group_asset(
    spec: FeatureGroupSpec,
    *,
    schema: Any = None,
    ins: Optional[Mapping[str, AssetIn]] = None,
    deps: Optional[Sequence[Any]] = None,
    partitions_def: Optional[PartitionsDefinition] = None,
    backfill_policy: Optional[BackfillPolicy] = None,
    automation_condition: Optional[AutomationCondition] = None,
    freshness_policy: Optional[FreshnessPolicy] = None,
    retry_policy: Optional[RetryPolicy] = None,
    translator: Optional[FeatureGroupTranslator] = None,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    io_manager_key: str = DEFAULT_IO_MANAGER_KEY,
    required_resource_keys: Optional[set[str]] = None,
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """Turns a function that computes features into a feature-group asset.

    The function's parameters (other than ``context``) are upstream assets of the same name unless ``ins``
    says otherwise. It returns a pandas DataFrame (or Arrow table) with every feature column.

    Args:
        spec: the feature group (keys, event time, partitioning, online flag, descriptions).
        schema: a pandera ``DataFrameModel`` or ``DataFrameSchema``; becomes the blocking ``pandera_schema``
            check. Data failing an error-level check is never written.
        partitions_def: e.g. ``DailyPartitionsDefinition``; a run must return rows of its time window only.
            Time-partitioned groups default to single-run backfills.
        translator: customizes the asset key, group, tags and check spec (it gets the spec with every column and
            its type, from ``spec.features`` or else the pandera schema).
        resource_key: key of the :class:`FeatureStoreResource`.
        required_resource_keys: further resources the function uses through ``context.resources``.

    Examples:
        .. code-block:: python

            weather_spec = FeatureGroupSpec("weather_hourly", primary_key=("origin", "time_hour"),
                                            event_time="time_hour", partition_key=("origin",))

            @feature_group_asset(weather_spec, schema=WeatherSchema, partitions_def=monthly)
            def weather_hourly(context, raw_weather: pd.DataFrame) -> pd.DataFrame:
                return raw_weather.assign(...)
    """
    translator = translator or FeatureGroupTranslator()
    asset_spec = translator.get_asset_spec(typed_spec(spec, schema))
    # the frame's Dagster type (dagster-pandas): checked in the body before the write, reported on the output
    frame_type = feature_group_dagster_type(spec, schema)
    check_specs = [translator.get_asset_check_spec(spec, asset_spec.key)] if schema is not None else []
    check_specs = [c for c in check_specs if c is not None]
    if backfill_policy is None and partitions_def is not None:
        backfill_policy = BackfillPolicy.single_run()

    def decorator(fn: Callable[..., Any]) -> AssetsDefinition:
        params = list(inspect.signature(fn).parameters.values())
        takes_context = bool(params) and params[0].name == "context"
        input_names = [p.name for p in params[1 if takes_context else 0 :]]
        asset_ins = {name: (ins or {}).get(name) or AssetIn(key=AssetKey([name])) for name in input_names}

        def _feature_group(context, **inputs: Any) -> Iterator[Any]:  # no annotation: dagster inspects it
            data = fn(context, **inputs) if takes_context else fn(**inputs)
            validation = None
            if schema is not None and check_specs:
                validation = validate_with_pandera(data, schema, asset_spec.key, check_specs[0].name)
                if validation.blocks_write:
                    yield validation.result
                    from fs_dagster.errors import FeatureStoreFailure

                    raise FeatureStoreFailure(
                        description=f"feature group {spec.name}: pandera schema failed "
                        f"({validation.result.description}); nothing was written",
                        metadata=dict(validation.result.metadata),
                    )
                data = validation.data
            type_check = frame_type.check_frame(data)
            if not type_check.success:
                if validation is not None:
                    yield validation.result
                from fs_dagster.errors import FeatureStoreFailure

                raise FeatureStoreFailure(
                    description=f"feature group {spec.name}: type check of {frame_type.display_name} failed "
                    f"({type_check.description}); nothing was written",
                    metadata=dict(type_check.metadata or {}),
                )
            store = getattr(context.resources, resource_key).get_store()
            partitions = partition_windows(context.assets_def.partitions_def, _partition_keys(context))
            commit, metadata = commit_feature_group(store, spec, data, partition_window(context), partitions)
            commit = replace(commit, type_check=type_check)
            for key, partition_md in metadata.partitions.items():  # each partition's event gets its own figures
                context.add_asset_metadata(partition_md, partition_key=key)
            # one data version for every partition of the run: Dagster 1.13 takes one per output
            with accepting_beta("data_version"):
                output = Output(commit, data_version=DataVersion(commit.data_version or "empty"),
                                metadata=metadata.table)
            yield output
            if validation is not None:
                yield validation.result
            failure = commit.failure()  # materialized (the commit stands); the run fails so the gap is seen
            if failure is not None:
                raise failure

        with accepting_beta("backfill_policy"):  # single-run backfills: one commit per range
            decorate = asset(
                key=asset_spec.key,
                ins=asset_ins,
                deps=deps,
                description=asset_spec.description or inspect.getdoc(fn),
                group_name=asset_spec.group_name,
                kinds=asset_spec.kinds,
                owners=list(asset_spec.owners),
                tags=dict(asset_spec.tags),
                metadata=dict(asset_spec.metadata),
                code_version=asset_spec.code_version,
                partitions_def=partitions_def,
                backfill_policy=backfill_policy,
                automation_condition=automation_condition or asset_spec.automation_condition,
                freshness_policy=freshness_policy,
                retry_policy=retry_policy,
                check_specs=check_specs,
                io_manager_key=io_manager_key,
                dagster_type=frame_type,
                required_resource_keys={resource_key, *(required_resource_keys or ())},
            )
        return decorate(_feature_group)

    return decorator


def _partition_keys(context: Any) -> list[str]:
    """The partitions the run writes: one, a single-run backfill's range, or none (unpartitioned)."""
    if context.has_partition_key or context.has_partition_key_range:
        return list(context.partition_keys)
    return []
