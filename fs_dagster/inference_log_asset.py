"""Inference-log assets: the requests a deployment answered, moved from its Valkey stream into the Hudi feature group
``<deployment>_inference_log``, and the same rows with the outcomes that arrived later (the labels), for
monitoring and the next training round.

- :func:`build_inference_log_asset` flushes the stream (exactly once per request: the commit comes before the
  trim, the primary key absorbs a repeat; see :mod:`fs_dagster.core.serving.inference_log`). Run it on a
  schedule or an ``AutomationCondition.on_cron(...)``; a flush with nothing new makes no commit, so the data
  version (the group's latest commit) stays and nothing downstream becomes stale.
- :func:`build_labelled_inference_log_asset` joins the log with an outcomes feature group by entity keys
  (``join_outcomes``) and upserts the result into its own feature group: predictions whose outcome has not arrived
  keep null labels and get them at a later run (same keys and event time: the later write wins). Its metadata
  has the live metrics of the served versions on the labelled rows (``metrics/live_<metric>``, plotted by the UI).

Example:
    delays_log = build_inference_log_asset("delays_api")
    delays_labelled = build_labelled_inference_log_asset(
        "delays_api", "flight_outcomes", on=["flight_id"], labels={"dep_delayed": "actual_dep_delayed"},
        key="delay_predictions_labelled")
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import (
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

from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.models.validation import Scores, metric_named
from fs_dagster.core.serving.inference_log import (
    proba_column,
    flush_inference_log,
    inference_log_group,
    join_outcomes,
    log_group_name,
)
from fs_dagster.core.specs import check_name
from fs_dagster.errors import as_failure
from fs_dagster.model_asset import METRIC_PREFIX

EMPTY = "empty"
METADATA_LABELLED_GROUP = "fs_dagster/labelled_feature_group"
METADATA_LABELS = "fs_dagster/labels"


def _key(value: AssetsDefinition | AssetKey | str) -> AssetKey:
    return value.key if isinstance(value, AssetsDefinition) else AssetKey.from_coercible(value)


def build_inference_log_asset(
    deployment: str,
    *,
    deployment_asset: AssetsDefinition | AssetKey | str | None = None,
    key: AssetKey | str | None = None,
    max_rows: int = 100_000,
    group_name: str = "monitoring",
    automation_condition: AutomationCondition | None = None,
    resource_key: str = "feature_store",
) -> AssetsDefinition:
    """An asset flushing the inference log of ``deployment`` into its feature group (see module doc).

    Args:
        deployment_asset: the deployment asset upstream (default key ``[<deployment>]``).
        key: asset key; default ``[<deployment>_inference_log]`` (the feature group's name).
        max_rows: most rows per commit (a backlog is written in several commits).
        automation_condition: e.g. ``AutomationCondition.on_cron("*/5 * * * *")``.

    Examples:
        .. code-block:: python

            delays_log = build_inference_log_asset("delays_api", automation_condition=AutomationCondition.on_cron(
                "*/10 * * * *"))
    """
    check_name("deployment", deployment)
    upstream = _key(deployment_asset) if deployment_asset is not None else AssetKey([deployment])
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([log_group_name(deployment)])

    @asset(
        key=asset_key,
        deps=[upstream],
        group_name=group_name,
        kinds={"hudi", "valkey"},
        description=f"Requests answered by deployment {deployment} (entity keys, model input, predictions, model "
        f"version), flushed from its Valkey stream into feature group {log_group_name(deployment)}.",
        automation_condition=automation_condition,
        metadata={"fs_dagster/deployment": deployment},
        required_resource_keys={resource_key},
    )
    def _inference_log(context) -> MaterializeResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        try:
            result = flush_inference_log(store, deployment, max_rows=max_rows)
            fg = inference_log_group(store, deployment)
            exists = fg.exists()
            latest = fg.latest_commit() if exists else None
            versions = _version_counts(fg.read(columns=["model_name", "model_version"])) if exists else []
            rows = fg.count() if exists else 0
        except FeatureStoreError as error:
            raise as_failure(error) from error
        context.log.info("inference log of %s: %d requests, %d rows flushed", deployment, result.entries, result.rows)
        metadata: dict[str, Any] = {
            "fs_dagster/feature_group": fg.spec.name,
            "fs_dagster/requests_flushed": result.entries,
            "fs_dagster/rows_flushed": result.rows,
            "fs_dagster/commits": MetadataValue.json(result.commits),
            "fs_dagster/skipped_entries": len(result.skipped),
            "fs_dagster/commit": latest or "none",
            "dagster/row_count": rows,
            "fs_dagster/rows_by_model_version": MetadataValue.md(_versions_md(versions)),
        }
        if exists:
            metadata["fs_dagster/table_path"] = MetadataValue.path(str(fg.path))
        return MaterializeResult(metadata=metadata, data_version=DataVersion(latest or EMPTY))

    return _inference_log


def build_labelled_inference_log_asset(
    deployment: str,
    outcomes: str | tuple[str, int],
    *,
    on: Sequence[str],
    labels: Sequence[str] | Mapping[str, str],
    outcome_time: str | None = None,
    key: AssetKey | str | None = None,
    feature_group: str | None = None,
    inference_log_asset: AssetsDefinition | AssetKey | str | None = None,
    outcomes_asset: AssetsDefinition | AssetKey | str | None = None,
    metrics: Sequence[str] = ("roc_auc", "accuracy"),
    group_name: str = "monitoring",
    automation_condition: AutomationCondition | None = None,
    resource_key: str = "feature_store",
) -> AssetsDefinition:
    """An asset joining the outcomes that arrived (labels) onto the inference log of ``deployment`` and upserting
    the labelled rows into a feature group (see module doc and ``join_outcomes`` for the join's contract).

    Args:
        outcomes: the outcomes feature group (name, or (name, version)).
        on: entity keys both sides share (e.g. ``["flight_id"]``).
        labels: outcome columns to attach; a mapping renames them (``{"dep_delayed": "actual_dep_delayed"}``).
        outcome_time: match each prediction with the first outcome at or after it (outcomes repeated per key).
        key: asset key; default ``[<deployment>_labelled]``.
        feature_group: the output feature group's name; default the key's last part.
        inference_log_asset, outcomes_asset: upstream assets (default keys ``[<deployment>_inference_log]`` and
            ``[<outcomes name>]``).
        metrics: live metrics of the served versions on the labelled rows (the first label against the logged
            prediction and class probabilities).
    """
    check_name("deployment", deployment)
    outcome_name, outcome_version = (outcomes, None) if isinstance(outcomes, str) else (outcomes[0], int(outcomes[1]))
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([f"{deployment}_labelled"])
    group = feature_group or asset_key.path[-1]
    check_name("feature group", group)
    for metric in metrics:
        metric_named(metric)
    rename = dict(labels) if isinstance(labels, Mapping) else {c: c for c in labels}
    log_key = _key(inference_log_asset) if inference_log_asset is not None else AssetKey([log_group_name(deployment)])
    outcomes_key = _key(outcomes_asset) if outcomes_asset is not None else AssetKey([outcome_name])

    @asset(
        key=asset_key,
        deps=[log_key, outcomes_key],
        group_name=group_name,
        kinds={"hudi"},
        description=f"Inference log of deployment {deployment} with the outcomes of {outcome_name} joined on "
        f"{list(on)} as labels {list(rename.values())} (null until an outcome arrives); feature group {group}.",
        automation_condition=automation_condition,
        # (what a model-quality asset reads: the group and its label columns)
        metadata={"fs_dagster/deployment": deployment, METADATA_LABELLED_GROUP: group,
                  METADATA_LABELS: MetadataValue.json(list(rename.values()))},
        required_resource_keys={resource_key},
    )
    def _labelled(context) -> MaterializeResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        try:
            log_fg = inference_log_group(store, deployment)
            out = store.get_or_create_feature_group(
                group, primary_key=["request_id", "row"], event_time="predicted_at",
                description=f"Predictions of deployment {deployment} with their outcomes from {outcome_name}",
                tags=["inference_log", "labelled"],
            )
            if not log_fg.exists():
                return MaterializeResult(metadata={"dagster/row_count": 0, "fs_dagster/labelled_rows": 0},
                                         data_version=DataVersion(out.latest_commit() or EMPTY))
            source = store.get_feature_group(outcome_name, outcome_version)
            columns = list(dict.fromkeys([*on, *rename, *([outcome_time] if outcome_time else [])]))
            outcome_frame = source.read(columns=columns)
            joined = join_outcomes(log_fg.read(), outcome_frame, on=on, labels=rename, outcome_time=outcome_time)
            table = _typed(joined, source.schema(), rename)
            commit = out.insert(table)
            latest = out.latest_commit()
        except FeatureStoreError as error:
            raise as_failure(error) from error
        first_label = next(iter(rename.values()))
        labelled = joined[joined[first_label].notna()]
        metadata: dict[str, Any] = {
            "fs_dagster/feature_group": group,
            "fs_dagster/commit": commit.instant or f"(no new commit; latest {latest})",
            "dagster/row_count": len(joined),
            "fs_dagster/labelled_rows": len(labelled),
            "fs_dagster/labelled_share": round(len(labelled) / len(joined), 4) if len(joined) else 0.0,
            "fs_dagster/table_path": MetadataValue.path(str(out.path)),
        }
        overall, per_version = _live_metrics(labelled, first_label, metrics)
        for metric, value in overall.items():
            metadata[f"{METRIC_PREFIX}live_{metric}"] = MetadataValue.float(value)
        if per_version:
            metadata["fs_dagster/live_metrics_by_version"] = _version_table(per_version, metrics)
        return MaterializeResult(metadata=metadata, data_version=DataVersion(latest or EMPTY))

    return _labelled


def _typed(joined: pd.DataFrame, outcome_schema: pa.Schema, rename: Mapping[str, str]) -> pa.Table:
    """The joined rows as Arrow, each label typed as its outcome column (a label nobody has yet is all nulls)."""
    table = pa.Table.from_pandas(joined, preserve_index=False)
    for source, target in rename.items():
        index = table.schema.get_field_index(target)
        wanted = outcome_schema.field(source).type
        if index >= 0 and table.schema.field(index).type != wanted:
            table = table.set_column(index, target, table.column(index).cast(wanted))
    return table


def _version_counts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    counts = frame.groupby(["model_name", "model_version"]).size().reset_index(name="rows")
    return counts.to_dict("records")


def _versions_md(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_(no rows)_"
    lines = ["| model | version | rows |", "|---|---|---|"]
    lines += [f"| {r['model_name']} | {r['model_version']} | {r['rows']} |" for r in rows]
    return "\n".join(lines)


def _scores(frame: pd.DataFrame, label: str) -> tuple[Scores, np.ndarray]:
    """The logged predictions and class probabilities of ``frame`` as :class:`Scores` (classes recovered from the
    ``proba_<class>`` column names, which the logger writes in the model's class order)."""
    proba_columns = [c for c in frame.columns if str(c).startswith("proba_")]
    y = frame[label].to_numpy()
    classes = None
    probabilities = None
    if proba_columns:
        by_column = {proba_column(v): v for v in pd.unique(np.concatenate([y, frame["prediction"].to_numpy()]))}
        if all(c in by_column for c in proba_columns):
            classes = [by_column[c] for c in proba_columns]
            probabilities = frame[proba_columns].to_numpy(dtype=float)
    return Scores(frame["prediction"].to_numpy(), probabilities, classes), y


def _live_metrics(labelled: pd.DataFrame, label: str, metrics: Sequence[str],
                  ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Metrics on all labelled rows, and per model version (rows, then each metric)."""
    def measure(frame: pd.DataFrame) -> dict[str, float]:
        if frame.empty:
            return {}
        scores, y = _scores(frame, label)
        out = {}
        for metric in metrics:
            spec = metric_named(metric)
            if spec.needs_probabilities and scores.probabilities is None:
                continue
            try:
                value = spec.compute(y, scores)
            except (FeatureStoreError, ValueError):
                continue
            if math.isfinite(value):
                out[metric] = value
        return out

    per_version = []
    if not labelled.empty:
        for (name, version), frame in labelled.groupby(["model_name", "model_version"], sort=True):
            per_version.append({"model": name, "version": int(version), "rows": len(frame), **measure(frame)})
    return measure(labelled), per_version


def _version_table(rows: list[dict[str, Any]], metrics: Sequence[str]) -> MetadataValue:
    schema = TableSchema(columns=[TableColumn("model", "string"), TableColumn("version", "int"),
                                  TableColumn("rows", "int"), *[TableColumn(m, "float") for m in metrics]])
    records = [TableRecord({"model": r["model"], "version": r["version"], "rows": r["rows"],
                            **{m: r.get(m) for m in metrics}}) for r in rows]
    return MetadataValue.table(records=records, schema=schema)
