"""The environment variables fs-dagster reads, in one place: the CLI's options, ``FeatureStoreResource``'s
defaults and a serving process's settings take the same names.

=============================  ==========================================================  ==============
variable                       what                                                        default
=============================  ==========================================================  ==============
``FS_DAGSTER_ROOT``            store root (Hudi tables, the SQLite registry, the embedded  ``.fs_store``
                               online store); give an absolute path                        (relative!)
``FS_DAGSTER_PROJECT``         project name                                                ``default``
``FS_DAGSTER_REGISTRY_URL``    SQLAlchemy URL of the registry (PostgreSQL)                 SQLite file under the root
``FS_DAGSTER_ONLINE_URL``      Valkey URL of the online store                              embedded valkey-server
``FS_DAGSTER_ONLINE_PASSWORD`` Valkey password                                             none
``FS_DAGSTER_COMPILED``        ``0``: no compiled (numba) decoding of online batches       on with numba
=============================  ==========================================================  ==============
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV_ROOT = "FS_DAGSTER_ROOT"
ENV_PROJECT = "FS_DAGSTER_PROJECT"
ENV_REGISTRY_URL = "FS_DAGSTER_REGISTRY_URL"
ENV_ONLINE_URL = "FS_DAGSTER_ONLINE_URL"
ENV_ONLINE_PASSWORD = "FS_DAGSTER_ONLINE_PASSWORD"
ENV_COMPILED = "FS_DAGSTER_COMPILED"

DEFAULT_ROOT = ".fs_store"
DEFAULT_PROJECT = "default"


class RelativeRootWarning(UserWarning):
    """The store root is a relative path: each process (webserver, code server, run worker, CLI) resolves it
    against its own working directory, so two of them can silently use two different stores."""


def from_env(name: str, default: str | None = None) -> str | None:
    """The variable's value, or ``default`` when it is unset or empty."""
    return os.environ.get(name) or default


def warn_if_relative(root: str | os.PathLike[str], where: str = "feature store") -> None:
    """Warns (:class:`RelativeRootWarning`) when ``root`` is relative to the working directory."""
    path = Path(root).expanduser()
    if not path.is_absolute():
        warnings.warn(
            f"{where} root {str(root)!r} is relative: it resolves against the working directory of each process "
            f"(here {Path(path).resolve()}); set {ENV_ROOT} or root= to an absolute path",
            RelativeRootWarning,
            stacklevel=3,
        )
