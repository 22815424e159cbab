"""The data the monitors compare, read from the store: thin functions the Dagster layer calls.

Deployments (the model's inputs and outputs):

- :func:`deployment_model`: the model version a deployment serves.
- :func:`training_features`: the model's features in its training dataset's split (``train`` by default), raw.
- :func:`read_inference_log`: a deployment's inference-log rows with ``predicted_at`` in ``[start, end)``.
- :func:`logged_features`: the model's features in those rows, raw.
- :func:`deployment_drift_frames`: both at once, ready for :func:`~.drift.compute_drift`.
- :func:`deployed_at`: when the deployment began serving its current version.
- :func:`training_holdout` / :func:`labelled_predictions`: (label, prediction, probability) on the training
  holdout, predicted by the model, and on the logged predictions whose outcomes arrived (``join_outcomes``), ready
  for :func:`~.quality.compute_quality`; :func:`labelled_log_predictions`: the same from a labelled inference-log
  feature group (the outcomes already joined, e.g. by ``build_labelled_inference_log_asset``).

Feature groups (no model):

- :func:`feature_group_commits`: a group as of two commits; :func:`feature_group_windows`: two event-time windows.

Raw, not transformed: the inference log holds the model's input as served, i.e. after the training dataset's
fitted transformations (scaled numbers, label-encoded classes), while training datasets store raw features. Drift is
compared in the raw units a person reads (temperatures in F, carrier codes), so the log's built-in transformations
are inverted (:func:`~fs_dagster.core.transformations.inverse_series`: the scalers' affine maps, the encoder's class
names, ``__unseen__`` for a class training never saw). A user-function transformation has no inverse: that feature
is compared in model-input space on both sides (the function is applied to the training rows). Scores do not
depend on the choice for the scalers (the normed Wasserstein distance is affine-invariant) nor for the encoder
(the same categories under other names).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from fs_dagster.core.errors import InvalidDataError, NotFoundError
from fs_dagster.core.offline.hudi_reader import sql_string
from fs_dagster.core.transformations import BUILTINS, inverse_series, resolve

if TYPE_CHECKING:
    from fs_dagster.core.feature_group import FeatureGroup, TimeWindow
    from fs_dagster.core.models.registry import ModelVersion
    from fs_dagster.core.store import FeatureStore
    from fs_dagster.core.training.training_dataset import TrainingDataset

LABEL, PREDICTION, PROBABILITY = "label", "prediction", "probability"
"""Columns of the frames :func:`training_holdout` and :func:`labelled_predictions` return."""

AsOf = str | datetime | None


# ---------------------------------------------------------------------------------------------- models


def deployment_model(store: FeatureStore, deployment: str, model_version: int | None = None) -> ModelVersion:
    """The model version a deployment serves (or another ``model_version`` of the same model)."""
    dep = store.get_deployment(deployment)
    return store.get_model_registry().get_model(dep.model_name,
                                                dep.model_version if model_version is None else model_version)


def deployed_at(store: FeatureStore, deployment: str) -> datetime:
    """When ``deployment`` began serving its current model version (its latest create, switch or rollback to it,
    to the second, from the deployment's history).

    Raises:
        NotFoundError: no such deployment.
    """
    dep = store.get_deployment(deployment)
    for entry in reversed(dep.state.get("history") or []):
        if (entry.get("model_name"), entry.get("model_version")) == (dep.model_name, dep.model_version):
            return datetime.fromisoformat(entry["at"]).astimezone(timezone.utc)
    raise NotFoundError(f"deployment {deployment!r}: its history does not say when {dep.model_name} "
                        f"v{dep.model_version} was deployed")


def training_dataset_of(store: FeatureStore, mv: ModelVersion) -> TrainingDataset:
    """The training dataset ``mv`` was registered with.

    Raises:
        NotFoundError: the model records no training dataset, or it is not registered any more.
    """
    lineage = mv.training_dataset
    if not lineage:
        raise NotFoundError(f"model {mv.name} v{mv.version} records no training dataset (register it with "
                            "training_dataset=...): nothing to compare its inputs with")
    view = store.get_feature_view(lineage["feature_view"], int(lineage["feature_view_version"]))
    return view.get_training_dataset(int(lineage["version"]))


def training_features(store: FeatureStore, mv: ModelVersion, split: str = "train") -> pd.DataFrame:
    """The model's features (its order) in ``split`` of its training dataset, raw; features behind a user-function
    transformation are transformed (see module doc), and label-encoded features are text, as the encoder sees them.
    """
    td = training_dataset_of(store, mv)
    features = mv.features or list(td.spec.get("features") or [])
    frame = td.read(split, transformed=False)
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InvalidDataError(f"model {mv.name} v{mv.version}: its training dataset lacks feature(s) {missing}")
    frame = frame[features].copy()
    fitted = td.transformations
    for feature, function in (fitted.functions.items() if fitted else ()):
        if feature not in frame.columns:
            continue
        if function == "label_encoder":
            frame[feature] = frame[feature].map(str, na_action="ignore").astype("object")
        elif function not in BUILTINS:  # no inverse: compared in model-input space
            frame[feature] = resolve(function).apply_series(frame[feature], fitted.params[feature])
    return frame


# ---------------------------------------------------------------------------------------------- inference log


def _utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidDataError(f"{what} must be a datetime, got {value!r}")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def read_inference_log(store: FeatureStore, deployment: str, start: datetime | None = None,
                       end: datetime | None = None, *, model_name: str | None = None,
                       model_version: int | None = None, dataframe_type: str = "pandas") -> pd.DataFrame | pa.Table:
    """Rows of a deployment's inference-log feature group with ``start <= predicted_at < end`` (None: open),
    optionally only those served by one model (name/version). Hudi meta columns are dropped.

    Raises:
        NotFoundError: the deployment has no inference log yet (nothing was flushed).
    """
    from fs_dagster.core.serving.inference_log import log_group_name

    name = log_group_name(deployment)
    try:
        fg = store.get_feature_group(name)
    except NotFoundError as exc:
        raise NotFoundError(f"deployment {deployment!r} has no inference log yet (feature group {name}): flush it "
                            "first (Deployment.flush_inference_log)") from exc
    where = []
    if start is not None:
        where.append(f"predicted_at >= TIMESTAMPTZ {sql_string(_utc(start, 'start').isoformat())}")
    if end is not None:
        where.append(f"predicted_at < TIMESTAMPTZ {sql_string(_utc(end, 'end').isoformat())}")
    if model_name is not None:
        where.append(f"model_name = {sql_string(model_name)}")
    if model_version is not None:
        where.append(f"model_version = {int(model_version)}")
    table = fg.read(where=" AND ".join(where) or None, dataframe_type="arrow")
    table = table.select([c for c in table.column_names if not c.startswith("_hoodie_")])
    return table if dataframe_type == "arrow" else table.to_pandas()


def _serving_keys(store: FeatureStore, mv: ModelVersion, feature_view: tuple[str, int] | None) -> list[str]:
    view = feature_view or ((mv.feature_view["name"], int(mv.feature_view["version"])) if mv.feature_view else None)
    return list(store.get_feature_view(*view).serving_keys) if view else []


def logged_features(store: FeatureStore, log: pd.DataFrame, mv: ModelVersion, *,
                    feature_view: tuple[str, int] | None = None) -> pd.DataFrame:
    """The model's features (its order) in inference-log rows, raw: built-in transformations inverted (see module
    doc). ``feature_view``: the view the deployment serves with, when not the model's own (its serving keys decide
    which features the log stored as ``feature_<name>``).

    Raises:
        InvalidDataError: the log lacks one of the model's features (naming it).
    """
    from fs_dagster.core.serving.inference_log import RESERVED_COLUMNS

    taken = set(RESERVED_COLUMNS) | set(_serving_keys(store, mv, feature_view))
    features = mv.features
    columns = {f: (f"feature_{f}" if f in taken else f) for f in features}
    missing = [f"{f} (column {c})" for f, c in columns.items() if c not in log.columns]
    if missing:
        raise InvalidDataError(f"model {mv.name} v{mv.version}: the inference log lacks feature(s) {missing}; it has "
                               f"{list(log.columns)}")
    frame = pd.DataFrame({f: log[c].to_numpy() for f, c in columns.items()}, index=range(len(log)))
    fitted = training_dataset_of(store, mv).transformations if mv.training_dataset else None
    for feature, function in (fitted.functions.items() if fitted else ()):
        if feature in frame.columns:
            raw = inverse_series(function, frame[feature], fitted.params[feature])
            if raw is not None:
                frame[feature] = raw
    return frame


def deployment_drift_frames(store: FeatureStore, deployment: str, start: datetime | None = None,
                            end: datetime | None = None, *, model_version: int | None = None,
                            split: str = "train") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, current) for a deployment's drift check: the training ``split`` of the model version it serves
    (or ``model_version``) and the features logged by that version in ``[start, end)``, both raw, the model's
    features as columns.

    Raises:
        NotFoundError: no such deployment, model, training dataset or inference log.
        InvalidDataError: the window holds no rows of that model version.
    """
    dep = store.get_deployment(deployment)
    mv = deployment_model(store, deployment, model_version)
    version = mv.version
    log = read_inference_log(store, deployment, start, end, model_name=mv.name, model_version=version)
    if not len(log):
        raise InvalidDataError(f"deployment {deployment!r}: no inference-log rows of {mv.name} v{version} "
                               f"with predicted_at in [{start}, {end})")
    view = dep.target.feature_view if version == dep.model_version else None
    return training_features(store, mv, split), logged_features(store, log, mv, feature_view=view)


# ---------------------------------------------------------------------------------------------- labels


def positive_class(mv: ModelVersion, positive: Any = None) -> tuple[Any, list[Any]]:
    """(the positive class: ``positive``, else the model's second class as scikit-learn orders them; the model's
    classes). Loads the model (its ``classes_``).

    Raises:
        InvalidDataError: no ``positive`` given and the model does not have exactly two classes.
    """
    classes = getattr(mv.load(), "classes_", None)
    classes = [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else []
    if positive is None:
        if len(classes) != 2:
            raise InvalidDataError(f"model {mv.name} v{mv.version} has classes {classes}; quality monitoring covers "
                                   "binary classifiers (give positive=... for a two-class model without classes_)")
        positive = classes[1]  # scikit-learn's positive class: predict_proba[:, 1]
    return positive, classes


def training_holdout(store: FeatureStore, mv: ModelVersion, split: str = "test", *,
                     positive: Any = None) -> pd.DataFrame:
    """The model's predictions on ``split`` of its training dataset (the holdout): columns :data:`LABEL`,
    :data:`PREDICTION` and, for models with ``predict_proba``, :data:`PROBABILITY` of the ``positive`` class
    (default: the second of the model's two ``classes_``).
    """
    td = training_dataset_of(store, mv)
    labels = list(td.spec.get("labels") or [])
    if len(labels) != 1:
        raise InvalidDataError(f"model {mv.name} v{mv.version}: its training dataset has labels {labels}; quality "
                               "needs exactly one")
    x, y = td.feature_label_split(split, transformed=True)
    positive, classes = positive_class(mv, positive)
    frame = pd.DataFrame({LABEL: y[labels[0]].to_numpy(), PREDICTION: np.asarray(mv.predict(x))})
    probabilities = mv.predict_proba(x)
    if probabilities is not None and positive in classes:
        frame[PROBABILITY] = np.asarray(probabilities)[:, classes.index(positive)].astype("float64")
    return frame


def labelled_predictions(store: FeatureStore, deployment: str, outcomes: pd.DataFrame | FeatureGroup, *,
                         label: str, start: datetime | None = None, end: datetime | None = None,
                         on: Sequence[str] | None = None, outcome_time: str | None = None,
                         model_version: int | None = None, positive: Any = None) -> pd.DataFrame:
    """Logged predictions of a deployment in ``[start, end)`` whose outcome arrived (``join_outcomes``, inner):
    columns :data:`LABEL` (the outcome's ``label`` column), :data:`PREDICTION`, and :data:`PROBABILITY` of the
    ``positive`` class when the log has it.

    Args:
        outcomes: a frame or feature group with the entity keys ``on`` and the ``label`` column.
        model_version: only predictions of this version (default: the version the deployment serves).
    """
    from fs_dagster.core.serving.inference_log import join_outcomes, proba_column

    mv = deployment_model(store, deployment, model_version)
    log = read_inference_log(store, deployment, start, end, model_name=mv.name, model_version=mv.version)
    joined = join_outcomes(log, outcomes, on=on, labels={label: "__outcome"}, outcome_time=outcome_time,
                           how="inner")
    positive, _ = positive_class(mv, positive)
    frame = pd.DataFrame({LABEL: joined["__outcome"].to_numpy(), PREDICTION: joined["prediction"].to_numpy()})
    column = proba_column(positive)
    if column in joined.columns:
        frame[PROBABILITY] = joined[column].to_numpy(dtype="float64")
    return frame


def labelled_log_predictions(store: FeatureStore, deployment: str, group: str, *, label: str,
                             start: datetime | None = None, end: datetime | None = None,
                             model_version: int | None = None, positive: Any = None) -> pd.DataFrame:
    """Predictions of a deployment's served version (or ``model_version``) in ``[start, end)`` whose label is known,
    read from a labelled inference-log feature group ``group`` (the log's columns plus the outcome ``label``, as
    ``build_labelled_inference_log_asset`` writes them): columns :data:`LABEL`, :data:`PREDICTION` and, when logged,
    :data:`PROBABILITY` of the ``positive`` class (default: the model's second class).

    Raises:
        NotFoundError: no such deployment, model or feature group.
        InvalidDataError: the group lacks ``label`` or the logged columns (naming them).
    """
    from fs_dagster.core.serving.inference_log import proba_column

    mv = deployment_model(store, deployment, model_version)
    fg = store.get_feature_group(group)
    names = fg.schema().names
    missing = [c for c in (label, "prediction", "predicted_at", "model_name", "model_version") if c not in names]
    if missing:
        raise InvalidDataError(f"feature group {group!r} lacks column(s) {missing} of a labelled inference log; it has "
                               f"{names}")
    positive, _ = positive_class(mv, positive)
    column = proba_column(positive)
    where = [f"model_name = {sql_string(mv.name)}", f"model_version = {int(mv.version)}",
             f'"{label}" IS NOT NULL']
    if start is not None:
        where.append(f"predicted_at >= TIMESTAMPTZ {sql_string(_utc(start, 'start').isoformat())}")
    if end is not None:
        where.append(f"predicted_at < TIMESTAMPTZ {sql_string(_utc(end, 'end').isoformat())}")
    wanted = [label, "prediction", *([column] if column in names else [])]
    rows = fg.read(columns=wanted, where=" AND ".join(where))
    frame = pd.DataFrame({LABEL: rows[label].to_numpy(), PREDICTION: rows["prediction"].to_numpy()})
    if column in names:
        frame[PROBABILITY] = rows[column].to_numpy(dtype="float64")
    return frame


# ---------------------------------------------------------------------------------------------- feature groups


def _feature_columns(fg: FeatureGroup, columns: Sequence[str] | None) -> list[str] | None:
    """``columns``, or the group's columns but its primary key and event time (identities, not features)."""
    if columns is not None:
        return list(columns)
    skip = set(fg.spec.primary_key) | ({fg.spec.event_time} - {None})
    return [n for n in fg.schema().names if n not in skip and not n.startswith("_hoodie_")]


def feature_group_commits(fg: FeatureGroup, reference: AsOf, current: AsOf = None,
                          columns: Sequence[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """(reference, current): the group's snapshot as of two commits (instants or datetimes; ``current`` None =
    latest), ``columns`` or every column but the primary key and event time."""
    names = _feature_columns(fg, columns)
    return (fg.read(as_of=reference, columns=names, dataframe_type="arrow"),
            fg.read(as_of=current, columns=names, dataframe_type="arrow"))


def feature_group_windows(fg: FeatureGroup, reference: TimeWindow, current: TimeWindow,
                          columns: Sequence[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """(reference, current): the group's rows whose event time falls in each window (latest snapshot)."""
    names = _feature_columns(fg, columns)
    ref = fg.read_window(reference, dataframe_type="arrow")
    cur = fg.read_window(current, dataframe_type="arrow")
    return ref.select(names), cur.select(names)
