"""Drift report assets: Evidently drift of a deployment's inputs (its inference log against its training data) or of
a feature group (two commits, or two event-time windows), each with a drift asset check.

One materialization:

1. reads the two sides from the store (:mod:`fs_dagster.core.monitoring.sources`): for a deployment, the training
   split of the model version it serves (raw features) and the inputs that version logged in the window (the
   training dataset's transformations inverted, so both sides are in raw units); for a feature group, the rows of
   two event-time windows or the snapshots as of two commits;
2. runs :func:`~fs_dagster.core.monitoring.drift.compute_drift` (per-feature Evidently ``ValueDrift`` on a seeded
   uniform sample of at most ``sample`` rows per side, 50,000 by default) and judges it with ``thresholds``
   (:class:`~fs_dagster.core.monitoring.drift.DriftThresholds`: per-feature thresholds and severities, shares of
   drifted features for WARN and ERROR);
3. saves the report, Evidently's HTML page and its JSON, under ``<root>/<project>/reports/drift/<name>/`` and links
   it from the metadata (``drift/report``, ``drift/report_json``, ``dagster/uri``);
4. records the key figures as numeric metadata, which the UI plots across materializations: ``drift/share_drifted``,
   ``drift/drifted_count``, ``drift/score/<feature>``, ``drift/reference_rows``, ``drift/current_rows`` (and the
   rows compared after sampling), plus a per-feature table;
5. evaluates the ``drift`` check with the verdict: OK passes, WARN and ERROR fail with that severity, and the
   description names the drifted features (most drifted first, score against threshold).

A window without rows is not an error: the check fails with severity WARN saying nothing was compared (an
ERROR is what retrains a model, see :func:`~fs_dagster.retraining_sensor.build_drift_retraining_sensor`).

Evidently takes seconds to import (~1.5 s warm, ~5 s on a busy machine): run monitoring assets with the in-process
executor (``{"execution": {"config": {"in_process": {}}}}``) so one run imports it once for all its drift and
quality assets, instead of once per step subprocess.

Example:
    delays_drift = build_deployment_drift_asset(
        "delays_api", window=MonitoringWindow.last(days=1),
        thresholds=DriftThresholds(features={"temp": FeatureDriftRule(threshold=0.5, severity="ERROR")}))
    weather_drift = build_feature_group_drift_asset(weather_hourly, compare="windows", partitions_def=MONTHLY)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Mapping, Sequence

import pyarrow.compute as pc
from dagster import (
    AssetCheckSpec,
    AssetDep,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableRecord,
    TableSchema,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
    asset,
)

from fs_dagster.beta_apis import accepting_beta
from fs_dagster.code_versions import recipe_code_version
from fs_dagster.core.errors import FeatureStoreError, InvalidDataError
from fs_dagster.core.extras import ensure_installed
from fs_dagster.core.feature_group import TimeWindow
from fs_dagster.core.monitoring import sources
from fs_dagster.core.monitoring.drift import DEFAULT_SAMPLE_ROWS, DriftResult, DriftThresholds, compute_drift
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.core.specs import check_name as check_valid_name
from fs_dagster.errors import as_failure
from fs_dagster.monitoring_windows import MonitoringWindow, ResolvedWindow, partition_window
from fs_dagster.translator import FeatureGroupTranslator, spec_from_metadata
from fs_dagster.verdict_checks import nothing_to_compare, report_metadata, verdict_check_result

DRIFT_CHECK = "drift"
METADATA_DEPLOYMENT = "fs_dagster/deployment"
METADATA_FEATURE_GROUP = "fs_dagster/monitored_feature_group"
_EARLIEST = datetime(1, 1, 2, tzinfo=timezone.utc)  # open window bounds, as event-time predicates
_LATEST = datetime(9999, 12, 30, tzinfo=timezone.utc)


def _key(value: AssetsDefinition | AssetKey | str) -> AssetKey:
    return value.key if isinstance(value, AssetsDefinition) else AssetKey.from_coercible(value)


def thresholds_text(thresholds: DriftThresholds) -> str:
    """The rules of ``thresholds`` in a sentence (a check's description in the UI)."""
    parts = []
    for name, rule in thresholds.features.items():
        limit = f" (threshold {rule.threshold:g})" if rule.threshold is not None else ""
        parts.append(f"{name}{limit}: {rule.severity or 'counts toward the share'}")
    default = thresholds.default
    parts.append(f"any other drifted feature{f' (threshold {default.threshold:g})' if default.threshold else ''}: "
                 f"{default.severity or 'counts toward the share'}")
    if thresholds.warn_share is not None:
        parts.append(f"a share of drifted features >= {thresholds.warn_share:g}: WARN")
    if thresholds.error_share is not None:
        parts.append(f"a share of drifted features >= {thresholds.error_share:g}: ERROR")
    return "; ".join(parts)


def drift_metadata(result: DriftResult) -> dict[str, Any]:
    """A drift result's key figures (numbers the UI plots) and its per-feature table."""
    schema = TableSchema(columns=[
        TableColumn("feature", "string"), TableColumn("drifted", "bool"), TableColumn("score", "float"),
        TableColumn("threshold", "float"), TableColumn("method", "string"), TableColumn("severity", "string"),
        TableColumn("null_share_reference", "float"), TableColumn("null_share_current", "float"),
    ])
    records = [TableRecord({
        "feature": f.feature, "drifted": f.drifted, "score": f.score, "threshold": f.threshold,
        "method": f.method_label, "severity": f.severity or "", "null_share_reference": f.null_share_reference,
        "null_share_current": f.null_share_current,
    }) for f in result.features.values()]
    return {**result.metadata(), "drift/feature_table": MetadataValue.table(records=records, schema=schema)}


def _drift_outcome(store: Any, asset_key: AssetKey, check: str, result: DriftResult, report_name: str,
                   context_fields: Mapping[str, Any], extra_metadata: Mapping[str, Any]) -> MaterializeResult:
    """Saves the report and turns the result into the materialization and its check result."""
    paths = result.save(store, report_name, context=dict(context_fields))
    links = report_metadata(paths, "drift")
    metadata = {**drift_metadata(result), **links, **dict(extra_metadata)}
    check_metadata = {**result.metadata(), "drift/report": links["drift/report"]}
    description = f"{result.describe()} Report: {paths.html or paths.json}"
    return MaterializeResult(
        metadata=metadata,
        check_results=[verdict_check_result(asset_key, check, result.verdict, description, check_metadata)],
    )


def _nothing(asset_key: AssetKey, check: str, reason: str, extra_metadata: Mapping[str, Any],
             current_rows: int = 0, reference_rows: int | None = None) -> MaterializeResult:
    figures = {"drift/current_rows": current_rows,
               **({"drift/reference_rows": reference_rows} if reference_rows is not None else {})}
    return MaterializeResult(metadata={**figures, **dict(extra_metadata)},
                             check_results=[nothing_to_compare(asset_key, check, reason, figures)])


def _window_metadata(window: ResolvedWindow, prefix: str = "drift/window") -> dict[str, Any]:
    return {prefix: window.text,
            f"{prefix}_start": window.start.isoformat() if window.start else "open",
            f"{prefix}_end": window.end.isoformat() if window.end else "open"}


def _check_partitions(window: MonitoringWindow | None, partitions_def: PartitionsDefinition | None) -> None:
    if partitions_def is not None and not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        raise InvalidDataError("drift assets are partitioned by time only (a TimeWindowPartitionsDefinition: daily, "
                               f"monthly, ...), got {type(partitions_def).__name__}")
    if partitions_def is not None and window is not None:
        raise InvalidDataError("a time-partitioned drift asset reads its partition's window: leave window unset")


# ---------------------------------------------------------------------------------------------- deployments


def build_deployment_drift_asset(
    deployment: str,
    *,
    window: MonitoringWindow | None = None,
    partitions_def: PartitionsDefinition | None = None,
    thresholds: DriftThresholds | None = None,
    sample: int | None = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    columns: Sequence[str] | None = None,
    split: str = "train",
    inference_log_asset: AssetsDefinition | AssetKey | str | None = None,
    key: AssetKey | str | None = None,
    check_name: str = DRIFT_CHECK,
    blocking: bool = False,
    group_name: str = "monitoring",
    description: str | None = None,
    automation_condition: AutomationCondition | None = None,
    owners: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    code_version: str | None = None,
    resource_key: str = "feature_store",
) -> AssetsDefinition:
    """A drift report asset of ``deployment``'s inputs: the training features of the model version it serves
    against the inputs that version logged in a window (see module doc), with a drift check.

    Args:
        window: which logged requests (by request time): ``MonitoringWindow.since_deployed()`` (default),
            ``.last(hours=24)``, ``.between(start, end)``; not with ``partitions_def``.
        partitions_def: a time partitioning (e.g. ``DailyPartitionsDefinition``): each partition compares the
            requests of its window.
        thresholds: when drift is a warning and when an error (default: any drifted feature warns, half of them
            drifting is an error).
        sample: at most this many rows per side go to Evidently (None: all; see the README for the measured
            effect); ``seed`` picks them.
        columns: the features to compare (default: all of the model's).
        split: the training dataset's split used as the reference.
        inference_log_asset: the inference-log asset upstream (default key ``[<deployment>_inference_log]``).
        key: asset key; default ``[<deployment>_drift]``.
        check_name: the check's name (``drift``).
        blocking: make the check blocking (stops assets downstream of the drift asset in the same run).

    Examples:
        .. code-block:: python

            delays_drift = build_deployment_drift_asset(
                "delays_api", window=MonitoringWindow.last(days=1),
                thresholds=DriftThresholds(features={"temp": FeatureDriftRule(threshold=0.5, severity="ERROR")}),
            )
    """
    ensure_installed("monitoring", f"drift report of deployment {deployment}")  # when the definitions load
    check_valid_name("deployment", deployment)
    _check_partitions(window, partitions_def)
    thresholds = thresholds or DriftThresholds()
    if not isinstance(thresholds, DriftThresholds):
        raise InvalidDataError(f"thresholds must be DriftThresholds, got {type(thresholds).__name__}")
    window = window if window is not None or partitions_def is not None else MonitoringWindow.since_deployed()
    if window is not None and not isinstance(window, MonitoringWindow):
        raise InvalidDataError(f"window must be a MonitoringWindow, got {window!r}")
    from fs_dagster.core.serving.inference_log import log_group_name

    log_key = _key(inference_log_asset) if inference_log_asset is not None else AssetKey([log_group_name(deployment)])
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([f"{deployment}_drift"])
    where = window.describe() if window is not None else "each partition's window"

    @asset(
        key=asset_key,
        deps=[log_key],
        partitions_def=partitions_def,
        group_name=group_name,
        kinds={"evidently"},
        owners=list(owners),
        tags=dict(tags or {}),
        code_version=code_version or recipe_code_version(
            "drift", deployment=deployment, window=window, thresholds=thresholds, sample=sample, seed=seed,
            columns=columns, split=split),
        description=description or (
            f"Drift of the inputs deployment {deployment} answered ({where}) against the training data of the "
            "model version it serves; Evidently report (HTML + JSON) under the store root."),
        automation_condition=automation_condition,
        metadata={METADATA_DEPLOYMENT: deployment},
        check_specs=[AssetCheckSpec(
            check_name, asset=asset_key, blocking=blocking,
            description=f"Drift of {deployment}'s inputs ({where}) vs its training data: {thresholds_text(thresholds)}",
        )],
        required_resource_keys={resource_key},
    )
    def _deployment_drift(context) -> MaterializeResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        try:
            return _deployment_drift_run(context, store, deployment, asset_key, check_name, window, thresholds,
                                         sample, seed, columns, split)
        except FeatureStoreError as error:
            raise as_failure(error) from error

    return _deployment_drift


def _deployment_drift_run(context: Any, store: Any, deployment: str, asset_key: AssetKey, check: str,
                          window: MonitoringWindow | None, thresholds: DriftThresholds, sample: int | None,
                          seed: int, columns: Sequence[str] | None, split: str) -> MaterializeResult:
    from fs_dagster.core.serving.inference_log import inference_log_group

    dep = store.get_deployment(deployment)
    mv = sources.deployment_model(store, deployment)
    resolved = partition_window(context)
    if resolved is None:
        assert window is not None
        since = sources.deployed_at(store, deployment) if window.kind == "since_deployed" else None
        resolved = window.resolve(datetime.now(timezone.utc), deployed_at=since)
    lineage = mv.training_dataset or {}
    extra: dict[str, Any] = {
        METADATA_DEPLOYMENT: deployment,
        "fs_dagster/model": f"{mv.name} v{mv.version}",
        "fs_dagster/model_version": mv.version,
        "fs_dagster/training_dataset": (f"{lineage.get('feature_view')} v{lineage.get('feature_view_version')} / "
                                        f"v{lineage.get('version')}") if lineage else "none",
        **_window_metadata(resolved),
    }
    log = (sources.read_inference_log(store, deployment, resolved.start, resolved.end, model_name=mv.name,
                                      model_version=mv.version)
           if inference_log_group(store, deployment).exists() else None)
    if log is None or not len(log):
        return _nothing(asset_key, check, f"deployment {deployment} has no inference-log rows of {mv.name} "
                        f"v{mv.version} {_bounds(resolved)} (flush the log first?)", extra)
    reference = sources.training_features(store, mv, split)
    current = sources.logged_features(store, log, mv, feature_view=dep.target.feature_view)
    result = compute_drift(reference, current, columns, thresholds=thresholds, sample=sample, seed=seed)
    context.log.info("drift of %s (%s v%s, %s): %s", deployment, mv.name, mv.version, resolved.text, result.verdict)
    report_context = {"deployment": deployment, "model": mv.name, "model_version": mv.version,
                      "reference": f"training dataset split {split!r}", "current": resolved.to_dict(),
                      "dagster_run_id": context.run_id}
    return _drift_outcome(store, asset_key, check, result, deployment, report_context, extra)


def _bounds(window: ResolvedWindow) -> str:
    start = window.start.isoformat() if window.start else "-inf"
    end = window.end.isoformat() if window.end else "now"
    return f"in [{start}, {end}) ({window.text})"


# ---------------------------------------------------------------------------------------------- feature groups


def _feature_group_target(feature_group: Any, version: int | None,
                          translator: FeatureGroupTranslator | None) -> tuple[AssetKey, str, int | None, Any]:
    """(asset key, group name, version, upstream partitions definition or None)."""
    if isinstance(feature_group, FeatureGroupSpec):
        spec_key = (translator or FeatureGroupTranslator()).get_asset_spec(feature_group).key
        return spec_key, feature_group.name, version or feature_group.version, None
    if isinstance(feature_group, AssetsDefinition):
        spec = spec_from_metadata(dict(feature_group.specs_by_key[feature_group.key].metadata))
        if spec is None:
            raise InvalidDataError(f"asset {feature_group.key.to_user_string()} is not a feature group asset (no "
                                   "fs_dagster/feature_group metadata): pass its FeatureGroupSpec or key")
        return feature_group.key, spec.name, version or spec.version, feature_group.partitions_def
    asset_key = AssetKey.from_coercible(feature_group)
    return asset_key, asset_key.path[-1], version, None


def build_feature_group_drift_asset(
    feature_group: FeatureGroupSpec | AssetsDefinition | AssetKey | str,
    *,
    compare: Literal["commits", "windows"] = "windows",
    version: int | None = None,
    current: MonitoringWindow | None = None,
    reference: MonitoringWindow | None = None,
    baseline: str = "previous",
    partitions_def: PartitionsDefinition | None = None,
    columns: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
    sample: int | None = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    key: AssetKey | str | None = None,
    check_name: str = DRIFT_CHECK,
    blocking: bool = False,
    group_name: str = "monitoring",
    description: str | None = None,
    automation_condition: AutomationCondition | None = None,
    owners: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    code_version: str | None = None,
    translator: FeatureGroupTranslator | None = None,
    resource_key: str = "feature_store",
) -> AssetsDefinition:
    """A drift report asset of a feature group, without any model (see module doc), with a drift check.

    ``compare="windows"`` compares the rows of two event-time windows of the latest snapshot:

    - time-partitioned (``partitions_def``, e.g. the group's own monthly partitions): each partition's window
      against the partition before it (or against ``reference``, e.g. a fixed training period);
    - otherwise ``current`` (default ``MonitoringWindow.last(days=30)``, anchored at the group's newest event
      time) against ``reference`` (default: the window of the same length just before it).

    ``compare="commits"`` compares the group's snapshots as of two commits: the latest against ``baseline``
    (``"previous"``: the commit before it; ``"first"``; or a commit instant).

    Args:
        feature_group: the feature group asset (from ``feature_group_asset``), its spec, or its asset key (the key's
            last part is then the group's name).
        version: the group's version (default: the spec's, else the latest).
        columns: the features to compare (default: every column but the primary key and event time).
        thresholds, sample, seed, check_name, blocking: as in :func:`build_deployment_drift_asset`.
        key: asset key; default ``[<group>_drift]``.

    Examples:
        .. code-block:: python

            weather_drift = build_feature_group_drift_asset(weather_hourly, partitions_def=MONTHLY)
            flights_drift = build_feature_group_drift_asset("flight_outcomes", compare="commits",
                                                            columns=["dep_delay", "carrier"])
    """
    ensure_installed("monitoring", "feature-group drift reports")  # when the definitions load
    if compare not in ("commits", "windows"):
        raise InvalidDataError(f"compare must be 'commits' or 'windows', got {compare!r}")
    _check_partitions(current, partitions_def)
    if compare == "commits" and (partitions_def is not None or current is not None or reference is not None):
        raise InvalidDataError("compare='commits' compares two snapshots: no windows nor partitions (use baseline)")
    for name, value in (("current", current), ("reference", reference)):
        if value is not None and (not isinstance(value, MonitoringWindow) or value.kind == "since_deployed"):
            raise InvalidDataError(f"{name} must be a MonitoringWindow (last, between or everything), got {value!r}")
    thresholds = thresholds or DriftThresholds()
    if not isinstance(thresholds, DriftThresholds):
        raise InvalidDataError(f"thresholds must be DriftThresholds, got {type(thresholds).__name__}")
    upstream_key, group, group_version, upstream_partitions = _feature_group_target(feature_group, version,
                                                                                   translator)
    check_valid_name("feature group", group)
    if compare == "windows" and partitions_def is None and current is None:
        current = MonitoringWindow.last(days=30)
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([f"{group}_drift"])
    # a partition reads its window and, by default, the one before it: both upstream partitions are its inputs
    same_partitions = (partitions_def is not None and upstream_partitions is not None
                       and upstream_partitions == partitions_def)
    if same_partitions and reference is None:
        with accepting_beta("allow_nonexistent_upstream_partitions"):
            mapping = TimeWindowPartitionMapping(start_offset=-1, allow_nonexistent_upstream_partitions=True)
        dep = AssetDep(upstream_key, partition_mapping=mapping)
    else:
        dep = AssetDep(upstream_key)
    if compare == "commits":
        what = f"the latest commit against {'the previous one' if baseline == 'previous' else baseline}"
    elif partitions_def is not None:
        what = "each partition's window against " + (reference.describe() if reference else "the one before it")
    else:
        assert current is not None
        before = reference.describe() if reference else "the same length before"
        what = f"{current.describe()} of data against {before}"

    @asset(
        key=asset_key,
        deps=[dep],
        partitions_def=partitions_def,
        group_name=group_name,
        kinds={"evidently"},
        owners=list(owners),
        tags=dict(tags or {}),
        code_version=code_version or recipe_code_version(
            "drift", feature_group=group, version=group_version, compare=compare, current=current,
            reference=reference, baseline=baseline, columns=columns, thresholds=thresholds, sample=sample, seed=seed),
        description=description or f"Drift of feature group {group}: {what}; Evidently report (HTML + JSON).",
        automation_condition=automation_condition,
        metadata={METADATA_FEATURE_GROUP: group},
        check_specs=[AssetCheckSpec(check_name, asset=asset_key, blocking=blocking,
                                    description=f"Drift of {group} ({what}): {thresholds_text(thresholds)}")],
        required_resource_keys={resource_key},
    )
    def _feature_group_drift(context) -> MaterializeResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        try:
            fg = store.get_feature_group(group, group_version)
            if compare == "commits":
                return _commits_run(context, store, fg, asset_key, check_name, baseline, columns, thresholds,
                                    sample, seed)
            return _windows_run(context, store, fg, asset_key, check_name, current, reference, partitions_def,
                                columns, thresholds, sample, seed)
        except FeatureStoreError as error:
            raise as_failure(error) from error

    return _feature_group_drift


def _group_metadata(fg: Any) -> dict[str, Any]:
    return {METADATA_FEATURE_GROUP: fg.spec.name, "fs_dagster/feature_group_version": fg.spec.version}


def _report_name(fg: Any) -> str:
    return f"{fg.spec.name}_v{fg.spec.version}"


def _commits_run(context: Any, store: Any, fg: Any, asset_key: AssetKey, check: str, baseline: str,
                 columns: Sequence[str] | None, thresholds: DriftThresholds, sample: int | None,
                 seed: int) -> MaterializeResult:
    instants = [c.instant for c in fg.commit_details()]  # newest first
    extra = _group_metadata(fg)
    if not instants:
        return _nothing(asset_key, check, f"feature group {fg.spec.key} has no commit", extra)
    latest = instants[0]
    if baseline == "previous":
        before = instants[1] if len(instants) > 1 else None
    elif baseline == "first":
        before = instants[-1] if len(instants) > 1 else None
    else:
        if baseline not in instants:
            raise InvalidDataError(f"feature group {fg.spec.key} has no commit {baseline!r}; commits: "
                                   f"{instants[:10]}{' ...' if len(instants) > 10 else ''}")
        before = baseline if baseline != latest else None
    extra.update({"drift/current_commit": latest, "drift/reference_commit": before or "none"})
    if before is None:
        return _nothing(asset_key, check, f"feature group {fg.spec.key} has one commit ({latest}): no earlier "
                        "snapshot to compare with", extra)
    ref, cur = sources.feature_group_commits(fg, before, latest, columns)
    if not ref.num_rows or not cur.num_rows:
        side = "reference" if not ref.num_rows else "current"
        return _nothing(asset_key, check, f"the {side} snapshot of {fg.spec.key} has no rows", extra,
                        current_rows=cur.num_rows, reference_rows=ref.num_rows)
    result = compute_drift(ref, cur, thresholds=thresholds, sample=sample, seed=seed)
    context.log.info("drift of %s, %s -> %s: %s", fg.spec.key, before, latest, result.verdict)
    report_context = {"feature_group": fg.spec.name, "version": fg.spec.version, "reference": {"commit": before},
                      "current": {"commit": latest}, "dagster_run_id": context.run_id}
    return _drift_outcome(store, asset_key, check, result, _report_name(fg), report_context, extra)


def _newest_event_time(fg: Any) -> datetime | None:
    column = fg.spec.event_time
    if column is None:
        raise InvalidDataError(f"feature group {fg.spec.key} has no event time: compare='windows' needs one "
                               "(use compare='commits')")
    values = fg.read(columns=[column], dataframe_type="arrow")[column]
    newest = pc.max(values).as_py() if len(values) else None
    if newest is None:
        return None
    return newest if isinstance(newest, datetime) else datetime.combine(newest, datetime.min.time())


def _windows_run(context: Any, store: Any, fg: Any, asset_key: AssetKey, check: str,
                 current: MonitoringWindow | None, reference: MonitoringWindow | None,
                 partitions_def: PartitionsDefinition | None, columns: Sequence[str] | None,
                 thresholds: DriftThresholds, sample: int | None, seed: int) -> MaterializeResult:
    extra = _group_metadata(fg)
    cur_window = partition_window(context)
    anchor = None
    if cur_window is None:
        assert current is not None
        anchor = _newest_event_time(fg)
        if anchor is None:
            return _nothing(asset_key, check, f"feature group {fg.spec.key} has no rows", extra)
        anchor = anchor + timedelta(microseconds=1)  # [start, end): the newest row belongs to the last window
        cur_window = current.resolve(anchor)
    if reference is not None:
        ref_window = reference.resolve(anchor or cur_window.start or datetime.now(timezone.utc))
    else:
        ref_window = _window_before(cur_window, partitions_def, context)
    extra.update(_window_metadata(cur_window, "drift/current_window"))
    extra.update(_window_metadata(ref_window, "drift/reference_window"))
    ref_rows, cur_rows = sources.feature_group_windows(fg, _bounded(ref_window), _bounded(cur_window), columns)
    if not ref_rows.num_rows or not cur_rows.num_rows:
        side, window = ("reference", ref_window) if not ref_rows.num_rows else ("current", cur_window)
        return _nothing(asset_key, check, f"the {side} window of {fg.spec.key} {_bounds(window)} has no rows",
                        extra, current_rows=cur_rows.num_rows, reference_rows=ref_rows.num_rows)
    result = compute_drift(ref_rows, cur_rows, thresholds=thresholds, sample=sample, seed=seed)
    context.log.info("drift of %s, %s vs %s: %s", fg.spec.key, cur_window.text, ref_window.text, result.verdict)
    report_context = {"feature_group": fg.spec.name, "version": fg.spec.version,
                      "reference": ref_window.to_dict(), "current": cur_window.to_dict(),
                      "dagster_run_id": context.run_id}
    return _drift_outcome(store, asset_key, check, result, _report_name(fg), report_context, extra)


def _window_before(window: ResolvedWindow, partitions_def: PartitionsDefinition | None,
                   context: Any) -> ResolvedWindow:
    """The partition before a single partition's window, else the window of the same length just before."""
    if window.start is None or window.end is None:
        raise InvalidDataError(f"the window {window.text} is open: give reference=MonitoringWindow.between(...)")
    if isinstance(partitions_def, TimeWindowPartitionsDefinition) and getattr(context, "has_partition_key", False):
        previous = partitions_def.get_prev_partition_window(window.start, respect_bounds=False)
        if previous is not None:
            return ResolvedWindow(previous.start.astimezone(timezone.utc), previous.end.astimezone(timezone.utc),
                                  "previous partition")
    return ResolvedWindow(window.start - (window.end - window.start), window.start, f"before ({window.text})")


def _bounded(window: ResolvedWindow) -> TimeWindow:
    return TimeWindow(window.start or _EARLIEST, window.end or _LATEST)
