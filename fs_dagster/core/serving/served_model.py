"""A model version ready to serve: its verified artifact, the feature view that builds its input, and the training
dataset's fitted transformations, used by the seldon model class, by switch validation and by the benchmark.

Loading checks everything a request would trip over later (the artifact's SHA-256 of every file, the view and
dataset it names, features the view lacks, transformations that need fitting), so a version that cannot serve is
refused before it reaches a running server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError, NotFoundError
from fs_dagster.core.models.flavors import flavor_named
from fs_dagster.core.serving.payload import DEFAULT_MAX_BATCH, PredictionRequest, RequestError, RequestParser
from fs_dagster.core.transformations import resolve

if TYPE_CHECKING:
    from fs_dagster.core.feature_view import FeatureView
    from fs_dagster.core.models.registry import ModelVersion
    from fs_dagster.core.store import FeatureStore


@dataclass
class Prediction:
    """What one request produced: the model input (``frame``, columns = the model's features), predictions and,
    for classifiers, class probabilities (columns in ``classes`` order)."""

    frame: pd.DataFrame
    predictions: np.ndarray
    probabilities: np.ndarray | None


class ServedModel:
    """One model version wired to its feature view. Build it with :meth:`load`.

    Attributes:
        version: the :class:`ModelVersion`.
        view: the serving :class:`FeatureView` (transformations initialised).
        features: the model's input columns, in order.
        classes: class labels of a classifier (``classes_``), else None.
        parser: checks request payloads (serving keys, types, batch size).
    """

    def __init__(self, version: ModelVersion, model: Any, view: FeatureView, key_types: dict[str, Any],
                 max_batch: int) -> None:
        self.version = version
        self.model = model
        self.view = view
        self.features = version.features or list(view.feature_names)
        self._flavor = flavor_named(version.flavor)
        classes = getattr(model, "classes_", None)
        self.classes = [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None
        self.has_probabilities = callable(getattr(model, "predict_proba", None))
        self.parser = RequestParser(view.serving_keys, key_types, view.feature_names, max_batch)
        self._select = None if self.features == list(view.feature_names) else self.features

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def model_version(self) -> int:
        return self.version.version

    @classmethod
    def load(cls, store: FeatureStore, model_name: str, model_version: int, *,
             feature_view: tuple[str, int] | None = None, max_batch: int = DEFAULT_MAX_BATCH) -> ServedModel:
        """Loads and checks a registered version for serving.

        Args:
            feature_view: (name, version) of the view to serve with; default: the one the model was registered with.

        Raises:
            NotFoundError: the model version, its view or its training dataset is not registered.
            ModelIntegrityError: an artifact file changed (naming it).
            InvalidDataError: the view lacks a model feature or its transformations need fitting (naming them).
        """
        mv = store.get_model_registry().get_model(model_name, model_version)
        model = mv.load()
        view = _serving_view(store, mv, feature_view)
        missing = [f for f in mv.features if f not in view.feature_names]
        if missing:
            raise InvalidDataError(f"model {mv.name} v{mv.version}: feature view {view.name} v{view.version} lacks its "
                                   f"feature(s) {missing}; the view has {view.feature_names}")
        root = view.query.root
        schema = store.get_feature_group(root.feature_group, root.version).schema()
        key_types = {k: schema.field(k).type for k in view.serving_keys if schema.get_field_index(k) >= 0}
        return cls(mv, model, view, key_types, max_batch)

    def warm_up(self) -> None:
        """One lookup and one prediction on made-up data before the worker takes requests: the first call of a
        freshly loaded model pays lazy imports and caches (measured 0.14 s here) that must not land on a client,
        e.g. right after a rolling switch. Failures are ignored (the data is made up)."""
        try:
            self.view.get_feature_vectors([self.parser.sample_entity()], allow_missing=True, return_type="pandas")
        except Exception:  # noqa: BLE001 - e.g. the online store is not reachable yet
            pass
        example = self.version.input_example
        if example is not None and all(f in example.columns for f in self.features):
            frame = example[self.features]
        else:  # (made-up numbers: enough to exercise a numeric model; any failure is ignored)
            frame = pd.DataFrame(0.0, index=[0], columns=self.features)
        try:
            self._flavor.predict(self.model, frame)
            if self.has_probabilities:
                self._flavor.predict_proba(self.model, frame)
        except Exception:  # noqa: BLE001
            pass

    def predict(self, request: PredictionRequest) -> Prediction:
        """Feature vectors from the online store (one round trip), the model's predictions and probabilities.

        Raises:
            RequestError: 404 an entity without an online row, 400 a key the store refuses, 503 the online store
                is unreachable, 422 the model cannot predict on rows with missing features.
        """
        from fs_dagster.core.online.online_store import OnlineStoreUnavailable

        try:
            frame = self.view.get_feature_vectors(request.entities, request.passed_features, request.allow_missing,
                                                  return_type="pandas")
        except NotFoundError as exc:
            raise RequestError(str(exc), status=404, reason="ENTITY_NOT_FOUND") from exc
        except OnlineStoreUnavailable as exc:
            raise RequestError(str(exc), status=503, reason="ONLINE_STORE_UNAVAILABLE") from exc
        except InvalidDataError as exc:
            raise RequestError(str(exc), status=400, reason="BAD_KEY") from exc
        if self._select is not None:
            frame = frame[self._select]
        try:
            predictions = self._flavor.predict(self.model, frame)
            probabilities = self._flavor.predict_proba(self.model, frame) if self.has_probabilities else None
        except Exception as exc:
            if request.allow_missing and frame.isna().to_numpy().any():
                rows = sorted(set(np.nonzero(frame.isna().to_numpy())[0].tolist()))
                columns = [c for c in frame.columns if frame[c].isna().any()]
                raise RequestError(
                    f"model {self.name} v{self.model_version} cannot predict entities {rows[:20]} with missing "
                    f"feature(s) {columns} (allow_missing): {exc}", status=422, reason="MISSING_FEATURES") from exc
            raise
        return Prediction(frame, predictions, probabilities)


def _serving_view(store: FeatureStore, mv: ModelVersion, override: tuple[str, int] | None) -> FeatureView:
    """The view to serve ``mv`` with, its transformations fitted on the model's training dataset."""
    lineage = mv.training_dataset or {}
    if override is not None:
        name, version = override
    elif mv.feature_view:
        name, version = mv.feature_view["name"], int(mv.feature_view["version"])
    else:
        raise InvalidDataError(f"model {mv.name} v{mv.version} names no feature view; register it with "
                               "training_dataset=... or feature_view=..., or give the deployment a feature_view")
    try:
        view = store.get_feature_view(name, version)
    except NotFoundError as exc:
        raise NotFoundError(f"model {mv.name} v{mv.version}: its feature view {name} v{version} is not "
                            f"registered: {exc}") from exc
    fitted = None
    if lineage and (lineage.get("feature_view"), int(lineage.get("feature_view_version", 0))) == (name, version):
        try:
            td = view.get_training_dataset(int(lineage["version"]))
        except (NotFoundError, FeatureStoreError) as exc:
            raise NotFoundError(f"model {mv.name} v{mv.version}: training dataset v{lineage['version']} of "
                                f"{name} v{version} is not available: {exc}") from exc
        fitted = td.transformations
    if fitted is None and any(resolve(f).fit is not None for f in view.transformation_functions.values()):
        raise InvalidDataError(
            f"model {mv.name} v{mv.version}: feature view {name} v{version} has transformations that need fitted "
            "statistics, and the model records no training dataset of that view to take them from"
        )
    view.init_serving(fitted)
    return view
