"""Training datasets as Dagster assets: downstream of their feature groups, data version = content hash.

Each materialization builds the view's training data from the feature groups' latest commits. If the content
is the same as the latest version's (same bytes, split and format), that version is reported again instead of
registering a copy, so its data version (the content hash) does not change and nothing downstream becomes
stale. A new commit of a source feature group changes that group's data version, which Dagster shows as this
asset being stale; with ``automation_condition=AutomationCondition.eager()`` the automation sensor refreshes it.

Example:
    flight_delay_training = build_training_dataset_asset(
        "flight_delays", 1, deps=[AssetKey("flight_outcomes"), AssetKey("weather_hourly")],
        split=RandomSplit({"train": 0.8, "test": 0.2}, seed=7),
        get_view=register_flight_delay_view,
        automation_condition=AutomationCondition.eager(),
    )
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from dagster import (
    AssetKey,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.feature_view import FeatureView
from fs_dagster.core.monitoring.statistics import summarize
from fs_dagster.core.specs import check_name, check_version
from fs_dagster.core.store import FeatureStore
from fs_dagster.core.training.splits import Split
from fs_dagster.errors import as_failure
from fs_dagster.metadata import statistics_table

METADATA_TRAINING_DATASET = "fs_dagster/training_dataset"
METADATA_TRAINING_DATASET_VERSION = "fs_dagster/training_dataset_version"
METADATA_VIEW_NAME = "fs_dagster/feature_view_name"
METADATA_VIEW_VERSION = "fs_dagster/feature_view_version"


def training_dataset_metadata(td: Any) -> dict[str, Any]:
    """What a training dataset materialization shows in the UI."""
    metadata: dict[str, Any] = {
        METADATA_TRAINING_DATASET: f"{td.view.name} v{td.view.version} / v{td.version}",
        METADATA_TRAINING_DATASET_VERSION: td.version,  # (what a model asset trains on: exactly this version)
        "fs_dagster/content_hash": td.content_hash,
        "fs_dagster/pinned_commits": MetadataValue.json(td.pinned_commits),
        "fs_dagster/split": MetadataValue.json(td.spec["split"] or {"kind": "none"}),
        "dagster/row_count": sum(td.row_counts.values()),
        "path": MetadataValue.path(str(td.path)),
        "data_format": td.data_format,
    }
    for split, rows in td.row_counts.items():
        metadata[f"rows/{split}"] = rows
    if td.transformations is not None:
        metadata["fs_dagster/transformations"] = MetadataValue.json(td.transformations.to_dict())
    statistics = td.statistics or {}
    first = "train" if "train" in statistics else next(iter(statistics), None)
    if first is not None:
        metadata[f"fs_dagster/statistics/{first}"] = statistics_table(summarize(statistics[first]))
    return metadata


def build_training_dataset_asset(
    feature_view: str,
    feature_view_version: int,
    *,
    deps: Sequence[AssetKey | str],
    split: Split | None = None,
    data_format: str = "parquet",
    get_view: Callable[[FeatureStore], FeatureView] | None = None,
    key: AssetKey | str | None = None,
    group_name: str = "training_data",
    automation_condition: AutomationCondition | None = None,
    description: str | None = None,
    resource_key: str = "feature_store",
) -> Any:
    """An asset that materializes a training dataset version of a feature view (see module doc).

    Args:
        deps: the assets the view reads (its feature groups, the asset registering the view).
        split: how rows are split (``RandomSplit`` / ``TimeSplit``); None: one part.
        get_view: returns the view from the store (e.g. a function that registers it idempotently); default:
            ``store.get_feature_view(feature_view, feature_view_version)``.
        key: asset key; default ``[<feature_view>_training_data]``.
        automation_condition: e.g. ``AutomationCondition.eager()`` to refresh on new feature commits.
    """
    check_name("feature view", feature_view)  # refused when the definitions load, not at the first run
    check_version("feature view", feature_view, feature_view_version)
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([f"{feature_view}_training_data"])

    @asset(
        key=asset_key,
        deps=[AssetKey.from_coercible(d) for d in deps],
        group_name=group_name,
        kinds={"parquet" if data_format == "parquet" else "csv", "duckdb"},
        description=description or (
            f"Point-in-time correct training data of feature view {feature_view} v{feature_view_version}, "
            "pinned to its feature groups' commits; data version = content hash."
        ),
        required_resource_keys={resource_key},
        automation_condition=automation_condition,
        metadata={"fs_dagster/feature_view": f"{feature_view} v{feature_view_version}",
                  METADATA_VIEW_NAME: feature_view, METADATA_VIEW_VERSION: feature_view_version},
    )
    def _training_dataset(context) -> MaterializeResult:  # (no annotation: dagster inspects it as a string)
        store = getattr(context.resources, resource_key).get_store()
        try:
            view = get_view(store) if get_view else store.get_feature_view(feature_view, feature_view_version)
            td = view.create_training_data(split, data_format=data_format, reuse_identical=True)
        except FeatureStoreError as error:
            raise as_failure(error) from error
        context.log.info("training dataset %s: %s", td.version, td.row_counts)
        return MaterializeResult(metadata=training_dataset_metadata(td), data_version=DataVersion(td.content_hash))

    return _training_dataset
