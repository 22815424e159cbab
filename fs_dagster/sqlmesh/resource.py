"""``SQLMeshResource``: a SQLMesh project, its gateway and target environment, as a Dagster resource."""

from __future__ import annotations

import threading
from typing import Any, Iterator, Mapping, Optional

from dagster import ConfigurableResource
from pydantic import Field

from fs_dagster.core.sqlmesh.project import PROD, SQLMeshProject
from fs_dagster.resource import FeatureStoreResource

_PROJECTS: dict[tuple[str, Optional[str]], SQLMeshProject] = {}
_PROJECTS_LOCK = threading.Lock()


def load_project(project_dir: str, gateway: Optional[str] = None, **options: Any) -> SQLMeshProject:
    """The process's :class:`SQLMeshProject` for a folder and gateway (loaded once: building the asset specs and
    running them in the same process share one ``sqlmesh.Context``; loaded again when a project file changed)."""
    from pathlib import Path

    key = (str(Path(project_dir).resolve()), gateway)
    with _PROJECTS_LOCK:
        project = _PROJECTS.get(key)
        if project is None:
            project = _PROJECTS[key] = SQLMeshProject(key[0], gateway)
    for name, value in options.items():
        setattr(project, name, value)
    project.reload_if_changed()
    return project


class SQLMeshResource(ConfigurableResource):
    """Runs the SQLMesh models behind ``@sqlmesh_assets`` / ``build_sqlmesh_assets`` assets.

    A run applies the project's changes to ``environment`` (without computing anything else), computes the
    selected models for the run's partition range (restated: recomputed from the current inputs), reports each
    audit as an asset check, and writes the rows of feature-group models to the feature store.

    Examples:
        .. code-block:: python

            prod = SQLMeshResource(project_dir="pipelines/flights")
            # a development environment writing its feature groups into a project of their own:
            dev = SQLMeshResource(project_dir="pipelines/flights", environment="dev",
                                  feature_store=FeatureStoreResource(root="/data/fs", project="flights_dev"))
    """

    project_dir: str = Field(description="The SQLMesh project folder (config.yaml or config.py, models/).")
    gateway: Optional[str] = Field(default=None, description="Gateway of the project's config (default: its default).")
    environment: str = Field(default=PROD, description="SQLMesh environment the runs plan and compute in.")
    restate: bool = Field(
        default=True,
        description="Recompute intervals SQLMesh already computed (a materialization computes from the current "
        "inputs). False: compute only missing intervals (e.g. reuse what a promoted dev environment built).",
    )
    apply_changes: bool = Field(
        default=True,
        description="Apply the project's changed models to the environment before a run (their new versions get "
        "tables; only the run's range is computed). False: a run fails while the environment differs from the "
        "files, so changes reach it only by an explicit plan (e.g. promoting a reviewed dev environment).",
    )
    lock_timeout: float = Field(default=600.0, description="Seconds a run waits for another run on the same database.")
    audit_sample_rows: int = Field(default=20, description="Failing rows shown per failed audit.")
    feature_store: Optional[FeatureStoreResource] = Field(
        default=None,
        description="Where feature-group models are written; unset: the run's 'feature_store' resource.",
    )

    def get_project(self) -> SQLMeshProject:
        """The loaded project (one per process, shared with the asset definitions)."""
        return load_project(self.project_dir, self.gateway, lock_timeout=self.lock_timeout,
                            audit_sample_rows=self.audit_sample_rows)

    def run(self, context: Any, *, feature_store: Optional[FeatureStoreResource] = None,
            schemas: Optional[Mapping[str, Any]] = None) -> Iterator[Any]:
        """Computes the selected models of ``context`` and yields their materializations and check results.

        Models that succeed are reported even when others fail; the step fails at the end, naming every model
        that failed or was skipped.

        Args:
            context: the ``AssetExecutionContext`` of a ``@sqlmesh_assets`` function.
            feature_store: where feature groups go (default: this resource's ``feature_store``).
            schemas: pandera schemas by feature-group or model name (default: those given to the decorator).
        """
        from fs_dagster.sqlmesh.execution import execute

        yield from execute(context, self, feature_store or self.feature_store, schemas)
