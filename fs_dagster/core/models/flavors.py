"""How a model is saved, loaded and asked for predictions ("flavors"): scikit-learn estimators, and any Python
model that implements the small :class:`PythonModel` interface.

A flavor writes the artifact into a folder of its own; the registry hashes every file of that folder, so a flavor
never needs to know about integrity checks.

Example:
    class MeanModel:                       # any Python model: save / load / predict
        def __init__(self, mean: float) -> None:
            self.mean = mean
        def save(self, folder: Path) -> None:
            (folder / "mean.txt").write_text(str(self.mean))
        @classmethod
        def load(cls, folder: Path) -> "MeanModel":
            return cls(float((folder / "mean.txt").read_text()))
        def predict(self, features: pd.DataFrame) -> list[float]:
            return [self.mean] * len(features)
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from fs_dagster.core.errors import InvalidDataError


@runtime_checkable
class PythonModel(Protocol):
    """The interface any Python model implements to be registered with ``flavor="python"``.

    ``load`` is a classmethod (or staticmethod) of a class importable by its module path, so a serving process
    can rebuild the model from the folder alone.
    """

    def save(self, folder: Path) -> None:
        """Writes everything needed to rebuild the model into ``folder`` (which exists and is empty)."""

    @classmethod
    def load(cls, folder: Path) -> PythonModel:
        """Rebuilds the model from the files :meth:`save` wrote."""

    def predict(self, features: pd.DataFrame) -> Sequence[Any]:
        """One prediction per row of ``features`` (columns in the order the model was trained with)."""


class Flavor:
    """Base of the flavors: save/load an artifact folder and predict from a frame."""

    name = ""

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        """Writes the artifact into ``folder``; returns what :meth:`load` needs besides the folder."""
        raise NotImplementedError

    def load(self, folder: Path, options: dict[str, Any]) -> Any:
        raise NotImplementedError

    def predict(self, model: Any, features: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(features))

    def predict_proba(self, model: Any, features: pd.DataFrame) -> np.ndarray | None:
        """Class probabilities when the model gives them (classifiers), else None."""
        method = getattr(model, "predict_proba", None)
        return None if method is None else np.asarray(method(features))


class SklearnFlavor(Flavor):
    """scikit-learn estimators and pipelines, saved with joblib (``model.joblib``)."""

    name = "sklearn"
    FILE = "model.joblib"

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        import joblib
        import sklearn

        joblib.dump(model, folder / self.FILE)
        return {"file": self.FILE, "sklearn_version": sklearn.__version__, "class": _import_path(type(model))}

    def load(self, folder: Path, options: dict[str, Any]) -> Any:
        import joblib

        return joblib.load(folder / options.get("file", self.FILE))


class PythonFlavor(Flavor):
    """Any object implementing :class:`PythonModel`; its class is recorded by import path."""

    name = "python"

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        cls = type(model)
        if "<locals>" in cls.__qualname__ or cls.__module__ == "__main__":
            raise InvalidDataError(
                f"model class {cls.__qualname__}: define it at module level of an importable module (not in "
                "__main__ or a function) so a serving process can load it"
            )
        model.save(folder)
        return {"class": _import_path(cls)}

    def load(self, folder: Path, options: dict[str, Any]) -> Any:
        cls = _import(options["class"])
        return cls.load(folder)


FLAVORS: dict[str, Flavor] = {f.name: f for f in (SklearnFlavor(), PythonFlavor())}


def flavor_named(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise InvalidDataError(f"unknown model flavor {name!r}; known: {sorted(FLAVORS)}") from None


def flavor_for(model: Any) -> Flavor:
    """The flavor of ``model``: scikit-learn estimators by their base class, else the PythonModel interface.

    Raises:
        InvalidDataError: the model is neither, naming its type and the methods it lacks.
    """
    try:
        from sklearn.base import BaseEstimator

        if isinstance(model, BaseEstimator):
            return FLAVORS["sklearn"]
    except ImportError:  # pragma: no cover - scikit-learn is optional
        pass
    missing = [m for m in ("save", "load", "predict") if not callable(getattr(model, m, None))]
    if missing:
        raise InvalidDataError(
            f"cannot register a {type(model).__module__}.{type(model).__qualname__}: it is not a scikit-learn "
            f"estimator and lacks {missing} of the PythonModel interface (save(folder), classmethod "
            "load(folder), predict(frame))"
        )
    return FLAVORS["python"]


def _import_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidDataError(f"model class {path!r} cannot be imported here: {exc}") from exc
    return target
