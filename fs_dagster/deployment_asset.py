"""Deployment assets: serve the model version a model asset last materialized, with seldon-core, and prove it
answers with a real HTTP request (the ``smoke_test`` check).

One materialization:

1. reads the model asset's latest materialization: the model name and version it registered, checked against its
   data version (the artifact SHA-256) and the registry, so exactly that version is deployed;
2. refuses it unless every blocking check of the model asset passed on that very materialization (Dagster skips
   downstream steps of a run whose blocking check failed, but a deployment launched later by itself, by hand or by
   automation, would otherwise pick up the rejected version);
3. creates the deployment, or switches it to the version (a rolling switch when the server runs: no request is
   refused), and starts the local microservice (127.0.0.1) unless it runs;
4. with the ``smoke_test`` check selected, sends entities (rows of the model's training dataset, or the ones
   configured) over HTTP and checks the answer; if it fails right after a switch, the deployment rolls back to the
   version it served before (``rollback_on_failure``);
5. optionally writes the SeldonDeployment manifest for Kubernetes next to the deployment's files.

Metadata: endpoint URL, pid, model version, previous version, what happened (created, switched, unchanged, rolled
back). Data version: the served model version and artifact hash.

The asset is a subsettable multi-asset: the smoke test also runs on its own (the UI's "Execute check") against the
running server. For automation, ``AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed()``
redeploys after each new model version that passed validation (the default of :func:`build_deployment_asset`'s
``automation_condition`` is none: starting servers should be a decision).

Example:
    delays_api = build_deployment_asset(
        "delays_api", delay_model, smoke_test=SmokeTest(rows=5),
        manifest={"image": "registry.example.com/fs-serving:1.0", "online_url": "valkey://valkey:6379/0"},
    )
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from fs_dagster.code_versions import recipe_code_version
from fs_dagster.core.errors import FeatureStoreError, InvalidDataError, NotFoundError
from fs_dagster.core.extras import ensure_installed
from fs_dagster.core.serving.client import PREDICT_PATH
from fs_dagster.core.serving.smoke_test import SmokeReport, example_entities
from fs_dagster.core.serving.smoke_test import smoke_test as send_smoke_request
from fs_dagster.core.specs import check_name
from fs_dagster.errors import FeatureStoreFailure, as_failure
from fs_dagster.model_asset import METADATA_ARTIFACT, METADATA_MODEL_NAME, METADATA_MODEL_VERSION
from fs_dagster.upstream import blocking_check_problems, latest_materialization

SMOKE_TEST_CHECK = "smoke_test"
MANIFEST_FILE = "seldon_deployment.yaml"
METADATA_DEPLOYMENT = "fs_dagster/deployment"


@dataclass(frozen=True)
class SmokeTest:
    """The ``smoke_test`` check of a deployment asset.

    Args:
        entities: the entities to send (dicts of the serving keys); default: ``rows`` rows of the served model's
            training dataset (``split``) whose features are all present.
        rows: how many rows to take from the training dataset.
        split: which of its splits.
        allow_missing: send ``allow_missing`` (entities without an online row get nulls).
        rollback_on_failure: roll back to the previous version when the check fails right after a switch.
    """

    entities: Sequence[Mapping[str, Any]] | None = None
    rows: int = 5
    split: str = "test"
    allow_missing: bool = False
    rollback_on_failure: bool = True


def build_deployment_asset(
    deployment: str,
    model: AssetsDefinition | AssetKey | str,
    *,
    smoke_test: SmokeTest | None = SmokeTest(),  # noqa: B008 - frozen dataclass
    start: bool = True,
    port: int | None = None,
    workers: int = 1,
    threads: int = 1,
    max_batch: int | None = None,
    inference_log: bool = True,
    manifest: Mapping[str, Any] | None = None,
    key: AssetKey | str | None = None,
    group_name: str = "deployments",
    description: str | None = None,
    automation_condition: AutomationCondition | None = None,
    owners: Sequence[str] = (),
    code_version: str | None = None,
    resource_key: str = "feature_store",
) -> AssetsDefinition:
    """An asset deploying the model version the ``model`` asset last materialized (see module doc).

    Args:
        deployment: the deployment's name (``fs-dagster deployment status NAME``).
        model: the model asset (from :func:`build_model_asset`) or its key.
        smoke_test: the ``smoke_test`` check (None: no check).
        start: start the local microservice (127.0.0.1) when it is not running.
        port, workers, threads, max_batch, inference_log: settings of a new deployment (an existing one keeps
            its own: change them with ``fs-dagster deployment delete`` and a new materialization).
        manifest: arguments of ``Deployment.manifest`` (``image`` required; ``online_url``, ``namespace``,
            ``replicas``, ...): the SeldonDeployment is written to ``<deployment folder>/seldon_deployment.yaml``
            at each materialization and shown in the metadata.
        key: asset key; default ``[<deployment>]``.
        automation_condition: e.g. ``AutomationCondition.eager() &
            AutomationCondition.all_deps_blocking_checks_passed()`` to redeploy validated new versions.
        owners: e-mail addresses or ``team:`` names.
        code_version: default: a hash of the deployment's settings (see :mod:`fs_dagster.code_versions`).

    Examples:
        .. code-block:: python

            delays_api = build_deployment_asset("delays_api", delay_model, smoke_test=SmokeTest(rows=3))
    """
    if start:  # a local server needs seldon-core: say so when the definitions load, not at the first run
        ensure_installed("serving", f"deployment asset {deployment}")
    check_name("deployment", deployment)
    if manifest is not None and not manifest.get("image"):
        raise InvalidDataError(f"deployment {deployment}: manifest needs an 'image' (a container image with "
                               "fs-dagster installed)")
    model_key = model.key if isinstance(model, AssetsDefinition) else AssetKey.from_coercible(model)
    model_checks = [spec.key for spec in model.check_specs if spec.blocking and spec.asset_key == model_key] \
        if isinstance(model, AssetsDefinition) else []
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([deployment])
    check_key = AssetCheckKey(asset_key, SMOKE_TEST_CHECK)
    check_specs = [] if smoke_test is None else [AssetCheckSpec(
        SMOKE_TEST_CHECK, asset=asset_key, blocking=True,
        description="A real HTTP prediction request for entities of the served model's training data: answered by "
        "the deployed version, one prediction (and class probabilities) per entity",
    )]
    options = {"port": port, "workers": workers, "threads": threads, "inference_log": inference_log,
               **({"max_batch": max_batch} if max_batch is not None else {})}

    @multi_asset(
        name=f"deploy_{deployment}",
        specs=[AssetSpec(
            asset_key, deps=[model_key], group_name=group_name, kinds={"seldon"}, owners=list(owners),
            code_version=code_version or recipe_code_version(
                "deployment", deployment=deployment, model=model_key.to_user_string(), smoke_test=smoke_test, start=start,
                options=options, manifest=manifest),
            description=description or (f"Deployment {deployment}: seldon-core microservice serving the model "
                                        f"version {model_key.to_user_string()} last registered and validated."),
            metadata={METADATA_DEPLOYMENT: deployment}, automation_condition=automation_condition,
        )],
        check_specs=check_specs,
        can_subset=True,
        required_resource_keys={resource_key},
    )
    def _deployment(context):  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        run_smoke = smoke_test is not None and check_key in context.selected_asset_check_keys
        if asset_key not in context.selected_asset_keys:  # the smoke test alone, against what runs now
            try:
                dep = store.get_deployment(deployment)
            except NotFoundError as error:
                raise as_failure(error) from error
            yield _smoke_result(check_key, _smoke(store, dep, smoke_test), rolled_back=None)
            return
        upstream = latest_materialization(context, model_key)
        problems = blocking_check_problems(context, upstream, model_checks)
        model_name = str(upstream.require(METADATA_MODEL_NAME))
        version = int(upstream.require(METADATA_MODEL_VERSION))
        if problems:
            raise FeatureStoreFailure(
                description=f"deployment {deployment}: model {model_name} v{version} (the latest materialization of "
                f"{model_key.to_user_string()}, run {upstream.run_id}) is not validated: " + "; ".join(problems)
                + "; nothing was deployed",
                metadata={"model_version": version, "problems": MetadataValue.json(problems)},
            )
        try:
            mv = store.get_model_registry().get_model(model_name, version)
            if upstream.data_version is not None and mv.artifact_sha256 != upstream.data_version:
                raise FeatureStoreFailure(
                    description=f"deployment {deployment}: model {model_name} v{version} has artifact "
                    f"{mv.artifact_sha256} in the registry, but {model_key.to_user_string()} materialized "
                    f"{upstream.data_version}; nothing was deployed"
                )
            dep, previous, action = _deploy(store, deployment, mv, options)
            if start:
                dep.start()
            report = _smoke(store, dep, smoke_test) if run_smoke else None
            rolled_back = None
            if report is not None and not report.passed and action == "switched" and smoke_test.rollback_on_failure:
                dep.rollback()
                rolled_back, action = version, "rolled back"
                context.log.warning("deployment %s: smoke test failed on v%s, rolled back to v%s", deployment,
                                    version, previous)
            dep.refresh()
        except FeatureStoreError as error:
            raise as_failure(error) from error
        try:
            manifest_path = _write_manifest(dep, manifest) if manifest is not None else None
        except FeatureStoreError as error:  # (a configuration error, after a deployment that went well)
            raise as_failure(error, deployed=f"{dep.model_name} v{dep.model_version}") from error
        status = dep.status()
        served = store.get_model_registry().get_model(dep.model_name, dep.model_version)
        metadata: dict[str, Any] = {
            METADATA_DEPLOYMENT: deployment,
            "fs_dagster/action": action,
            "fs_dagster/model": f"{dep.model_name} v{dep.model_version}",
            METADATA_MODEL_NAME: dep.model_name,
            METADATA_MODEL_VERSION: dep.model_version,
            "fs_dagster/previous_version": previous if previous is not None else "none",
            METADATA_ARTIFACT: served.artifact_sha256,
            "fs_dagster/state": status.state,
        }
        if status.url:
            metadata["fs_dagster/endpoint"] = MetadataValue.url(status.url + PREDICT_PATH)
            metadata["fs_dagster/health"] = MetadataValue.url(status.url + "/health/status")
            metadata["fs_dagster/pid"] = status.pid
        if status.startup_seconds is not None:
            metadata["fs_dagster/startup_seconds"] = status.startup_seconds
        if manifest_path is not None:
            metadata["fs_dagster/manifest"] = MetadataValue.path(manifest_path)
        yield MaterializeResult(
            asset_key=asset_key, metadata=metadata,
            data_version=DataVersion(f"{dep.model_name}/v{dep.model_version}/{served.artifact_sha256[:16]}"),
        )
        if report is not None:
            yield _smoke_result(check_key, report, rolled_back=rolled_back)

    return _deployment


def _deploy(store: Any, deployment: str, mv: Any, options: dict[str, Any]) -> tuple[Any, int | None, str]:
    """(deployment, the version it served before or None, "created" | "switched" | "unchanged")."""
    try:
        dep = store.get_deployment(deployment)
    except NotFoundError:
        return store.create_deployment(deployment, mv, **options), None, "created"
    previous = dep.model_version
    if (dep.model_name, dep.model_version) == (mv.name, mv.version):
        return dep, dep.previous_version, "unchanged"
    dep.switch_to(mv)  # rolling when the server runs: requests keep being answered
    return dep.refresh(), previous, "switched"


def _smoke(store: Any, dep: Any, config: SmokeTest | None) -> SmokeReport:
    config = config or SmokeTest()
    try:
        entities = list(config.entities) if config.entities is not None else example_entities(
            store, dep, rows=config.rows, split=config.split)
    except FeatureStoreError as exc:
        report = SmokeReport(dep.name, dep.url, dep.model_name, dep.model_version, [])
        report.problems.append(f"no entities to send: {exc}")
        return report
    return send_smoke_request(dep, entities, allow_missing=config.allow_missing)


def _smoke_result(check_key: AssetCheckKey, report: SmokeReport, rolled_back: int | None) -> AssetCheckResult:
    answer = report.answer or {}
    metadata: dict[str, Any] = {
        "endpoint": (report.url or "") + PREDICT_PATH if report.url else "not running",
        "entities": MetadataValue.json(report.entities),
        "expected_version": report.expected_version,
        "answered_version": answer.get("model_version", "none"),
        "predictions": MetadataValue.json(answer.get("predictions")),
        "request_id": answer.get("request_id", ""),
    }
    if report.seconds is not None:
        metadata["latency_ms"] = round(report.seconds * 1000, 2)
    if rolled_back is not None:
        metadata["rolled_back_from"] = rolled_back
    description = report.description + (f"; rolled back from v{rolled_back}" if rolled_back is not None else "")
    return AssetCheckResult(asset_key=check_key.asset_key, check_name=check_key.name, passed=report.passed,
                            severity=AssetCheckSeverity.ERROR, description=description, metadata=metadata)


def _write_manifest(dep: Any, options: Mapping[str, Any]) -> str:
    """The SeldonDeployment of the served version as YAML, written atomically next to the deployment's files."""
    from fs_dagster.core.serving.manifest import to_yaml

    text = to_yaml(dep.manifest(**dict(options)))
    dep.home.mkdir(parents=True, exist_ok=True)
    path = dep.home / MANIFEST_FILE
    tmp = dep.home / f".{MANIFEST_FILE}.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
    return str(path)
