"""Inference logging: every answered request goes to a Valkey stream, off the request path, and is flushed into an
inference-log feature group (Hudi) by :func:`flush_inference_log`.

In the serving process, :class:`InferenceLogger` takes each request's entity keys, model input rows, predictions,
model name/version and time into a bounded in-memory queue (a ``put_nowait``: nothing is encoded or sent while the
client waits); a background thread encodes them with MessagePack and appends them to the deployment's stream
(pipelined ``XADD``, one entry per request). A full queue or an unreachable Valkey never fails or slows a request:
the record is dropped and counted (``stats()``, shown by the deployment's health). The stream is capped at
``max_entries`` (``XADD MAXLEN ~``) so an idle flusher cannot fill the Valkey that also holds the online features.

The flush reads the stream from its start, writes the rows as one upsert commit of the group
``<deployment>_inference_log`` (primary key ``request_id`` + ``row``, event time ``predicted_at``) and only then trims
the stream up to the last entry written. A flush interrupted after the commit but before the trim reads the same
entries again next time and upserts the same keys with the same values, so the table never holds a request twice:
at-least-once delivery made exactly-once by the primary key.

Columns of the inference-log group: ``request_id`` (string), ``row`` (position in the request), ``predicted_at``
(UTC), ``model_name``, ``model_version``, the serving keys, the model's input features as served (after the
training dataset's transformations; a feature named like a key or one of these columns is stored as
``feature_<name>``), ``prediction`` and, for classifiers, ``proba_<class>`` per class.
"""

from __future__ import annotations

import atexit
import logging
import math
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

import msgpack
import numpy as np
import pandas as pd
import pyarrow as pa

from fs_dagster.core.errors import InvalidDataError

if TYPE_CHECKING:
    from fs_dagster.core.feature_group import FeatureGroup
    from fs_dagster.core.store import FeatureStore

log = logging.getLogger(__name__)

RECORD_FORMAT = 1
FIELD = b"d"
DEFAULT_MAX_ENTRIES = 1_000_000
DEFAULT_QUEUE_SIZE = 10_000
RESERVED_COLUMNS = ("request_id", "row", "predicted_at", "model_name", "model_version", "prediction")


def stream_key(key_prefix: str, project: str, deployment: str) -> str:
    """The Valkey stream of a deployment's inference log."""
    return f"{key_prefix}{project}:inference_log:{deployment}"


def log_group_name(deployment: str) -> str:
    """The inference-log feature group of a deployment."""
    return f"{deployment}_inference_log"


def new_request_id() -> str:
    return uuid.uuid4().hex


def _plain(value: Any) -> Any:
    """MessagePack fallback: pandas/numpy scalars as Python values (timestamps keep their type)."""
    if isinstance(value, pd.Timestamp):
        return None if value is pd.NaT else value.to_pydatetime()
    if value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def encode_record(request_id: str, at: float, model_name: str, model_version: int, key_names: Sequence[str],
                  entities: Sequence[dict[str, Any]], frame: pd.DataFrame, predictions: Any,
                  classes: Sequence[Any] | None, probabilities: Any) -> bytes:
    """One request as a MessagePack stream value (done on the logger thread, never while a client waits)."""
    keys = [[entity[k] for k in key_names] for entity in entities]
    vectors = frame.to_numpy(dtype=object).tolist()
    record = [
        RECORD_FORMAT, request_id, int(at * 1_000_000), model_name, int(model_version), list(key_names), keys,
        [str(c) for c in frame.columns], vectors, np.asarray(predictions).tolist(),
        None if classes is None else list(classes),
        None if probabilities is None else np.asarray(probabilities).tolist(),
    ]
    return msgpack.packb(record, datetime=True, default=_plain)


@dataclass
class _Stats:
    queued: int = 0
    written: int = 0
    dropped: int = 0
    errors: int = 0
    last_error: str = ""


class InferenceLogger:
    """Appends request records to a Valkey stream from a background thread (see module doc).

    Args:
        client: a valkey-py client (the serving process's online-store connection).
        stream: the stream key (:func:`stream_key`).
        max_entries: approximate cap of the stream's length.
        queue_size: records waiting to be sent; more are dropped (counted), never waited for.
    """

    def __init__(self, client: Any, stream: str, max_entries: int = DEFAULT_MAX_ENTRIES,
                 queue_size: int = DEFAULT_QUEUE_SIZE, linger: float = 0.05) -> None:
        self.client = client
        self.stream = stream
        self.max_entries = max_entries
        self.linger = linger
        self._queue: queue.Queue[tuple | None] = queue.Queue(maxsize=queue_size)
        self._stats = _Stats()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fs-inference-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # a worker stopped gracefully (switch, stop) sends what it still holds

    def log(self, *record: Any) -> None:
        """Queues one request (the arguments of :func:`encode_record`); drops it if the queue is full."""
        try:
            self._queue.put_nowait(record)
            self._stats.queued += 1
        except queue.Full:
            self._stats.dropped += 1

    def stats(self) -> dict[str, Any]:
        s = self._stats
        return {"queued": s.queued, "written": s.written, "dropped": s.dropped, "errors": s.errors,
                "pending": self._queue.qsize(), "last_error": s.last_error}

    def close(self, timeout: float = 5.0) -> None:
        """Sends what is queued (up to ``timeout`` seconds) and stops the thread."""
        if not self._thread.is_alive():
            return
        self._closing.set()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            # linger before sending: requests then share one pipeline, and this thread wakes (and takes the GIL
            # from the request thread) once per ~linger instead of once per request
            if item is not None and self._queue.qsize() < 256:
                self._closing.wait(self.linger)
            batch = [item]
            while len(batch) < 1024:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if r is not None]
            if records:
                self._send(records)
            if len(records) < len(batch):
                return

    def _send(self, records: list[tuple]) -> None:
        try:
            values = [encode_record(*r) for r in records]
        except Exception as exc:  # a value MessagePack cannot take: that record is lost, the logger goes on
            self._failed(len(records), exc)
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for value in values:
                pipe.xadd(self.stream, {FIELD: value}, maxlen=self.max_entries, approximate=True)
            pipe.execute()
            self._stats.written += len(values)
        except Exception as exc:  # Valkey down or refusing: drop (counted), try again with the next records
            self._failed(len(values), exc)
            time.sleep(0.2)

    def _failed(self, n: int, exc: Exception) -> None:
        self._stats.dropped += n
        self._stats.errors += 1
        self._stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("inference log %s: %d record(s) dropped: %s", self.stream, n, self._stats.last_error)


# --- flushing into the inference-log feature group -----------------------------------------------------------


@dataclass
class FlushResult:
    """What one :func:`flush_inference_log` call wrote: stream entries (requests), rows, commit instants, and the ids
    of entries that could not be decoded (skipped and trimmed, so they never block later flushes)."""

    entries: int = 0
    rows: int = 0
    commits: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _column_name(name: str, taken: set[str]) -> str:
    return f"feature_{name}" if name in taken else name


def proba_column(label: Any) -> str:
    """The inference-log column of the probability of class ``label`` (``True`` -> ``proba_true``)."""
    text = re.sub(r"[^a-z0-9_]", "_", str(label).lower())
    return f"proba_{text}"


class _Rows:
    """Decoded stream entries accumulated as columns (``columns[name][i]`` is row i's value)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.n = 0
        self.skipped: list[str] = []

    def _put(self, name: str, value: Any) -> None:
        column = self.columns.get(name)
        if column is None:
            column = self.columns[name] = [None] * self.n
        column.append(value)

    def add(self, entry_id: Any, fields: dict[Any, Any]) -> None:
        ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        try:
            raw = fields.get(FIELD, fields.get(FIELD.decode()))
            (fmt, request_id, at, model_name, model_version, key_names, keys, feature_names, vectors, predictions,
             classes, probabilities) = msgpack.unpackb(raw, timestamp=3)
            if fmt != RECORD_FORMAT or not (len(keys) == len(vectors) == len(predictions)):
                raise ValueError(f"format {fmt}, {len(keys)} keys, {len(vectors)} vectors")
        except Exception as exc:
            log.warning("inference log entry %s skipped: cannot decode it (%s)", ident, exc)
            self.skipped.append(ident)
            return
        taken = set(RESERVED_COLUMNS) | set(key_names)
        feature_columns = [_column_name(f, taken) for f in feature_names]
        proba_columns = [proba_column(c) for c in classes] if classes and probabilities is not None else []
        if len(set(proba_columns)) != len(proba_columns):
            proba_columns = [f"proba_{i}" for i in range(len(proba_columns))]
        predicted_at = datetime.fromtimestamp(at / 1_000_000, timezone.utc)
        put = self._put
        for row, (key_row, vector, prediction) in enumerate(zip(keys, vectors, predictions)):
            put("request_id", request_id)
            put("row", row)
            put("predicted_at", predicted_at)
            put("model_name", model_name)
            put("model_version", model_version)
            for name, value in zip(key_names, key_row):
                put(name, value)
            for name, value in zip(feature_columns, vector):
                put(name, value)
            put("prediction", prediction)
            for name, value in zip(proba_columns, probabilities[row] if proba_columns else ()):
                put(name, value)
            self.n += 1
            for column in self.columns.values():  # columns this record lacks (another model version's) get nulls
                if len(column) < self.n:
                    column.append(None)


def _table(columns: dict[str, list[Any]], existing: pa.Schema | None) -> pa.Table:
    """The rows as Arrow, typed like the existing table where it has the column; columns the table has but these
    rows lack are added as nulls (the writer refuses a batch without an existing column)."""
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
        if name == "predicted_at":
            array = pa.array(values, pa.timestamp("us", tz="UTC"))
        else:
            try:
                array = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds of values: keep them as text
                array = pa.array([None if v is None else str(v) for v in values], pa.string())
        if pa.types.is_null(array.type):
            if existing is None or existing.get_field_index(name) < 0:
                continue  # no value and no known type yet: the column appears with its first value
            array = pa.nulls(len(values), existing.field(name).type)
        arrays[name] = array
    n = len(columns.get("request_id", ()))
    if existing is not None:
        for f in existing:
            if f.name not in arrays and not f.name.startswith("_hoodie_"):
                arrays[f.name] = pa.nulls(n, f.type)
    return pa.table(arrays)


def inference_log_group(store: FeatureStore, deployment: str) -> FeatureGroup:
    return store.get_or_create_feature_group(
        log_group_name(deployment), primary_key=["request_id", "row"], event_time="predicted_at",
        description=f"Inference log of deployment {deployment}: entity keys, model input, predictions, model version",
        tags=["inference_log"],
    )


def flush_inference_log(store: FeatureStore, deployment: str, *, max_rows: int = 100_000,
                        read_count: int = 1_000, max_entries: int | None = None) -> FlushResult:
    """Moves a deployment's logged requests from its Valkey stream into its inference-log feature group.

    Reads the stream from its start in commits of at most ``max_rows`` rows (whole requests); each commit is an
    upsert keyed by (``request_id``, ``row``), and the stream is trimmed up to the last entry written only after
    the commit, so a crash anywhere leaves no gap and no duplicate (see module doc).

    Args:
        max_entries: stop after this many requests (None: until the stream is empty).

    Raises:
        OnlineStoreUnavailable: Valkey cannot be reached (nothing was trimmed).
    """
    client = store.online_store.client
    stream = stream_key(store.online_config.key_prefix, store.project, deployment)
    result = FlushResult()
    start = "-"
    while max_entries is None or result.entries < max_entries:
        rows = _Rows()
        consumed = 0
        last_id = None
        while rows.n < max_rows and (max_entries is None or result.entries + consumed < max_entries):
            count = read_count if max_entries is None else min(read_count, max_entries - result.entries - consumed)
            entries = client.xrange(stream, min=start, max="+", count=count)
            if not entries:
                break
            for entry_id, fields in entries:
                rows.add(entry_id, fields)
                consumed += 1
                last_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                if rows.n >= max_rows:
                    break
            start = _next_id(last_id)
        if last_id is None:
            break
        if rows.n:
            fg = inference_log_group(store, deployment)
            existing = fg.schema() if fg.exists() else None
            commit = fg.insert(_table(rows.columns, existing))
            result.commits.append(commit.instant)
        # trimmed only now, after the commit: a crash before this line re-reads these entries (same keys, no dup)
        client.xtrim(stream, minid=_next_id(last_id), approximate=False)
        result.entries += consumed
        result.rows += rows.n
        result.skipped += rows.skipped
    return result


# --- labels that arrive later ------------------------------------------------------------------------------


def join_outcomes(inference_log: pd.DataFrame | FeatureGroup, outcomes: pd.DataFrame | FeatureGroup, *,
                  on: Sequence[str] | None = None, labels: Sequence[str] | dict[str, str] | None = None,
                  outcome_time: str | None = None, how: str = "left") -> pd.DataFrame:
    """Joins outcomes that became known after the predictions (e.g. the real departure delay) onto the inference
    log by entity keys: the labelled frame for evaluating a served model or training the next one.

    Contract:
        * ``inference_log``: the inference-log feature group of a deployment (or a frame read from it); one row per
          predicted entity with ``predicted_at``, the serving keys, the features used and the prediction(s).
        * ``outcomes``: a frame or feature group holding the ``on`` key columns and the label columns.
        * ``on``: the entity keys both sides share (default: the outcome feature group's primary key; required for
          a frame). Key types must match in kind (numbers, text, timestamps; time zones are normalised to UTC).
        * Without ``outcome_time``: at most one outcome per key (a repeated key is refused, naming it); every log
          row of that entity gets it, whenever it was predicted.
          With ``outcome_time`` (a column of ``outcomes``): each log row gets the first outcome at or after its
          ``predicted_at`` (an entity predicted again later is matched to a later outcome; outcomes older than
          the prediction are not its label).
        * ``labels``: outcome columns to attach (default: all but keys and ``outcome_time``); a mapping renames them
          (``{"dep_delay": "actual_dep_delay"}``). A label named like a log column is refused, naming it.
        * ``how="left"`` keeps predictions whose outcome has not arrived (labels null); ``"inner"`` drops them.
        * The result has the log's rows in the log's order (``inner``: the labelled ones), its columns, then the
          labels; Hudi meta columns are dropped.

    Raises:
        InvalidDataError: a missing key or label column, mismatched key types, a repeated outcome key, a clash.
    """
    from fs_dagster.core.feature_group import FeatureGroup

    if how not in ("left", "inner"):
        raise InvalidDataError(f"how must be 'left' or 'inner', got {how!r}")
    if isinstance(outcomes, FeatureGroup):
        if on is None:
            on = list(outcomes.spec.primary_key)
        outcomes = outcomes.read()
    if isinstance(inference_log, FeatureGroup):
        inference_log = inference_log.read()
    if on is None:
        raise InvalidDataError("join_outcomes: give on=[...] (the entity keys shared by the log and the outcomes)")
    on = [on] if isinstance(on, str) else list(on)
    log_frame = inference_log[[c for c in inference_log.columns if not str(c).startswith("_hoodie_")]]
    for side, frame in (("inference log", log_frame), ("outcomes", outcomes)):
        missing = [k for k in on if k not in frame.columns]
        if missing:
            raise InvalidDataError(f"join_outcomes: the {side} lacks key column(s) {missing}; it has "
                                   f"{list(frame.columns)}")
    if outcome_time is not None and outcome_time not in outcomes.columns:
        raise InvalidDataError(f"join_outcomes: outcome_time {outcome_time!r} is not a column of the outcomes")
    if outcome_time is not None and "predicted_at" not in log_frame.columns:
        raise InvalidDataError("join_outcomes: outcome_time needs the log's predicted_at column")
    if labels is None:
        labels = [c for c in outcomes.columns if c not in on and c != outcome_time and not str(c).startswith("_hoodie_")]
    rename = dict(labels) if isinstance(labels, dict) else {c: c for c in labels}
    missing = [c for c in rename if c not in outcomes.columns]
    if missing:
        raise InvalidDataError(f"join_outcomes: the outcomes lack label column(s) {missing}")
    clash = [new for new in rename.values() if new in log_frame.columns]
    if clash:
        raise InvalidDataError(f"join_outcomes: label(s) {clash} clash with inference-log columns; rename them with "
                               "labels={'<outcome column>': '<new name>'}")
    left = log_frame.copy()
    right = outcomes[[*on, *([outcome_time] if outcome_time else []), *rename]].rename(columns=rename).copy()
    for key in on:
        left[key], right[key] = _same_kind(key, left[key], right[key])
    left["__position"] = np.arange(len(left))
    if outcome_time is None:
        repeated = right[right.duplicated(on, keep=False)]
        if len(repeated):
            first = {k: _py(repeated[k].iloc[0]) for k in on}
            raise InvalidDataError(f"join_outcomes: {len(repeated)} outcome rows share keys, e.g. {first}; give "
                                   "outcome_time=... to match each prediction with the first outcome after it")
        joined = left.merge(right, on=on, how=how, sort=False)
    else:
        right["__outcome_time"] = _utc(right.pop(outcome_time))
        left["__predicted_at"] = _utc(left["predicted_at"])
        right = right.dropna(subset=["__outcome_time"]).sort_values("__outcome_time", kind="stable")
        ordered = left.sort_values("__predicted_at", kind="stable")
        joined = pd.merge_asof(ordered, right, left_on="__predicted_at", right_on="__outcome_time", by=on,
                               direction="forward")
        if how == "inner":
            joined = joined[joined["__outcome_time"].notna()]
        joined = joined.drop(columns=["__predicted_at", "__outcome_time"])
    joined = joined.sort_values("__position", kind="stable").drop(columns="__position").reset_index(drop=True)
    return joined


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _utc(values: pd.Series) -> pd.Series:
    converted = pd.to_datetime(values, utc=True)
    return converted.astype("datetime64[us, UTC]")


def _same_kind(key: str, left: pd.Series, right: pd.Series) -> tuple[pd.Series, pd.Series]:
    def kind(series: pd.Series) -> str:
        if pd.api.types.is_datetime64_any_dtype(series):
            return "timestamp"
        if pd.api.types.is_bool_dtype(series):
            return "bool"
        if pd.api.types.is_numeric_dtype(series):
            return "number"
        sample = series.dropna()
        if len(sample) and all(isinstance(v, str) for v in sample.head(100)):
            return "text"
        if len(sample) and all(isinstance(v, datetime) for v in sample.head(100)):
            return "timestamp"
        return "text" if not len(sample) else type(sample.iloc[0]).__name__

    a, b = kind(left), kind(right)
    if a != b:
        raise InvalidDataError(f"join_outcomes: key {key!r} is {a} ({left.dtype}) in the inference log but {b} "
                               f"({right.dtype}) in the outcomes; convert one side")
    if a == "timestamp":
        return _utc(left), _utc(right)
    return left, right
