"""Model assets: train on a training-dataset asset, register a model version with its lineage, validate it with
blocking asset checks before anything downstream (a deployment) may use it.

One materialization:

1. reads the exact training dataset the upstream asset last materialized (its version from the metadata, checked
   against its data version = content hash);
2. calls your train function with it; it returns a :class:`TrainedModel` (model, metrics, params) or the bare model;
3. scores the model on the dataset's holdout split (``ModelValidation.split``) with the validation metric and
   ``metrics``, and registers it (``ModelRegistry.create_model(..., training_dataset=td)``): metrics, params,
   features, input example, lineage (feature view, dataset version, content hash, pinned commits);
4. evaluates the validation rules (:class:`~fs_dagster.core.models.validation.ModelValidation`) as blocking asset
   checks: ``not_worse_than_deployed`` (candidate and the deployed version scored on the same holdout rows),
   ``min_quality`` and ``min_quality_per_slice``; the outcome is also recorded on the version (tag
   ``validation``).

The data version is the artifact's SHA-256. Training the same data again: a new version, unless the new artifact
is byte for byte a registered version's with the same training dataset and params (deterministic training, e.g.
a fixed ``random_state``); then that version is reported again, its data version unchanged, and nothing downstream
becomes stale.

A failed check (severity ERROR) fails the step after the materialization is recorded: the model version stays in
the registry (tagged ``validation: {"passed": false, ...}``) and its metrics show in the UI, but Dagster runs
nothing downstream in that run, and a deployment asset launched later refuses it (see
:mod:`fs_dagster.deployment_asset`).

Example:
    from sklearn.ensemble import HistGradientBoostingClassifier

    def train(td):
        X, y = td.feature_label_split("train")
        model = HistGradientBoostingClassifier(random_state=0).fit(X, y.squeeze())
        return TrainedModel(model, params={"max_iter": 100})

    delay_model = build_model_asset(
        "delay_classifier", train, training_data=delays_training_data,
        validation=ModelValidation(metric="roc_auc", tolerance=0.01, deployment="delays_api",
                                   slice_column="origin", slice_minimum=0.65),
    )
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from dagster import (
    AssetCheckResult,
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

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError
from fs_dagster.core.models.validation import (
    Holdout,
    ModelValidation,
    compare_with_deployed,
    evaluate,
    score,
    slice_quality,
)
from fs_dagster.core.specs import check_name
from fs_dagster.errors import FeatureStoreFailure, as_failure
from fs_dagster.training_dataset_asset import (
    METADATA_TRAINING_DATASET_VERSION,
    METADATA_VIEW_NAME,
    METADATA_VIEW_VERSION,
)
from fs_dagster.upstream import latest_materialization

CHECK_NOT_WORSE = "not_worse_than_deployed"
CHECK_MIN_QUALITY = "min_quality"
CHECK_SLICES = "min_quality_per_slice"
METADATA_MODEL_NAME = "fs_dagster/model_name"
METADATA_MODEL_VERSION = "fs_dagster/model_version"
METADATA_ARTIFACT = "fs_dagster/artifact_sha256"
METRIC_PREFIX = "metrics/"
VALIDATION_TAG = "validation"


@dataclass
class TrainedModel:
    """What a train function returns.

    Args:
        model: a scikit-learn estimator or any ``PythonModel`` (save/load/predict).
        metrics: metrics you computed (the ones the asset computes on the holdout win on a name clash).
        params: hyper-parameters (JSON values), recorded on the version.
        description: recorded on the version.
        tags: small JSON values recorded on the version.
    """

    model: Any
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: Mapping[str, Any] = field(default_factory=dict)


def validation_check_specs(asset_key: AssetKey, validation: ModelValidation | None) -> list[AssetCheckSpec]:
    """The blocking checks ``validation`` gives a model asset (also what ``build_model_asset`` declares)."""
    if validation is None:
        return []
    better = "higher" if validation.better == "max" else "lower"
    specs = []
    if validation.deployment is not None:
        specs.append(AssetCheckSpec(
            CHECK_NOT_WORSE, asset=asset_key, blocking=True,
            description=f"{validation.metric} ({better} is better) on the {validation.split!r} split is within "
            f"{validation.tolerance:g} of the version deployment {validation.deployment} serves, both scored on the "
            "same rows; passes when nothing is deployed yet"))
    if validation.minimum is not None:
        specs.append(AssetCheckSpec(
            CHECK_MIN_QUALITY, asset=asset_key, blocking=True,
            description=f"{validation.metric} on the {validation.split!r} split reaches {validation.minimum:g}"))
    if validation.slice_column is not None:
        specs.append(AssetCheckSpec(
            CHECK_SLICES, asset=asset_key, blocking=True,
            description=f"{validation.slice_metric or validation.metric} reaches {validation.slice_minimum:g} in "
            f"every {validation.slice_column} slice of the {validation.split!r} split with "
            f"{validation.min_slice_rows}+ rows"))
    return specs


def build_model_asset(
    name: str,
    train: Callable[[Any], TrainedModel | Any],
    *,
    training_data: AssetsDefinition | AssetKey | str,
    feature_view: tuple[str, int] | None = None,
    validation: ModelValidation | None = None,
    metrics: Sequence[str] = (),
    key: AssetKey | str | None = None,
    group_name: str = "models",
    description: str | None = None,
    code_version: str | None = None,
    automation_condition: AutomationCondition | None = None,
    owners: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    resource_key: str = "feature_store",
) -> AssetsDefinition:
    """An asset that trains and registers a model version on a training-dataset asset (see module doc).

    Args:
        name: the registered model's name.
        train: ``(TrainingDataset) -> TrainedModel | model``; read the data with ``td.train_test_split()`` /
            ``td.feature_label_split("train")`` (transformations applied, as serving applies them).
        training_data: the training-dataset asset (from :func:`build_training_dataset_asset`) or its key.
        feature_view: ``(name, version)`` of its view; needed only when ``training_data`` is a key.
        validation: the rules; each becomes a blocking check (:func:`validation_check_specs`). None: no checks.
        metrics: metrics to compute on the holdout split (names of ``fs_dagster.core.models.validation.METRICS``,
            e.g. ``"roc_auc"``, ``"log_loss"``, ``"rmse"``), besides the validation metric.
        key: asset key; default ``[<name>]``.
        code_version: bump it when the training code changes (Dagster then shows the model stale).
        automation_condition: e.g. ``AutomationCondition.eager()`` to retrain when the training data changes.
        resource_key: key of the :class:`FeatureStoreResource`.

    Examples:
        .. code-block:: python

            delay_model = build_model_asset("delay_classifier", train, training_data=delays_training_data,
                                            validation=ModelValidation(deployment="delays_api", tolerance=0.01))
    """
    check_name("model", name)
    td_key, view_name, view_version = _training_data(training_data, feature_view)
    rules = validation or ModelValidation()
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([name])
    check_specs = validation_check_specs(asset_key, validation)
    wanted_metrics = list(dict.fromkeys([*([rules.metric] if validation is not None else []), *metrics]))

    @asset(
        key=asset_key,
        deps=[td_key],
        group_name=group_name,
        kinds={"python"},
        description=description or (
            f"Model {name} trained on {td_key.to_user_string()} ({view_name} v{view_version}); "
            "data version = artifact SHA-256."
        ),
        code_version=code_version,
        automation_condition=automation_condition,
        owners=list(owners),
        tags=dict(tags or {}),
        metadata={METADATA_MODEL_NAME: name, "fs_dagster/feature_view": f"{view_name} v{view_version}"},
        check_specs=check_specs,
        required_resource_keys={resource_key},
    )
    def _model(context) -> MaterializeResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        try:
            td = _exact_training_dataset(context, store, td_key, view_name, view_version)
            started = time.perf_counter()
            trained = train(td)
            trained = trained if isinstance(trained, TrainedModel) else TrainedModel(trained)
            seconds = time.perf_counter() - started
            holdout = candidate = None
            measured: dict[str, float] = {}
            if wanted_metrics:  # (no rules and no metrics: the dataset need not have a holdout split)
                holdout = Holdout(td, rules.split)
                candidate = holdout.scores(trained.model)
                measured = evaluate(holdout, candidate, wanted_metrics)
                example = holdout.inputs(td.spec["features"], td.transformations).head(5)
            else:
                example = td.read(td.splits[0])[td.spec["features"]].head(5)
            registering = datetime.now(timezone.utc)
            mv = store.get_model_registry().create_model(
                name, trained.model, metrics={**dict(trained.metrics), **measured}, params=trained.params,
                training_dataset=td, input_example=example, description=trained.description, tags=trained.tags,
                reuse_identical=True,
            )
        except FeatureStoreError as error:
            raise as_failure(error) from error
        reused = mv.created_at < registering  # (create_model returned a version registered earlier)
        context.log.info("model %s v%s (%s): %s", name, mv.version, "reused" if reused else "new", measured)
        results = _check_results(store, asset_key, holdout, candidate, rules, check_specs, mv)
        try:  # the outcome on the version too, for whoever reads the registry rather than Dagster
            mv.set_tag(VALIDATION_TAG, {
                "passed": all(r.passed for r in results), "checks": {r.check_name: r.passed for r in results},
                "dagster_run_id": context.run_id,
            })
        except FeatureStoreError as error:
            raise as_failure(error) from error
        return MaterializeResult(
            metadata=_model_metadata(mv, td, measured, seconds, holdout, reused),
            data_version=DataVersion(mv.artifact_sha256),
            check_results=results,
        )

    return _model


def _training_data(training_data: Any, feature_view: tuple[str, int] | None) -> tuple[AssetKey, str, int]:
    if isinstance(training_data, AssetsDefinition):
        td_key = training_data.key
        spec_metadata = training_data.specs_by_key[td_key].metadata
        view = (spec_metadata.get(METADATA_VIEW_NAME), spec_metadata.get(METADATA_VIEW_VERSION))
        if feature_view is None and view[0] is not None:
            feature_view = (str(getattr(view[0], "value", view[0])), int(getattr(view[1], "value", view[1])))
    else:
        td_key = AssetKey.from_coercible(training_data)
    if feature_view is None:
        raise InvalidDataError(
            f"build_model_asset: give feature_view=(name, version) for training data {td_key.to_user_string()} "
            "(an asset built by build_training_dataset_asset names it itself)"
        )
    return td_key, str(feature_view[0]), int(feature_view[1])


def _exact_training_dataset(context: Any, store: Any, td_key: AssetKey, view_name: str, view_version: int) -> Any:
    """The dataset version the upstream asset last materialized: by the version in its metadata, checked against
    its data version (the content hash), or else the newest version with that content hash."""
    upstream = latest_materialization(context, td_key)
    view = store.get_feature_view(view_name, view_version)
    version = upstream.metadata.get(METADATA_TRAINING_DATASET_VERSION)
    if version is None:
        if upstream.data_version is None:
            upstream.require(METADATA_TRAINING_DATASET_VERSION)  # (raises, naming what is missing)
        matching = [td for td in view.get_training_datasets() if td.content_hash == upstream.data_version]
        if not matching:
            raise FeatureStoreFailure(
                description=f"no training dataset of {view_name} v{view_version} has content hash "
                f"{upstream.data_version}, which {td_key.to_user_string()} last materialized; materialize it again"
            )
        return matching[-1]
    td = view.get_training_dataset(int(version))
    if upstream.data_version is not None and td.content_hash != upstream.data_version:
        raise FeatureStoreFailure(
            description=f"training dataset {view_name} v{view_version} / v{version} has content hash "
            f"{td.content_hash}, but {td_key.to_user_string()} materialized {upstream.data_version}; materialize "
            "the training data again"
        )
    return td


def _check_results(store: Any, asset_key: AssetKey, holdout: Holdout, candidate: Any, rules: ModelValidation,
                   specs: list[AssetCheckSpec], mv: Any) -> list[AssetCheckResult]:
    results = []
    names = {s.name for s in specs}
    if CHECK_NOT_WORSE in names:
        results.append(_guarded(asset_key, CHECK_NOT_WORSE, lambda: _not_worse(store, holdout, candidate, rules, mv)))
    if CHECK_MIN_QUALITY in names:
        results.append(_guarded(asset_key, CHECK_MIN_QUALITY, lambda: _min_quality(holdout, candidate, rules)))
    if CHECK_SLICES in names:
        results.append(_guarded(asset_key, CHECK_SLICES, lambda: _slices(holdout, candidate, rules)))
    return [AssetCheckResult(asset_key=asset_key, check_name=name, severity=AssetCheckSeverity.ERROR, **fields)
            for name, fields in results]


def _guarded(asset_key: AssetKey, name: str, evaluate_check: Callable[[], dict[str, Any]]) -> tuple[str, dict]:
    """A rule that cannot be evaluated (a slice column the rows lack, a metric the model cannot give) fails."""
    try:
        return name, evaluate_check()
    except FeatureStoreError as exc:
        return name, {"passed": False, "description": f"cannot evaluate: {exc}", "metadata": {"error": str(exc)}}


def _not_worse(store: Any, holdout: Holdout, candidate: Any, rules: ModelValidation, mv: Any) -> dict[str, Any]:
    comparison = compare_with_deployed(store, holdout, candidate, rules, candidate_version=mv)
    metadata: dict[str, Any] = {
        "metric": comparison.metric, "direction": comparison.direction, "tolerance": float(comparison.tolerance),
        "candidate": float(comparison.candidate), "candidate_version": mv.version, "holdout_rows": comparison.rows,
        "deployment": comparison.deployment or "",
    }
    if comparison.deployed_version is not None:
        metadata["deployed_version"] = comparison.deployed_version
        metadata["deployed_model"] = comparison.deployed_model
    if comparison.deployed is not None and math.isfinite(comparison.deployed):
        metadata["deployed"] = float(comparison.deployed)
        metadata["difference"] = float(comparison.candidate - comparison.deployed)
    return {"passed": comparison.passed, "description": comparison.description, "metadata": metadata}


def _min_quality(holdout: Holdout, candidate: Any, rules: ModelValidation) -> dict[str, Any]:
    value = score(rules.metric, holdout.y, candidate)
    minimum = float(rules.minimum)  # type: ignore[arg-type]
    passed = math.isfinite(value) and (value >= minimum if rules.better == "max" else value <= minimum)
    word = "minimum" if rules.better == "max" else "maximum"
    return {
        "passed": passed,
        "description": f"{rules.metric} {value:.4f} on {len(holdout)} holdout rows; {word} {minimum:g}",
        "metadata": {"metric": rules.metric, "value": float(value) if math.isfinite(value) else "undefined",
                     word: minimum, "holdout_rows": len(holdout)},
    }


def _slices(holdout: Holdout, candidate: Any, rules: ModelValidation) -> dict[str, Any]:
    report = slice_quality(holdout, candidate, rules)
    schema = TableSchema(columns=[
        TableColumn("slice", "string"), TableColumn("rows", "int"), TableColumn(report.metric, "float"),
        TableColumn("judged", "bool"), TableColumn("passed", "bool"),
    ])
    records = [TableRecord({"slice": str(s.value), "rows": s.rows, report.metric: s.score, "judged": s.judged,
                            "passed": s.passed}) for s in report.slices[:200]]
    return {
        "passed": report.passed,
        "description": report.description,
        "metadata": {
            "slice_column": report.column, "metric": report.metric, "minimum": report.minimum,
            "slices": len(report.slices), "failing_slices": ", ".join(str(s.value) for s in report.failing) or "none",
            "slice_scores": MetadataValue.table(records=records, schema=schema),
        },
    }


def _model_metadata(mv: Any, td: Any, measured: dict[str, float], seconds: float, holdout: Holdout | None,
                    reused: bool) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "fs_dagster/model": f"{mv.name} v{mv.version}",
        METADATA_MODEL_NAME: mv.name,
        METADATA_MODEL_VERSION: mv.version,
        METADATA_ARTIFACT: mv.artifact_sha256,
        "fs_dagster/reused_version": reused,
        "fs_dagster/flavor": mv.flavor,
        "fs_dagster/training_dataset": f"{td.view.name} v{td.view.version} / v{td.version}",
        METADATA_TRAINING_DATASET_VERSION: td.version,
        "fs_dagster/content_hash": td.content_hash,
        "fs_dagster/pinned_commits": MetadataValue.json(td.pinned_commits),
        "fs_dagster/features": MetadataValue.json(list(mv.features)),
        "fs_dagster/labels": ", ".join(mv.labels),
        "fs_dagster/params": MetadataValue.json(mv.params),
        "training_seconds": round(seconds, 3),
        "path": MetadataValue.path(str(mv.path)),
    }
    if holdout is not None:
        metadata[f"rows/{holdout.split}"] = len(holdout)
    for split, rows in td.row_counts.items():
        metadata.setdefault(f"rows/{split}", rows)
    for metric, value in mv.metrics.items():  # numbers: the UI plots them across materializations
        metadata[METRIC_PREFIX + metric] = MetadataValue.float(float(value))
    return metadata
