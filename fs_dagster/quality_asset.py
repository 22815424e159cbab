"""Model quality assets: once outcomes are joined back to a deployment's inference log, the served model's quality
on its recent labelled predictions against its quality on the training holdout, measured by Evidently
(accuracy, precision, recall, F1, ROC AUC), judged by :class:`~fs_dagster.core.monitoring.quality.QualityRule` s,
with a ``model_quality`` check.

One materialization:

1. reference: the served model version's predictions on its training dataset's holdout split
   (:func:`~fs_dagster.core.monitoring.sources.training_holdout`); current: the predictions that version logged in
   the window whose label is known, read from the labelled inference-log feature group
   (:func:`~fs_dagster.core.monitoring.sources.labelled_log_predictions`);
2. :func:`~fs_dagster.core.monitoring.quality.compute_quality` and the rules (default: ROC AUC or accuracy 0.05
   below the holdout's warns, 0.10 below is an error);
3. the Evidently report under ``<root>/<project>/reports/quality/<deployment>/`` linked from the metadata
   (``quality/report``, ``dagster/uri``), the figures as numbers the UI plots (``quality/current/<metric>``,
   ``quality/reference/<metric>``, ``quality/drop/<metric>``, ``quality/current_rows``);
4. the check: OK passes, WARN / ERROR fail with that severity, naming the rules that tripped.

No labelled row in the window yet: the check fails with severity WARN saying so (nothing compared).

Example:
    delays_quality = build_model_quality_asset(
        "delays_api", delays_labelled, window=MonitoringWindow.last(days=7),
        rules=[QualityRule("roc_auc", max_drop=0.05, severity="ERROR")])
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from dagster import (
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    MaterializeResult,
    PartitionsDefinition,
    TimeWindowPartitionsDefinition,
    asset,
)

from fs_dagster.code_versions import recipe_code_version
from fs_dagster.core.errors import FeatureStoreError, InvalidDataError, NotFoundError
from fs_dagster.core.extras import ensure_installed
from fs_dagster.core.monitoring import sources
from fs_dagster.core.monitoring.quality import DEFAULT_QUALITY_RULES, QualityRule, compute_quality
from fs_dagster.core.specs import check_name as check_valid_name
from fs_dagster.errors import as_failure
from fs_dagster.inference_log_asset import METADATA_LABELLED_GROUP, METADATA_LABELS
from fs_dagster.monitoring_windows import MonitoringWindow, ResolvedWindow, partition_window
from fs_dagster.verdict_checks import nothing_to_compare, report_metadata, verdict_check_result

QUALITY_CHECK = "model_quality"


def _labelled_source(labelled_asset: AssetsDefinition | AssetKey | str, label: str | None,
                     feature_group: str | None) -> tuple[AssetKey, str, str]:
    """(asset key, feature group, label column) of the labelled inference log."""
    if isinstance(labelled_asset, AssetsDefinition):
        metadata = labelled_asset.specs_by_key[labelled_asset.key].metadata
        group = feature_group or getattr(metadata.get(METADATA_LABELLED_GROUP), "value",
                                         metadata.get(METADATA_LABELLED_GROUP))
        labels = getattr(metadata.get(METADATA_LABELS), "value", metadata.get(METADATA_LABELS)) or []
        key = labelled_asset.key
    else:
        key = AssetKey.from_coercible(labelled_asset)
        group, labels = feature_group or key.path[-1], []
    label = label or (labels[0] if labels else None)
    if label is None:
        raise InvalidDataError(f"build_model_quality_asset: name the label column of {key.to_user_string()} "
                               "(label=...); an asset from build_labelled_inference_log_asset names it itself")
    if labels and label not in labels:
        raise InvalidDataError(f"build_model_quality_asset: {key.to_user_string()} has labels {list(labels)}, not "
                               f"{label!r}")
    return key, str(group), label


def build_model_quality_asset(
    deployment: str,
    labelled_asset: AssetsDefinition | AssetKey | str,
    *,
    rules: Sequence[QualityRule] = DEFAULT_QUALITY_RULES,
    label: str | None = None,
    feature_group: str | None = None,
    window: MonitoringWindow | None = None,
    partitions_def: PartitionsDefinition | None = None,
    holdout_split: str = "test",
    positive: Any = None,
    key: AssetKey | str | None = None,
    check_name: str = QUALITY_CHECK,
    blocking: bool = False,
    group_name: str = "monitoring",
    description: str | None = None,
    automation_condition: AutomationCondition | None = None,
    owners: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    code_version: str | None = None,
    resource_key: str = "feature_store",
) -> AssetsDefinition:
    """A model-quality report asset of the version ``deployment`` serves, with a ``model_quality`` check (see
    module doc). Binary classifiers.

    Args:
        labelled_asset: the labelled inference-log asset (from ``build_labelled_inference_log_asset``, which names
            its feature group and labels) or its key (then ``label``, and ``feature_group`` unless it is the key's
            last part).
        rules: the quality rules (default: ROC AUC / accuracy 0.05 below the holdout's WARN, 0.10 ERROR).
        label: the outcome column (default: the labelled asset's first label).
        window: which predictions (by request time): ``MonitoringWindow.since_deployed()`` (default), ``.last(...)``,
            ``.between(...)``; or ``partitions_def`` (time partitions).
        holdout_split: the training dataset's split the reference is measured on.
        positive: the positive class (default: the model's second class, scikit-learn's ``classes_[1]``).
        key: asset key; default ``[<deployment>_quality]``.

    Examples:
        .. code-block:: python

            delays_quality = build_model_quality_asset("delays_api", delays_labelled,
                                                       window=MonitoringWindow.last(days=7))
    """
    ensure_installed("monitoring", "model-quality reports")  # when the definitions load
    check_valid_name("deployment", deployment)
    if partitions_def is not None and not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        raise InvalidDataError(f"quality assets are partitioned by time only, got {type(partitions_def).__name__}")
    if partitions_def is not None and window is not None:
        raise InvalidDataError("a time-partitioned quality asset reads its partition's window: leave window unset")
    window = window if window is not None or partitions_def is not None else MonitoringWindow.since_deployed()
    rules = list(rules)
    for rule in rules:
        if not isinstance(rule, QualityRule):
            raise InvalidDataError(f"rules must be QualityRule objects, got {rule!r}")
    labelled_key, group, label_column = _labelled_source(labelled_asset, label, feature_group)
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([f"{deployment}_quality"])
    where = window.describe() if window is not None else "each partition's window"
    rules_text = "; ".join(r.text() for r in rules)

    @asset(
        key=asset_key,
        deps=[labelled_key],
        partitions_def=partitions_def,
        group_name=group_name,
        kinds={"evidently"},
        owners=list(owners),
        tags=dict(tags or {}),
        code_version=code_version or recipe_code_version(
            "quality", deployment=deployment, rules=list(rules), label=label, feature_group=feature_group,
            window=window, holdout_split=holdout_split, positive=positive),
        description=description or (
            f"Quality of the model version deployment {deployment} serves on its labelled predictions ({where}) "
            f"against its training holdout; Evidently report (HTML + JSON) under the store root."),
        automation_condition=automation_condition,
        metadata={"fs_dagster/deployment": deployment, METADATA_LABELLED_GROUP: group},
        check_specs=[AssetCheckSpec(
            check_name, asset=asset_key, blocking=blocking,
            description=f"Quality of {deployment} on predictions whose {label_column} arrived ({where}) vs the "
            f"training holdout: {rules_text}")],
        required_resource_keys={resource_key},
    )
    def _quality(context) -> MaterializeResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        try:
            return _quality_run(context, store, deployment, group, label_column, asset_key, check_name, window,
                                rules, holdout_split, positive)
        except FeatureStoreError as error:
            raise as_failure(error) from error

    return _quality


def _quality_run(context: Any, store: Any, deployment: str, group: str, label: str, asset_key: AssetKey,
                 check: str, window: MonitoringWindow | None, rules: list[QualityRule], holdout_split: str,
                 positive: Any) -> MaterializeResult:
    mv = sources.deployment_model(store, deployment)
    resolved: ResolvedWindow | None = partition_window(context)
    if resolved is None:
        assert window is not None
        since = sources.deployed_at(store, deployment) if window.kind == "since_deployed" else None
        resolved = window.resolve(datetime.now(timezone.utc), deployed_at=since)
    extra: dict[str, Any] = {
        "fs_dagster/deployment": deployment, "fs_dagster/model": f"{mv.name} v{mv.version}",
        "fs_dagster/model_version": mv.version, "quality/window": resolved.text,
        "quality/window_start": resolved.start.isoformat() if resolved.start else "open",
        "quality/window_end": resolved.end.isoformat() if resolved.end else "open",
    }
    try:
        store.get_feature_group(group)
        exists = True
    except NotFoundError:
        exists = False
    current = (sources.labelled_log_predictions(store, deployment, group, label=label, start=resolved.start,
                                                end=resolved.end, positive=positive) if exists else None)
    if current is None or not len(current):
        reason = (f"no prediction of {mv.name} v{mv.version} in {group} has its {label} yet ({resolved.text})"
                  if exists else f"feature group {group} does not exist yet (materialize the labelled log first)")
        figures = {"quality/current_rows": 0}
        return MaterializeResult(metadata={**figures, **extra},
                                 check_results=[nothing_to_compare(asset_key, check, reason, figures)])
    holdout = sources.training_holdout(store, mv, holdout_split, positive=positive)
    probability = sources.PROBABILITY if sources.PROBABILITY in current.columns and \
        sources.PROBABILITY in holdout.columns else None
    positive, _ = sources.positive_class(mv, positive)  # (both frames hold the model's own classes)
    result = compute_quality(holdout, current, sources.LABEL, sources.PREDICTION, probability, rules=rules,
                             positive=positive)
    context.log.info("quality of %s (%s v%s, %s): %s", deployment, mv.name, mv.version, resolved.text,
                     result.verdict)
    paths = result.save(store, deployment, context={
        "deployment": deployment, "model": mv.name, "model_version": mv.version, "label": label,
        "labelled_feature_group": group, "reference": f"training dataset split {holdout_split!r}",
        "current": resolved.to_dict(), "dagster_run_id": context.run_id})
    links = report_metadata(paths, "quality")
    description = f"{result.describe()} Report: {paths.html or paths.json}"
    return MaterializeResult(
        metadata={**result.metadata(), **links, **extra},
        check_results=[verdict_check_result(asset_key, check, result.verdict, description,
                                            {**result.metadata(), "quality/report": links["quality/report"]})],
    )
