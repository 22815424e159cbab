"""How a serving process finds its store and model: seldon graph parameters, then environment variables.

Parameters (``--parameters`` / ``PREDICTIVE_UNIT_PARAMETERS``, each ``{"name", "type", "value"}``; seldon passes
them to the model class as keyword arguments): ``deployment``, ``project``, ``root``, ``model_name``,
``model_version``, ``feature_view`` (``name:version``), ``max_batch``, ``inference_log``, ``log_max_entries``,
``registry_url``, ``online_url``, ``online_username``, ``online_key_prefix``, ``online_tls_ca_file``,
``online_cluster``, ``home`` (a local deployment's folder holding the version pointer).

Secrets never travel as parameters (they would sit in the manifest, or on a local command line that every user can
read in ``/proc``): the online store's password comes from ``FS_DAGSTER_ONLINE_PASSWORD`` (a Kubernetes
``secretKeyRef``) or, for the embedded store, from its password file; a registry URL with credentials from
``FS_DAGSTER_REGISTRY_URL``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.serving.payload import DEFAULT_MAX_BATCH

from fs_dagster.core.environment import (  # the names every entry point shares
    ENV_ONLINE_PASSWORD as ENV_ONLINE_PASSWORD,
    ENV_ONLINE_URL as ENV_ONLINE_URL,
    ENV_PROJECT as ENV_PROJECT,
    ENV_REGISTRY_URL as ENV_REGISTRY_URL,
    ENV_ROOT as ENV_ROOT,
)

SECRET_ENV = (ENV_REGISTRY_URL, ENV_ONLINE_PASSWORD)


@dataclass(frozen=True)
class ServingSettings:
    """Everything a serving process needs besides secrets (see module doc)."""

    deployment: str
    project: str = "default"
    root: str = ".fs_store"
    model_name: str = ""
    model_version: int = 0
    feature_view: str = ""
    max_batch: int = DEFAULT_MAX_BATCH
    inference_log: bool = True
    log_max_entries: int = 1_000_000
    registry_url: str = ""
    online_url: str = ""
    online_username: str = ""
    online_key_prefix: str = "fs:"
    online_tls_ca_file: str = ""
    online_cluster: bool = False
    home: str = ""

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> ServingSettings:
        """Settings from the seldon parameters; ``root``/``project`` fall back to FS_DAGSTER_ROOT/FS_DAGSTER_PROJECT.

        Raises:
            InvalidDataError: an unknown parameter or a missing deployment name.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(parameters) - names)
        if unknown:
            raise InvalidDataError(f"unknown serving parameter(s) {unknown}; known: {sorted(names)}")
        values = dict(parameters)
        values.setdefault("root", os.environ.get(ENV_ROOT, ".fs_store"))
        values.setdefault("project", os.environ.get(ENV_PROJECT, "default"))
        if not values.get("deployment"):
            raise InvalidDataError("serving parameter 'deployment' (the deployment's name) is required")
        return cls(**values)

    def to_parameters(self) -> list[dict[str, str]]:
        """The seldon parameter list (all values as strings, with their seldon types)."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value in ("", None) and f.name not in ("deployment",):
                continue
            kind = "BOOL" if isinstance(value, bool) else "INT" if isinstance(value, int) else "STRING"
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out.append({"name": f.name, "type": kind, "value": text})
        return out

    @property
    def feature_view_override(self) -> tuple[str, int] | None:
        if not self.feature_view:
            return None
        name, _, version = self.feature_view.partition(":")
        try:
            return name, int(version)
        except ValueError:
            raise InvalidDataError(f"feature_view parameter must be 'name:version', got {self.feature_view!r}") from None

    def store(self) -> Any:
        """The FeatureStore these settings describe (secrets from the environment)."""
        from fs_dagster.core.online.online_store import OnlineStoreConfig
        from fs_dagster.core.store import FeatureStore

        online = OnlineStoreConfig(
            url=self.online_url or os.environ.get(ENV_ONLINE_URL) or None,
            username=self.online_username or None,
            password=os.environ.get(ENV_ONLINE_PASSWORD) or None,
            tls_ca_file=self.online_tls_ca_file or None,
            cluster=self.online_cluster,
            key_prefix=self.online_key_prefix,
        )
        registry_url = os.environ.get(ENV_REGISTRY_URL) or self.registry_url or None
        return FeatureStore(root=self.root, project=self.project, registry_url=registry_url, online=online)

    @property
    def home_path(self) -> Path | None:
        return Path(self.home) if self.home else None
