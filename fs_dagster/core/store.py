"""The feature store facade: one store root, one project, a registry, and handles to feature groups."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from fs_dagster.core.feature_group import FeatureGroup
from fs_dagster.core.feature_view import FeatureView, Query, build_feature_view
from fs_dagster.core.online.online_store import OnlineStore, OnlineStoreConfig
from fs_dagster.core.registry import Registry, SearchHit
from fs_dagster.core.specs import Feature, FeatureGroupSpec, check_name

if TYPE_CHECKING:
    from fs_dagster.core.models.registry import ModelRegistry, ModelVersion
    from fs_dagster.core.serving.deployment import Deployment

DEFAULT_ROOT = ".fs_store"


class FeatureStore:
    """Entry point of the Python API (Hopsworks-style names).

    Layout under ``root``: ``registry.db`` (SQLite registry, unless ``registry_url`` points elsewhere) and
    ``<project>/feature_groups/<name>_v<version>/`` (one Hudi table per feature group version).

    Args:
        root: store root folder (created on demand).
        project: isolates feature groups of different teams/projects sharing a root or registry.
        registry_url: SQLAlchemy URL of the registry (e.g. ``postgresql+psycopg://...``); SQLite under root if None.
        lock_timeout: seconds a write waits for another writer of the same feature group.
        durable: fsync data and commits before publishing (off only for throwaway stores).
        online: where the online store lives; default: the embedded Valkey of ``root`` (started on demand).

    Example:
        fs = FeatureStore(root="./.fs_store", project="flights")
        fg = fs.get_or_create_feature_group("aircraft", version=1, primary_key=["tailnum"],
                                            description="Aircraft features per tail number")
        fg.insert(planes_df)
        fs.search("aircraft seats")
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        project: str = "default",
        registry_url: str | None = None,
        lock_timeout: float = 60.0,
        durable: bool = True,
        online: OnlineStoreConfig | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.project = check_name("project", project)
        self.registry_url = registry_url
        self.write_options: dict[str, Any] = {"lock_timeout": lock_timeout, "durable": durable}
        self.online_config = online or OnlineStoreConfig()
        self._lock = threading.Lock()
        self._online: OnlineStore | None = None

    def __repr__(self) -> str:
        return f"FeatureStore(root={str(self.root)!r}, project={self.project!r})"

    @cached_property
    def registry(self) -> Registry:
        with self._lock:
            if self.registry_url:
                return Registry(self.registry_url)
            return Registry.for_root(self.root)

    @property
    def online_store(self) -> OnlineStore:
        """The Valkey connection (embedded server of the root unless configured); connects on first use.

        Raises:
            OnlineStoreUnavailable: naming the address.
        """
        with self._lock:
            if self._online is None:
                self._online = OnlineStore.connect(self.online_config, embedded_root=str(self.root))
            return self._online

    @property
    def project_path(self) -> Path:
        return self.root / self.project

    def feature_group_path(self, spec: FeatureGroupSpec) -> Path:
        return self.project_path / "feature_groups" / spec.table_name

    # --- feature groups -----------------------------------------------------------------------------------

    def create_feature_group(self, spec: FeatureGroupSpec) -> FeatureGroup:
        """Registers ``spec`` (or returns the registered group when it has the same keys)."""
        stored = self.registry.register_feature_group(self.project, spec)
        return FeatureGroup(self, stored)

    def get_or_create_feature_group(
        self,
        name: str,
        version: int = 1,
        primary_key: Sequence[str] | str = (),
        event_time: str | None = None,
        partition_key: Sequence[str] | str = (),
        online_enabled: bool = False,
        online_ttl_seconds: int | None = None,
        description: str = "",
        features: dict[str, str] | Sequence[Feature] | None = None,
        tags: Sequence[str] = (),
        owner: str | None = None,
        hive_style_partitioning: bool = True,
        statistics_enabled: bool = True,
    ) -> FeatureGroup:
        """The feature group ``name`` at ``version``, created (registered) if it does not exist.

        Args:
            features: per-feature descriptions, ``{"temp": "Temperature in F"}`` or Feature objects.
            Other arguments: see :class:`FeatureGroupSpec`.

        Raises:
            InvalidDataError: the group exists with other keys (use a new version to change them).
        """
        if isinstance(features, dict):
            feature_specs = tuple(Feature(name=n, description=d) for n, d in features.items())
        else:
            feature_specs = tuple(features or ())
        spec = FeatureGroupSpec(
            name=name,
            version=version,
            primary_key=tuple([primary_key] if isinstance(primary_key, str) else primary_key),
            event_time=event_time,
            partition_key=tuple([partition_key] if isinstance(partition_key, str) else partition_key),
            online_enabled=online_enabled,
            online_ttl_seconds=online_ttl_seconds,
            description=description,
            features=feature_specs,
            tags=tuple(tags),
            owner=owner,
            hive_style_partitioning=hive_style_partitioning,
            statistics_enabled=statistics_enabled,
        )
        return self.create_feature_group(spec)

    def get_feature_group(self, name: str, version: int | None = None) -> FeatureGroup:
        """A registered feature group (latest version if ``version`` is None).

        Raises:
            NotFoundError: naming what exists instead.
        """
        return FeatureGroup(self, self.registry.get_feature_group(self.project, name, version))

    def get_feature_groups(self) -> list[FeatureGroup]:
        return [FeatureGroup(self, spec) for spec in self.registry.list_feature_groups(self.project)]

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Keyword search over feature group and feature names, descriptions and tags."""
        return self.registry.search(self.project, text, limit=limit)

    # --- feature views ------------------------------------------------------------------------------------

    def get_or_create_feature_view(
        self, name: str, version: int = 1, query: Query | None = None, labels: Sequence[str] = (),
        description: str = "", transformation_functions: dict[str, str] | None = None,
    ) -> FeatureView:
        """Registers the view (or returns the registered one, which must have the same query and labels).

        Raises:
            InvalidDataError: the version exists with another definition, or a feature/label is unknown.

        Args:
            transformation_functions: output feature -> ``standard_scaler`` / ``min_max_scaler`` /
                ``label_encoder`` or a ``"module:function"`` registered with ``@transformation_function``.
        """
        if query is None:
            return self.get_feature_view(name, version)
        view = build_feature_view(self, name, version, query, labels, description, transformation_functions)
        self.registry.register_feature_view(self.project, name, version, view.spec_dict())
        return view

    # --- models ---------------------------------------------------------------------------------------------

    def get_model_registry(self) -> ModelRegistry:
        """The project's model registry (versions, metrics, artifacts checked by SHA-256 on every load)."""
        from fs_dagster.core.models.registry import ModelRegistry

        return ModelRegistry(self)

    # --- deployments ----------------------------------------------------------------------------------------

    def create_deployment(self, name: str, model_version: ModelVersion, **options: Any) -> Deployment:
        """Registers a deployment serving ``model_version`` with seldon-core (``.start()`` runs it locally,
        ``.manifest(image=...)`` gives a SeldonDeployment); see :func:`fs_dagster.core.serving.deployment.create_deployment`
        for the options (feature_view, port, workers, threads, max_batch, inference_log)."""
        from fs_dagster.core.serving.deployment import create_deployment

        return create_deployment(self, name, model_version, **options)

    def get_deployment(self, name: str) -> Deployment:
        """A registered deployment. Raises NotFoundError naming the project's deployments."""
        from fs_dagster.core.serving.deployment import get_deployment

        return get_deployment(self, name)

    def get_deployments(self) -> list[Deployment]:
        from fs_dagster.core.serving.deployment import list_deployments

        return list_deployments(self)

    def get_feature_view(self, name: str, version: int | None = None) -> FeatureView:
        """A registered feature view (latest version when ``version`` is None)."""
        spec = self.registry.get_feature_view(self.project, name, version)
        query = Query.from_dict(spec["query"], self)
        return build_feature_view(
            self, spec["name"], spec["version"], query, spec["labels"], spec["description"],
            spec.get("transformation_functions"),
        )

