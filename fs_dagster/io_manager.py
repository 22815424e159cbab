"""``FeatureGroupIOManager``: stores feature-group assets in their Hudi tables and loads them for downstream assets."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from dagster import (
    ConfigurableIOManager,
    DagsterInvariantViolationError,
    InputContext,
    MetadataValue,
    OutputContext,
    TimestampMetadataValue,
)
from pydantic import Field

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError
from fs_dagster.core.feature_group import TimeWindow
from fs_dagster.errors import as_failure
from fs_dagster.materialization import FeatureGroupCommit, commit_feature_group, partition_window, partition_windows
from fs_dagster.resource import FeatureStoreResource
from fs_dagster.translator import spec_from_metadata

AS_OF_METADATA_KEY = "fs_dagster/as_of"
_INSTANT = re.compile(r"\d{17}")


class FeatureGroupIOManager(ConfigurableIOManager):
    """Upserts an asset's DataFrame into its feature group's Hudi table, and loads feature groups as pandas.

    The asset names its feature group through definition metadata (``fs_dagster/feature_group``), which
    :func:`feature_group_asset` and :class:`FeatureGroupTranslator` set for you. Downstream inputs get the
    latest snapshot, the upstream partition's event-time window for partitioned inputs, or a pinned commit
    with ``AssetIn(metadata={"fs_dagster/as_of": "<instant>"})``.

    Examples:
        .. code-block:: python

            store = FeatureStoreResource(root=".fs_store", project="flights")

            @asset(io_manager_key="fs_io_manager",
                   metadata=FeatureGroupTranslator().get_asset_spec(spec).metadata)
            def aircraft() -> pd.DataFrame: ...

            Definitions(assets=[aircraft], resources={"fs_io_manager": FeatureGroupIOManager(feature_store=store)})
    """

    feature_store: FeatureStoreResource = Field(description="The feature store to write to and read from.")

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if isinstance(obj, FeatureGroupCommit):
            return  # committed by the asset itself (feature_group_asset)
        spec = spec_from_metadata(context.definition_metadata or {})
        if spec is None:
            raise as_failure(
                FeatureStoreError(
                    f"asset {context.asset_key.to_user_string()} has no 'fs_dagster/feature_group' metadata; "
                    "use feature_group_asset or FeatureGroupTranslator().get_asset_spec(...).metadata"
                )
            )
        window, partitions = None, {}
        if context.has_asset_partitions:
            try:
                tw = context.asset_partitions_time_window
                window = TimeWindow(tw.start, tw.end)
            except Exception:  # not time-partitioned: no window to enforce
                window = None
            partitions = partition_windows(context.asset_partitions_def, context.asset_partition_keys)
        commit, metadata = commit_feature_group(self.feature_store.get_store(), spec, obj, window, partitions)
        context.add_output_metadata(metadata.table)
        _add_partition_metadata(context, metadata.partitions)
        failure = commit.failure()  # committed, but the registry, statistics or online store lag behind
        if failure is not None:
            raise failure

    def load_input(self, context: InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        spec = spec_from_metadata((upstream.definition_metadata if upstream else None) or {})
        if spec is None:
            raise as_failure(
                FeatureStoreError(f"input {context.name!r}: upstream asset is not a feature group (no fs_dagster metadata)")
            )
        store = self.feature_store.get_store()
        fg = store.get_feature_group(spec.name, spec.version)
        metadata = context.definition_metadata or {}
        try:
            if metadata.get(AS_OF_METADATA_KEY) is not None:
                as_of = as_of_from_metadata(metadata[AS_OF_METADATA_KEY], f"input {context.name!r}")
                if isinstance(metadata[AS_OF_METADATA_KEY], datetime):
                    _record_as_text(context, as_of)
                return fg.read(as_of=as_of)
            if context.has_asset_partitions and spec.event_time:
                try:
                    tw = context.asset_partitions_time_window
                except Exception:
                    tw = None
                if tw is not None:
                    return fg.read_window(TimeWindow(tw.start, tw.end))
            return fg.read()
        except FeatureStoreError as error:
            raise as_failure(error, feature_group=spec.key) from error


def as_of_from_metadata(value: Any, where: str) -> str | datetime:
    """The point in time an ``fs_dagster/as_of`` input pins, as a commit instant or an aware datetime.

    Accepted: a 17-digit commit instant (text or int), an ISO 8601 time as text (with or without offset; without
    means UTC), a datetime (naive means UTC; pandas ``Timestamp`` too), and the same wrapped in a ``MetadataValue``
    (``MetadataValue.text``, ``.int``, ``.timestamp``).

    Raises:
        InvalidDataError: anything else, naming ``where``, the value given and what is accepted.
    """
    raw = value.value if isinstance(value, MetadataValue) else value
    if isinstance(value, TimestampMetadataValue):
        return datetime.fromtimestamp(value.value, timezone.utc)
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
    if isinstance(raw, int) and not isinstance(raw, bool) and _INSTANT.fullmatch(str(raw)):
        return str(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if _INSTANT.fullmatch(text):
            return text
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None:
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    raise InvalidDataError(
        f"{where}: {AS_OF_METADATA_KEY} = {value!r} ({type(value).__name__}) is not a point in time; accepted: a "
        "17-digit commit instant ('20240101120000123'), an ISO 8601 time ('2024-01-01T12:00:00+00:00'; "
        "without an offset it is UTC) or a datetime (naive: UTC)"
    )


def _record_as_text(context: InputContext, as_of: datetime) -> None:
    """Dagster records an input's metadata after loading it and cannot store a bare datetime; metadata logged
    here replaces it (as ISO text) in that record. Logging also observes the input's partition, which Dagster
    cannot do for an input spanning several partitions: there the datetime must come as text already."""
    if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
        raise InvalidDataError(
            f"input {context.name!r}: {AS_OF_METADATA_KEY} is the datetime {as_of.isoformat()}, which Dagster cannot "
            f"record for an input of {len(context.asset_partition_keys)} partitions; give it as ISO text "
            f"({as_of.isoformat()!r}) or MetadataValue.timestamp(...)"
        )
    context.add_input_metadata({AS_OF_METADATA_KEY: as_of.isoformat()})


def _add_partition_metadata(context: OutputContext, partitions: dict[str, dict[str, Any]]) -> None:
    """Gives each partition's materialization its own figures.

    ``add_output_metadata`` reaches every partition of the output alike, and ``log_event(AssetMaterialization(
    partition=...))`` would record a second materialization per partition beside Dagster's own. So the figures go
    where ``AssetExecutionContext.add_asset_metadata(partition_key=...)`` puts them: the step's partition-scoped
    asset metadata, which Dagster merges over the output's when it records each partition's materialization.
    """
    if not partitions:
        return
    try:
        step = context.step_context
    except DagsterInvariantViolationError:  # an OutputContext built outside a run (build_output_context)
        step = None
    if step is None:
        if len(partitions) == 1:
            [only] = partitions.values()
            context.add_output_metadata(only)
        return
    for key, partition_md in partitions.items():
        step.add_asset_metadata(partition_md, asset_key=context.asset_key, partition_key=key)


__all__ = ["FeatureGroupIOManager", "partition_window", "AS_OF_METADATA_KEY"]
