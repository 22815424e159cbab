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
    AssetCheckResult,
    AssetIn,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from fs_dagster.code_versions import recipe_code_version
from fs_dagster.core.errors import FeatureStoreError, InvalidDataError
from fs_dagster.core.feature_view import FeatureView
from fs_dagster.core.monitoring.statistics import summarize
from fs_dagster.core.specs import check_name, check_version
from fs_dagster.core.store import FeatureStore
from fs_dagster.core.training.quality import QualityReport, QualityRules, assess
from fs_dagster.core.training.splits import Split
from fs_dagster.errors import as_failure
from fs_dagster.feature_view_asset import column_lineage, column_schema, view_columns
from fs_dagster.metadata import statistics_table
from fs_dagster.translator import FeatureGroupTranslator, dagster_tags, valid_owners

METADATA_TRAINING_DATASET = "fs_dagster/training_dataset"
METADATA_TRAINING_DATASET_VERSION = "fs_dagster/training_dataset_version"
METADATA_VIEW_NAME = "fs_dagster/feature_view_name"
METADATA_VIEW_VERSION = "fs_dagster/feature_view_version"
QUALITY_CHECK_NAME = "training_data_quality"


def training_dataset_metadata(td: Any, translator: FeatureGroupTranslator | None = None) -> dict[str, Any]:
    """What a training dataset materialization shows in the UI (keys: ``dagster/`` standard ones, else
    ``fs_dagster/``): the dataset, its rows per split, its columns with roles and lineage, statistics of the
    split transformations are fitted on (``train`` when there is one)."""
    metadata: dict[str, Any] = {
        METADATA_TRAINING_DATASET: f"{td.view.name} v{td.view.version} / v{td.version}",
        METADATA_TRAINING_DATASET_VERSION: td.version,  # (what a model asset trains on: exactly this version)
        "fs_dagster/content_hash": td.content_hash,
        "fs_dagster/pinned_commits": MetadataValue.json(td.pinned_commits),
        "fs_dagster/split": MetadataValue.json(td.spec["split"] or {"kind": "none"}),
        "dagster/row_count": sum(td.row_counts.values()),
        "fs_dagster/rows_per_split": MetadataValue.json(dict(td.row_counts)),
        "fs_dagster/path": MetadataValue.path(str(td.path)),
        "fs_dagster/data_format": td.data_format,
    }
    columns = view_columns(td.view, td.spec["columns"])
    metadata["dagster/column_schema"] = column_schema(columns, _file_types(td))
    metadata["dagster/column_lineage"] = column_lineage(td.view, columns, translator)
    if td.transformations is not None:
        metadata["fs_dagster/transformations"] = MetadataValue.json(td.transformations.to_dict())
    statistics = td.statistics or {}
    first = "train" if "train" in statistics else next(iter(statistics), None)
    if first is not None:
        metadata["fs_dagster/statistics"] = statistics_table(summarize(statistics[first]))
        metadata["fs_dagster/statistics_split"] = first
    return metadata


def _file_types(td: Any) -> dict[str, str]:
    """Column types as stored in the dataset's first file (parquet: from the footer)."""
    files = [f for f in td.files() if f.exists()]
    if not files or td.data_format != "parquet":
        return {}
    import pyarrow.parquet as pq

    return {f.name: str(f.type) for f in pq.read_schema(files[0])}


def quality_check_result(report: QualityReport, asset_key: AssetKey) -> AssetCheckResult:
    """The ``training_data_quality`` check: rows per split, label balance, null share per feature (the splits as
    columns); fails with ERROR on unusable data (empty split, a feature without values, a single label class),
    with WARN on data worth a look (see :class:`QualityRules`)."""
    splits = list(report.rows)
    features = sorted({f for shares in report.null_share.values() for f in shares})
    null_records = [
        TableRecord({"feature": f, **{s: round(report.null_share[s].get(f, 0.0), 4) for s in splits}})
        for f in features
    ]
    balance_records = [
        TableRecord({"label": label, "class": value,
                     **{s: round((by_split.get(s) or {}).get(value, 0.0), 4) for s in splits}})
        for label, by_split in report.label_balance.items()
        for value in dict.fromkeys(v for s in splits for v in (by_split.get(s) or {}))
    ]
    split_columns = [TableColumn(s, "float") for s in splits]
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=QUALITY_CHECK_NAME,
        passed=report.ok,
        severity=AssetCheckSeverity.ERROR if report.has_errors else AssetCheckSeverity.WARN,
        description="; ".join(p.message for p in report.problems[:5]) or None,
        metadata={
            "rows": MetadataValue.json(report.rows),
            "problems": len(report.problems),
            "null_share": MetadataValue.table(
                records=null_records, schema=TableSchema(columns=[TableColumn("feature", "string"), *split_columns])),
            "label_balance": MetadataValue.table(
                records=balance_records,
                schema=TableSchema(columns=[TableColumn("label", "string"), TableColumn("class", "string"),
                                            *split_columns])),
        },
    )


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
    owners: Sequence[str] = (),
    tags: Sequence[str] = (),
    code_version: str | None = None,
    quality: QualityRules | None = None,
    spine: AssetsDefinition | AssetKey | str | None = None,
    spine_event_time: str | None = None,
    resource_key: str = "feature_store",
    translator: FeatureGroupTranslator | None = None,
) -> Any:
    """An asset that materializes a training dataset version of a feature view (see module doc).

    Args:
        deps: the assets the view reads (its feature groups, the asset registering the view).
        split: how rows are split (``RandomSplit`` / ``TimeSplit``); None: one part.
        get_view: returns the view from the store (e.g. a function that registers it idempotently); default:
            ``store.get_feature_view(feature_view, feature_view_version)``.
        key: asset key; default ``[<feature_view>_training_data]``.
        automation_condition: e.g. ``AutomationCondition.eager()`` to refresh on new feature commits.
        owners: e-mail addresses or ``team:`` names; tags: ``key=value`` or ``key``.
        code_version: default: the view version and a hash of the split and format (what decides the content
            besides the data).
        quality: thresholds of the ``training_data_quality`` check (blocking: a model downstream in the same run
            does not train on data that fails it with ERROR).
        spine: an upstream asset whose value (a DataFrame or Arrow table, loaded by its IO manager) is the spine:
            the view's join keys (request keys included) and an event time per row to build training rows for.
            Needed for a view with ``request_keys``; default: the root feature group's rows.
        spine_event_time: the spine's event-time column (default: the root group's event-time name).

    Example of a spine asset (a view whose requests carry keys the root group lacks):

    .. code-block:: python

        @asset
        def delay_requests() -> pd.DataFrame:  # flights to train on: keys + the time each was asked about
            ...

        delays_training_data = build_training_dataset_asset(
            "delays", 1, deps=["flight_outcomes", "weather_hourly"], spine=delay_requests,
            spine_event_time="time_hour")
    """
    check_name("feature view", feature_view)  # refused when the definitions load, not at the first run
    check_version("feature view", feature_view, feature_view_version)
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([f"{feature_view}_training_data"])
    spine_key = (spine.key if isinstance(spine, AssetsDefinition) else AssetKey.from_coercible(spine)) \
        if spine is not None else None
    if spine_event_time is not None and spine_key is None:
        raise InvalidDataError(f"training dataset asset of {feature_view}: spine_event_time={spine_event_time!r} "
                         "needs spine= (the asset giving the spine)")
    default_code_version = recipe_code_version(
        f"v{feature_view_version}", split=split.to_dict() if split else None, format=data_format,
        **({"spine_event_time": spine_event_time} if spine_key is not None else {}))

    def build(context, spine_rows: Any = None):
        store = getattr(context.resources, resource_key).get_store()
        try:
            view = get_view(store) if get_view else store.get_feature_view(feature_view, feature_view_version)
            td = view.create_training_data(split, data_format=data_format, reuse_identical=True, spine=spine_rows,
                                           spine_event_time=spine_event_time)
            report = assess(td, quality)
        except FeatureStoreError as error:
            raise as_failure(error) from error
        context.log.info("training dataset %s: %s", td.version, td.row_counts)
        yield MaterializeResult(metadata=training_dataset_metadata(td, translator),
                                data_version=DataVersion(td.content_hash))
        yield quality_check_result(report, asset_key)

    if spine_key is None:
        def _training_dataset(context):  # (no annotation: dagster inspects it as a string)
            yield from build(context)
    else:
        def _training_dataset(context, spine):  # the spine asset's value, as its IO manager loads it
            yield from build(context, spine)

    return asset(
        key=asset_key,
        deps=[k for k in (AssetKey.from_coercible(d) for d in deps) if k != spine_key],  # (the spine is an input)
        ins={"spine": AssetIn(spine_key)} if spine_key is not None else None,
        group_name=group_name,
        kinds={"parquet" if data_format == "parquet" else "csv", "duckdb"},
        description=description or (
            f"Point-in-time correct training data of feature view {feature_view} v{feature_view_version}, "
            "pinned to its feature groups' commits; data version = content hash."
        ),
        owners=valid_owners(owners),
        tags=dagster_tags(tags, f"training data of {feature_view}"),
        code_version=code_version or default_code_version,
        required_resource_keys={resource_key},
        automation_condition=automation_condition,
        metadata={"fs_dagster/feature_view": f"{feature_view} v{feature_view_version}",
                  METADATA_VIEW_NAME: feature_view, METADATA_VIEW_VERSION: feature_view_version},
        check_specs=[AssetCheckSpec(
            QUALITY_CHECK_NAME, asset=asset_key, blocking=True,
            description="Rows per split, label balance and null share per feature of the dataset just built",
        )],
    )(_training_dataset)
