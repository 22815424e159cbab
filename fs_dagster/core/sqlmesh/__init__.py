"""SQL feature pipelines: SQLMesh projects read through SQLMesh's own Python API (``sqlmesh.Context``).

- :mod:`.models`: what each model is (kind, columns, grain, audits, fingerprint, column lineage), as plain data;
- :mod:`.feature_groups`: which models are feature groups and their :class:`FeatureGroupSpec` (from tags, grain,
  time column, descriptions and ``fs_*`` properties);
- :mod:`.project`: loading a project, running a set of models for a time range (plan/apply, restatements), per
  model outcomes and audit results, reading a model's rows back as Arrow;
- :mod:`.environments`: comparing the statistics of two environments' training data before a promotion.

SQLMesh is an optional dependency (``pip install "fs-dagster[sqlmesh]"``); it is imported when first needed.
No Dagster import here (the Dagster face is :mod:`fs_dagster.sqlmesh`).
"""

from __future__ import annotations

from types import ModuleType

from fs_dagster.core.extras import require

EXTRA = "sqlmesh"


def require_sqlmesh() -> ModuleType:
    """The ``sqlmesh`` package, or :class:`MissingDependencyError` naming the extra that installs it."""
    return require(EXTRA, "SQLMesh feature pipelines")
