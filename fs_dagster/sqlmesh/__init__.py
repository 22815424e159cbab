"""SQLMesh feature pipelines in Dagster: one asset per SQLMesh model, audits as asset checks, feature-group models
written to the feature store like Python feature groups.

Needs the ``sqlmesh`` package (``pip install fs-dagster[sqlmesh]``).
"""

from fs_dagster.core.sqlmesh import require_sqlmesh as _require_sqlmesh

_require_sqlmesh()  # a clear error naming the extra, before anything below imports sqlmesh

from fs_dagster.core.sqlmesh.models import AuditInfo as AuditInfo  # noqa: E402
from fs_dagster.core.sqlmesh.models import ModelInfo as ModelInfo  # noqa: E402
from fs_dagster.core.sqlmesh.project import SQLMeshProject as SQLMeshProject  # noqa: E402
from fs_dagster.sqlmesh.asset_decorator import build_sqlmesh_assets as build_sqlmesh_assets  # noqa: E402
from fs_dagster.sqlmesh.asset_decorator import sqlmesh_assets as sqlmesh_assets  # noqa: E402
from fs_dagster.sqlmesh.resource import SQLMeshResource as SQLMeshResource  # noqa: E402
from fs_dagster.sqlmesh.resource import load_project as load_project  # noqa: E402
from fs_dagster.sqlmesh.translator import SQLMeshTranslator as SQLMeshTranslator  # noqa: E402
from fs_dagster.sqlmesh.translator import SQLMeshTranslatorSettings as SQLMeshTranslatorSettings  # noqa: E402

__all__ = [
    "AuditInfo",
    "ModelInfo",
    "SQLMeshProject",
    "SQLMeshResource",
    "SQLMeshTranslator",
    "SQLMeshTranslatorSettings",
    "build_sqlmesh_assets",
    "load_project",
    "sqlmesh_assets",
]
