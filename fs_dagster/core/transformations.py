"""Transformation functions of feature views, applied identically to training frames and served vectors.

Built-ins that need statistics (``standard_scaler``, ``min_max_scaler``, ``label_encoder``) are fitted once on
training data; the fitted parameters are plain JSON (stored with the training dataset) and the same arithmetic runs
column-wise in training and per value in serving. User functions are stateless module-level functions named by
import path (``"my_project.features:log1p"``) and registered with :func:`transformation_function`.

Example:
    @transformation_function
    def log_distance(value):
        return math.log1p(value)

    fv = fs.get_or_create_feature_view(..., transformation_functions={"distance": "standard_scaler",
                                                                       "temp": "my_project.features:log_distance"})
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pandas as pd

from fs_dagster.core.errors import InvalidDataError

_USER_FUNCTIONS: dict[str, Callable[[Any], Any]] = {}


def transformation_function(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Registers a stateless per-value function under ``"<module>:<name>"`` (how feature views refer to it)."""
    if "<locals>" in fn.__qualname__:
        raise InvalidDataError(f"transformation {fn.__qualname__}: define it at module level so serving can import it")
    _USER_FUNCTIONS[f"{fn.__module__}:{fn.__qualname__}"] = fn
    return fn


@dataclass(frozen=True)
class Transformation:
    """One named transformation: how to fit it (None: stateless) and how to apply it to a value or a column."""

    name: str
    fit: Callable[[pd.Series], dict[str, Any]] | None
    apply_value: Callable[[Any, dict[str, Any]], Any]

    def apply_series(self, values: pd.Series, params: dict[str, Any]) -> pd.Series:
        return values.map(lambda v: self.apply_value(v, params), na_action="ignore")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _standard_fit(values: pd.Series) -> dict[str, Any]:
    numeric = pd.to_numeric(values, errors="raise").dropna()
    std = float(numeric.std(ddof=0)) if len(numeric) else 0.0
    return {"mean": float(numeric.mean()) if len(numeric) else 0.0, "std": std}


def _standard_apply(value: Any, params: dict[str, Any]) -> Any:
    if _missing(value):
        return None
    return (float(value) - params["mean"]) / params["std"] if params["std"] else 0.0


def _min_max_fit(values: pd.Series) -> dict[str, Any]:
    numeric = pd.to_numeric(values, errors="raise").dropna()
    return {"min": float(numeric.min()) if len(numeric) else 0.0, "max": float(numeric.max()) if len(numeric) else 0.0}


def _min_max_apply(value: Any, params: dict[str, Any]) -> Any:
    if _missing(value):
        return None
    span = params["max"] - params["min"]
    return (float(value) - params["min"]) / span if span else 0.0


def _label_fit(values: pd.Series) -> dict[str, Any]:
    classes = sorted({str(v) for v in values.dropna()})
    return {"classes": classes}


def _label_apply(value: Any, params: dict[str, Any]) -> Any:
    if _missing(value):
        return None
    try:
        return params["classes"].index(str(value))
    except ValueError:
        return -1  # a class unseen in training


BUILTINS: dict[str, Transformation] = {
    "standard_scaler": Transformation("standard_scaler", _standard_fit, _standard_apply),
    "min_max_scaler": Transformation("min_max_scaler", _min_max_fit, _min_max_apply),
    "label_encoder": Transformation("label_encoder", _label_fit, _label_apply),
}


def resolve(name: str) -> Transformation:
    """A built-in by name, or a user function by ``"module:function"`` path (imported on demand)."""
    if name in BUILTINS:
        return BUILTINS[name]
    if ":" not in name:
        raise InvalidDataError(
            f"unknown transformation {name!r}: use one of {sorted(BUILTINS)} or a 'module:function' path"
        )
    if name not in _USER_FUNCTIONS:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise InvalidDataError(f"transformation {name!r} cannot be imported: {exc}") from exc
        _USER_FUNCTIONS[name] = fn
    fn = _USER_FUNCTIONS[name]
    return Transformation(name, None, lambda value, _params: None if _missing(value) else fn(value))


UNSEEN_CLASS = "__unseen__"  # what the inverse of label_encoder gives for -1 (a class training never saw)


def inverse_series(name: str, values: pd.Series, params: dict[str, Any]) -> pd.Series | None:
    """The raw values behind transformed ``values`` for the built-ins (scalers: the affine map back, up to float
    rounding; ``label_encoder``: the class names, :data:`UNSEEN_CLASS` for -1), or None when ``name`` has no
    inverse (user functions). Missing values stay missing.

    Used to show served inputs (logged after transformation) in the units of the training data.
    """
    numeric = pd.to_numeric(values, errors="coerce") if name in BUILTINS else None
    if name == "standard_scaler":
        return (numeric * params["std"] + params["mean"]).astype("float64")
    if name == "min_max_scaler":
        return (numeric * (params["max"] - params["min"]) + params["min"]).astype("float64")
    if name == "label_encoder":
        classes = list(params["classes"])

        def decode(code: Any) -> Any:
            index = int(code)
            return classes[index] if 0 <= index < len(classes) else UNSEEN_CLASS

        return numeric.map(decode, na_action="ignore").astype("object")
    return None


@dataclass(frozen=True)
class FittedTransformations:
    """Transformations of a feature view with their fitted parameters (JSON-serializable via ``to_dict``)."""

    functions: Mapping[str, str]  # feature name -> transformation name
    params: Mapping[str, dict[str, Any]]  # feature name -> fitted parameters ({} for stateless functions)

    @classmethod
    def fit(cls, functions: Mapping[str, str], data: pd.DataFrame) -> FittedTransformations:
        """Fits every transformation that needs statistics on ``data`` (the training split only)."""
        params = {}
        for feature, name in functions.items():
            if feature not in data.columns:
                raise InvalidDataError(f"transformation of {feature!r}: no such column in the training data")
            transformation = resolve(name)
            try:
                params[feature] = transformation.fit(data[feature]) if transformation.fit else {}
            except (TypeError, ValueError) as exc:
                raise InvalidDataError(f"cannot fit {name} on feature {feature!r}: {exc}") from exc
        return cls(dict(functions), params)

    def transform_frame(self, data: pd.DataFrame) -> pd.DataFrame:
        out = data.copy()
        for feature, name in self.functions.items():
            if feature in out.columns:
                out[feature] = resolve(name).apply_series(out[feature], self.params[feature]).astype(
                    "float64" if name in ("standard_scaler", "min_max_scaler") else "object"
                )
                if name == "label_encoder":
                    out[feature] = out[feature].astype("Int64")
        return out

    def transform_vector(self, names: list[str], vector: list[Any]) -> list[Any]:
        out = list(vector)
        for i, name in enumerate(names):
            function = self.functions.get(name)
            if function is not None:
                out[i] = resolve(function).apply_value(out[i], self.params[name])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"functions": dict(self.functions), "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FittedTransformations:
        return cls(dict(data["functions"]), dict(data["params"]))
