"""Feature views: a named, versioned selection of features from several feature groups joined on keys, with
label columns; served online as feature vectors assembled in one Valkey round trip.

Example:
    flights = fs.get_feature_group("flight_outcomes")
    query = (flights.select(["distance", "sched_dep_hour", "is_delayed"])
             .join(weather.select(["temp", "wind_speed"]), left_on=["origin", "time_hour"])
             .join(aircraft.select(["seats", "year_built"]), on=["tailnum"]))
    fv = fs.get_or_create_feature_view("delays", version=1, query=query, labels=["is_delayed"])
    fv.get_feature_vector({"flight_id": "UA1545-EWR-201301011015", "origin": "EWR", "tailnum": "N14228"})
    fv.get_feature_vectors(entries, return_type="pandas")   # typed columns, built column-wise

Time series (weather keyed by ``(origin, time_hour)``) are served by entity: the latest row per ``origin``
(see :attr:`FeatureGroupSpec.online_key`); training data joins them as of each row's event time, so a training
row and a served vector agree whenever serving happens at the latest event time.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from fs_dagster.core.errors import InvalidDataError, NotFoundError
from fs_dagster.core.online import compiled
from fs_dagster.core.online.codec import KEY_SEPARATOR, check_values, decode_present, decode_vectors
from fs_dagster.core.online.columns import (
    decode_columns,
    missing_value,
    replaced,
    request_values_array,
    stored_values_array,
    to_pandas,
)
from fs_dagster.core.online.pipeline import packed_mget_of_ints, packed_mget_of_texts
from fs_dagster.core.online.sync import online_layout
from fs_dagster.core.specs import check_name, check_version
from fs_dagster.core.transformations import FittedTransformations, resolve

if TYPE_CHECKING:
    from fs_dagster.core.feature_group import FeatureGroup
    from fs_dagster.core.store import FeatureStore
    from fs_dagster.core.training.training_dataset import TrainingDataset

ReturnType = Literal["list", "dict", "pandas", "pyarrow", "numpy"]
_COLUMN_TYPES = ("pandas", "pyarrow")  # built column-wise (see fs_dagster.core.online.columns)


@dataclass(frozen=True)
class Selection:
    """Features of one feature group version in a query (``features`` empty = all non-key columns)."""

    feature_group: str
    version: int
    features: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"feature_group": self.feature_group, "version": self.version, "features": list(self.features)}


@dataclass(frozen=True)
class Join:
    """A feature group joined to the query's root: ``left_on`` columns of the root match ``right_on`` (the
    joined group's primary key, in order). ``prefix`` renames its features (clashing names get one anyway)."""

    selection: Selection
    left_on: tuple[str, ...]
    right_on: tuple[str, ...]
    prefix: str | None = None
    lookback: timedelta | None = None  # training/batch data: only feature rows newer than event time - lookback
    lookback_inclusive: bool = False  # ... or exactly that old too (Feast's ttl rule)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "selection": self.selection.to_dict(),
            "left_on": list(self.left_on),
            "right_on": list(self.right_on),
            "prefix": self.prefix,
        }
        if self.lookback is not None:  # (absent otherwise, so views stored before lookbacks existed still match)
            data["lookback_seconds"] = self.lookback.total_seconds()
        if self.lookback_inclusive:
            data["lookback_inclusive"] = True
        return data


@dataclass(frozen=True)
class Query:
    """Root selection plus joins; build with ``fg.select([...]).join(other.select([...]), on=[...])``."""

    root: Selection
    joins: tuple[Join, ...] = ()
    _store: Any = field(default=None, compare=False, repr=False)

    def join(
        self,
        other: Query,
        on: Sequence[str] | None = None,
        left_on: Sequence[str] | None = None,
        right_on: Sequence[str] | None = None,
        prefix: str | None = None,
        lookback: timedelta | None = None,
        lookback_inclusive: bool = False,
    ) -> Query:
        """Joins another feature group's selection (its primary key) on columns of this query's root.

        Args:
            on: same column names on both sides; or ``left_on`` (root columns) with ``right_on`` (defaults to the
                joined group's primary key).
            prefix: put before the joined features' names.
            lookback: in training and batch data, a feature row older than (or exactly) this much before the
                spine row's event time counts as missing (nulls), e.g. stale weather.
            lookback_inclusive: a row exactly ``lookback`` old still counts (Feast's ``ttl`` keeps it: its rule is
                ``event time >= ts - ttl``); by default the window is open at its start (``> ts - lookback``).
        """
        if lookback is not None and (not isinstance(lookback, timedelta) or lookback <= timedelta(0)):
            raise InvalidDataError(f"join of {other.root.feature_group}: lookback must be a positive timedelta, "
                                   f"got {lookback!r}")
        if not isinstance(lookback_inclusive, bool) or (lookback_inclusive and lookback is None):
            raise InvalidDataError(f"join of {other.root.feature_group}: lookback_inclusive=True needs a lookback, "
                                   f"got lookback_inclusive={lookback_inclusive!r}, lookback={lookback!r}")
        if other.joins:
            raise InvalidDataError("join a plain selection (fg.select(...)), not a query with joins of its own")
        right_spec = self._store.get_feature_group(other.root.feature_group, other.root.version).spec
        left = tuple(on or left_on or ())
        right = tuple(on or right_on or right_spec.primary_key)
        if not left:
            raise InvalidDataError(f"join of {other.root.feature_group}: give on=[...] or left_on=[...]")
        if set(right) != set(right_spec.primary_key) or len(left) != len(right):
            raise InvalidDataError(
                f"join of {other.root.feature_group}: right_on {list(right)} must be its primary key "
                f"{list(right_spec.primary_key)} (one value per key column), left_on {list(left)}"
            )
        # keep right_on in the joined group's key order so online keys can be built from left values directly
        pairs = dict(zip(right, left))
        ordered_right = tuple(right_spec.primary_key)
        ordered_left = tuple(pairs[r] for r in ordered_right)
        return replace(self, joins=self.joins + (Join(other.root, ordered_left, ordered_right, prefix, lookback,
                                                           lookback_inclusive),))

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root.to_dict(), "joins": [j.to_dict() for j in self.joins]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], store: Any = None) -> Query:
        def selection(d: dict[str, Any]) -> Selection:
            return Selection(d["feature_group"], int(d["version"]), tuple(d.get("features") or ()))

        joins = tuple(
            Join(selection(j["selection"]), tuple(j["left_on"]), tuple(j["right_on"]), j.get("prefix"),
                 timedelta(seconds=j["lookback_seconds"]) if j.get("lookback_seconds") is not None else None,
                 bool(j.get("lookback_inclusive", False)))
            for j in data.get("joins", ())
        )
        return cls(selection(data["root"]), joins, store)


@dataclass(frozen=True)
class OutputColumn:
    """One column of the view's output: where it comes from and what it is called."""

    name: str
    feature_group: str
    version: int
    source: str  # column name in the feature group
    group_index: int  # 0 = root, i = i-th join
    label: bool = False


class FeatureView:
    """A registered feature view: column resolution and online feature vectors.

    Get one from :meth:`FeatureStore.get_or_create_feature_view` / :meth:`FeatureStore.get_feature_view`.
    """

    def __init__(self, store: FeatureStore, name: str, version: int, query: Query, labels: tuple[str, ...],
                 description: str = "", transformation_functions: dict[str, str] | None = None,
                 request_keys: Sequence[str] = ()) -> None:
        self._store = store
        self.name = name
        self.version = version
        self.request_keys = tuple(request_keys)
        self.query = query
        self.labels = labels
        self.description = description
        self.transformation_functions = dict(transformation_functions or {})
        self._serving_transformations: FittedTransformations | None = None
        self._groups: list[FeatureGroup] = [
            store.get_feature_group(s.feature_group, s.version) for s in self.selections
        ]
        self.columns = self._resolve_columns()
        self._check_join_keys()
        missing = [label for label in labels if label not in {c.name for c in self.columns}]
        if missing:
            raise InvalidDataError(f"feature view {name}: labels {missing} are not among its features")
        for feature, function in self.transformation_functions.items():
            if feature not in self.feature_names:
                raise InvalidDataError(
                    f"feature view {name}: transformation {function!r} targets {feature!r}, which is not one of "
                    f"its features {self.feature_names}"
                )
            resolve(function)  # fails early on unknown names or unimportable functions
        self._layouts: list[Any] | None = None
        self._plan: _ServingPlan | None = None

    def __repr__(self) -> str:
        return f"FeatureView({self.name!r}, version={self.version}, features={self.feature_names})"

    @property
    def selections(self) -> list[Selection]:
        return [self.query.root, *(j.selection for j in self.query.joins)]

    @property
    def feature_names(self) -> list[str]:
        """Output features in order, labels excluded (what a feature vector holds)."""
        return [c.name for c in self.columns if not c.label]

    @property
    def serving_keys(self) -> list[str]:
        """Entry keys a vector lookup needs: the root's online key, then each join's root-side columns of the
        joined group's online key. A time series is served by entity (:attr:`FeatureGroupSpec.online_key`), so
        a join column that is the joined group's event time (weather joined on ``origin`` and ``time_hour``) is
        not needed: the entity's latest row is served."""
        keys = list(self._groups[0].spec.online_key)
        for group_keys in self._join_serving_keys():
            keys += [k for k in group_keys if k not in keys]
        return keys

    @property
    def join_keys(self) -> list[str]:
        """Columns that identify a row of the view's training and batch data: the root's primary key, then each
        join's root-side columns (a superset of :attr:`serving_keys`; a join column that is the joined group's
        event time is the as-of dimension there, carried along with the row)."""
        keys = list(self._groups[0].spec.primary_key)
        for join in self.query.joins:
            keys += [k for k in join.left_on if k not in keys]
        return keys

    def _join_serving_keys(self) -> list[list[str]]:
        """Per join, the root-side columns of the joined group's online key, in that key's order."""
        out = []
        for join, fg in zip(self.query.joins, self._groups[1:]):
            online_key = set(fg.spec.online_key)
            out.append([left for left, right in zip(join.left_on, join.right_on) if right in online_key])
        return out

    def spec_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "query": self.query.to_dict(),
            "labels": list(self.labels),
            "transformation_functions": dict(self.transformation_functions),
            # (only when set, so views stored before request keys existed still match)
            **({"request_keys": list(self.request_keys)} if self.request_keys else {}),
        }

    def _check_join_keys(self) -> None:
        """Every join's ``left_on`` names a column of the root group (when its columns are known yet) or a declared
        request key; a request key must be a join key the root group lacks."""
        root = self._groups[0]
        names = [f.name for f in root.spec.features] or (root.schema().names if root.exists() else [])
        used = {c for join in self.query.joins for c in join.left_on}
        for key in self.request_keys:
            if not isinstance(key, str) or key not in used or key in names:
                raise InvalidDataError(
                    f"feature view {self.name}: request key {key!r} must be a join key (left_on) that the root "
                    f"feature group {root.spec.key} lacks; join keys: {sorted(used)}"
                )
        for join in self.query.joins:
            unknown = [c for c in join.left_on if names and c not in names and c not in self.request_keys]
            if unknown:
                raise InvalidDataError(
                    f"feature view {self.name}: join of {join.selection.feature_group} on left_on {list(join.left_on)}: "
                    f"root feature group {root.spec.key} has no column(s) {unknown}; it has {names}. If requests "
                    f"and spines carry them, declare request_keys={unknown}"
                )

    def _resolve_columns(self) -> list[OutputColumn]:
        columns: list[OutputColumn] = []
        taken: set[str] = set()
        # a joined feature may not take the name of a join key or of the root's event time either: training
        # data carries those columns next to the features
        reserved = set(self.join_keys) | ({self._groups[0].spec.event_time} - {None})
        for index, (selection, fg) in enumerate(zip(self.selections, self._groups)):
            schema_names = [f.name for f in fg.spec.features] or (fg.schema().names if fg.exists() else [])
            keys = set(fg.spec.primary_key)
            wanted = list(selection.features) or [n for n in schema_names if n not in keys]
            unknown = [f for f in wanted if schema_names and f not in schema_names]
            if unknown:
                raise InvalidDataError(
                    f"feature group {fg.spec.key} has no feature(s) {unknown}; it has {schema_names}"
                )
            prefix = self.query.joins[index - 1].prefix if index else None
            for feature in wanted:
                name = (prefix or "") + feature
                if name in taken or (index and name in reserved):  # clashing names get the group's name as prefix
                    name = f"{fg.spec.name}_{feature}"
                if name in taken:
                    raise InvalidDataError(f"feature view {self.name}: column {name!r} appears twice; set a prefix")
                taken.add(name)
                columns.append(
                    OutputColumn(name, fg.spec.name, fg.spec.version, feature, index, label=name in self.labels)
                )
        return columns

    # --- transformations ------------------------------------------------------------------------------------

    def fit_transformations(self, training_data: pd.DataFrame) -> FittedTransformations:
        """Fits the view's transformation functions on training data (its training split only)."""
        return FittedTransformations.fit(self.transformation_functions, training_data)

    def init_serving(self, fitted: FittedTransformations | None = None) -> None:
        """Sets the fitted transformations that served vectors get (the ones the model was trained with)."""
        self._serving_transformations = fitted

    def _transformations_for_serving(self) -> FittedTransformations | None:
        if not self.transformation_functions:
            return None
        if self._serving_transformations is None:
            if any(resolve(f).fit is not None for f in self.transformation_functions.values()):
                raise InvalidDataError(
                    f"feature view {self.name}: its transformations need fitted statistics; call "
                    "init_serving(fv.fit_transformations(training_data)) (or a training dataset's) first"
                )
            return FittedTransformations(self.transformation_functions, {f: {} for f in self.transformation_functions})
        return self._serving_transformations

    # --- training and batch data ----------------------------------------------------------------------------

    def create_training_data(self, split: Any = None, *, data_format: str = "parquet", as_of: Any = None,
                             spine: Any = None, spine_event_time: str | None = None, description: str = "",
                             statistics: bool = True, reuse_identical: bool = False) -> TrainingDataset:
        """A new training dataset version: point-in-time correct rows of the view, split and written as files,
        pinned to the feature groups' commits (see :mod:`fs_dagster.core.training.training_dataset`).

        Args:
            split: ``RandomSplit({"train": 0.8, "test": 0.2}, seed=1)`` / ``TimeSplit({...})``; None: one part.
            data_format: ``"parquet"`` or ``"csv"``.
            as_of: read the feature groups as of this time or commit (a dict: per feature group key).
            spine: a DataFrame of :attr:`join_keys` + event times to build rows for (default: the root group's rows).
        """
        from fs_dagster.core.training.training_dataset import create_training_dataset

        return create_training_dataset(self, split=split, data_format=data_format, as_of=as_of, spine=spine,
                                       spine_event_time=spine_event_time, description=description,
                                       statistics=statistics, reuse_identical=reuse_identical)

    def create_train_test_split(self, test_size: float = 0.2, seed: int = 0, **options: Any) -> TrainingDataset:
        """A training dataset split at random into ``train`` and ``test`` (see :meth:`create_training_data`)."""
        from fs_dagster.core.training.training_dataset import random_split

        return self.create_training_data(random_split(test_size, seed=seed), **options)

    def create_train_validation_test_split(self, validation_size: float = 0.1, test_size: float = 0.2, seed: int = 0,
                                           **options: Any) -> TrainingDataset:
        """A training dataset split at random into ``train``, ``validation`` and ``test``."""
        from fs_dagster.core.training.training_dataset import random_split

        return self.create_training_data(random_split(test_size, validation_size, seed), **options)

    def get_training_dataset(self, version: int | None = None) -> TrainingDataset:
        """A registered training dataset of this view (the latest when ``version`` is None)."""
        from fs_dagster.core.training.training_dataset import TrainingDataset

        spec = self._store.registry.get_training_dataset(self._store.project, self.name, self.version, version)
        return TrainingDataset(self, spec)

    def get_training_datasets(self) -> list[TrainingDataset]:
        from fs_dagster.core.training.training_dataset import TrainingDataset

        specs = self._store.registry.list_training_datasets(self._store.project, self.name, self.version)
        return [TrainingDataset(self, spec) for spec in specs]

    def get_batch_data(self, start_time: datetime | None = None, end_time: datetime | None = None, *,
                       spine: Any = None, spine_event_time: str | None = None,
                       as_of: Any = None, transformed: bool = False, with_keys: bool = True,
                       dataframe_type: Literal["pandas", "pyarrow"] = "pandas") -> pd.DataFrame | Any:
        """Features (no labels) of the root group's rows with ``start_time <= event time < end_time`` (or of
        every row of ``spine``), each joined point-in-time correctly, in memory, for batch inference.

        Args:
            spine: your entities: a frame of the :attr:`join_keys` and an event time; each row gets the
                features as they were at its event time (Feast's ``get_historical_features``). Nothing is written.
            spine_event_time: the spine's event-time column (default: the root group's event-time name).
            as_of: read the feature groups as of this time or commit (default: their latest commits).
            transformed: apply the serving transformations (:meth:`init_serving`), as served vectors get them.
            with_keys: include the join keys and the event time (to attach predictions to).
        """
        from fs_dagster.core.training.view_data import pin_commits, read_view_data

        table = read_view_data(self, pin_commits(self, as_of), spine=spine, spine_event_time=spine_event_time,
                               start=start_time, end=end_time, labels=False)
        if not with_keys:
            table = table.select(self.feature_names)
        if dataframe_type == "pyarrow":
            if transformed:
                raise InvalidDataError("transformed batch data is pandas; use dataframe_type='pandas'")
            return table
        frame = table.to_pandas()
        if transformed:
            fitted = self._transformations_for_serving()
            if fitted is not None:
                frame = fitted.transform_frame(frame)
        return frame

    def training_data(self, spine: Any = None, *, start_time: datetime | None = None,
                      end_time: datetime | None = None, spine_event_time: str | None = None, as_of: Any = None,
                      with_keys: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Point-in-time correct features and labels in memory, untransformed (nothing is written or registered;
        use :meth:`create_training_data` for a versioned, reproducible dataset).

        Args:
            spine: entities and event times to build rows for (default: the root group's rows, optionally
                ``start_time <= event time < end_time``).
            with_keys: put the join keys and the event time in front of the features.

        Returns:
            ``(features, labels)``: labels has the view's label columns (none: an empty frame of as many rows).
        """
        from fs_dagster.core.training.view_data import pin_commits, read_view_data

        table = read_view_data(self, pin_commits(self, as_of), spine=spine, spine_event_time=spine_event_time,
                               start=start_time, end=end_time, labels=True).to_pandas()
        labels = [c.name for c in self.columns if c.label]
        # (the table holds keys, event time, features, labels in that order)
        features = [c for c in table.columns if c not in labels] if with_keys else self.feature_names
        return table[features], table[labels]

    # --- online serving -------------------------------------------------------------------------------------

    def _online_layouts(self) -> list[Any]:
        if self._layouts is None:
            for fg in self._groups:  # before the online store is touched (it may start the embedded server)
                if not fg.spec.online_enabled:
                    raise InvalidDataError(
                        f"feature view {self.name}: feature group {fg.spec.key} is not online-enabled, so it "
                        "cannot serve feature vectors (turn it on with update(online_enabled=True))"
                    )
            online = self._store.online_store
            self._layouts = [
                online_layout(fg.spec, fg.schema(), self._store.project, online.config.key_prefix)
                for fg in self._groups
            ]
        return self._layouts

    def get_feature_vector(
        self,
        entry: dict[str, Any],
        passed_features: dict[str, Any] | None = None,
        allow_missing: bool = False,
        return_type: ReturnType = "list",
    ) -> Any:
        """One feature vector (labels excluded) in :attr:`feature_names` order.

        Args:
            entry: values of :attr:`serving_keys` (e.g. ``{"flight_id": ..., "origin": ..., "tailnum": ...}``;
                other entries are ignored).
            passed_features: values that replace (or stand in for) looked-up features, e.g. request-time data.
            allow_missing: a feature group without a row for the entry gives nulls instead of an error.
            return_type: ``"list"``, ``"dict"``, ``"pandas"`` (one-row DataFrame), ``"pyarrow"`` (one-row
                Table) or ``"numpy"``.

        Raises:
            NotFoundError: an entity has no row (unless ``allow_missing``); the message names group and key.
        """
        _check_return_type(return_type)
        if return_type in _COLUMN_TYPES:
            return self._frame([entry], [passed_features or {}], allow_missing, return_type)
        [vector] = self._vectors([entry], [passed_features or {}], allow_missing)
        return self._shape([vector], return_type, single=True)

    def get_feature_vectors(
        self,
        entries: Sequence[dict[str, Any]],
        passed_features: Sequence[dict[str, Any]] | None = None,
        allow_missing: bool = False,
        return_type: ReturnType = "list",
    ) -> Any:
        """Feature vectors for many entries in one round trip (see :meth:`get_feature_vector`).

        ``return_type="pandas"`` or ``"pyarrow"`` builds the frame column by column (no Python row per entry),
        with the column types of training and batch data: the feature's offline type, timestamps as
        ``datetime64[us, UTC]``, numbers with nulls as float64 NaN in pandas, strings and dates as objects;
        transformations are applied to whole columns (as to training frames)."""
        _check_return_type(return_type)
        passed = list(passed_features) if passed_features is not None else [{}] * len(entries)
        if len(passed) != len(entries):
            raise InvalidDataError(f"{len(entries)} entries but {len(passed)} passed_features")
        if return_type in _COLUMN_TYPES:
            return self._frame(list(entries), passed, allow_missing, return_type)
        vectors = self._vectors(list(entries), passed, allow_missing)
        return self._shape(vectors, return_type, single=False)

    def _frame(self, entries: list[dict[str, Any]], passed: list[dict[str, Any]], allow_missing: bool,
               return_type: ReturnType) -> Any:
        """Vectors as a pandas DataFrame or an Arrow Table, built column-wise."""
        transformations = self._transformations_for_serving()
        if len(entries) < _GC_PAUSE_MIN_ENTRIES:
            table = self._table(entries, passed, allow_missing)
        else:
            with _gc_paused():
                table = self._table(entries, passed, allow_missing)
        if transformations is None:
            return to_pandas(table) if return_type == "pandas" else table
        frame = transformations.transform_frame(to_pandas(table))
        return frame if return_type == "pandas" else pa.Table.from_pandas(frame, preserve_index=False)

    def _table(self, entries: list[dict[str, Any]], passed: list[dict[str, Any]], allow_missing: bool) -> pa.Table:
        """The vectors of ``entries`` as an Arrow table, column-wise (see :mod:`fs_dagster.core.online.columns`).

        A batch of :data:`_PIECES_MIN_ENTRIES`+ entries is read as one MGET per feature group (and per
        :data:`_COLUMN_PIECE_ENTRIES` entries, :data:`_COMPILED_PIECE_ENTRIES` with compiled decoding), pipelined:
        the next piece's keys are built while the server looks up this one's, and each piece is decoded, all of its
        rows at once, while the server answers the next."""
        plan = self._serving_plan()
        n = len(entries)
        groups = range(len(plan.layouts))
        size = _COMPILED_PIECE_ENTRIES if compiled.kernels() is not None else _COLUMN_PIECE_ENTRIES
        bounds = [(a, min(n, a + size)) for a in range(0, n, size)] or [(0, 0)]
        results = None
        if n >= _PIECES_MIN_ENTRIES:
            pieces = [(g, a, b) for a, b in bounds for g in groups]

            packed = self._store.online_store.packs_reads

            def keys_of(g: int, a: int, b: int) -> Callable[[], list[bytes] | bytes]:
                def build() -> list[bytes] | bytes:
                    keys = plan.group_mget(g, entries[a:b]) if packed else plan.group_keys(g, entries[a:b])
                    if keys is None:
                        raise _MissingServingKey()
                    return keys
                return build

            def handle(i: int, raw: list[bytes | None]) -> tuple[dict[int, pa.Array], list[bool] | None]:
                g, a, b = pieces[i]
                return plan.group_columns(g, raw, entries[a:b])

            try:
                results = self._store.online_store.mget_pieces([keys_of(*piece) for piece in pieces], handle)
            except _MissingServingKey:
                results = None  # the one-MGET path raises the error naming the key
        if results is None:
            raw = self._fetch(plan, entries)
            bounds = [(0, n)]
            results = [plan.group_columns(g, raw[g * n : (g + 1) * n], entries) for g in groups]
        # results: per piece of entries (bounds), per group: (value arrays, missing rows)
        per_piece = [results[i * len(groups) : (i + 1) * len(groups)] for i in range(len(bounds))]
        missing = [_concat_missing([piece[g][1] for piece in per_piece], [b - a for a, b in bounds])
                   for g in groups]
        if not allow_missing and any(m is not None for m in missing):
            self._check_missing(plan, entries, passed, missing)
        names = [c.name for c in plan.wanted]
        columns: list[Any] = []
        for g, index, name in plan.sources:
            if index is not None:
                chunks = [piece[g][0][index] for piece in per_piece]
                columns.append(chunks[0] if len(chunks) == 1 else _chunked(chunks))
            else:  # a key column: the request's values (null where the group has no row, as in lists)
                values = [entry[name] for entry in entries]
                if missing[g] is not None:
                    values = [None if gone else v for v, gone in zip(values, missing[g])]
                layout = plan.layouts[g]
                columns.append(request_values_array(values, layout.key_types[layout.key_columns.index(name)]))
        if any(passed):
            positions = {name: i for i, name in enumerate(names)}
            overrides: dict[int, dict[int, Any]] = {}
            for row, given in enumerate(passed):
                for name, value in given.items():
                    if name in positions:
                        overrides.setdefault(positions[name], {})[row] = value
            for i, replacements in overrides.items():
                columns[i] = replaced(columns[i], replacements, names[i])
        if not names:  # (no features: n rows of nothing)
            return pa.table({"_": pa.nulls(n)}).drop_columns(["_"])
        return pa.Table.from_arrays(columns, names=names)

    def _check_missing(self, plan: _ServingPlan, entries: list[dict[str, Any]], passed: list[dict[str, Any]],
                       missing: list[list[bool] | None]) -> None:
        """Raises NotFoundError for the first entry (then group) without a row, unless all of that group's
        features are passed for it (the per-entry path's rule and message)."""
        for row in range(len(entries)):
            for g, gone in enumerate(missing):
                if gone is not None and gone[row] and not self._all_passed(g, passed[row]):
                    key = {k: entries[row][k] for k in plan.key_columns[g]}
                    raise NotFoundError(
                        f"feature view {self.name}: no online row in feature group {self._groups[g].spec.key} "
                        f"for {key}"
                    )

    def _vectors(self, entries: list[dict[str, Any]], passed: list[dict[str, Any]], allow_missing: bool) -> list[list[Any]]:
        if len(entries) < _GC_PAUSE_MIN_ENTRIES:
            return self._build_vectors(entries, passed, allow_missing)
        with _gc_paused():
            return self._build_vectors(entries, passed, allow_missing)

    def _build_vectors(self, entries: list[dict[str, Any]], passed: list[dict[str, Any]], allow_missing: bool,
                       ) -> list[list[Any]]:
        layouts = self._online_layouts()
        plan = self._serving_plan()
        key_columns = plan.key_columns
        n = len(entries)
        transformations = self._transformations_for_serving()
        names = [c.name for c in plan.wanted]
        if plan.fast and n >= _PIECES_MIN_ENTRIES and not any(passed):
            raw, vectors = self._fetch_in_pieces(plan, entries)
        else:
            raw, vectors = self._fetch(plan, entries), None
            if plan.fast and None not in raw and not any(passed):  # every row found, nothing passed: column-wise
                vectors = plan.assemble(entries, raw)
        if vectors is not None:
            if transformations:
                vectors = [transformations.transform_vector(names, vector) for vector in vectors]
            return vectors
        n_groups = len(layouts)
        try:
            decoded = [layouts[g].decode_many(raw[g * n : (g + 1) * n]) for g in range(n_groups)]
        except (ValueError, TypeError):
            plan.check_values(entries, raw)
            raise
        positions = [
            {name: i for i, name in enumerate(layout.key_columns + layout.value_columns)} for layout in layouts
        ]
        vectors = []
        for row_index, entry in enumerate(entries):
            rows = []
            for g in range(n_groups):
                values = decoded[g][row_index]
                if values is None:
                    if not allow_missing and not self._all_passed(g, passed[row_index]):
                        key = {k: entry[k] for k in key_columns[g]}
                        raise NotFoundError(
                            f"feature view {self.name}: no online row in feature group "
                            f"{self._groups[g].spec.key} for {key}"
                        )
                    rows.append(None)
                else:
                    rows.append(tuple(entry[k] for k in key_columns[g]) + values)
            vector = []
            for column in plan.wanted:
                if column.name in passed[row_index]:
                    vector.append(passed[row_index][column.name])
                    continue
                row = rows[column.group_index]
                vector.append(None if row is None else row[positions[column.group_index][column.source]])
            vectors.append(transformations.transform_vector(names, vector) if transformations else vector)
        return vectors

    def _fetch(self, plan: _ServingPlan, entries: list[dict[str, Any]]) -> list[bytes | None]:
        """The stored values of every entry, group by group: ``raw[g * n:(g + 1) * n]`` is group g."""
        keys = plan.keys(entries)
        if keys is None:  # an entry lacks a serving key (or is not a mapping): find it for the error
            for entry in entries:
                for group_keys in plan.key_columns:
                    missing = [k for k in group_keys if k not in entry]
                    if missing:
                        raise InvalidDataError(
                            f"feature view {self.name}: entry lacks serving key(s) {missing}; needs "
                            f"{self.serving_keys}"
                        )
            keys = [layout.key_for([e[k] for k in group_keys])
                    for group_keys, layout in zip(plan.key_columns, plan.layouts) for e in entries]
        return self._store.online_store.mget(keys)

    def _fetch_in_pieces(self, plan: _ServingPlan, entries: list[dict[str, Any]],
                         ) -> tuple[list[bytes | None], list[list[Any]] | None]:
        """:meth:`_fetch` of a batch as a few pipelined MGETs, each piece assembled column-wise while the server
        looks up the next (this hides most of the server's share, ~a third of a 1,000-entity lookup). Returns the
        raw values and the vectors, or None for them if a row is missing (the caller takes the per-entry path)."""
        n = len(entries)
        size = min(_PIECE_ENTRIES, max(_MIN_PIECE_ENTRIES, -(-n // 3)))
        size = -(-n // -(-n // size))  # that many pieces, of equal size
        bounds = [(a, min(n, a + size)) for a in range(0, n, size)]

        def keys_of(a: int, b: int) -> Callable[[], list[bytes]]:
            def build() -> list[bytes]:
                keys = plan.keys(entries[a:b])
                if keys is None:
                    raise _MissingServingKey()
                return keys
            return build

        def handle(i: int, raw: list[bytes | None]) -> tuple[list[bytes | None], list[list[Any]] | None]:
            a, b = bounds[i]
            return raw, (plan.assemble(entries[a:b], raw) if None not in raw else None)

        try:
            results = self._store.online_store.mget_pieces([keys_of(a, b) for a, b in bounds], handle)
        except _MissingServingKey:
            return self._fetch(plan, entries), None  # (raises the error naming the key)
        if all(vectors is not None for _, vectors in results):
            return [], [vector for _, vectors in results for vector in vectors]
        groups = len(plan.layouts)
        raw = [value for g in range(groups) for (a, b), (piece, _) in zip(bounds, results)
               for value in piece[g * (b - a):(g + 1) * (b - a)]]
        return raw, None

    def _serving_plan(self) -> _ServingPlan:
        if self._plan is None:
            key_columns = [list(self._groups[0].spec.online_key)] + self._join_serving_keys()
            self._plan = _ServingPlan(key_columns, self._online_layouts(), [c for c in self.columns if not c.label])
        return self._plan

    def _all_passed(self, group_index: int, passed: dict[str, Any]) -> bool:
        names = [c.name for c in self.columns if c.group_index == group_index and not c.label]
        return bool(passed) and all(n in passed for n in names)

    def _shape(self, vectors: list[list[Any]], return_type: ReturnType, single: bool) -> Any:
        names = self.feature_names
        if return_type == "list":
            return vectors[0] if single else vectors
        if return_type == "dict":
            dicts = [dict(zip(names, v)) for v in vectors]
            return dicts[0] if single else dicts
        array = np.array(vectors, dtype=object)  # ("numpy"; frames are built by _frame, column-wise)
        return array[0] if single else array


# A batch of 1,000 vectors allocates ~20k tuples and lists; with the collector on, the young-generation passes
# they trigger cost as much as the whole lookup (p50 6.3 -> 4.8 ms measured in bench/online.py). None of these
# objects can form a cycle, so the collector is paused for big batches (msgpack gives the same advice for large
# unpacks) and resumed right after; small lookups allocate too little to matter.
_GC_PAUSE_MIN_ENTRIES = 64
# batches of _PIECES_MIN_ENTRIES+ entities are looked up as pipelined MGETs of a third of the batch, at least
# _MIN_PIECE_ENTRIES and at most _PIECE_ENTRIES entities. Measured against the raw MGET: 1,000 entities in one piece
# 2.0x, 3 pieces 1.4x, 4-8 pieces 1.3x; 100 entities 2.0x -> 1.2x in 3 pieces; 64 entities ~10% faster in 2.
_PIECES_MIN_ENTRIES = 64
_MIN_PIECE_ENTRIES = 32
_PIECE_ENTRIES = 200
# frames (pandas, pyarrow): a piece is one feature group's keys of up to _COLUMN_PIECE_ENTRIES entries, decoded with
# numpy from _NUMPY_DECODE_MIN_ROWS rows on (each numpy call costs ~1-5 us whatever its size: below that, MessagePack
# row by row is faster). The compiled kernels cost little per piece, so pieces of _COMPILED_PIECE_ENTRIES let the
# server start sooner and each piece be decoded while it answers the next: 1,000 entities 1.22x -> 1.17x the raw
# MGET, 2,000 entities 1.29x -> 1.08x (against 4,096; 334 and 250 were slower again)
_COLUMN_PIECE_ENTRIES = 4096
_COMPILED_PIECE_ENTRIES = 500
_NUMPY_DECODE_MIN_ROWS = 64


def _check_return_type(return_type: Any) -> None:
    if return_type not in ("list", "dict", "numpy", *_COLUMN_TYPES):
        raise InvalidDataError(f"return_type must be list, dict, pandas, pyarrow or numpy, got {return_type!r}")


def _chunked(arrays: list[pa.Array]) -> pa.ChunkedArray | pa.Array:
    """One column of several pieces (the pieces' arrays as chunks; pieces typed differently by inference, a type
    fs-dagster does not write itself, are merged by Arrow's inference)."""
    if len({a.type for a in arrays}) == 1:
        return pa.chunked_array(arrays)
    return pa.array([value for array in arrays for value in array.to_pylist()])


class _MissingServingKey(Exception):
    """An entry of a batch lacks a serving key (found again, for the error, by the single-MGET path)."""


@contextmanager
def _gc_paused() -> Iterator[None]:
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _concat_missing(parts: list[list[bool] | None], sizes: list[int]) -> list[bool] | None:
    """The missing-row flags of a group's pieces as one list (None: no row missing)."""
    if all(part is None for part in parts):
        return None
    return [flag for part, size in zip(parts, sizes) for flag in (part if part is not None else [False] * size)]


class _ServingPlan:
    """How a view's vectors are assembled, worked out once: key columns per group, and for the common case (every
    row found, no passed features) which decoded values go where, so a batch is built column-wise with C-level
    operations (one MessagePack call for all groups, ``itemgetter`` per group, timestamps converted once per
    distinct value) instead of per entry and per feature."""

    def __init__(self, key_columns: list[list[str]], layouts: list[Any], wanted: list[OutputColumn]) -> None:
        self.key_columns = key_columns
        self.layouts = layouts
        self.wanted = wanted
        self._plan_columns()
        self.getters: list[Any] = []
        self.converters: list[tuple[int, Any]] = []  # (output position, converter) for timestamps and dates
        groups = [c.group_index for c in wanted]
        # the fast path takes the output as each group's values in turn, and values from stored rows only
        self.fast = groups == sorted(groups) and all(
            c.source in layouts[c.group_index].value_columns for c in wanted
        )
        if not self.fast:
            return
        for g, layout in enumerate(layouts):
            indices = [layout.value_columns.index(c.source) for c in wanted if c.group_index == g]
            if indices == list(range(len(layout.value_columns))):
                self.getters.append(None)  # all of them, in order
            elif indices and indices == list(range(indices[0], indices[-1] + 1)):
                self.getters.append(itemgetter(slice(indices[0], indices[-1] + 1)))
            elif not indices:
                self.getters.append(lambda row: ())
            elif len(indices) == 1:
                self.getters.append(lambda row, i=indices[0]: (row[i],))
            else:
                self.getters.append(itemgetter(*indices))
        for position, column in enumerate(wanted):
            layout = layouts[column.group_index]
            converter = layout.value_converters()[layout.value_columns.index(column.source)]
            if converter is not None:
                self.converters.append((position, converter))

    def _plan_columns(self) -> None:
        """Where each wanted feature comes from, column-wise: (group, stored value index, or None for a key
        column: the request's value, source column name)."""
        self.sources: list[tuple[int, int | None, str]] = []
        for column in self.wanted:
            values = self.layouts[column.group_index].value_columns
            index = values.index(column.source) if column.source in values else None
            self.sources.append((column.group_index, index, column.source))
        self.value_indices = [sorted({i for g, i, _ in self.sources if g == group and i is not None})
                              for group in range(len(self.layouts))]

    def group_keys(self, g: int, entries: list[Any]) -> list[bytes] | None:
        """Group ``g``'s keys of ``entries`` (None: an entry lacks a serving key)."""
        try:
            columns = [list(map(itemgetter(k), entries)) for k in self.key_columns[g]]
        except (KeyError, TypeError, IndexError):
            return None
        return self.layouts[g].keys_for(columns)

    def group_mget(self, g: int, entries: list[Any]) -> bytes | list[bytes] | None:
        """Group ``g``'s MGET of ``entries`` packed as RESP (:func:`pipeline.packed_mget_of_texts`; its keys if
        they are not all ASCII), or None: an entry lacks a serving key."""
        try:
            columns = [list(map(itemgetter(k), entries)) for k in self.key_columns[g]]
        except (KeyError, TypeError, IndexError):
            return None
        layout = self.layouts[g]
        if len(columns) == 1 and pa.types.is_integer(layout.key_types[0]):
            packed = packed_mget_of_ints(layout.prefix, columns[0])  # (None: the text route below)
            if packed is not None:
                return packed
        texts = layout.key_texts(columns)
        packed = packed_mget_of_texts(layout.prefix, texts, KEY_SEPARATOR) if entries else None
        return packed if packed is not None else layout.keys_for(columns)

    def check_values(self, entries: list[Any], raw: Sequence[bytes | None]) -> None:
        """Raises DamagedOnlineValueError naming the first damaged value of ``raw`` (every group's values of
        ``entries``, group by group) and its key: called when a batch does not decode."""
        n = len(entries)
        for g, layout in enumerate(self.layouts):
            self.check_group(g, entries, raw[g * n : (g + 1) * n])

    def check_group(self, g: int, entries: list[Any], raw: Sequence[bytes | None]) -> None:
        check_values(raw, self.layouts[g], lambda i: {k: entries[i][k] for k in self.key_columns[g]})

    def group_columns(self, g: int, raw: list[bytes | None], entries: list[Any],
                      ) -> tuple[dict[int, pa.Array], list[bool] | None]:
        """Group ``g``'s wanted stored values of a batch as typed arrays (by value column index; nulls where a
        row is missing), and which rows are missing (None: none). Decoded with numpy for
        :data:`_NUMPY_DECODE_MIN_ROWS`+ rows, else (and for types that decoder does not handle) by MessagePack
        row by row, then transposed (:func:`stored_values_array`): the same arrays either way."""
        layout = self.layouts[g]
        wanted = self.value_indices[g]
        missing = None
        if None in raw:
            missing = [value is None for value in raw]
            filler = missing_value(layout)
            raw = [filler if value is None else value for value in raw]
        arrays = decode_columns(raw, layout, wanted) if len(raw) >= _NUMPY_DECODE_MIN_ROWS else None
        if arrays is None:
            try:
                transposed = list(zip(*decode_present(raw, len(layout.value_columns)))) if raw else \
                    [()] * len(layout.value_columns)
            except (ValueError, TypeError):
                self.check_group(g, entries, raw)
                raise
            arrays = {i: stored_values_array(list(transposed[i]), layout.value_types[i]) for i in wanted}
        return arrays, missing

    def keys(self, entries: list[Any]) -> list[bytes] | None:
        """Keys of every entry, group by group (None: an entry lacks a serving key)."""
        keys: list[bytes] = []
        try:
            for group_keys, layout in zip(self.key_columns, self.layouts):
                keys += layout.keys_for([[entry[k] for entry in entries] for k in group_keys])
        except (KeyError, TypeError, IndexError):
            return None
        return keys

    def assemble(self, entries: list[Any], raw: list[bytes]) -> list[list[Any]]:
        try:
            return self._assemble(entries, raw)
        except (ValueError, TypeError, IndexError):
            self.check_values(entries, raw)
            raise

    def _assemble(self, entries: list[Any], raw: list[bytes]) -> list[list[Any]]:
        n = len(entries)
        if all(getter is None for getter in self.getters):  # every stored value, in order: lists straight from C
            vectors = decode_vectors(raw, n, self.layouts)
            self._convert(vectors)
            return vectors
        rows = decode_present(raw)
        parts = []
        for g, getter in enumerate(self.getters):
            group_rows = rows[g * n : (g + 1) * n]
            parts.append(group_rows if getter is None else list(map(getter, group_rows)))
        if len(parts) == 1:
            vectors = list(map(list, parts[0]))
        elif len(parts) == 2:
            vectors = [[*a, *b] for a, b in zip(*parts)]
        else:
            vectors = [list(chain.from_iterable(row)) for row in zip(*parts)]
        self._convert(vectors)
        return vectors

    def _convert(self, vectors: list[list[Any]]) -> None:
        for position, converter in self.converters:
            column = [vector[position] for vector in vectors]
            converted = {value: converter(value) for value in set(column) if value is not None}
            for vector, value in zip(vectors, column):
                if value is not None:
                    vector[position] = converted[value]


def build_feature_view(store: FeatureStore, name: str, version: int, query: Query, labels: Sequence[str],
                       description: str, transformation_functions: dict[str, str] | None = None,
                       request_keys: Sequence[str] = ()) -> FeatureView:
    check_name("feature view", name)
    check_version("feature view", name, version)
    if isinstance(request_keys, str):
        request_keys = [request_keys]
    return FeatureView(store, name, version, replace(query, _store=store), tuple(labels), description,
                       transformation_functions, tuple(request_keys))
