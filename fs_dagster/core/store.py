"""The feature store facade: one store root, one project, a registry, and handles to feature groups."""

from __future__ import annotations

import logging
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from fs_dagster.core.errors import NotFoundError
from fs_dagster.core.feature_group import FeatureGroup
from fs_dagster.core.feature_view import FeatureView, Query, build_feature_view
from fs_dagster.core.environment import DEFAULT_ROOT as DEFAULT_ROOT
from fs_dagster.core.online.online_store import OnlineStore, OnlineStoreConfig
from fs_dagster.core.registry import Registry, SearchHit
from fs_dagster.core.registry.registry import DEFAULT_TIMEOUT, SETTING_FIELDS
from fs_dagster.core.specs import Feature, FeatureGroupSpec, as_features, check_name, check_version

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from fs_dagster.core.models.registry import ModelRegistry, ModelVersion
    from fs_dagster.core.serving.deployment import Deployment


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
        registry_timeout: seconds a registry operation waits for another process's lock on the SQLite registry,
            then :class:`~fs_dagster.core.errors.RegistryUnavailableError` naming the file (after an insert:
            :class:`~fs_dagster.core.feature_group.RegistrySyncError`; the offline commit is kept).

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
        registry_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.project = check_name("project", project)
        self.registry_url = registry_url
        self.registry_timeout = registry_timeout
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
                return Registry(self.registry_url, timeout=self.registry_timeout)
            return Registry.for_root(self.root, timeout=self.registry_timeout)

    @property
    def online_store(self) -> OnlineStore:
        """The Valkey connection (embedded server of the root unless configured); connects on first use. On the
        embedded server it stays usable across restarts of that server on another port: an operation that finds
        it gone reconnects to where the root's state file says it runs now (see :mod:`.online.online_store`).

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
        """Registers ``spec`` as the feature group's definition (the Dagster path: the code is the definition).

        A new version is created. For a registered one the identity must match (a new version changes it); its
        settings (``online_enabled``, ``online_ttl_seconds``, ``statistics_enabled``) become the spec's, and
        non-empty descriptions replace the stored ones. A changed setting is logged as a warning and listed in
        the returned group's :attr:`~FeatureGroup.definition_changes`; the Dagster face fully syncs the online
        store when ``online_enabled`` turns on. To get a group without restating it, use
        :meth:`get_feature_group` or :meth:`get_or_create_feature_group`.
        """
        try:
            before: FeatureGroupSpec | None = self.registry.get_feature_group(self.project, spec.name, spec.version)
        except NotFoundError:
            before = None
        stored = self.registry.register_feature_group(self.project, spec)
        group = FeatureGroup(self, stored)
        if before is not None:
            group.definition_changes = {
                f: (getattr(before, f), getattr(stored, f))
                for f in SETTING_FIELDS
                if getattr(before, f) != getattr(stored, f)
            }
            if group.definition_changes:
                log.warning(
                    "feature group %s: the definition changed its settings: %s", spec.key,
                    ", ".join(f"{f} {old!r} -> {new!r}" for f, (old, new) in group.definition_changes.items()),
                )
        return group

    def get_or_create_feature_group(
        self,
        name: str,
        version: int = 1,
        primary_key: Sequence[str] | str | None = None,
        event_time: str | None = None,
        partition_key: Sequence[str] | str | None = None,
        online_enabled: bool | None = None,
        online_ttl_seconds: int | None = None,
        description: str | None = None,
        features: dict[str, str] | Sequence[Feature] | None = None,
        tags: Sequence[str] | None = None,
        owner: str | None = None,
        hive_style_partitioning: bool | None = None,
        statistics_enabled: bool | None = None,
    ) -> FeatureGroup:
        """The feature group ``name`` at ``version`` as registered, created if it does not exist.

        A get-or-create never changes a stored definition. Arguments left out (None) keep the stored values (a
        new group gets the defaults of :class:`FeatureGroupSpec`: no partitioning, ``online_enabled=False``,
        statistics on, ...). An argument that is given must agree with the stored group: a different
        ``primary_key``, ``event_time``, ``partition_key`` or ``hive_style_partitioning`` needs a new version; a
        different ``online_enabled``, ``online_ttl_seconds`` or ``statistics_enabled`` is changed explicitly with
        :meth:`FeatureGroup.update`. Descriptions, tags, owner and feature descriptions of an existing group are
        kept as stored (as Hopsworks does); a differing one is logged as a warning (change it with
        ``update(description=...)``).

        Args:
            features: per-feature descriptions, ``{"temp": "Temperature in F"}`` or Feature objects.
            Other arguments: see :class:`FeatureGroupSpec`.

        Raises:
            InvalidDataError: a given argument conflicts with the registered group (the message names the field,
                the stored and the requested value, and how to change it), or a new group has no primary key.
        """
        arguments = {
            "primary_key": None if primary_key is None else tuple([primary_key] if isinstance(primary_key, str)
                                                                  else primary_key),
            "event_time": event_time,
            "partition_key": None if partition_key is None else tuple([partition_key] if isinstance(partition_key, str)
                                                                      else partition_key),
            "online_enabled": online_enabled,
            "online_ttl_seconds": online_ttl_seconds,
            "description": description,
            "features": None if features is None else as_features(features),
            "tags": None if tags is None else tuple(tags),
            "owner": owner,
            "hive_style_partitioning": hive_style_partitioning,
            "statistics_enabled": statistics_enabled,
        }
        given = {field: value for field, value in arguments.items() if value is not None}
        check_name("feature group", name)
        check_version("feature group", name, version)
        stored = self.registry.get_or_register_feature_group(self.project, name, version, given)
        _warn_kept_descriptions(stored, given)
        return FeatureGroup(self, stored)

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
        request_keys: Sequence[str] = (),
    ) -> FeatureView:
        """Registers the view (or returns the registered one, which must have the same query and labels).

        Raises:
            InvalidDataError: the version exists with another definition, or a feature/label/join key is unknown.

        Args:
            transformation_functions: output feature -> ``standard_scaler`` / ``min_max_scaler`` /
                ``label_encoder`` or a ``"module:function"`` registered with ``@transformation_function``.
            request_keys: join keys (``left_on``) that the root feature group lacks because requests carry them
                (e.g. a weather view whose aircraft is joined on the request's ``tailnum``). Every other join key
                must be a root column. Training data of such a view needs a spine with these columns.
        """
        if query is None:
            return self.get_feature_view(name, version)
        view = build_feature_view(self, name, version, query, labels, description, transformation_functions,
                                  request_keys)
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
            spec.get("transformation_functions"), spec.get("request_keys", ()),
        )

    # --- lifecycle ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Closes this store's connections (online store, registry database); they reopen if the store is used
        again. The embedded Valkey server keeps running for other processes of the root (see
        :meth:`stop_embedded_online_store`). ``with FeatureStore(...) as fs:`` closes on exit."""
        with self._lock:
            online, self._online = self._online, None
        if online is not None:
            online.close()
        if "registry" in self.__dict__:  # (a cached_property: only if it was opened)
            self.registry.dispose()

    def stop_embedded_online_store(self, timeout: float = 10.0) -> bool:
        """Closes the connections and stops the embedded Valkey server of :attr:`root` (it saves its data first;
        the next online read or write starts it again). Returns False if none was running. A store configured with
        an external Valkey (``OnlineStoreConfig(url=...)``) has no embedded server: nothing is stopped.

        Raises:
            EmbeddedServerError: the server did not stop within ``timeout`` seconds.
        """
        self.close()
        if self.online_config.url:
            return False
        from fs_dagster.core.online.embedded import EmbeddedValkey

        return EmbeddedValkey(self.root).stop(timeout)

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def _warn_kept_descriptions(stored: FeatureGroupSpec, given: dict[str, Any]) -> None:
    """Logs the given descriptive fields a get-or-create kept as stored (it never changes a stored group)."""
    differing = [f for f in ("description", "tags", "owner") if f in given and given[f] != getattr(stored, f)]
    differing += [
        f"features[{f.name!r}].description"
        for f in given.get("features", ())
        if f.description and (stored.feature(f.name) is None or stored.feature(f.name).description != f.description)
    ]
    if differing:
        log.warning(
            "feature group %s exists: get_or_create_feature_group keeps its registered %s; change them with "
            "fs.get_feature_group(%r, %d).update(...)", stored.key, ", ".join(differing), stored.name, stored.version,
        )
