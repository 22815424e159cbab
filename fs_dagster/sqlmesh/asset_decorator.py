"""``@sqlmesh_assets`` and ``build_sqlmesh_assets``: one Dagster asset per SQLMesh model.

Both read the project through SQLMesh's Python API when the definitions load (no database access) and build one
``multi_asset`` (``can_subset=True``): materializing some of its assets runs only those models (and whatever
missing intervals of their parents SQLMesh needs). A multi-asset has one partitions definition, so
``@sqlmesh_assets`` takes models of one kind of partitioning (select them), and ``build_sqlmesh_assets`` makes one
multi-asset per partitioning (unpartitioned models, daily incremental ones, ...) plus the external tables.

Selection (``select`` / ``exclude``): model names (``schema.table``), shell patterns (``features.*``) or tags
(``tag:feature_group``).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from dagster import (
    AssetCheckSpec,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    PartitionsDefinition,
    RetryPolicy,
    multi_asset,
)

from fs_dagster.core.errors import PipelineError
from fs_dagster.core.sqlmesh.models import ModelInfo
from fs_dagster.sqlmesh.execution import register_schemas
from fs_dagster.sqlmesh.resource import load_project
from fs_dagster.sqlmesh.translator import SQLMeshTranslator
from fs_dagster.translator import METADATA_SPEC_KEY, FeatureGroupTranslator

DEFAULT_RESOURCE_KEY = "sqlmesh"
DEFAULT_FEATURE_STORE_KEY = "feature_store"


def sqlmesh_assets(
    *,
    project_dir: str,
    gateway: Optional[str] = None,
    translator: Optional[SQLMeshTranslator] = None,
    select: Optional[Sequence[str]] = None,
    exclude: Optional[Sequence[str]] = None,
    name: Optional[str] = None,
    schemas: Optional[Mapping[str, Any]] = None,
    backfill_policy: Optional[BackfillPolicy] = None,
    retry_policy: Optional[RetryPolicy] = None,
    op_tags: Optional[Mapping[str, Any]] = None,
    pool: Optional[str] = None,
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """Turns a function into the assets of a SQLMesh project's models (one asset per model).

    The function receives the context and a :class:`SQLMeshResource` and yields what its ``run`` yields.

    Args:
        project_dir: the SQLMesh project folder.
        translator: customizes keys, groups, partitions and checks (:class:`SQLMeshTranslator`).
        select / exclude: which models (names, patterns, ``tag:x``); the selection must share one partitioning.
        schemas: pandera schemas of feature-group models, by group or model name (a blocking check each).
        backfill_policy: time-partitioned models default to single-run backfills (one SQLMesh run per range).

    Examples:
        .. code-block:: python

            @sqlmesh_assets(project_dir="pipelines/flights", select=["tag:feature_group"])
            def flight_features(context, sqlmesh: SQLMeshResource):
                yield from sqlmesh.run(context)

            store = FeatureStoreResource(root="/data/fs", project="flights")
            defs = Definitions(assets=[flight_features],
                               resources={"sqlmesh": SQLMeshResource(project_dir="pipelines/flights",
                                                                     feature_store=store),
                                          # feature-group assets load downstream through it
                                          "fs_io_manager": FeatureGroupIOManager(feature_store=store)})
    """
    project = load_project(project_dir, gateway)
    translator = translator or SQLMeshTranslator()
    models = select_models(project.models(), select, exclude)
    specs, check_specs, partitions_def = _specs(models, project.models(), translator, schemas or {})
    if len({_partitions_id(s.partitions_def) for s in specs}) > 1:
        raise PipelineError(
            "@sqlmesh_assets: the selected models are partitioned differently ("
            + "; ".join(f"{s.key.to_user_string()}: {_partitions_label(s.partitions_def)}" for s in specs)
            + "); select models of one partitioning per decorator, or use build_sqlmesh_assets"
        )
    op_name = name or _default_name(project.path.name)

    def decorator(fn: Callable[..., Any]) -> AssetsDefinition:
        return multi_asset(
            name=op_name,
            specs=specs,
            check_specs=check_specs,
            can_subset=True,
            backfill_policy=_backfill(backfill_policy, partitions_def),
            retry_policy=retry_policy,
            op_tags={**(op_tags or {}), **register_schemas(schemas)},
            pool=pool,
        )(fn)

    return decorator


def build_sqlmesh_assets(
    project_dir: str,
    *,
    gateway: Optional[str] = None,
    translator: Optional[SQLMeshTranslator] = None,
    select: Optional[Sequence[str]] = None,
    exclude: Optional[Sequence[str]] = None,
    name: Optional[str] = None,
    schemas: Optional[Mapping[str, Any]] = None,
    external_assets: bool = True,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    feature_store_key: Optional[str] = DEFAULT_FEATURE_STORE_KEY,
    backfill_policy: Optional[BackfillPolicy] = None,
    retry_policy: Optional[RetryPolicy] = None,
    pool: Optional[str] = None,
) -> list[AssetsDefinition | AssetSpec]:
    """Every selected model of a SQLMesh project as an asset: one multi-asset per partitioning, plus an asset
    spec per external table the models read (``external_assets=False`` when those keys are defined elsewhere,
    e.g. mapped by the translator onto your own source assets).

    Args:
        resource_key: the :class:`SQLMeshResource`'s key.
        feature_store_key: the :class:`FeatureStoreResource` feature-group models write to (required when the
            selection holds feature groups, unless the SQLMesh resource has its own ``feature_store``).
        Others: as :func:`sqlmesh_assets`.

    Example:
        .. code-block:: python

            store = FeatureStoreResource(root="/data/fs", project="flights")
            defs = Definitions(
                assets=build_sqlmesh_assets("pipelines/flights"),
                resources={"sqlmesh": SQLMeshResource(project_dir="pipelines/flights"), "feature_store": store,
                           "fs_io_manager": FeatureGroupIOManager(feature_store=store)},
            )
    """
    project = load_project(project_dir, gateway)
    translator = translator or SQLMeshTranslator()
    everything = project.models()
    models = select_models(everything, select, exclude)
    base = name or _default_name(project.path.name)
    specs, check_specs, _ = _specs(models, everything, translator, schemas or {})
    by_partitions: dict[Any, list[AssetSpec]] = {}
    partitions_of: dict[Any, Optional[PartitionsDefinition]] = {}
    for spec in specs:
        ident = _partitions_id(spec.partitions_def)
        by_partitions.setdefault(ident, []).append(spec)
        partitions_of[ident] = spec.partitions_def
    out: list[AssetsDefinition | AssetSpec] = []
    for i, (ident, group_specs) in enumerate(by_partitions.items()):
        partitions_def = partitions_of[ident]
        op_name = base if len(by_partitions) == 1 else f"{base}_{_partitions_label(partitions_def, i)}"
        keys = {s.key for s in group_specs}
        group_checks = [c for c in check_specs if c.asset_key in keys]
        has_groups = any(METADATA_SPEC_KEY in s.metadata for s in group_specs)
        required = {resource_key} | ({feature_store_key} if has_groups and feature_store_key else set())
        out.append(_multi_asset(op_name, group_specs, group_checks, partitions_def, required, resource_key,
                                feature_store_key if has_groups else None, backfill_policy, retry_policy, pool,
                                register_schemas(schemas)))
    if external_assets:
        wanted = {p for m in models for p in m.parents}
        out += [translator.get_asset_spec(everything[fqn], everything) for fqn in wanted
                if fqn in everything and everything[fqn].external]
    return out


def select_models(models: Mapping[str, ModelInfo], select: Optional[Sequence[str]],
                  exclude: Optional[Sequence[str]] = None) -> list[ModelInfo]:
    """The non-external models matching ``select`` (all when None) and not ``exclude``, parents first.

    Raises:
        PipelineError: a selection entry matches no model (naming it and the models there are).
    """
    candidates = [m for m in models.values() if not m.external]
    chosen = candidates if select is None else _matching(candidates, select)
    if exclude:
        dropped = {m.fqn for m in _matching(candidates, exclude)}
        chosen = [m for m in chosen if m.fqn not in dropped]
    if not chosen:
        raise PipelineError(f"no SQLMesh model selected (select={select!r}, exclude={exclude!r}; models: "
                            f"{', '.join(m.name for m in candidates)})")
    return chosen


def _matching(models: list[ModelInfo], patterns: Sequence[str]) -> list[ModelInfo]:
    hits: set[str] = set()
    for pattern in patterns:
        if pattern.startswith("tag:"):
            found = {m.fqn for m in models if pattern[4:] in m.tags}
        else:
            found = {m.fqn for m in models if fnmatch.fnmatchcase(m.name, pattern) or m.fqn == pattern}
        if not found:
            raise PipelineError(f"SQLMesh selection {pattern!r} matches no model (models: "
                                f"{', '.join(m.name for m in models)})")
        hits |= found
    return [m for m in models if m.fqn in hits]


def _specs(models: list[ModelInfo], everything: Mapping[str, ModelInfo], translator: SQLMeshTranslator,
           schemas: Mapping[str, Any]) -> tuple[list[AssetSpec], list[AssetCheckSpec], Optional[PartitionsDefinition]]:
    specs, checks = [], []
    known = {m.name for m in models}
    for model in models:
        spec = translator.get_asset_spec(model, everything)
        group = translator.get_feature_group_spec(model)
        if group is not None:
            spec = spec.with_io_manager_key("fs_io_manager")  # downstream Python assets load it as a DataFrame
            known.add(group.name)
        specs.append(spec)
        for audit in model.audits:
            check = translator.get_asset_check_spec(audit, model, spec.key)
            if check is not None:
                checks.append(check)
        schema = schemas.get(group.name, schemas.get(model.name)) if group is not None else None
        if schema is not None:
            checks.append(FeatureGroupTranslator().get_asset_check_spec(group, spec.key))
    unknown = sorted(set(schemas) - known)
    if unknown:
        raise PipelineError(f"pandera schemas given for {', '.join(unknown)}, which are not selected feature-group "
                            "models (schemas are keyed by feature group or model name)")
    return specs, checks, specs[0].partitions_def if specs else None


def _multi_asset(op_name: str, specs: list[AssetSpec], checks: list[AssetCheckSpec],
                 partitions_def: Optional[PartitionsDefinition], required: set[str], resource_key: str,
                 feature_store_key: Optional[str], backfill_policy: Optional[BackfillPolicy],
                 retry_policy: Optional[RetryPolicy], pool: Optional[str], op_tags: Mapping[str, str]) -> AssetsDefinition:
    @multi_asset(
        name=op_name,
        specs=specs,
        check_specs=checks,
        can_subset=True,
        backfill_policy=_backfill(backfill_policy, partitions_def),
        retry_policy=retry_policy,
        required_resource_keys=required,
        pool=pool,
        op_tags=op_tags,
    )
    def _sqlmesh_models(context) -> Iterator[Any]:  # no annotation on context: dagster inspects it
        resource = getattr(context.resources, resource_key)
        store = getattr(context.resources, feature_store_key) if feature_store_key else None
        yield from resource.run(context, feature_store=resource.feature_store or store)

    return _sqlmesh_models


def _backfill(policy: Optional[BackfillPolicy], partitions_def: Optional[PartitionsDefinition]) -> Optional[BackfillPolicy]:
    if policy is None and partitions_def is not None:
        return BackfillPolicy.single_run()  # one SQLMesh run for the whole range
    return policy


def _partitions_id(partitions_def: Optional[PartitionsDefinition]) -> Any:
    return None if partitions_def is None else repr(partitions_def)


def _partitions_label(partitions_def: Optional[PartitionsDefinition], index: int = 0) -> str:
    if partitions_def is None:
        return "unpartitioned"
    cron = getattr(partitions_def, "cron_schedule", "")
    labels = {"0 0 * * *": "daily", "0 * * * *": "hourly", "0 0 1 * *": "monthly", "0 0 * * 0": "weekly"}
    return labels.get(cron, f"partitioned_{index}")


def _default_name(folder: str) -> str:
    """``sqlmesh_<folder>`` (the folder's name alone when it already starts with ``sqlmesh``)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", folder).strip("_").lower() or "project"
    return name if name.startswith("sqlmesh") else f"sqlmesh_{name}"
