"""Training datasets: versioned, point-in-time correct files of a feature view, exactly reproducible.

A training dataset records everything needed to rebuild it byte for byte: the commit instant each feature group
was read at, the spine (the root feature group, or a copy of the caller's spine table), the split (random with a
seed, or by event time) and the file format. Its files live under
``<root>/<project>/training_datasets/<view>_v<view version>/v<version>/<split>/part-00000.<format>``; the content
hash is the SHA-256 of every split's name and file bytes, so :meth:`TrainingDataset.recreate` can prove that a
rebuild, after any number of new commits, is the same dataset.

Transformation functions that need statistics (scalers, encoders) are fitted on the training split only and
stored with the dataset; :meth:`TrainingDataset.read` applies them, and serving applies the very same ones
(``view.init_serving(td.transformations)``).

Example:
    td = fv.create_train_test_split(test_size=0.2, seed=42)
    X_train, X_test, y_train, y_test = td.train_test_split()
    fv.init_serving(td.transformations)
    td.recreate()                       # rebuilds the files, checks the content hash
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError
from fs_dagster.core.monitoring.statistics import compute_statistics
from fs_dagster.core.training.splits import RandomSplit, Split, TimeSplit, split_from_dict
from fs_dagster.core.training.view_data import (
    AsOf,
    event_time_column,
    key_columns,
    pin_commits,
    prepare_spine,
    read_view_data,
)
from fs_dagster.core.transformations import FittedTransformations

if TYPE_CHECKING:
    from fs_dagster.core.feature_view import FeatureView

DataFormat = Literal["parquet", "csv"]
FORMATS = ("parquet", "csv")
SPINE_FILE = "_spine.parquet"
ALL = "all"  # the one part of a dataset without a split


class TrainingDatasetMismatch(FeatureStoreError):
    """A rebuilt training dataset's content hash differs from the recorded one."""


def _write_part(table: pa.Table, path: Path, data_format: DataFormat) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data_format == "parquet":
        # fixed options: the same table gives the same bytes (content hash)
        pq.write_table(table, path, compression="zstd", row_group_size=1 << 20, write_statistics=True,
                       store_schema=True)
    else:
        pacsv.write_csv(table, path)
    with open(path, "rb+") as handle:  # durable before the dataset is registered
        os.fsync(handle.fileno())


def _content_hash(folder: Path, parts: list[str], data_format: DataFormat) -> str:
    digest = hashlib.sha256()
    for part in parts:
        path = folder / part / f"part-00000.{data_format}"
        digest.update(part.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _split_table(table: pa.Table, split: Split | None, event_time: str) -> dict[str, pa.Table]:
    if split is None:
        return {ALL: table}
    assignment = split.assign(table.num_rows, table[event_time])
    return {name: table.filter(pa.array(assignment == index)) for index, name in enumerate(split.names)}


def _label_names(view: FeatureView) -> list[str]:
    return [c.name for c in view.columns if c.label]


def _build(view: FeatureView, folder: Path, pinned: dict[str, str], split: Split | None, data_format: DataFormat,
           spine: pa.Table | None, spine_event_time: str | None) -> tuple[dict[str, pa.Table], str]:
    """Writes the dataset's files into ``folder``; returns the parts and the content hash."""
    table = read_view_data(view, pinned, spine=spine, spine_event_time=spine_event_time)
    parts = _split_table(table, split, event_time_column(view, spine, spine_event_time))
    for name, part in parts.items():
        _write_part(part, folder / name / f"part-00000.{data_format}", data_format)
    return parts, _content_hash(folder, list(parts), data_format)


def create_training_dataset(
    view: FeatureView,
    *,
    split: Split | None = None,
    data_format: DataFormat = "parquet",
    as_of: AsOf | dict[str, AsOf] = None,
    spine: pd.DataFrame | pa.Table | None = None,
    spine_event_time: str | None = None,
    description: str = "",
    statistics: bool = True,
    reuse_identical: bool = False,
) -> TrainingDataset:
    """Materializes a new training dataset version of ``view`` (see module doc).

    Args:
        split: :class:`RandomSplit` / :class:`TimeSplit`; None = one part, ``"all"``.
        data_format: ``"parquet"`` (default) or ``"csv"``.
        as_of: read the feature groups as of this time/commit (per group with a dict); default their latest.
        spine: entity keys (the view's :attr:`join_keys`) + event times to build rows for; default the root group.
        spine_event_time: the spine's event-time column (default: the root group's event-time name).
        statistics: compute descriptive statistics of every split.
        reuse_identical: if the latest version has the same content, split and format, return it instead of
            registering a copy (what a scheduled refresh wants).
    """
    if data_format not in FORMATS:
        raise InvalidDataError(f"data_format must be one of {FORMATS}, got {data_format!r}")
    store = view._store
    pinned = pin_commits(view, as_of)
    spine_table = None if spine is None else prepare_spine(view, spine, spine_event_time)
    event_time = event_time_column(view, spine_table, spine_event_time)
    home = training_datasets_path(view)
    home.mkdir(parents=True, exist_ok=True)
    folder = home / f".tmp-{uuid.uuid4().hex}"
    try:
        if spine_table is not None:
            _write_part(spine_table, folder / SPINE_FILE, "parquet")
        parts, content_hash = _build(view, folder, pinned, split, data_format, spine_table, spine_event_time)
        if reuse_identical:
            latest = _latest_spec(view)
            if (latest is not None and latest["content_hash"] == content_hash
                    and latest["split"] == (split.to_dict() if split else None)
                    and latest["data_format"] == data_format and (home / f"v{latest['version']}").exists()):
                shutil.rmtree(folder)
                return TrainingDataset(view, latest)
        train_name = "train" if "train" in parts else next(iter(parts))
        fitted = None
        if view.transformation_functions:
            fitted = view.fit_transformations(parts[train_name].to_pandas()).to_dict()
        features = [c.name for c in view.columns if not c.label]
        spec = {
            "feature_view": view.name,
            "feature_view_version": view.version,
            "description": description,
            "pinned_commits": pinned,
            "spine": {"kind": "feature_group" if spine_table is None else "table", "event_time": event_time},
            "split": split.to_dict() if split else None,
            "data_format": data_format,
            "columns": parts[train_name].column_names,
            "key_columns": key_columns(view),
            "features": features,
            "labels": _label_names(view),
            "row_counts": {name: part.num_rows for name, part in parts.items()},
            "transformations": fitted,
            "statistics": {
                name: compute_statistics(part.select([c for c in part.column_names if c in features or
                                                      c in _label_names(view)]))
                for name, part in parts.items()
            } if statistics else None,
            "content_hash": content_hash,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "library_versions": {"pyarrow": pa.__version__, "duckdb": duckdb.__version__},
        }
        version = store.registry.register_training_dataset(store.project, view.name, view.version, spec)
        os.replace(folder, home / f"v{version}")
        spec["version"] = version
        return TrainingDataset(view, spec)
    finally:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)


def training_datasets_path(view: FeatureView) -> Path:
    return view._store.project_path / "training_datasets" / f"{view.name}_v{view.version}"


def _latest_spec(view: FeatureView) -> dict[str, Any] | None:
    datasets = view._store.registry.list_training_datasets(view._store.project, view.name, view.version)
    return datasets[-1] if datasets else None


class TrainingDataset:
    """One registered training dataset version (get one from ``FeatureView.create_training_data`` and friends,
    or ``FeatureView.get_training_dataset``)."""

    def __init__(self, view: FeatureView, spec: dict[str, Any]) -> None:
        self.view = view
        self.spec = spec

    def __repr__(self) -> str:
        return (f"TrainingDataset({self.view.name!r} v{self.view.version}, version={self.version}, "
                f"rows={self.row_counts}, hash={self.content_hash[:12]})")

    @property
    def version(self) -> int:
        return int(self.spec["version"])

    @property
    def content_hash(self) -> str:
        return self.spec["content_hash"]

    @property
    def pinned_commits(self) -> dict[str, str]:
        return dict(self.spec["pinned_commits"])

    @property
    def splits(self) -> list[str]:
        return list(self.spec["row_counts"])

    @property
    def row_counts(self) -> dict[str, int]:
        return dict(self.spec["row_counts"])

    @property
    def data_format(self) -> DataFormat:
        return self.spec["data_format"]

    @property
    def split(self) -> Split | None:
        return split_from_dict(self.spec["split"])

    @property
    def statistics(self) -> dict[str, Any] | None:
        return self.spec.get("statistics")

    @property
    def transformations(self) -> FittedTransformations | None:
        """The transformation functions fitted on the training split (what serving must apply)."""
        fitted = self.spec.get("transformations")
        return FittedTransformations.from_dict(fitted) if fitted else None

    @property
    def path(self) -> Path:
        return training_datasets_path(self.view) / f"v{self.version}"

    def files(self, split: str | None = None) -> list[Path]:
        parts = [split] if split is not None else self.splits
        return [self.path / part / f"part-00000.{self.data_format}" for part in parts]

    def read(self, split: str | None = None, *, transformed: bool = True, with_keys: bool = False,
             dataframe_type: Literal["pandas", "pyarrow"] = "pandas") -> pd.DataFrame | pa.Table:
        """The rows of one split (all splits in order when None): features then labels.

        Args:
            transformed: apply the fitted transformation functions (pandas only).
            with_keys: also the join keys (:attr:`FeatureView.join_keys`) and the event time (first).
        """
        if split is not None and split not in self.splits:
            raise InvalidDataError(f"training dataset v{self.version} has no split {split!r}; it has {self.splits}")
        missing = [str(f) for f in self.files(split) if not f.exists()]
        if missing:
            raise FeatureStoreError(f"training dataset v{self.version}: files missing ({missing[0]} ...); "
                                    "rebuild them with recreate()")
        tables = [self._read_file(f) for f in self.files(split)]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        wanted = [*self.spec["features"], *self.spec["labels"]]
        if with_keys:
            wanted = list(dict.fromkeys([*self.spec["key_columns"], self.spec["spine"]["event_time"], *wanted]))
        table = table.select(wanted)
        if dataframe_type == "pyarrow":
            if transformed and self.transformations is not None:
                raise InvalidDataError("transformed reads return pandas; use dataframe_type='pandas'")
            return table
        frame = table.to_pandas()
        if transformed and self.transformations is not None:
            frame = self.transformations.transform_frame(frame)
        return frame

    def _read_file(self, path: Path) -> pa.Table:
        if self.data_format == "parquet":
            return pq.read_table(path)
        schema = None
        train = self.files(self.splits[0])[0]
        if train.exists():  # csv: read every split with the column types of the first one
            schema = pacsv.read_csv(train).schema
        options = pacsv.ConvertOptions(column_types=schema) if schema is not None else None
        return pacsv.read_csv(path, convert_options=options)

    def feature_label_split(self, split: str, transformed: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(features, labels) of one split."""
        frame = self.read(split, transformed=transformed)
        labels = self.spec["labels"]
        return frame.drop(columns=labels), frame[labels]

    def train_test_split(self, transformed: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """``X_train, X_test, y_train, y_test`` of a dataset split into ``train`` and ``test``."""
        x_train, y_train = self.feature_label_split("train", transformed)
        x_test, y_test = self.feature_label_split("test", transformed)
        return x_train, x_test, y_train, y_test

    def train_validation_test_split(self, transformed: bool = True) -> tuple[pd.DataFrame, ...]:
        """``X_train, X_val, X_test, y_train, y_val, y_test``."""
        x_train, y_train = self.feature_label_split("train", transformed)
        x_val, y_val = self.feature_label_split("validation", transformed)
        x_test, y_test = self.feature_label_split("test", transformed)
        return x_train, x_val, x_test, y_train, y_val, y_test

    def recreate(self) -> TrainingDataset:
        """Rebuilds the files from the pinned commits (the feature groups may have moved on) and checks that the
        content hash is the recorded one; the files are replaced only then.

        Raises:
            TrainingDatasetMismatch: the rebuild differs (e.g. a pinned commit's files were cleaned, or another
                pyarrow/DuckDB version writes different bytes); the existing files stay.
        """
        home = training_datasets_path(self.view)
        folder = home / f".tmp-{uuid.uuid4().hex}"
        spine = None
        try:
            if self.spec["spine"]["kind"] == "table":
                spine_file = self.path / SPINE_FILE
                if not spine_file.exists():
                    raise FeatureStoreError(f"training dataset v{self.version}: its spine copy {spine_file} is gone; "
                                            "it cannot be rebuilt")
                spine = pq.read_table(spine_file)
                folder.mkdir(parents=True)
                shutil.copyfile(spine_file, folder / SPINE_FILE)
            _, content_hash = _build(self.view, folder, self.pinned_commits, self.split, self.data_format, spine,
                                     self.spec["spine"]["event_time"] if spine is not None else None)
            if content_hash != self.content_hash:
                raise TrainingDatasetMismatch(
                    f"training dataset {self.view.name} v{self.view.version} / v{self.version}: the rebuild from the "
                    f"pinned commits has content hash {content_hash}, the recorded one is {self.content_hash} "
                    f"(recorded with {self.spec.get('library_versions')})"
                )
            old = home / f".old-{uuid.uuid4().hex}"
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(folder, self.path)
            shutil.rmtree(old, ignore_errors=True)
            return self
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def metadata(self) -> dict[str, Any]:
        """A JSON-friendly summary (what Dagster shows)."""
        return {
            "version": self.version,
            "content_hash": self.content_hash,
            "pinned_commits": self.pinned_commits,
            "row_counts": self.row_counts,
            "split": self.spec["split"],
            "data_format": self.data_format,
            "path": str(self.path),
        }


def random_split(test_size: float, validation_size: float = 0.0, seed: int = 0) -> RandomSplit:
    """train/test (or train/validation/test) fractions as a :class:`RandomSplit`."""
    fractions = {"train": 1.0 - test_size - validation_size}
    if validation_size:
        fractions["validation"] = validation_size
    fractions["test"] = test_size
    return RandomSplit(fractions, seed)


def time_split(train_end: datetime, test_start: datetime | None = None, *, train_start: datetime | None = None,
               test_end: datetime | None = None, validation: tuple[datetime, datetime] | None = None) -> TimeSplit:
    """Event-time ranges as a :class:`TimeSplit`: train ``[train_start, train_end)``, optional validation,
    test ``[test_start (default: train_end or the validation end), test_end)``."""
    ranges: dict[str, tuple[datetime | None, datetime | None]] = {"train": (train_start, train_end)}
    if validation is not None:
        ranges["validation"] = validation
    ranges["test"] = (test_start or (validation[1] if validation else train_end), test_end)
    return TimeSplit(ranges)
