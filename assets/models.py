"""The reference model and its deployment: will a flight depart 15+ minutes late (or be cancelled)?

- ``departure_delay_model``: a scikit-learn ``HistGradientBoostingClassifier`` on the ``flight_delays`` v2
  training data (carrier as a categorical feature, missing weather/aircraft values handled natively), registered
  with its lineage. Blocking checks before any deployment: ROC AUC on the test split not worse than the deployed
  version's by more than 0.01 (both scored on the same rows), at least 0.70 overall, and at least 0.65 for every
  origin airport with 200+ test rows. Measured: 0.77 on the whole of 2013 (per origin 0.75-0.78); models of one
  month 0.73-0.81 (per origin 0.70-0.84).
- ``flight_delay_api``: the validated version served by a local seldon-core microservice (127.0.0.1), smoke-tested
  over HTTP with flights of the test split; its SeldonDeployment manifest is written next to it.
- ``flight_delay_api_inference_log``: the answered requests flushed from Valkey into a Hudi feature group;
  ``delay_predictions_labelled``: the same rows with the real departure delay of ``flight_outcomes``.

Training uses one OpenMP thread: on this shared 2-core machine the default (all cores) made the fit 3-10x slower
(busy-waiting threads), 5-8 s on 270k rows with one. The model is a pipeline whose first step turns the frame into
a float matrix: served frames carry the encoded carrier as a nullable integer column, and scikit-learn's pandas
path took 8 ms per one-flight prediction against 2.3 ms for the matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from dagster import AutomationCondition
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from assets.feature_views import DEPARTURE_DELAY_LABEL
from assets.training_datasets import departure_delay_training_data
from fs_dagster import (
    ModelValidation,
    SmokeTest,
    TrainedModel,
    build_deployment_asset,
    build_inference_log_asset,
    build_labelled_inference_log_asset,
    build_model_asset,
)

MODEL_NAME = "departure_delay"
DEPLOYMENT = "flight_delay_api"
PARAMS = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "early_stopping": False, "random_state": 0}
CATEGORICAL = ["carrier"]
VALIDATION = ModelValidation(
    metric="roc_auc", tolerance=0.01, deployment=DEPLOYMENT, minimum=0.70,
    slice_column="origin", slice_minimum=0.65, min_slice_rows=200,
)
# a SeldonDeployment for a cluster: an image with fs-dagster installed, the Valkey and store root it mounts
MANIFEST = {"image": "fs-dagster-serving:0.1.0", "online_url": "valkey://valkey.feature-store:6379/0",
            "store_root": "/mnt/fs_store", "namespace": "flights"}


def train_departure_delay(td) -> TrainedModel:
    """Gradient boosting on the training split (transformations applied: scaled distance, encoded carrier)."""
    features, labels = td.feature_label_split("train")
    categorical = [features.columns.get_loc(c) for c in CATEGORICAL]
    model = Pipeline([
        # (a function of pandas itself: the pickled pipeline loads wherever pandas does, e.g. in the server)
        ("matrix", FunctionTransformer(pd.DataFrame.to_numpy, kw_args={"dtype": "float64", "na_value": np.nan})),
        ("boosting", HistGradientBoostingClassifier(**PARAMS, categorical_features=categorical)),
    ])
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(features, labels[DEPARTURE_DELAY_LABEL].astype(bool))
    return TrainedModel(model, params={**PARAMS, "categorical_features": CATEGORICAL},
                        metrics={"train_rows": len(features)},
                        description="HistGradientBoostingClassifier: departs 15+ minutes late or cancelled")


OWNERS = ["team:ml-platform"]

departure_delay_model = build_model_asset(
    MODEL_NAME,
    train_departure_delay,
    training_data=departure_delay_training_data,
    validation=VALIDATION,
    metrics=["accuracy", "log_loss", "average_precision"],
    code_version="1",
    owners=OWNERS,
    automation_condition=AutomationCondition.eager(),  # retrain on new training data (when the sensor runs)
)

flight_delay_api = build_deployment_asset(
    DEPLOYMENT,
    departure_delay_model,
    smoke_test=SmokeTest(rows=5),
    manifest=MANIFEST,
    owners=OWNERS,
    # redeploy each new version that passed its blocking checks (when the automation sensor runs)
    automation_condition=AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed(),
)

flight_delay_api_inference_log = build_inference_log_asset(DEPLOYMENT, deployment_asset=flight_delay_api,
                                                           owners=OWNERS)

delay_predictions_labelled = build_labelled_inference_log_asset(
    DEPLOYMENT,
    "flight_outcomes",
    on=["flight_id"],
    labels={"dep_delayed": "actual_dep_delayed", "dep_delay": "actual_dep_delay"},
    key="delay_predictions_labelled",
    inference_log_asset=flight_delay_api_inference_log,
    owners=OWNERS,
)

MODEL_ASSETS = [departure_delay_model, flight_delay_api, flight_delay_api_inference_log, delay_predictions_labelled]
