"""``FeatureStoreComponent``: feature groups, feature views and training datasets declared in a ``defs.yaml``.

The YAML says what the Python decorators say, and the component builds the same assets with them
(:func:`feature_group_asset`, :func:`build_feature_view_asset`, :func:`build_training_dataset_asset`): a feature
group's spec (keys, event time, partition columns, online flag, features with types and descriptions, tags, owner),
how it is computed (a Python function, or DuckDB SQL inline or in a file), its pandera schema, time partitions and
upstream assets; a feature view's query (root selection, joins, labels, transformations) and its training dataset.

Example ``defs.yaml`` (``dg scaffold defs fs_dagster.components.FeatureStoreComponent features`` writes a starter):

.. code-block:: yaml

    type: fs_dagster.components.FeatureStoreComponent
    attributes:
      store: {root: "{{ env.FS_DAGSTER_ROOT }}", project: shop}   # optional: defines the two resources
      feature_groups:
        - name: orders
          primary_key: [order_id]
          event_time: ts
          features:
            - {name: amount, type: double, description: Order total}
          sql_file: orders.sql                # DuckDB; $start and $end: the partition's window
          partitions: {type: daily, start_date: "2024-01-01"}
        - name: customers
          primary_key: [customer]
          event_time: since
          function: my_project.features:customers   # called like a @feature_group_asset function
          pandera_schema: my_project.schemas:Customers   # a blocking check
      feature_views:
        - name: returns
          root: {feature_group: orders, features: [amount, returned]}
          joins:
            - {feature_group: customers, features: [spend], join_on: [customer]}
          labels: [returned]
          training_dataset: {split: {train: 0.8, test: 0.2}, seed: 7, eager: true}
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import pandas as pd
from dagster import (
    AssetKey,
    AutomationCondition,
    DailyPartitionsDefinition,
    Definitions,
    HourlyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    PartitionsDefinition,
    WeeklyPartitionsDefinition,
)
from dagster.components import Component, ComponentLoadContext, Model, Resolvable, Scaffolder, ScaffoldRequest, scaffold_with
from dagster.components.component_scaffolding import scaffold_component
from pydantic import Field, model_validator

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.specs import Feature, FeatureGroupSpec
from fs_dagster.core.store import FeatureStore
from fs_dagster.core.training.splits import RandomSplit

_PARAMETER = re.compile(r"\$(start|end)\b")
_PARTITIONS: dict[str, type[PartitionsDefinition]] = {
    "hourly": HourlyPartitionsDefinition,
    "daily": DailyPartitionsDefinition,
    "weekly": WeeklyPartitionsDefinition,
    "monthly": MonthlyPartitionsDefinition,
}


class FeatureModel(Resolvable, Model):
    """One feature (column) of a group."""

    name: str
    type: str = Field("", description="Storage type as Arrow text: int64, double, string, bool, "
                                      "timestamp[us, tz=UTC], date32[day]; empty: the first write decides.")
    description: str = ""


class PartitionsModel(Resolvable, Model):
    """Time partitions of a feature group: each run writes the rows of its partition's window."""

    type: Literal["hourly", "daily", "weekly", "monthly"]
    start_date: str
    end_date: Optional[str] = None
    timezone: Optional[str] = None

    def build(self) -> PartitionsDefinition:
        kwargs: dict[str, Any] = {"start_date": self.start_date}
        if self.end_date:
            kwargs["end_date"] = self.end_date
        if self.timezone:
            kwargs["timezone"] = self.timezone
        return _PARTITIONS[self.type](**kwargs)


class FeatureGroupModel(Resolvable, Model):
    """A feature group asset: its spec, and how it is computed (exactly one of function, sql, sql_file)."""

    name: str
    version: int = 1
    primary_key: list[str]
    event_time: Optional[str] = None
    partition_key: list[str] = Field(default_factory=list, description="Columns partitioning the Hudi table.")
    online_enabled: bool = False
    online_ttl_seconds: Optional[int] = None
    statistics_enabled: bool = True
    description: str = ""
    tags: list[str] = Field(default_factory=list, description="'key=value' or 'key' (Dagster tags).")
    owner: Optional[str] = Field(None, description="An e-mail address or 'team:<name>'.")
    features: list[FeatureModel] = Field(default_factory=list)
    function: Optional[str] = Field(None, description="'module:function' returning the frame; parameters: "
                                    "context (optional), then upstream assets by name.")
    sql: Optional[str] = Field(None, description="DuckDB SQL returning the frame; $start / $end are the time "
                               "partition's window; relative file paths start at this defs.yaml's folder.")
    sql_file: Optional[str] = Field(None, description="A .sql file (relative to this defs.yaml) as for sql.")
    pandera_schema: Optional[str] = Field(None, description="'module:Model', a pandera DataFrameModel or "
                                          "DataFrameSchema: a blocking asset check before the write.")
    partitions: Optional[PartitionsModel] = None
    deps: list[str] = Field(default_factory=list, description="Upstream asset keys ('a/b' for ['a', 'b']).")
    required_resources: list[str] = Field(default_factory=list, description="Resources the function uses.")

    @model_validator(mode="after")
    def _one_computation(self) -> FeatureGroupModel:
        given = [k for k in ("function", "sql", "sql_file") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"feature group {self.name}: give exactly one of function, sql, sql_file "
                             f"(got {given or 'none'})")
        return self

    def spec(self) -> FeatureGroupSpec:
        return FeatureGroupSpec(
            name=self.name, version=self.version, primary_key=tuple(self.primary_key), event_time=self.event_time,
            partition_key=tuple(self.partition_key), online_enabled=self.online_enabled,
            online_ttl_seconds=self.online_ttl_seconds, statistics_enabled=self.statistics_enabled,
            description=self.description, tags=tuple(self.tags), owner=self.owner,
            features=tuple(Feature(f.name, type=f.type, description=f.description) for f in self.features),
        )


class SelectionModel(Resolvable, Model):
    feature_group: str
    version: int = 1
    features: list[str] = Field(default_factory=list, description="Empty: every non-key column.")


class JoinModel(SelectionModel):
    # (not `on`: YAML 1.1 reads a bare `on` key as the boolean true)
    join_on: list[str] = Field(default_factory=list, description="Same column names on both sides.")
    left_on: list[str] = Field(default_factory=list, description="Root columns matching the joined group's key.")
    right_on: list[str] = Field(default_factory=list, description="Default: the joined group's primary key.")
    prefix: Optional[str] = None
    lookback_seconds: Optional[float] = Field(None, description="Older feature rows count as missing.")
    lookback_inclusive: bool = False


class TrainingDatasetModel(Resolvable, Model):
    split: Optional[dict[str, float]] = Field(None, description="Random split fractions, e.g. {train: 0.8, test: 0.2}.")
    seed: int = 0
    data_format: Literal["parquet", "csv"] = "parquet"
    eager: bool = Field(False, description="Refresh when a feature group it reads commits (eager condition).")
    owners: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class FeatureViewModel(Resolvable, Model):
    name: str
    version: int = 1
    description: str = ""
    root: SelectionModel
    joins: list[JoinModel] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    transformations: dict[str, str] = Field(default_factory=dict, description="feature -> standard_scaler, "
                                            "min_max_scaler, label_encoder or 'module:function'.")
    request_keys: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    training_dataset: Optional[TrainingDatasetModel] = None

    def get_view(self, store: FeatureStore) -> Any:
        """Registers the view (idempotent for the same definition) and returns it."""
        root = store.get_feature_group(self.root.feature_group, self.root.version)
        query = root.select(self.root.features) if self.root.features else root.select_all()
        for join in self.joins:
            group = store.get_feature_group(join.feature_group, join.version)
            query = query.join(
                group.select(join.features) if join.features else group.select_all(),
                on=join.join_on or None, left_on=join.left_on or None, right_on=join.right_on or None,
                prefix=join.prefix,
                lookback=timedelta(seconds=join.lookback_seconds) if join.lookback_seconds is not None else None,
                lookback_inclusive=join.lookback_inclusive,
            )
        return store.get_or_create_feature_view(
            self.name, self.version, query, labels=self.labels, description=self.description,
            transformation_functions=self.transformations, request_keys=self.request_keys,
        )


class StoreModel(Resolvable, Model):
    """The feature store resource's settings; an unset one takes ``FeatureStoreResource``'s default (its
    ``FS_DAGSTER_*`` environment variable first, as everywhere else)."""

    root: Optional[str] = Field(None, description="Store root (default: $FS_DAGSTER_ROOT, else .fs_store).")
    project: Optional[str] = Field(None, description="Project (default: $FS_DAGSTER_PROJECT, else default).")
    registry_url: Optional[str] = Field(None, description="Registry database URL (default: "
                                        "$FS_DAGSTER_REGISTRY_URL, else SQLite under the root).")
    online_url: Optional[str] = Field(None, description="Valkey URL of the online store (default: "
                                      "$FS_DAGSTER_ONLINE_URL, else the root's embedded valkey-server).")
    online_username: Optional[str] = Field(None, description="Valkey ACL user.")
    online_password: Optional[str] = Field(None, description="Valkey password (default: "
                                           "$FS_DAGSTER_ONLINE_PASSWORD); give it as {{ env.NAME }}.")


class FeatureStoreScaffolder(Scaffolder):
    """``dg scaffold defs fs_dagster.components.FeatureStoreComponent <path>``: a defs.yaml with one feature group
    computed by DuckDB SQL (it loads and materializes as written) and a commented feature view."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        scaffold_component(request, STARTER_ATTRIBUTES)
        if request.scaffold_format == "yaml" and not request.append:
            defs_yaml = request.target_path / "defs.yaml"
            defs_yaml.write_text(defs_yaml.read_text() + STARTER_COMMENT)


STARTER_ATTRIBUTES: dict[str, Any] = {
    "store": {"project": "default"},  # (root: $FS_DAGSTER_ROOT, else .fs_store)
    "feature_groups": [{
        "name": "example_features",
        "primary_key": ["entity_id"],
        "event_time": "event_time",
        "description": "An example feature group: replace the SQL with your own (DuckDB; read_parquet, read_csv ...)",
        "tags": ["domain=example"],
        "features": [{"name": "value", "type": "double", "description": "An example feature"}],
        "sql": "SELECT * FROM (VALUES (1, TIMESTAMPTZ '2024-01-01 00:00:00+00', 0.5), "
               "(2, TIMESTAMPTZ '2024-01-01 00:00:00+00', 1.5)) AS t(entity_id, event_time, value)",
    }],
}
STARTER_COMMENT = """
# A feature view over feature groups, and its training dataset:
#  feature_views:
#    - name: example_view
#      root: {feature_group: example_features, features: [value]}
#      joins: [{feature_group: other_group, features: [x], join_on: [entity_id]}]
#      labels: []
#      training_dataset: {split: {train: 0.8, test: 0.2}, seed: 7}
"""


@scaffold_with(FeatureStoreScaffolder)
class FeatureStoreComponent(Component, Resolvable, Model):
    """Feature groups (Hudi offline store, optional Valkey online store), feature views and training datasets of
    fs-dagster, declared in YAML: the same assets, checks, metadata and data versions as ``@feature_group_asset``,
    ``build_feature_view_asset`` and ``build_training_dataset_asset``."""

    feature_groups: list[FeatureGroupModel] = Field(default_factory=list)
    feature_views: list[FeatureViewModel] = Field(default_factory=list)
    store: Optional[StoreModel] = Field(None, description="If set, the component defines the feature store "
                                        "resource and IO manager under resource_key and io_manager_key.")
    resource_key: str = "feature_store"
    io_manager_key: str = "fs_io_manager"

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        from fs_dagster.asset_decorator import feature_group_asset
        from fs_dagster.feature_view_asset import build_feature_view_asset
        from fs_dagster.training_dataset_asset import build_training_dataset_asset

        assets: list[Any] = []
        for group in self.feature_groups:
            compute = self._computation(group, context.path)
            partitions = group.partitions.build() if group.partitions else None
            assets.append(feature_group_asset(
                group.spec(),
                schema=(_import(group.pandera_schema, f"feature group {group.name}: pandera_schema")
                        if group.pandera_schema else None),
                deps=[AssetKey.from_user_string(d) for d in group.deps] or None,
                partitions_def=partitions,
                resource_key=self.resource_key,
                io_manager_key=self.io_manager_key,
                required_resource_keys=set(group.required_resources) or None,
            )(compute))
        for view in self.feature_views:
            deps = [s.feature_group for s in [view.root, *view.joins]]
            assets.append(build_feature_view_asset(
                view.name, view.version, get_view=view.get_view, deps=deps, owners=view.owners, tags=view.tags,
                description=view.description or None, resource_key=self.resource_key))
            if view.training_dataset is not None:
                td = view.training_dataset
                split = RandomSplit(td.split, seed=td.seed) if td.split else None
                assets.append(build_training_dataset_asset(
                    view.name, view.version, deps=[view.name, *deps], split=split, data_format=td.data_format,
                    get_view=view.get_view, owners=td.owners or view.owners, tags=td.tags,
                    automation_condition=AutomationCondition.eager() if td.eager else None,
                    resource_key=self.resource_key))
        return Definitions(assets=assets, resources=self._resources())

    def _resources(self) -> dict[str, Any]:
        if self.store is None:
            return {}
        from fs_dagster.io_manager import FeatureGroupIOManager
        from fs_dagster.resource import FeatureStoreResource

        given = {name: value for name, value in self.store.model_dump().items() if value is not None}
        store = FeatureStoreResource(**given)
        return {self.resource_key: store, self.io_manager_key: FeatureGroupIOManager(feature_store=store)}

    def _computation(self, group: FeatureGroupModel, folder: Path) -> Callable[..., Any]:
        if group.function:
            function = _import(group.function, f"feature group {group.name}: function")
            if not callable(function):
                raise InvalidDataError(f"feature group {group.name}: function {group.function!r} is not callable")
            return function
        if group.sql_file:
            path = (folder / group.sql_file).resolve()
            if not path.is_file():
                raise InvalidDataError(f"feature group {group.name}: sql_file {group.sql_file!r} not found ({path})")
            sql = path.read_text()
        else:
            sql = group.sql or ""
        return _sql_computation(sql, folder)


def _sql_computation(sql: str, folder: Path) -> Callable[..., pd.DataFrame]:
    """A feature-group function running ``sql`` in DuckDB (relative paths from ``folder``; ``$start``/``$end``:
    the run's partition window, UTC)."""
    wanted = set(_PARAMETER.findall(sql))

    def compute(context) -> pd.DataFrame:  # no annotation: dagster inspects it
        import duckdb

        from fs_dagster.materialization import partition_window

        parameters: dict[str, Any] = {}
        if wanted:
            window = partition_window(context)
            if window is None:
                raise InvalidDataError("the SQL uses $start/$end, which only a time-partitioned group's run has")
            parameters = {k: v for k, v in {"start": window.start, "end": window.end}.items() if k in wanted}
        connection = duckdb.connect()
        try:
            connection.execute("SET TimeZone = 'UTC'")
            folder_text = str(folder).replace("'", "''")
            connection.execute(f"SET file_search_path = '{folder_text}'")  # relative paths: beside defs.yaml
            return connection.execute(sql, parameters or None).df()
        finally:
            connection.close()

    return compute


def _import(reference: str, what: str) -> Any:
    """``module:attribute`` (or ``module.attribute``) imported; an error names ``what`` and the reference."""
    import importlib

    module_name, _, attribute = reference.partition(":") if ":" in reference else reference.rpartition(".")
    if not module_name or not attribute:
        raise InvalidDataError(f"{what}: {reference!r} is not 'module:attribute'")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidDataError(f"{what}: cannot import module {module_name!r} ({error})") from error
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise InvalidDataError(f"{what}: module {module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    return value
