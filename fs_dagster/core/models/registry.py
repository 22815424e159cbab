"""The model registry: versioned model artifacts with metrics, parameters, schema, input example and lineage.

Rows live in the feature store's registry database (table ``fs_model_versions``); artifacts live under
``<root>/<project>/models/<name>/v<version>/``. Every file of an artifact is hashed at registration and checked
before every load, so a model that changed on disk is refused, naming the file, rather than served.

Example:
    mr = fs.get_model_registry()
    mv = mr.create_model("delay_classifier", clf, metrics={"roc_auc": 0.71}, params={"max_depth": 6},
                         training_dataset=td, input_example=X_train.head(5), description="gradient boosting")
    best = mr.get_best_model("delay_classifier", "roc_auc", "max")
    best.predict(X_test)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError, NotFoundError
from fs_dagster.core.models.artifacts import artifact_sha256, hash_folder, verify_folder
from fs_dagster.core.models.flavors import Flavor, flavor_for, flavor_named
from fs_dagster.core.registry.models import DeploymentRow, ModelVersionRow
from fs_dagster.core.specs import check_name

if TYPE_CHECKING:
    from fs_dagster.core.feature_view import FeatureView
    from fs_dagster.core.store import FeatureStore
    from fs_dagster.core.training.training_dataset import TrainingDataset

Direction = Literal["max", "min"]
MAX_EXAMPLE_ROWS = 20


class ModelVersion:
    """One registered model version. Get it from :class:`ModelRegistry`; :meth:`load` verifies the artifact.

    Attributes:
        name, version: identity within the project.
        spec: everything recorded (metrics, params, schema, lineage, tags, artifact hashes) as JSON.
    """

    def __init__(self, registry: ModelRegistry, spec: dict[str, Any]) -> None:
        self._registry = registry
        self.spec = spec
        self._model: Any = None

    def __repr__(self) -> str:
        return f"ModelVersion({self.name!r}, version={self.version}, flavor={self.flavor!r}, metrics={self.metrics})"

    name = property(lambda self: self.spec["name"])
    version = property(lambda self: int(self.spec["version"]))
    flavor = property(lambda self: self.spec["flavor"])
    metrics = property(lambda self: dict(self.spec.get("metrics") or {}))
    params = property(lambda self: dict(self.spec.get("params") or {}))
    description = property(lambda self: self.spec.get("description", ""))
    tags = property(lambda self: dict(self.spec.get("tags") or {}))
    features = property(lambda self: list(self.spec.get("features") or []))
    labels = property(lambda self: list(self.spec.get("labels") or []))
    input_schema = property(lambda self: list(self.spec.get("input_schema") or []))
    training_dataset = property(lambda self: self.spec.get("training_dataset"))
    feature_view = property(lambda self: self.spec.get("feature_view"))
    artifact_sha256 = property(lambda self: self.spec["artifact_sha256"])

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.spec["created_at"])

    @property
    def path(self) -> Path:
        return self._registry.model_path(self.name, self.version)

    @property
    def input_example(self) -> pd.DataFrame | None:
        example = self.spec.get("input_example")
        if example is None:
            return None
        frame = pd.DataFrame(example["rows"], columns=example["columns"])
        for column in example.get("timestamps", []):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def verify(self) -> None:
        """Checks every artifact file against its registered SHA-256.

        Raises:
            ModelIntegrityError: naming each file that is missing, changed or foreign.
        """
        verify_folder(self.path, self.spec["files"], f"model {self.name} v{self.version}")

    def load(self) -> Any:
        """The model object, after :meth:`verify` (cached on this handle)."""
        if self._model is None:
            self.verify()
            flavor = flavor_named(self.flavor)
            self._model = flavor.load(self.path, self.spec.get("flavor_options") or {})
        return self._model

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Predictions for ``features`` (a frame with :attr:`features` as columns; extra columns are dropped)."""
        return self._flavor().predict(self.load(), self._select(features))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray | None:
        """Class probabilities (classifiers), else None."""
        return self._flavor().predict_proba(self.load(), self._select(features))

    def _flavor(self) -> Flavor:
        return flavor_named(self.flavor)

    def _select(self, features: pd.DataFrame) -> pd.DataFrame:
        wanted = self.features
        if not wanted:
            return features
        missing = [c for c in wanted if c not in features.columns]
        if missing:
            raise InvalidDataError(f"model {self.name} v{self.version}: input lacks feature(s) {missing}; "
                                   f"it was trained on {wanted}")
        return features[wanted]

    # --- metadata that may change after registration ---------------------------------------------------------

    def set_tag(self, key: str, value: Any) -> None:
        _check_tag(key, value)
        self._update(lambda spec: spec.setdefault("tags", {}).__setitem__(key, value))

    def delete_tag(self, key: str) -> None:
        self._update(lambda spec: (spec.get("tags") or {}).pop(key, None))

    def set_description(self, description: str) -> None:
        if not isinstance(description, str):
            raise InvalidDataError(f"description must be a string, got {description!r}")
        self._update(lambda spec: spec.__setitem__("description", description))

    def delete(self) -> None:
        """Deletes the version and its artifact (refused while a deployment serves it)."""
        self._registry.delete_model(self.name, self.version)

    def _update(self, change: Any) -> None:
        self.spec = self._registry._update_spec(self.name, self.version, change)


class ModelRegistry:
    """Models of one feature-store project. Get it with ``FeatureStore.get_model_registry()``."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store

    @property
    def _registry(self) -> Any:
        return self._store.registry

    def model_path(self, name: str, version: int) -> Path:
        return self._store.project_path / "models" / name / f"v{version}"

    # --- registering -------------------------------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        model: Any,
        *,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        training_dataset: TrainingDataset | None = None,
        feature_view: FeatureView | None = None,
        features: Sequence[str] | None = None,
        input_example: pd.DataFrame | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        flavor: str | None = None,
        reuse_identical: bool = False,
    ) -> ModelVersion:
        """Saves ``model`` as the next version of ``name`` and registers it.

        Args:
            model: a scikit-learn estimator, or any object implementing ``PythonModel`` (save/load/predict).
            metrics: numbers to compare versions by (``get_best_model``), e.g. ``{"roc_auc": 0.71}``.
            params: hyper-parameters (JSON values).
            training_dataset: the dataset it was trained on: its view, version, content hash and pinned commits
                are recorded, and its features (in order) become the model's input unless ``features`` is given.
            feature_view: the view serving the model (default: the training dataset's).
            features: input columns, in the order the model expects them.
            input_example: a few input rows (at most 20 are kept); gives the input schema's types.
            tags: small JSON values, e.g. ``{"team": "delays"}``.
            flavor: ``"sklearn"`` or ``"python"``; found from the model by default.
            reuse_identical: if a registered version of ``name`` has the same artifact (SHA-256 over its files),
                training-dataset lineage and params, return it instead of registering a copy: deterministic
                training repeated on the same data is the same model (what a re-run of a pipeline wants).

        Raises:
            InvalidDataError: a bad name, metric (not a finite number), tag or model (naming it).
        """
        check_name("model", name)
        chosen = flavor_named(flavor) if flavor is not None else flavor_for(model)
        spec = self._describe(name, chosen, metrics, params, training_dataset, feature_view, features,
                              input_example, description, tags)
        home = self._store.project_path / "models" / name
        home.mkdir(parents=True, exist_ok=True)
        folder = home / f".tmp-{uuid.uuid4().hex}"
        folder.mkdir()
        try:
            spec["flavor_options"] = chosen.save(model, folder)
            spec["files"] = hash_folder(folder)
            if not spec["files"]:
                raise InvalidDataError(f"model {name}: the {chosen.name} flavor wrote no files")
            spec["artifact_sha256"] = artifact_sha256(spec["files"])
            if reuse_identical:
                same = self._identical_version(name, spec)
                if same is not None:
                    return same
            version = self._insert(name, spec)
            spec["version"] = version
            try:
                os.replace(folder, self.model_path(name, version))
            except OSError:
                self._delete_row(name, version)
                raise
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
        return ModelVersion(self, spec)

    def _describe(self, name: str, flavor: Flavor, metrics: Any, params: Any, training_dataset: Any,
                  feature_view: Any, features: Any, input_example: Any, description: str, tags: Any,
                  ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": name,
            "flavor": flavor.name,
            "metrics": _metrics(name, metrics),
            "params": _json_values(f"model {name}: params", dict(params or {})),
            "description": description,
            "tags": {},
            "created_at": datetime.now(timezone.utc).isoformat(),
            "training_dataset": None,
            "feature_view": None,
            "features": list(features) if features is not None else [],
            "labels": [],
            "input_schema": [],
            "input_example": None,
        }
        for key, value in dict(tags or {}).items():
            _check_tag(key, value)
            spec["tags"][key] = value
        if training_dataset is not None:
            td = training_dataset
            spec["training_dataset"] = {
                "feature_view": td.view.name, "feature_view_version": td.view.version, "version": td.version,
                "content_hash": td.content_hash, "pinned_commits": td.pinned_commits,
            }
            spec["labels"] = list(td.spec.get("labels") or [])
            if features is None:
                spec["features"] = list(td.spec.get("features") or [])
            feature_view = feature_view or td.view
            spec["input_schema"] = _schema_of_dataset(td, spec["features"])
        if feature_view is not None:
            spec["feature_view"] = {"name": feature_view.name, "version": feature_view.version}
            if not spec["features"]:
                spec["features"] = list(feature_view.feature_names)
        if input_example is not None:
            if not isinstance(input_example, pd.DataFrame):
                raise InvalidDataError(f"model {name}: input_example must be a pandas DataFrame, "
                                       f"got {type(input_example).__name__}")
            spec["input_example"] = _example(input_example)
            spec["input_schema"] = [{"name": str(f.name), "type": str(f.type)}
                                    for f in pa.Schema.from_pandas(input_example, preserve_index=False)]
            if not spec["features"]:
                spec["features"] = [str(c) for c in input_example.columns]
        if not isinstance(description, str):
            raise InvalidDataError(f"model {name}: description must be a string, got {description!r}")
        return spec

    # --- reading -----------------------------------------------------------------------------------------------

    def get_model(self, name: str, version: int | None = None) -> ModelVersion:
        """A version of ``name`` (the latest when ``version`` is None).

        Raises:
            NotFoundError: naming the versions (or models) that exist.
        """
        _check_version(name, version)
        project = self._store.project

        def work(session: Session) -> dict[str, Any]:
            stmt = select(ModelVersionRow).where(ModelVersionRow.project == project, ModelVersionRow.name == name)
            stmt = stmt.order_by(ModelVersionRow.version.desc()) if version is None else stmt.where(
                ModelVersionRow.version == version)
            row = session.scalars(stmt.limit(1)).first()
            if row is None:
                raise NotFoundError(self._not_found(session, name, version))
            return dict(row.spec)

        return ModelVersion(self, self._registry._read(f"reading model {name!r}", work))

    def get_models(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        project = self._store.project
        stmt = (select(ModelVersionRow).where(ModelVersionRow.project == project, ModelVersionRow.name == name)
                .order_by(ModelVersionRow.version))
        specs = self._registry._read(f"listing versions of model {name!r}",
                                     lambda s: [dict(r.spec) for r in s.scalars(stmt)])
        return [ModelVersion(self, spec) for spec in specs]

    def list_models(self) -> list[str]:
        """Names of the project's models."""
        project = self._store.project
        stmt = (select(ModelVersionRow.name).where(ModelVersionRow.project == project).distinct()
                .order_by(ModelVersionRow.name))
        return self._registry._read("listing models", lambda s: list(s.scalars(stmt)))

    def get_best_model(self, name: str, metric: str, direction: Direction = "max") -> ModelVersion:
        """The version of ``name`` with the largest (``"max"``) or smallest (``"min"``) ``metric``; ties go to
        the newest version. Versions without the metric are skipped.

        Raises:
            NotFoundError: no version has the metric (naming the metrics they have).
        """
        if direction not in ("max", "min"):
            raise InvalidDataError(f"direction must be 'max' or 'min', got {direction!r}")
        versions = self.get_models(name)
        if not versions:
            raise NotFoundError(self._registry._read("reading models", lambda s: self._not_found(s, name, None)))
        scored = [v for v in versions if metric in v.metrics]
        if not scored:
            known = sorted({m for v in versions for m in v.metrics})
            raise NotFoundError(f"model {name!r}: no version has metric {metric!r}; metrics recorded: {known}")
        sign = 1 if direction == "max" else -1
        return max(scored, key=lambda v: (sign * v.metrics[metric], v.version))

    # --- deleting ----------------------------------------------------------------------------------------------

    def delete_model(self, name: str, version: int) -> None:
        """Deletes a version and its artifact.

        Raises:
            InvalidDataError: a deployment serves that version or would roll back to it (naming it): deploy another
                version or delete the deployment first.
            NotFoundError: no such version.
        """
        _check_version(name, version)
        project = self._store.project

        def work(session: Session) -> None:
            row = session.scalars(select(ModelVersionRow).where(
                ModelVersionRow.project == project, ModelVersionRow.name == name,
                ModelVersionRow.version == version)).first()
            if row is None:
                raise NotFoundError(self._not_found(session, name, version))
            serving = session.scalars(select(DeploymentRow.name).where(
                DeploymentRow.project == project, DeploymentRow.model_name == name,
                DeploymentRow.model_version == version)).all()
            if serving:
                raise InvalidDataError(
                    f"model {name} v{version} is served by deployment(s) {sorted(serving)}; deploy another version "
                    "or delete the deployment first"
                )
            # the version a deployment would roll back to must stay loadable (state["previous"], JSON: checked here)
            fallback = [d.name for d in session.scalars(select(DeploymentRow).where(DeploymentRow.project == project))
                        if (d.state or {}).get("previous") == {"model_name": name, "model_version": version}]
            if fallback:
                raise InvalidDataError(
                    f"model {name} v{version} is the rollback target of deployment(s) {sorted(fallback)}; switch them "
                    "to another version first"
                )
            session.delete(row)

        self._registry._write(f"deleting model {name!r} v{version}", work)
        shutil.rmtree(self.model_path(name, version), ignore_errors=True)

    # --- plumbing ----------------------------------------------------------------------------------------------

    def _insert(self, name: str, spec: dict[str, Any]) -> int:
        project = self._store.project

        def work(session: Session) -> int:
            latest = session.scalars(
                select(ModelVersionRow.version).where(ModelVersionRow.project == project,
                                                      ModelVersionRow.name == name)
                .order_by(ModelVersionRow.version.desc()).limit(1)).first()
            version = (latest or 0) + 1
            session.add(ModelVersionRow(project=project, name=name, version=version,
                                        artifact_sha256=spec["artifact_sha256"], spec={**spec, "version": version}))
            return version

        return self._registry._write(f"registering model {name!r}", work)

    def _identical_version(self, name: str, spec: dict[str, Any]) -> ModelVersion | None:
        """The newest version with ``spec``'s artifact, training-dataset lineage and params whose files are intact."""
        for version in reversed(self.get_models(name)):
            if (version.artifact_sha256 == spec["artifact_sha256"]
                    and version.training_dataset == spec["training_dataset"] and version.params == spec["params"]):
                try:
                    version.verify()
                except FeatureStoreError:
                    continue  # (a damaged copy is no reason to refuse a fresh registration)
                return version
        return None

    def _delete_row(self, name: str, version: int) -> None:
        project = self._store.project

        def work(session: Session) -> None:
            for row in session.scalars(select(ModelVersionRow).where(
                    ModelVersionRow.project == project, ModelVersionRow.name == name,
                    ModelVersionRow.version == version)):
                session.delete(row)

        self._registry._write(f"removing model {name!r} v{version}", work)

    def _update_spec(self, name: str, version: int, change: Any) -> dict[str, Any]:
        project = self._store.project

        def work(session: Session) -> dict[str, Any]:
            row = session.scalars(select(ModelVersionRow).where(
                ModelVersionRow.project == project, ModelVersionRow.name == name,
                ModelVersionRow.version == version)).first()
            if row is None:
                raise NotFoundError(self._not_found(session, name, version))
            spec = json.loads(json.dumps(row.spec))  # a new object: SQLAlchemy notices the change
            change(spec)
            row.spec = spec
            return spec

        return self._registry._write(f"updating model {name!r} v{version}", work)

    def _not_found(self, session: Session, name: str, version: int | None) -> str:
        project = self._store.project
        versions = session.scalars(select(ModelVersionRow.version).where(
            ModelVersionRow.project == project, ModelVersionRow.name == name).order_by(ModelVersionRow.version)).all()
        if versions:
            return (f"model {name!r} version {version} not found in project {project!r}; "
                    f"versions: {', '.join(map(str, versions))}")
        names = session.scalars(select(ModelVersionRow.name).where(ModelVersionRow.project == project)
                                .distinct().order_by(ModelVersionRow.name)).all()
        return (f"model {name!r} not found in project {project!r}; "
                + (f"models: {', '.join(names)}" if names else "the project has no models"))


def _check_version(name: str, version: Any) -> None:
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise InvalidDataError(f"model {name}: version must be a positive integer, got {version!r}")


def _metrics(name: str, metrics: Any) -> dict[str, float]:
    out = {}
    for key, value in dict(metrics or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidDataError(f"model {name}: metric names must be non-empty strings, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(value)):
            raise InvalidDataError(f"model {name}: metric {key!r} must be a finite number, got {value!r}")
        out[key] = float(value)
    return out


def _json_values(what: str, values: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(values, default=_plain))
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"{what} must be JSON values: {exc}") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not a JSON value")


def _check_tag(key: Any, value: Any) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidDataError(f"tag names must be non-empty strings, got {key!r}")
    _json_values(f"tag {key!r}", {key: value})


def _example(frame: pd.DataFrame) -> dict[str, Any]:
    head = frame.head(MAX_EXAMPLE_ROWS)
    timestamps = [str(c) for c in head.columns if pd.api.types.is_datetime64_any_dtype(head[c])]
    rows = json.loads(head.to_json(orient="values", date_format="iso", date_unit="us"))
    return {"columns": [str(c) for c in head.columns], "rows": rows, "timestamps": timestamps}


def _schema_of_dataset(td: TrainingDataset, features: list[str]) -> list[dict[str, str]]:
    """Feature types from the dataset's first parquet file (csv datasets have none to give)."""
    if td.data_format != "parquet":
        return []
    import pyarrow.parquet as pq

    files = td.files(td.splits[0])
    if not files:
        return []
    schema = pq.read_schema(files[0])
    return [{"name": f, "type": str(schema.field(f).type)} for f in features if schema.get_field_index(f) >= 0]
