"""``FeatureStoreResource``: the feature store as a Dagster resource."""

from __future__ import annotations

from typing import Optional

from dagster import ConfigurableResource, EnvVar
from pydantic import Field, PrivateAttr, model_validator

from fs_dagster.core.environment import (
    DEFAULT_PROJECT,
    DEFAULT_ROOT,
    ENV_ONLINE_PASSWORD,
    ENV_ONLINE_URL,
    ENV_PROJECT,
    ENV_REGISTRY_URL,
    ENV_ROOT,
    from_env,
    warn_if_relative,
)
from fs_dagster.core.online.online_store import OnlineStoreConfig
from fs_dagster.core.registry.registry import check_driver
from fs_dagster.core.store import FeatureStore


class FeatureStoreResource(ConfigurableResource):
    """Gives assets, sensors and IO managers a :class:`FeatureStore` (one per process, created lazily).

    Examples:
        .. code-block:: python

            from dagster import Definitions, EnvVar
            from fs_dagster import FeatureStoreResource, FeatureGroupIOManager

            store = FeatureStoreResource(root=EnvVar("FS_DAGSTER_ROOT"), project="flights")
            defs = Definitions(
                assets=[...],
                resources={"feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)},
            )
    """

    # unset fields take the variables the CLI reads (fs_dagster.core.environment), when the resource is created
    root: str = Field(
        default_factory=lambda: from_env(ENV_ROOT, DEFAULT_ROOT),
        description=f"Store root folder: Hudi tables and the SQLite registry (default: ${ENV_ROOT}, else "
        f"{DEFAULT_ROOT!r} relative to the working directory, with a warning).",
    )
    project: str = Field(
        default_factory=lambda: from_env(ENV_PROJECT, DEFAULT_PROJECT),
        description=f"Project name; isolates feature groups under one root (default: ${ENV_PROJECT}, else "
        f"{DEFAULT_PROJECT!r}).",
    )
    registry_url: Optional[str] = Field(
        default_factory=lambda: from_env(ENV_REGISTRY_URL),
        description=f"SQLAlchemy URL of the registry, e.g. postgresql+psycopg://... (default: ${ENV_REGISTRY_URL}, "
        "else SQLite under root).",
    )
    lock_timeout: float = Field(default=60.0, description="Seconds a write waits for another writer of the table.")
    durable: bool = Field(default=True, description="fsync data files and commits before publishing them.")
    registry_timeout: float = Field(
        default=30.0,
        description="Seconds a registry operation waits for another process's lock on the SQLite registry before "
        "failing with an error naming the file (an insert's offline commit is kept).",
    )
    online_url: Optional[str] = Field(
        default_factory=lambda: from_env(ENV_ONLINE_URL),
        description=f"Valkey URL of the online store (valkey://host:port/db, valkeys:// for TLS; default: "
        f"${ENV_ONLINE_URL}); unset: the embedded valkey-server of the store root, started on demand.",
    )
    online_username: Optional[str] = Field(default=None, description="Valkey ACL user.")
    online_password: Optional[str] = Field(
        default_factory=lambda: from_env(ENV_ONLINE_PASSWORD),
        description=f"Valkey password (default: ${ENV_ONLINE_PASSWORD}; or EnvVar).",
    )
    online_tls_ca_file: Optional[str] = Field(default=None, description="CA bundle that signed the server cert.")
    online_tls_cert_file: Optional[str] = Field(default=None, description="Client certificate (mutual TLS).")
    online_tls_key_file: Optional[str] = Field(default=None, description="Client key (mutual TLS).")
    online_cluster: bool = Field(default=False, description="The online store is a Valkey Cluster.")
    online_key_prefix: str = Field(default="fs:", description="Namespace of every online key.")

    _store: Optional[FeatureStore] = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _registry_driver_installed(self) -> "FeatureStoreResource":
        """A registry URL whose driver is missing fails when the definitions load, naming the extra to install
        (an ``EnvVar`` is checked when the store is first used)."""
        if isinstance(self.registry_url, str) and self.registry_url:
            check_driver(self.registry_url)
        return self

    def get_store(self) -> FeatureStore:
        """The :class:`FeatureStore` this resource configures (created on first use, then cached for the life of
        the process).

        In an asset it is ``feature_store.get_store()`` (or ``context.resources.feature_store.get_store()``);
        outside Dagster (a script, a notebook, a serving process) the same call on the resource object of your
        definitions gives the same store, its ``EnvVar`` fields read from the environment.

        Examples:
            .. code-block:: python

                from dagster import EnvVar, asset
                from fs_dagster import FeatureStoreResource

                store = FeatureStoreResource(root=EnvVar("FS_DAGSTER_ROOT"), project="shop")

                @asset(deps=["orders"])
                def returned_share(feature_store: FeatureStoreResource) -> float:
                    orders = feature_store.get_store().get_feature_group("orders").read()
                    return float(orders["returned"].mean())

                fs = store.get_store()  # in a notebook: the same FeatureStore
                fs.get_feature_view("order_returns", 1).get_feature_vector({"order_id": 7, "customer_id": 3})

        Raises:
            dagster.DagsterInvalidConfigError: an ``EnvVar`` field's variable is not set (outside Dagster).
            MissingDependencyError: a PostgreSQL registry URL without its driver (``pip install
                "fs-dagster[postgres]"``).
        """
        if self._store is None and _has_env_vars(self):
            # Outside Dagster nothing has resolved the EnvVar fields yet: each still holds the variable's *name*
            # ("FS_DAGSTER_ROOT"), which would silently become a relative root folder. Resolve them as Dagster does.
            self._store = self.process_config_and_initialize().get_store()
        if self._store is None:
            warn_if_relative(self.root)
            self._store = FeatureStore(
                root=self.root,
                project=self.project,
                registry_url=self.registry_url,
                lock_timeout=self.lock_timeout,
                durable=self.durable,
                registry_timeout=self.registry_timeout,
                online=OnlineStoreConfig(
                    url=self.online_url,
                    username=self.online_username,
                    password=self.online_password,
                    tls_ca_file=self.online_tls_ca_file,
                    tls_cert_file=self.online_tls_cert_file,
                    tls_key_file=self.online_tls_key_file,
                    cluster=self.online_cluster,
                    key_prefix=self.online_key_prefix,
                ),
            )
        return self._store


def _has_env_vars(resource: FeatureStoreResource) -> bool:
    """Whether any field still holds an unresolved ``EnvVar`` (the resource was not initialized by Dagster)."""
    return any(isinstance(getattr(resource, name), EnvVar) for name in type(resource).model_fields)
