"""Prediction requests and responses of a deployment: the JSON contract, checked before anything is looked up.

Request (``POST /api/v1.0/predictions``, ``Content-Type: application/json``)::

    {"jsonData": {
        "entities": [{"flight_id": 17, "origin": "JFK", "time_hour": "2013-01-01T10:00:00Z"}, ...],
        "passed_features": [{"temp": 41.0}, ...],   # optional: one object per entity, replaces looked-up values
        "allow_missing": false,                     # optional: an entity without an online row gets nulls
        "return_vectors": false                     # optional: also return the model input rows
    }}

Every entity carries exactly the deployment's serving keys, typed as the feature view declares them: integer keys
take JSON integers, float keys numbers, string keys strings, bool keys true/false, timestamp keys ISO-8601 text
(without an offset = UTC), date keys ``YYYY-MM-DD``. ``{"jsonData": {"echo": <anything>}}`` answers ``<anything>``
without a lookup: the transport floor of the server, for benchmarks and probes.

Response::

    {"jsonData": {"model": "delays", "model_version": 3, "deployment": "delays_api", "request_id": "…",
                  "predictions": [...], "classes": [...], "probabilities": [[...], ...],   # (classifiers)
                  "features": [...], "vectors": [[...], ...]},                            # (return_vectors)
     "meta": {"tags": {"model": "delays", "model_version": 3, "deployment": "delays_api"}}}

Errors are :class:`RequestError` (the seldon model class turns them into seldon's error body with the HTTP status):
400 malformed request, missing/unknown/mistyped key, 404 an entity without an online row, 413 a batch above the
deployment's ``max_batch``, 422 a model that cannot predict on rows with missing features, 503 online store down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Sequence

import pyarrow as pa

DEFAULT_MAX_BATCH = 10_000
REQUEST_FIELDS = ("entities", "passed_features", "allow_missing", "return_vectors", "echo")


class RequestError(Exception):
    """A request the deployment refuses; ``status`` is the HTTP status, ``reason`` a short machine-readable code."""

    def __init__(self, message: str, status: int = 400, reason: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


@dataclass
class PredictionRequest:
    """A checked request: entities with keys converted to the declared types."""

    entities: list[dict[str, Any]]
    passed_features: list[dict[str, Any]] | None = None
    allow_missing: bool = False
    return_vectors: bool = False


@dataclass(frozen=True)
class Echo:
    """The ``echo`` request: answered as-is, no lookup, no prediction."""

    payload: Any


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and not (type(value) is float and not math.isfinite(value))


def _parse_timestamp(value: Any) -> datetime:
    if type(value) is not str:
        raise TypeError
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _parse_date(value: Any) -> date:
    if type(value) is not str:
        raise TypeError
    return date.fromisoformat(value)


@dataclass(frozen=True)
class _KeyType:
    """How one serving key is checked: ``accepts`` a JSON value as-is, or ``convert`` raises on a bad one."""

    description: str
    accepts: Callable[[Any], bool] | None = None
    convert: Callable[[Any], Any] | None = None
    sample: Any = None  # a made-up value of the type (warm-up lookups)


def key_type(arrow_type: pa.DataType) -> _KeyType:
    if pa.types.is_boolean(arrow_type):
        return _KeyType("a boolean (true/false)", accepts=lambda v: type(v) is bool, sample=False)
    if pa.types.is_integer(arrow_type):
        return _KeyType("an integer", accepts=_is_int, sample=0)
    if pa.types.is_floating(arrow_type):
        return _KeyType("a number", accepts=_is_number, sample=0.0)
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return _KeyType("a string", accepts=lambda v: type(v) is str, sample="")
    if pa.types.is_timestamp(arrow_type):
        return _KeyType("an ISO-8601 timestamp string, e.g. \"2013-01-01T10:00:00Z\"", convert=_parse_timestamp,
                        sample=datetime(1970, 1, 1, tzinfo=timezone.utc))
    if pa.types.is_date(arrow_type):
        return _KeyType("a date string, e.g. \"2013-01-01\"", convert=_parse_date, sample=date(1970, 1, 1))
    return _KeyType(str(arrow_type), accepts=lambda v: v is not None, sample="")


class RequestParser:
    """Checks request payloads against a deployment's serving keys (and their declared types) and features.

    Args:
        serving_keys: the feature view's serving keys, in order.
        key_types: Arrow type of each serving key (as declared by the view's feature groups).
        feature_names: the view's features (the only names ``passed_features`` may use).
        max_batch: most entities per request.
    """

    def __init__(self, serving_keys: Sequence[str], key_types: dict[str, pa.DataType], feature_names: Sequence[str],
                 max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.serving_keys = list(serving_keys)
        self.types = {k: key_type(key_types[k]) if k in key_types else _KeyType("any value") for k in self.serving_keys}
        self.feature_names = set(feature_names)
        self.max_batch = max_batch

    def sample_entity(self) -> dict[str, Any]:
        """A made-up entity of the right key types (it need not exist)."""
        return {k: self.types[k].sample for k in self.serving_keys}

    def parse(self, payload: Any) -> PredictionRequest | Echo:
        """The checked request.

        Raises:
            RequestError: naming the field, entity index, key and expected type at fault.
        """
        if not isinstance(payload, dict) or not isinstance(payload.get("jsonData"), dict):
            raise RequestError('the request must be a JSON object with a "jsonData" object, e.g. '
                               '{"jsonData": {"entities": [{...}]}}')
        body = payload["jsonData"]
        unknown = [k for k in body if k not in REQUEST_FIELDS]
        if unknown:
            raise RequestError(f"unknown field(s) {unknown} in jsonData; allowed: {list(REQUEST_FIELDS)}")
        if "echo" in body:
            return Echo(body["echo"])
        entities = body.get("entities")
        if not isinstance(entities, list):
            raise RequestError(f'jsonData.entities must be a list of objects with the serving keys {self.serving_keys}'
                               f', got {_kind(entities)}')
        if not entities:
            raise RequestError("jsonData.entities is empty")
        if len(entities) > self.max_batch:
            raise RequestError(f"batch of {len(entities)} entities is above this deployment's limit of "
                               f"{self.max_batch} (max_batch)", status=413, reason="BATCH_TOO_LARGE")
        allow_missing = self._flag(body, "allow_missing")
        return_vectors = self._flag(body, "return_vectors")
        checked = self._entities(entities)
        passed = self._passed(body.get("passed_features"), len(entities))
        return PredictionRequest(checked, passed, allow_missing, return_vectors)

    @staticmethod
    def _flag(body: dict[str, Any], name: str) -> bool:
        value = body.get(name, False)
        if type(value) is not bool:
            raise RequestError(f"jsonData.{name} must be true or false, got {value!r}")
        return value

    def _entities(self, entities: list[Any]) -> list[dict[str, Any]]:
        if not all(type(e) is dict for e in entities):
            i = next(i for i, e in enumerate(entities) if type(e) is not dict)
            raise RequestError(f"entities[{i}] must be an object with the serving keys {self.serving_keys}, "
                               f"got {_kind(entities[i])}")
        n_keys = len(self.serving_keys)
        converted: dict[str, list[Any]] = {}
        for key in self.serving_keys:
            try:
                values = [e[key] for e in entities]
            except KeyError:
                i = next(i for i, e in enumerate(entities) if key not in e)
                raise RequestError(f"entities[{i}] lacks serving key {key!r}; every entity needs "
                                   f"{self.serving_keys}", reason="MISSING_KEY") from None
            kind = self.types[key]
            if kind.accepts is not None:
                if not all(map(kind.accepts, values)):
                    i = next(i for i, v in enumerate(values) if not kind.accepts(v))
                    raise self._mistyped(i, key, values[i], kind)
            elif kind.convert is not None:
                out = []
                for i, value in enumerate(values):
                    try:
                        out.append(kind.convert(value))
                    except (TypeError, ValueError):
                        raise self._mistyped(i, key, value, kind) from None
                converted[key] = out
        if any(len(e) != n_keys for e in entities):  # every key is there, so a longer entity has unknown fields
            i = next(i for i, e in enumerate(entities) if len(e) != n_keys)
            extra = [k for k in entities[i] if k not in self.types]
            raise RequestError(f"entities[{i}] has unknown field(s) {extra}; the serving keys are "
                               f"{self.serving_keys} (features to pass go in passed_features)", reason="UNKNOWN_KEY")
        if not converted:
            return entities
        columns = [converted.get(k) or [e[k] for e in entities] for k in self.serving_keys]
        return [dict(zip(self.serving_keys, row)) for row in zip(*columns)]

    def _mistyped(self, index: int, key: str, value: Any, kind: _KeyType) -> RequestError:
        return RequestError(f"entities[{index}].{key} must be {kind.description}, got {value!r}",
                            reason="WRONG_KEY_TYPE")

    def _passed(self, passed: Any, n: int) -> list[dict[str, Any]] | None:
        if passed is None:
            return None
        if not isinstance(passed, list) or len(passed) != n:
            raise RequestError(f"jsonData.passed_features must be a list of {n} objects (one per entity), got "
                               f"{_kind(passed)}" + (f" of {len(passed)}" if isinstance(passed, list) else ""))
        for i, row in enumerate(passed):
            if not isinstance(row, dict):
                raise RequestError(f"passed_features[{i}] must be an object of feature values, got {_kind(row)}")
            unknown = [k for k in row if k not in self.feature_names]
            if unknown:
                raise RequestError(f"passed_features[{i}] names unknown feature(s) {unknown}; the view's features "
                                   f"are {sorted(self.feature_names)}", reason="UNKNOWN_FEATURE")
        return passed if any(passed) else None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def jsonable(value: Any) -> Any:
    """A model output or feature value as JSON: numpy scalars as numbers, timestamps as ISO text, NaN as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        return jsonable(value.item())
    if value is None or isinstance(value, (int, str, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    try:
        import pandas as pd

        if value is pd.NaT or (not isinstance(value, (list, dict)) and pd.isna(value)):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
